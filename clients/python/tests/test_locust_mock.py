"""examples/locustfile.py headless against MockRelay served over loopback HTTP.

Checks RelayUser's reporting end to end without the Rust relay (the real run is in
test_locust_run.py)."""

from __future__ import annotations

import csv
import subprocess
import sys
import time
from pathlib import Path

import httpx

from .conftest import free_port

ROOT = Path(__file__).resolve().parent.parent


def test_locust_against_mock_relay_reports_requests(tmp_path):
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "tests.mock_server", str(port)], cwd=ROOT)
    try:
        for _ in range(100):
            try:
                httpx.head(f"http://127.0.0.1:{port}/api/mte-relay", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.05)
        prefix = tmp_path / "run"
        proc = subprocess.run(
            [sys.executable, "-m", "locust", "-f", str(ROOT / "examples" / "locustfile.py"),
             "--headless", "-u", "10", "-r", "10", "-t", "4s", "--host", f"http://127.0.0.1:{port}",
             "--csv", str(prefix), "--only-summary"],
            capture_output=True, text=True, timeout=60,
        )
        stats = {row["Name"]: row for row in csv.DictReader(open(f"{prefix}_stats.csv"))}
        assert int(stats["Aggregated"]["Request Count"]) > 10, proc.stderr[-2000:]
        assert int(stats["Aggregated"]["Failure Count"]) == 0, open(f"{prefix}_failures.csv").read()
        assert "/api/mte-pair" in stats and "/api/mte-relay" in stats
        assert proc.returncode == 0, proc.stderr[-2000:]
    finally:
        server.terminate()
        server.wait(5)
