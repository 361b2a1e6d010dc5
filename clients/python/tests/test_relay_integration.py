"""Round trips against the real relay and the real demo upstream (needs PQRELAY_BIN)."""

from __future__ import annotations

import hashlib
import io
import statistics
import threading
import time

import pytest

import pqrelay

from .conftest import needs_relay, relay_fingerprint

pytestmark = needs_relay

MiB = 1024 * 1024


def body(n: int) -> bytes:
    return bytes(i % 251 for i in range(n))


@pytest.fixture
def session(relay):
    with pqrelay.RelaySession(relay.url, number_of_pairs=5) as s:
        yield s


def test_relay_discovery(session):
    info = session.discover()
    assert 2 in info.versions and info.chunk_size == 65536 and info.max_pairs >= 1
    assert session.client_id is not None and len(session.client_id) == 16
    assert session.offered_keys == [relay_fingerprint()]


def test_relay_pairing_timing(relay):
    """One pairing request (relay key encapsulation, ephemeral key, confirm) for 1 and 5
    pairs; run with -s to see the medians."""
    for n in (1, 5):
        times = []
        for _ in range(11):
            with pqrelay.RelaySession(relay.url, number_of_pairs=n, pin=relay_fingerprint()) as s:
                s.discover()
                start = time.perf_counter()
                s.connect()
                times.append((time.perf_counter() - start) * 1000)
                assert s.pool_size == n
        print(
            f"pairing {n} pair(s): median {statistics.median(times):.1f} ms "
            f"({min(times):.1f}-{max(times):.1f} ms, {len(times)} runs)"
        )


@pytest.mark.parametrize("size", [0, 1, 1000, 65535, 65536, 65537, 1 * MiB + 7, 20 * MiB])
def test_relay_upload_sizes_bytes(session, size):
    data = body(size)
    r = session.post("/upload", content=data)
    assert r.status_code == 200, r.content
    assert r.json() == {"size": size, "sha256": hashlib.sha256(data).hexdigest()}


@pytest.mark.parametrize("size", [0, 65536 * 3 + 5, 20 * MiB])
def test_relay_upload_sizes_streaming(session, size):
    data = body(size)
    pieces = (data[i : i + 10_000] for i in range(0, size, 10_000))
    r = session.post("/upload", content=pieces)
    assert r.json() == {"size": size, "sha256": hashlib.sha256(data).hexdigest()}


def test_relay_upload_file_object(session):
    data = body(3 * MiB + 3)
    r = session.post("/upload", content=io.BytesIO(data))
    assert r.json()["sha256"] == hashlib.sha256(data).hexdigest()


def test_relay_echo_query_string(session):
    r = session.get("/echo", params={"msg": "hello world"})
    assert r.status_code == 200
    assert r.json()["echo"] == "hello world"
    assert r.headers["content-type"].startswith("application/json")


def test_relay_headers_and_query_reach_upstream(session):
    r = session.get("/headers?a=1&b=two", headers={"Authorization": "Bearer secret", "X-Trace": "t1"})
    got = r.json()
    assert got["method"] == "GET" and got["path"] == "/headers" and got["query"] == "a=1&b=two"
    assert got["headers"]["authorization"] == "Bearer secret"
    assert got["headers"]["x-trace"] == "t1"
    assert not any(k.startswith("x-mte-") for k in got["headers"])


@pytest.mark.parametrize("encode_urls", [True, False])
@pytest.mark.parametrize("encode_headers", [True, False, ["authorization"]])
def test_relay_encoding_options(relay, encode_urls, encode_headers):
    with pqrelay.RelaySession(relay.url, encode_urls=encode_urls, encode_headers=encode_headers) as s:
        r = s.post("/headers?q=1", json={"x": 1}, headers={"Authorization": "A", "X-Plain": "p"})
        got = r.json()
        assert got["method"] == "POST" and got["query"] == "q=1"
        assert got["headers"].get("authorization") == ("A" if encode_headers else None)
        # plain headers do not reach the upstream (§9.2: only sealed ones speak for the client)
        assert got["headers"].get("x-plain") == ("p" if encode_headers is True else None)
        assert got["headers"]["content-type"] == "application/json"  # always sealed


def test_relay_login_and_cookies(session):
    r = session.post("/login", json={"username": "ada", "password": "pw"})
    assert r.status_code == 200 and r.json()["user"] == "ada"
    assert "demo_session=logged-in" in r.headers.get("set-cookie", "")
    r = session.post("/login", json={"username": "ada", "password": ""})
    assert r.status_code == 401


def test_relay_concurrent_requests_share_pool(relay):
    errors: list[BaseException] = []
    with pqrelay.RelaySession(relay.url, number_of_pairs=4, max_pairs=6) as s:
        def worker(k):
            try:
                for i in range(15):
                    data = body(k * 1000 + i)
                    assert s.post("/upload", content=data).json()["size"] == len(data)
            except BaseException as exc:  # pragma: no cover
                errors.append(exc)
        threads = [threading.Thread(target=worker, args=(k,)) for k in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors[:3]
        assert s.pool_size <= 6


def test_relay_repair_after_restart(relay):
    with pqrelay.RelaySession(relay.url, number_of_pairs=3) as s:
        assert s.get("/echo", params={"msg": "before"}).json()["echo"] == "before"
        client_id = s.client_id
        relay.restart()  # memory state: every pair is gone, the client id still verifies
        for i in range(6):
            assert s.get("/echo", params={"msg": f"after{i}"}).json()["echo"] == f"after{i}"
            assert s.post("/upload", content=body(70_000)).json()["size"] == 70_000
        assert s.client_id == client_id


def test_relay_not_a_relay(demo_upstream):
    with pqrelay.RelaySession(f"http://127.0.0.1:{demo_upstream}") as s:
        with pytest.raises(pqrelay.NotARelayError):
            s.get("/echo")
