"""A short headless Locust run of examples/locustfile.py against the real relay."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import RelayProcess, needs_relay, relay_fingerprint

pytestmark = needs_relay

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

# 20 users pair at once while they start; with the default PAIRING_CONCURRENCY (4 per CPU) the
# relay can answer 503 pairing_busy, which the client retries but rightly reports as a failed
# request (test_busy.py covers the retry). This run is about the Locust user: all are admitted.
WIDE_PAIRING = {"PAIRING_CONCURRENCY": "256"}


@pytest.fixture(scope="module")
def locust_relay(demo_upstream, tmp_path_factory) -> Iterator[RelayProcess]:
    relay = RelayProcess(demo_upstream, tmp_path_factory.mktemp("locust-relay"), WIDE_PAIRING)
    with relay.running() as r:
        yield r


def test_locust_headless_run_has_no_failures(locust_relay, tmp_path):
    prefix = tmp_path / "run"
    cmd = [
        sys.executable, "-m", "locust",
        "-f", str(EXAMPLES / "locustfile.py"),
        "--headless", "-u", "20", "-r", "10", "-t", "10s",
        "--host", locust_relay.url,
        "--csv", str(prefix),
        "--exit-code-on-error", "1",
        "--only-summary",
    ]
    env = {**os.environ, "PQRELAY_PIN": relay_fingerprint()}  # every user pinned
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    stats = list(csv.DictReader(open(f"{prefix}_stats.csv")))
    total = next(row for row in stats if row["Name"] == "Aggregated")
    print(proc.stdout[-3000:], proc.stderr[-3000:])
    assert int(total["Request Count"]) > 0
    assert int(total["Failure Count"]) == 0, open(f"{prefix}_failures.csv").read()
    assert proc.returncode == 0, proc.stderr[-3000:]
    names = {row["Name"] for row in stats}
    assert "/login" in names and "/upload [50 KB JSON]" in names
    # RelayUser reports discovery and pairing as their own entries
    assert "/api/mte-relay" in names and "/api/mte-pair" in names
