"""RelaySession against the in-process MockRelay: pool, sizes, streaming, recovery."""

from __future__ import annotations

import hashlib
import io
import threading

import pytest

import pqrelay

from .mock_relay import MockRelay

URL = "http://relay.test"


def body(n: int) -> bytes:
    return bytes(i % 251 for i in range(n))


@pytest.fixture
def relay() -> MockRelay:
    return MockRelay()


def session(relay: MockRelay, **kw) -> pqrelay.RelaySession:
    return pqrelay.RelaySession(URL, transport=relay.transport(), **kw)


@pytest.mark.parametrize("size", [0, 1, 65535, 65536, 65537, 3 * 65536, 1_000_003])
def test_session_upload_sizes_bytes(relay, size):
    data = body(size)
    with session(relay) as s:
        r = s.post("/upload", content=data)
        assert r.status_code == 200 and r.sealed
        assert r.json() == {"size": size, "sha256": hashlib.sha256(data).hexdigest()}


@pytest.mark.parametrize("size", [0, 5, 65536, 200_001])
def test_session_round_trip_body_echo(relay, size):
    data = body(size)
    with session(relay) as s:
        r = s.post("/echo-body", content=data)
        assert r.content == data
        assert r.headers["content-type"] == "application/octet-stream"


def test_session_file_object_is_sized_and_replayable(relay):
    data = body(150_000)
    with session(relay) as s:
        relay.fail_next = [563]  # forces a re-pair and a replay of the file
        r = s.post("/upload", content=io.BytesIO(data))
        assert r.json()["sha256"] == hashlib.sha256(data).hexdigest()
        assert relay.log == [("forced", 563)]


def test_session_iterator_is_streaming(relay):
    pieces = [body(10), body(70_000), b"", body(3)]
    with session(relay) as s:
        r = s.post("/upload", content=iter(pieces))
        assert r.json()["size"] == 70_013


def test_session_iterator_with_content_length_is_sized(relay):
    with session(relay) as s:
        r = s.post("/upload", content=iter([b"abc", b"de"]), headers={"content-length": "5"})
        assert r.json()["size"] == 5


def test_session_iterator_wrong_length_fails(relay):
    with session(relay) as s:
        with pytest.raises(Exception):
            s.post("/upload", content=iter([b"abc"]), headers={"content-length": "5"})


def test_session_headers_and_query_are_sealed_and_delivered(relay):
    with session(relay) as s:
        r = s.get("/headers?x=1", params={"y": "two words"}, headers={"Authorization": "Bearer t", "X-Custom": "v"})
        got = r.json()
        assert got["method"] == "GET"
        assert got["target"] == "/headers?x=1&y=two+words"
        assert ["authorization", "Bearer t"] in got["headers"]
        assert ["x-custom", "v"] in got["headers"]


def test_session_plain_url_and_partial_header_sealing(relay):
    with session(relay, encode_urls=False, encode_headers=["authorization"]) as s:
        r = s.post("/headers?q=1", json={"a": 1}, headers={"Authorization": "x", "Accept-Language": "en"})
        got = r.json()
        assert got["target"] == "/headers?q=1"
        assert sorted(got["headers"]) == [["authorization", "x"], ["content-type", "application/json"]]


def test_session_encode_headers_false_seals_only_content_type(relay):
    with session(relay, encode_headers=False) as s:
        got = s.post("/headers", data={"a": "b"}, headers={"X-A": "1"}).json()
        assert got["headers"] == [["content-type", "application/x-www-form-urlencoded"]]


def test_session_reserved_header_rejected(relay):
    with session(relay) as s:
        with pytest.raises(ValueError):
            s.get("/headers", headers={"x-mte-relay": "nope"})


def test_session_streamed_response_event_by_event(relay):
    with session(relay) as s:
        with s.get("/events", stream=True) as r:
            assert r.headers["content-type"] == "text/event-stream"
            lines = [line for line in r.iter_lines() if line]
        assert lines == ["data: 0", "data: 1", "data: 2"]


def test_session_no_content_and_cookies(relay):
    with session(relay) as s:
        r = s.delete("/nocontent")
        assert r.status_code == 204 and r.content == b""
        r = s.get("/cookie")
        assert r.headers["set-cookie"] == "a=1" and r.text == "ok"


def test_session_plain_relay_route(relay):
    with session(relay) as s:
        r = s.get("/api/mte-echo/test", plain=True)
        assert r.json()["echo"] == "test" and not r.sealed


def test_session_pool_pairs_once_in_one_request(relay):
    with session(relay, number_of_pairs=5) as s:
        for _ in range(12):
            assert s.get("/echo-body").status_code == 200
        assert relay.pairings == 1 and relay.pairs_paired == 5
        assert s.pool_size == 5


def test_session_never_two_exchanges_on_one_pair(relay):
    errors: list[BaseException] = []
    with session(relay, number_of_pairs=3, max_pairs=4) as s:
        def worker():
            try:
                for i in range(25):
                    assert s.post("/echo-body", content=body(i * 100)).content == body(i * 100)
            except BaseException as exc:  # pragma: no cover
                errors.append(exc)
        threads = [threading.Thread(target=worker) for _ in range(10)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        assert relay.overlaps == 0
        assert s.pool_size <= 4


def test_session_repairs_after_relay_restart(relay):
    with session(relay, number_of_pairs=2) as s:
        assert s.get("/echo-body").status_code == 200
        relay.restart()
        for _ in range(4):
            assert s.get("/echo-body").status_code == 200


@pytest.mark.parametrize("status", [559, 561, 562, 563, 564, 565, 567, 569])
def test_session_retries_once_on_recoverable_errors(relay, status):
    with session(relay) as s:
        s.connect()
        relay.fail_next = [status]
        assert s.post("/upload", content=b"x").json()["size"] == 1


def test_session_gives_up_after_second_failure(relay):
    with session(relay) as s:
        relay.fail_next = [563, 563]
        with pytest.raises(pqrelay.RelayError) as info:
            s.get("/echo-body")
        assert info.value.status == 563


def test_session_no_retry_for_iterator_body(relay):
    with session(relay) as s:
        s.connect()
        relay.fail_next = [562]
        with pytest.raises(pqrelay.RelayError):
            s.post("/upload", content=iter([b"a"]))
        assert s.post("/upload", content=iter([b"a"])).json()["size"] == 1


def test_session_rediscovers_on_566(relay):
    with session(relay) as s:
        s.connect()
        old = s.client_id
        relay.secret = b"t" * 32  # relay rotated to an unrelated secret: token now invalid
        assert s.get("/echo-body").status_code == 200
        assert s.client_id != old


def test_session_not_a_relay():
    import httpx
    t = httpx.MockTransport(lambda r: httpx.Response(200))
    with pqrelay.RelaySession(URL, transport=t) as s:
        with pytest.raises(pqrelay.NotARelayError):
            s.get("/x")


def test_session_tampered_response_body_detected(relay):
    orig = relay.handle

    def tamper(request):
        resp = orig(request)
        if request.url.path.startswith("/api/"):
            return resp
        data = bytearray(resp.read())
        if len(data) > 30:
            data[30] ^= 1
        import httpx
        return httpx.Response(resp.status_code, headers=resp.headers, content=iter([bytes(data)]))

    import httpx
    with pqrelay.RelaySession(URL, transport=httpx.MockTransport(tamper)) as s:
        with pytest.raises(pqrelay.DecodeError):
            s.post("/echo-body", content=body(100))
