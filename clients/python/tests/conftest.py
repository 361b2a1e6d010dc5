"""Fixtures that start the real relay and the real demo upstream (PQRELAY_BIN)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

PQRELAY_BIN = os.environ.get("PQRELAY_BIN")
SECRET = "pqrelay-python-tests-secret-0123456789"

needs_relay = pytest.mark.skipif(
    not PQRELAY_BIN or not Path(PQRELAY_BIN).is_file(),
    reason="set PQRELAY_BIN to the built relay (e.g. /work/cargo-target/debug/pqrelay) "
    "to run round trips against a real relay and demo upstream",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(check, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (httpx.HTTPError, OSError) as exc:
            last = exc
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not come up: {last!r}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)  # Pingora: SIGINT is the fast shutdown
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


class RelayProcess:
    """The relay (memory state) in front of one demo upstream; restartable on its port."""

    def __init__(self, upstream_port: int, log_dir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.upstream_port = upstream_port
        self.log_dir = log_dir
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> None:
        assert PQRELAY_BIN
        env = {
            **os.environ,
            "UPSTREAM": f"http://127.0.0.1:{self.upstream_port}",
            "CLIENT_ID_SECRET": SECRET,
            "CORS_ORIGINS": "http://localhost",
            "PORT": str(self.port),
        }
        self.starts += 1
        log = open(self.log_dir / f"relay-{self.starts}.log", "wb")
        self.proc = subprocess.Popen([PQRELAY_BIN], env=env, stdout=log, stderr=subprocess.STDOUT)
        _wait(
            lambda: httpx.head(self.url + "/api/mte-relay", timeout=1).status_code == 200,
            f"relay on {self.port} (see {log.name})",
        )

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc)
            self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture(scope="session")
def demo_upstream(tmp_path_factory) -> Iterator[int]:
    if not PQRELAY_BIN or not Path(PQRELAY_BIN).is_file():
        pytest.skip("PQRELAY_BIN not set")
    port = free_port()
    log = open(tmp_path_factory.mktemp("logs") / "upstream.log", "wb")
    proc = subprocess.Popen(
        [PQRELAY_BIN, "demo-upstream", "--port", str(port)], stdout=log, stderr=subprocess.STDOUT
    )
    try:
        _wait(lambda: httpx.get(f"http://127.0.0.1:{port}/", timeout=1).status_code == 200, "demo upstream")
        yield port
    finally:
        _stop(proc)


@pytest.fixture(scope="session")
def relay(demo_upstream, tmp_path_factory) -> Iterator[RelayProcess]:
    r = RelayProcess(demo_upstream, tmp_path_factory.mktemp("relay"))
    r.start()
    try:
        yield r
    finally:
        r.stop()
