"""Fixtures that start the real relay, the real demo upstream (PQRELAY_BIN) and, for the
attacker tests, the testkit's counting upstream and on-path attacker (built beside it)."""

from __future__ import annotations

import os
import selectors
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from pqrelay import _keys, _xwing
from pqrelay._relay_keys import RelayKey

PQRELAY_BIN = os.environ.get("PQRELAY_BIN")
SECRET = "pqrelay-python-tests-secret-0123456789"
_BIN_DIR = Path(PQRELAY_BIN).parent if PQRELAY_BIN else Path("/nonexistent")
ATTACKER_BIN = os.environ.get("PQRELAY_ATTACKER_BIN", str(_BIN_DIR / "pqrelay-attacker"))
TEST_UPSTREAM_BIN = os.environ.get(
    "PQRELAY_TEST_UPSTREAM_BIN", str(_BIN_DIR / "pqrelay-test-upstream")
)

needs_relay = pytest.mark.skipif(
    not PQRELAY_BIN or not Path(PQRELAY_BIN).is_file(),
    reason="set PQRELAY_BIN to the built relay (e.g. /work/cargo-target/debug/pqrelay) "
    "to run round trips against a real relay and demo upstream",
)
needs_attacker = pytest.mark.skipif(
    not Path(ATTACKER_BIN).is_file() or not Path(TEST_UPSTREAM_BIN).is_file(),
    reason="pqrelay-attacker and pqrelay-test-upstream (the testkit crate) are not built "
    "beside PQRELAY_BIN",
)


def relay_fingerprint(secret: str = SECRET) -> str:
    """The relay key a relay without RELAY_KEYS derives from its CLIENT_ID_SECRET
    (PROTOCOL.md §4): what a client pins."""
    prk = _keys.hkdf_extract(b"pqrelay/2 relay key from client-id secret", secret.encode())
    seed = _keys.hkdf_expand(prk, b"pqrelay/2 relay key seed")
    pk = _xwing.DecapsulationKey.from_seed(seed).encapsulation_key
    return RelayKey.from_public_key(pk).fingerprint


class Route(httpx.HTTPTransport):
    """The real transport, sending every request to ``port`` on loopback whatever its URL
    says: the session keeps the relay's origin (its trust is per origin) while an attacker is
    put on the path, or taken off it."""

    def __init__(self, port: int) -> None:
        super().__init__()
        self.port = port

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.url = request.url.copy_with(port=self.port)
        return super().handle_request(request)


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
    """The relay (memory state) in front of one upstream; restartable on its port."""

    def __init__(
        self, upstream_port: int, log_dir: Path, env: dict[str, str] | None = None
    ) -> None:
        self.env = dict(env or {})
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
            **self.env,
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

    @contextmanager
    def running(self) -> Iterator[RelayProcess]:
        """Starts the relay; stops it when the block ends (for fixtures)."""
        self.start()
        try:
            yield self
        finally:
            self.stop()


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
    with RelayProcess(demo_upstream, tmp_path_factory.mktemp("relay")).running() as r:
        yield r


def _drain(stream) -> None:
    for _ in stream:
        pass


def _start_announcing(cmd: list[str], line_start: str, log: Path) -> tuple[subprocess.Popen, str]:
    """Starts a testkit binary and waits (bounded) for its ``… listening at URL`` line."""
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=open(log, "wb"), text=True, bufsize=1
    )
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if not sel.select(timeout=max(0.0, deadline - time.monotonic())):
            break
        line = proc.stdout.readline()
        if not line:
            break
        if line.startswith(line_start):
            sel.close()
            # keep draining stdout so that a chatty process never blocks on a full pipe
            threading.Thread(target=_drain, args=(proc.stdout,), daemon=True).start()
            return proc, line.split(" at ", 1)[1].strip()
    _stop(proc)
    raise RuntimeError(f"{cmd[0]} did not announce itself (see {log})")


@pytest.fixture(scope="session")
def test_upstream(tmp_path_factory) -> Iterator[str]:
    """``pqrelay-test-upstream``: ``/count/<name>`` counts every request it receives."""
    if not Path(TEST_UPSTREAM_BIN).is_file():
        pytest.skip("pqrelay-test-upstream not built")
    port = free_port()
    log = tmp_path_factory.mktemp("logs") / "test-upstream.log"
    proc, url = _start_announcing(
        [TEST_UPSTREAM_BIN, "--port", str(port)], "test upstream listening", log
    )
    try:
        yield url
    finally:
        _stop(proc)


@pytest.fixture(scope="session")
def counting_relay(test_upstream, tmp_path_factory) -> Iterator[RelayProcess]:
    """A relay in front of the counting test upstream."""
    port = int(test_upstream.rsplit(":", 1)[1])
    with RelayProcess(port, tmp_path_factory.mktemp("relay2")).running() as r:
        yield r


@pytest.fixture
def attacker(counting_relay, tmp_path) -> Iterator[Callable[..., str]]:
    """``attacker(mode, times=1)`` starts ``pqrelay-attacker`` between the client and the
    counting relay and returns its URL; every one started is stopped after the test."""
    procs: list[subprocess.Popen] = []

    def start(mode: str, times: int = 1) -> str:
        port = free_port()
        proc, url = _start_announcing(
            [
                ATTACKER_BIN, "--listen", f"127.0.0.1:{port}",
                "--relay", counting_relay.url, "--mode", mode, "--times", str(times),
            ],
            "attacker listening",
            tmp_path / f"attacker-{mode}-{len(procs)}.log",
        )
        procs.append(proc)
        return url

    try:
        yield start
    finally:
        for proc in procs:
            _stop(proc)
