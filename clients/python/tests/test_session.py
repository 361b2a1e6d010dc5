"""RelaySession against the real relay and the real demo upstream (needs PQRELAY_BIN).

What the session does on the wire is observed with a recording transport (the real httpx
transport, which keeps a copy of each request's target and headers). Recovery (§11) and the
delivery rules (§12) are provoked for real: restarting the relay (memory state: 563),
corrupting the session's own state (its token: 566; a pair's chain key: 562; a pair's counter:
564). Trust (§13) is checked with the fingerprint the relay derives from its secret."""

from __future__ import annotations

import hashlib
import io
import json
import os
import threading
import time

import httpx
import pytest

import pqrelay
from pqrelay._keys import Ratchet

from .conftest import needs_relay, relay_fingerprint

pytestmark = needs_relay

PAIR = "/api/mte-pair"


def body(n: int) -> bytes:
    return bytes(i % 251 for i in range(n))


class Recording(httpx.HTTPTransport):
    """The real transport; remembers (method, target, headers) of every request it sends."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[tuple[str, str, httpx.Headers]] = []
        #: per exchange: (thread, pair id, counter, response status)
        self.exchange_log: list[tuple[int, str, int, int]] = []
        self._lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            self.sent.append((request.method, request.url.raw_path.decode(), httpx.Headers(request.headers)))
        resp = super().handle_request(request)
        fields = request.headers.get("x-mte-relay", "").split(".")
        if len(fields) == 5:
            with self._lock:
                self.exchange_log.append(
                    (threading.get_ident(), fields[2], int(fields[3]), resp.status_code)
                )
        return resp

    def exchanges(self) -> list[tuple[str, str, httpx.Headers]]:
        return [s for s in self.sent if not s[1].startswith("/api/mte-")]


class Pairings:
    """An event hook counting successful pairing requests; ``then`` runs after each one."""

    def __init__(self) -> None:
        self.count = 0
        self.then = None
        self.lock = threading.Lock()

    def __call__(self, kind, name, ms, length, exc) -> None:
        if name == PAIR and exc is None:
            with self.lock:
                self.count += 1
            then, self.then = self.then, None  # one shot
            if then is not None:
                then()


def session(relay, **kw) -> pqrelay.RelaySession:
    return pqrelay.RelaySession(relay.url, **kw)


# -- bodies --------------------------------------------------------------------------------


def test_upload_file_object_is_sized_and_replayable(relay):
    data = body(150_000)
    wire = Recording()
    pairings = Pairings()
    with session(relay, number_of_pairs=1, transport=wire, event_hook=pairings) as s:
        s.connect()
        relay.restart()  # the first attempt gets 563: re-pair, then the file is sent again
        # an idempotency-key makes a POST idempotent (§12): it may be resent
        r = s.post("/upload", content=io.BytesIO(data), headers={"Idempotency-Key": "k-1"})
        assert r.json() == {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        posts = [h for m, _, h in wire.exchanges() if m == "POST"]
        assert len(posts) == 2 and pairings.count == 2
        assert all(h["content-length"] == posts[0]["content-length"] for h in posts)
        assert "transfer-encoding" not in posts[0]
        assert "idempotency-key" not in posts[0]  # sealed, whatever encode_headers says


def test_post_after_restart_is_outcome_unknown_and_never_resent(relay):
    """563 is never authenticated: for a POST the client cannot tell a restarted relay from
    an attacker who let the request run and forged the error (§12)."""
    wire = Recording()
    pairings = Pairings()
    with session(relay, number_of_pairs=2, transport=wire, event_hook=pairings) as s:
        s.connect()
        relay.restart()
        with pytest.raises(pqrelay.OutcomeUnknownError) as info:
            s.post("/upload", content=b"once")
        assert info.value.status == 563 and info.value.verdict is None
        assert len([m for m, _, _ in wire.exchanges() if m == "POST"]) == 1
        # every pair paired no later than the failed one was dropped: the next POST pairs anew
        assert s.post("/upload", content=b"again").json()["size"] == 5
        assert pairings.count == 2


def test_iterator_is_streaming(relay):
    pieces = [body(10), body(70_000), b"", body(3)]
    wire = Recording()
    with session(relay, transport=wire) as s:
        r = s.post("/upload", content=iter(pieces))
        whole = b"".join(pieces)
        assert r.json() == {"size": 70_013, "sha256": hashlib.sha256(whole).hexdigest()}
    (_, _, h), = wire.exchanges()
    assert h["transfer-encoding"] == "chunked" and "content-length" not in h


def test_iterator_with_content_length_is_sized(relay):
    wire = Recording()
    with session(relay, transport=wire) as s:
        r = s.post("/upload", content=iter([b"abc", b"de"]), headers={"content-length": "5"})
        assert r.json() == {"size": 5, "sha256": hashlib.sha256(b"abcde").hexdigest()}
    (_, _, h), = wire.exchanges()
    assert "content-length" in h and "transfer-encoding" not in h


def test_iterator_wrong_length_fails_and_session_recovers(relay):
    with session(relay) as s:
        with pytest.raises(ValueError, match="shorter"):
            s.post("/upload", content=iter([b"abc"]), headers={"content-length": "5"})
        with pytest.raises(ValueError, match="longer"):
            s.post("/upload", content=iter([b"abcdef"]), headers={"content-length": "5"})
        assert s.post("/upload", content=b"ok").json()["size"] == 2


@pytest.mark.parametrize("size", [0, 5, 65536, 200_001])
def test_request_body_delivered_exactly(session5, size):
    data = os.urandom(size)
    r = session5.post("/upload", content=data)
    assert r.sealed and r.status_code == 200
    assert r.json() == {"size": size, "sha256": hashlib.sha256(data).hexdigest()}


@pytest.mark.parametrize("size", [1, 100, 1000])
def test_response_body_echo(session5, size):
    msg = "é" * size  # the upstream echoes it back inside a JSON body
    r = session5.get("/echo", params={"msg": msg})
    assert r.json() == {"echo": msg, "method": "GET"}


# -- URL and headers -----------------------------------------------------------------------


def test_headers_and_query_are_sealed_and_delivered(relay):
    wire = Recording()
    with session(relay, transport=wire) as s:
        r = s.get(
            "/headers?x=1",
            params={"y": "two words"},
            headers={"Authorization": "Bearer t", "X-Custom": "v"},
        )
        got = r.json()
    assert got["method"] == "GET" and got["path"] == "/headers"
    assert got["query"] == "x=1&y=two+words"
    assert got["headers"]["authorization"] == "Bearer t" and got["headers"]["x-custom"] == "v"
    (_, target, h), = wire.exchanges()
    assert "headers" not in target and "x=1" not in target  # the URL travels sealed
    assert "authorization" not in h and "x-custom" not in h
    assert "x-mte-relay-eh" in h


def test_plain_url_and_partial_header_sealing(relay):
    wire = Recording()
    with session(relay, transport=wire, encode_urls=False, encode_headers=["authorization"]) as s:
        got = s.post(
            "/headers?q=1", json={"a": 1}, headers={"Authorization": "x", "Accept-Language": "en"}
        ).json()
    assert got["path"] == "/headers" and got["query"] == "q=1"
    assert got["headers"]["authorization"] == "x"
    assert "accept-language" not in got["headers"]  # plain: the relay drops it (§9.2)
    assert got["headers"]["content-type"] == "application/json"
    (_, target, h), = wire.exchanges()
    assert target == "/headers?q=1"
    assert "authorization" not in h and h["accept-language"] == "en"
    assert h["content-type"] == "application/octet-stream"  # the real one is sealed


def test_encode_headers_false_seals_only_content_type(relay):
    wire = Recording()
    with session(relay, transport=wire, encode_headers=False) as s:
        got = s.post(
            "/headers", data={"a": "b"}, headers={"X-A": "1", "Cookie": "c=1"}
        ).json()
    assert got["headers"]["content-type"] == "application/x-www-form-urlencoded"
    assert "x-a" not in got["headers"]  # only sealed headers speak for the client
    assert got["headers"]["cookie"] == "c=1"  # the relay's default plain allow-list
    (_, _, h), = wire.exchanges()
    assert h["x-a"] == "1" and h["content-type"] == "application/octet-stream"


# -- empty bodies (issue 19) -----------------------------------------------------------------


@pytest.mark.parametrize(
    "method,kwargs", [("POST", {}), ("POST", {"content": b""}), ("PUT", {}), ("DELETE", {"content": b""})]
)
def test_empty_body_stays_empty_with_its_framing(relay, method, kwargs):
    wire = Recording()
    with session(relay, transport=wire) as s:
        got = s.request(method, "/headers", **kwargs).json()
    assert got["method"] == method
    assert got["headers"]["content-length"] == "0"
    assert "content-type" not in got["headers"] and "transfer-encoding" not in got["headers"]
    (_, _, h), = wire.exchanges()
    assert h["content-length"] == "0" and "content-type" not in h
    assert not int(h["x-mte-relay"].split(".")[4]) & 0x04  # no flag body


def test_body_without_content_type_reaches_upstream_without_one(relay):
    with session(relay) as s:
        got = s.post("/headers", content=b"abc").json()
    assert "content-type" not in got["headers"]


# -- trust (§13) -------------------------------------------------------------------------------


def test_pin_and_trust_on_first_use(relay):
    fp = relay_fingerprint()
    with session(relay, pin=fp) as s:
        assert s.get("/echo", params={"msg": "pinned"}).json()["echo"] == "pinned"
        assert s.relay_fingerprint == fp and s.trusted_keys == [fp] and s.pins == [fp]
    with session(relay) as s:  # no pin: trusts the first key it sees, and stores it
        assert s.trusted_keys == []
        s.connect()
        assert s.relay_fingerprint == fp and s.trusted_keys == [fp] == s.offered_keys
        saved = (s.token, s.trusted_keys)
    with session(relay) as s:  # the application restores what it persisted
        s.token, s.trusted_keys = saved
        assert s.get("/echo", params={"msg": "again"}).json()["echo"] == "again"
        assert s.token == saved[0]


def test_wrong_pin_is_a_hard_error_before_any_pairing(relay):
    other = "sha256:" + "A" * 42 + "E"
    wire = Recording()
    with session(relay, pin=[other], transport=wire) as s:
        with pytest.raises(pqrelay.RelayKeyNotTrustedError) as info:
            s.get("/echo", params={"msg": "x"})
        assert info.value.trusted == [other] and info.value.offered == [relay_fingerprint()]
        assert other in str(info.value) and relay_fingerprint() in str(info.value)
        assert not any(t == PAIR for _, t, _ in wire.sent)  # never paired with another key
    with session(relay) as s:  # stored trust in another key: the same hard error
        s.trusted_keys = [other]
        with pytest.raises(pqrelay.RelayKeyNotTrustedError):
            s.connect()


def test_reserved_header_rejected_before_sending(relay):
    wire = Recording()
    with session(relay, transport=wire) as s:
        for name in ("x-mte-relay", "X-MTE-Relay-EH", "x-mte-anything"):
            with pytest.raises(ValueError, match="reserved"):
                s.get("/headers", headers={name: "nope"})
    assert wire.sent == []


# -- responses -----------------------------------------------------------------------------


def test_server_sent_events_arrive_event_by_event(session5):
    arrivals: list[tuple[float, dict]] = []
    with session5.get("/events", stream=True) as r:
        assert r.headers["content-type"] == "text/event-stream"
        for line in r.iter_lines():
            if line.startswith("data:"):
                arrivals.append((time.monotonic(), json.loads(line[5:])))
    assert [d["n"] for _, d in arrivals] == [0, 1, 2, 3, 4]
    gaps = [b[0] - a[0] for a, b in zip(arrivals, arrivals[1:])]
    # the upstream sends one event every 200 ms: each must arrive on its own, not buffered
    assert all(g > 0.1 for g in gaps), gaps
    assert [d["time"] for _, d in arrivals] == sorted(d["time"] for _, d in arrivals)


def test_cookies_and_error_status(session5):
    r = session5.post("/login", json={"username": "ada", "password": "pw"})
    assert r.status_code == 200 and r.json()["user"] == "ada"
    cookies = r.headers.get_list("set-cookie")
    assert len(cookies) == 2
    assert cookies[0].startswith("demo_session=logged-in") and cookies[1].startswith("demo_theme=dark")
    r = session5.post("/login", json={"username": "ada", "password": ""})
    assert r.status_code == 401 and r.sealed and r.json() == {"error": "invalid credentials"}


def test_head_has_no_body_and_unknown_path_is_upstreams_404(session5):
    r = session5.head("/headers")
    assert r.status_code == 200 and r.content == b""
    r = session5.get("/nothing-here")
    assert r.status_code == 404 and r.sealed and r.json()["path"] == "/nothing-here"


def test_plain_relay_route(session5):
    r = session5.get("/api/mte-echo/test", plain=True)
    assert r.json()["echo"] == "test" and not r.sealed


class Tamper(httpx.HTTPTransport):
    """The real transport; flips one bit of every sealed response body it receives."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        resp = super().handle_request(request)
        if request.url.path.startswith("/api/"):
            return resp
        data = bytearray(resp.read())
        if len(data) > 30:
            data[30] ^= 1
        return httpx.Response(resp.status_code, headers=resp.headers, stream=httpx.ByteStream(bytes(data)))


def test_tampered_response_body_detected(relay):
    with session(relay, transport=Tamper()) as s:
        with pytest.raises(pqrelay.DecodeError):
            s.post("/upload", content=body(100))


# -- pool ----------------------------------------------------------------------------------


def test_pool_pairs_once(relay):
    pairings = Pairings()
    with session(relay, number_of_pairs=5, event_hook=pairings) as s:
        for _ in range(12):
            assert s.get("/echo", params={"msg": "x"}).status_code == 200
        assert pairings.count == 1 and s.pool_size == 5


def test_never_two_exchanges_on_one_pair(relay):
    # The relay answers 564 when a pair is used concurrently; the session would re-pair it
    # (a second pairing request). One pairing request for the whole run means no overlap.
    errors: list[BaseException] = []
    pairings = Pairings()
    with session(relay, number_of_pairs=3, max_pairs=3, event_hook=pairings) as s:
        s.connect()

        def worker(k):
            try:
                for i in range(25):
                    data = body(k * 100 + i)
                    assert s.post("/upload", content=data).json()["size"] == len(data)
            except BaseException as exc:  # pragma: no cover
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(10)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors[:3]
        assert pairings.count == 1 and s.pool_size == 3


# -- recovery (§11) ------------------------------------------------------------------------


@pytest.mark.parametrize("pairs,threads", [(8, 8), (8, 3), (4, 12)])
def test_repair_after_restart_is_invisible(relay, pairs, threads):
    """A relay restarted with memory state lost every pair: each stale pair costs one
    re-pairing and the retry runs on that pair (§11), so no caller sees an error."""
    pairings = Pairings()
    wire = Recording()
    errors: list[BaseException] = []
    with session(relay, number_of_pairs=pairs, event_hook=pairings, transport=wire) as s:
        s.connect()
        assert pairings.count == 1
        client_id = s.client_id
        relay.restart()
        start = threading.Barrier(threads)

        def worker(k):
            try:
                start.wait()
                for i in range(4):
                    msg = f"{k}-{i}"
                    assert s.get("/echo", params={"msg": msg}).json()["echo"] == msg
            except BaseException as exc:
                errors.append(exc)

        ts = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        assert not errors, errors[:3]
        assert s.client_id == client_id
        assert pairings.count - 1 <= 2 * threads
    # On the wire: every 563 is followed, in the same thread, by the retry on a pair paired
    # just then (a new pair id, counter 0: ids are never reused), which succeeds; and a 563
    # drops every pair paired no later, so few requests ever meet a stale pair.
    by_thread: dict[int, list[tuple[str, int, int]]] = {}
    for thread, pid, counter, status in wire.exchange_log:
        by_thread.setdefault(thread, []).append((pid, counter, status))
    failures = 0
    for log in by_thread.values():
        for (pid, _, status), nxt in zip(log, log[1:] + [None]):
            if status == 563:
                failures += 1
                assert nxt is not None and nxt[0] != pid and nxt[1] == 0 and nxt[2] == 200, log
    assert 0 < failures <= min(pairs, threads)


def test_retry_gives_up_after_a_second_failure(relay):
    pairings = Pairings()
    with session(relay, number_of_pairs=1, event_hook=pairings) as s:
        s.connect()
        relay.restart()
        pairings.then = relay.restart  # the re-paired state is lost again before the retry
        with pytest.raises(pqrelay.RelayError) as info:
            s.get("/echo", params={"msg": "x"})
        assert info.value.status == 563 and info.value.code == "state_not_found"
        assert not info.value.authenticated  # 563: the relay has no key for that pair
        assert pairings.count == 2  # re-paired for the one retry only
        assert s.get("/echo", params={"msg": "y"}).json()["echo"] == "y"
        assert pairings.count == 3


def test_no_retry_for_iterator_body(relay):
    pairings = Pairings()
    with session(relay, number_of_pairs=1, event_hook=pairings) as s:
        s.connect()
        relay.restart()
        with pytest.raises(pqrelay.RelayError) as info:  # idempotent: the failure itself
            s.put("/upload", content=iter([b"a"]))
        assert info.value.status == 563
        assert pairings.count == 1  # the stale pair was dropped, the body not replayed
        # The next request pairs anew: a POST of an iterator body goes through, once.
        assert s.post("/upload", content=iter([b"a"])).json()["size"] == 1
        assert pairings.count == 2


def _only_pair(s: pqrelay.RelaySession):
    s.connect()
    (pair,) = s._pool._idle
    return pair


def test_decode_failure_562_repairs_and_retries(relay):
    pairings = Pairings()
    with session(relay, number_of_pairs=1, event_hook=pairings) as s:
        pair = _only_pair(s)
        pair.ratchet = Ratchet(os.urandom(32), pair.ratchet.counter)  # keys the relay lacks
        # the relay's 562 carries a tag made with its keys: it does not verify here, so it is
        # unauthenticated; a PUT may be resent (re-paired first)
        r = s.put("/headers", content=b"xyz")
        assert r.json()["method"] == "PUT"
        assert pairings.count == 2


def test_counter_rejected_564_repairs_and_retries(relay):
    pairings = Pairings()
    with session(relay, number_of_pairs=1, event_hook=pairings) as s:
        pair = _only_pair(s)
        for _ in range(40):  # far beyond the relay's forward window (max-skip 16)
            pair.ratchet.advance()
        assert s.get("/echo", params={"msg": "late"}).json()["echo"] == "late"
        assert pairings.count == 2


def test_invalid_client_id_566_rediscovers(relay):
    pairings = Pairings()
    with session(relay, number_of_pairs=2, event_hook=pairings) as s:
        s.connect()
        token = s.token
        assert token is not None
        raw = bytearray(pqrelay._codec.b64decode(token))
        raw[-1] ^= 1  # the id stays, its signature no longer verifies
        s.token = pqrelay._codec.b64encode(bytes(raw))
        assert s.get("/echo", params={"msg": "again"}).json()["echo"] == "again"
        assert s.token != token and s.client_id is not None
        assert pairings.count == 2  # every pair was dropped and the pool paired anew


@pytest.fixture
def session5(relay):
    with pqrelay.RelaySession(relay.url, number_of_pairs=5) as s:
        yield s
