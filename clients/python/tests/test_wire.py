"""What a RelaySession puts on the wire, checked offline: httpx's MockTransport plays the
relay's side of each exchange with the keys of pairs made by a local pairing function. It opens
the sealed headers, and answers a sealed response, an error whose tag verifies (§11.2), a
forged error, or a plain answer. The same behaviours are checked against the real relay in
test_session.py and test_attacker.py.
"""

from __future__ import annotations

import json
import os

import httpx
import pytest

import pqrelay
from pqrelay import _codec, _error_tag, _keys, _stream
from pqrelay._codec import (
    DIR_REQUEST,
    DIR_RESPONSE,
    FLAG_BODY,
    FLAG_HEADERS,
    FLAG_RETRY,
    FLAG_URL,
    PART_BODY,
    PART_HEADERS,
    RelayToken,
    b64encode,
    parse_info,
)
from pqrelay._keys import Ratchet
from pqrelay._pool import PairPool

TOKEN = RelayToken.parse(b64encode(bytes(range(48))))


class FakeRelay:
    """The relay's side of exchanges (no pairing: pairs come from a local function)."""

    def __init__(self) -> None:
        self.chains: dict[bytes, bytes] = {}  # pid -> ck0
        self.seen: list[dict] = []
        self.script: list[tuple] = []

    def pair(self, count):
        out = []
        for _ in range(count):
            pid, ck = os.urandom(16), os.urandom(32)
            self.chains[pid] = ck
            out.append((pid, Ratchet(ck)))
        return out

    def keys(self, pid: bytes, counter: int) -> _keys.ExchangeKeys:
        ck = self.chains[pid]
        for n in range(counter):
            _, ck = _keys.derive_exchange(ck, n)
        return _keys.derive_exchange(ck, counter)[0]

    def aad(self, direction, part, flags, pid, counter, method, status=0, index=0, final=True, target=""):
        return _codec.aad(
            direction=direction, part=part, flags=flags, client_id=TOKEN.client_id, pid=pid,
            counter=counter, index=index, final=final, status=status, method=method,
            target=target,
        )

    def __call__(self, request: httpx.Request) -> httpx.Response:
        hdr = _codec.parse_exchange_header(request.headers["x-mte-relay"], request=True)
        keys = self.keys(hdr.pid, hdr.counter)
        target = "" if hdr.flags & FLAG_URL else request.url.raw_path.decode()
        sealed = _codec.b64decode(request.headers["x-mte-relay-eh"])
        plain = _keys.open_(
            keys.request_key, _codec.nonce(PART_HEADERS, True, 0), sealed,
            self.aad(DIR_REQUEST, PART_HEADERS, hdr.flags, hdr.pid, hdr.counter, request.method, target=target),
        )
        self.seen.append(
            {
                "pid": hdr.pid, "counter": hdr.counter, "flags": hdr.flags,
                "sealed": _codec.decode_header_list(plain, request=True),
                "wire": request.headers, "content": request.read(),
            }
        )
        kind, *args = self.script.pop(0)
        if kind == "error":
            status, code, verdict, forged = args
            tag = _error_tag.error_tag(
                keys.error_key, TOKEN.client_id, hdr.pid, hdr.counter, status, code, verdict
            )
            if forged:
                tag = bytes(32)
            return httpx.Response(
                status,
                headers={
                    "x-mte-relay-error": code,
                    "x-mte-relay-verdict": verdict,
                    "x-mte-relay-tag": b64encode(tag),
                },
                json={"status": status, "error": code, "message": "m", "verdict": verdict},
            )
        if kind == "plain":
            return httpx.Response(args[0], content=b"plain")
        status, headers, content = args  # a sealed response
        flags = FLAG_HEADERS | (hdr.flags & FLAG_URL) | (FLAG_BODY if content else 0)
        eh = _keys.seal(
            keys.response_key, _codec.nonce(PART_HEADERS, True, 0),
            _codec.encode_header_list(headers),
            self.aad(DIR_RESPONSE, PART_HEADERS, flags, hdr.pid, hdr.counter, request.method, status),
        )
        wire_headers = {
            "x-mte-relay": _codec.ExchangeHeader(TOKEN, hdr.pid, hdr.counter, flags).encode(),
            "x-mte-relay-eh": b64encode(eh),
        }
        body = b""
        if content:

            def aad_fn(i, final):
                return self.aad(DIR_RESPONSE, PART_BODY, flags, hdr.pid, hdr.counter, request.method, status, i, final)

            body = b"".join(_stream.seal_sized(keys.response_key, aad_fn, [content], len(content)))
        wire_headers["content-length"] = str(len(body))
        # stream=, not content=: the session reads the body raw, as from a real connection
        return httpx.Response(status, headers=wire_headers, stream=httpx.ByteStream(body))


@pytest.fixture
def relay_and_session():
    relay = FakeRelay()
    s = pqrelay.RelaySession("http://relay.test", number_of_pairs=2, transport=httpx.MockTransport(relay))
    s._token = TOKEN
    s._info = parse_info("versions=2;max-pairs=25;chunk-size=65536;max-skip=16")
    s._pool = PairPool(relay.pair, 2, 2, lambda: 25)
    with s:
        yield relay, s


OK = ("sealed", 200, [("content-type", "application/json")], b'{"ok":true}')


# -- empty bodies (issue 19) ----------------------------------------------------------------


@pytest.mark.parametrize(
    "method,kwargs",
    [("POST", {}), ("POST", {"content": b""}), ("PUT", {}), ("PATCH", {"content": ""}),
     ("DELETE", {"content": b""}), ("POST", {"content": iter([]), "headers": {"content-length": "0"}})],
)
def test_empty_body_is_content_length_0_without_body_flag_or_content_type(relay_and_session, method, kwargs):
    relay, s = relay_and_session
    relay.script = [OK]
    assert s.request(method, "/empty", **kwargs).json() == {"ok": True}
    (seen,) = relay.seen
    assert not seen["flags"] & FLAG_BODY
    assert seen["wire"]["content-length"] == "0" and seen["content"] == b""
    assert "content-type" not in seen["wire"] and "transfer-encoding" not in seen["wire"]
    assert all(name != "content-type" for name, _ in seen["sealed"])  # none invented


def test_get_without_body_has_no_content_length(relay_and_session):
    relay, s = relay_and_session
    relay.script = [OK]
    s.get("/x")
    (seen,) = relay.seen
    assert "content-length" not in seen["wire"] and not seen["flags"] & FLAG_BODY


def test_body_without_content_type_is_sent_without_one(relay_and_session):
    relay, s = relay_and_session
    relay.script = [OK]
    s.post("/x", content=b"abc")
    (seen,) = relay.seen
    assert seen["flags"] & FLAG_BODY and seen["sealed"] == []
    assert seen["wire"]["content-type"] == "application/octet-stream"  # the framing's own


def test_declared_empty_iterator_that_is_not_empty_is_refused(relay_and_session):
    _, s = relay_and_session
    with pytest.raises(ValueError, match="longer"):
        s.post("/x", content=iter([b"a"]), headers={"content-length": "0"})


# -- authenticated errors on the wire (§11.2, §12) ------------------------------------------


def test_forged_error_then_retry_flag_on_the_wire(relay_and_session):
    relay, s = relay_and_session
    relay.script = [("error", 562, "decode_failed", "dead", True), OK]
    assert s.post("/x", json={"a": 1}).json() == {"ok": True}
    first, second = relay.seen
    assert not first["flags"] & FLAG_RETRY and second["flags"] & FLAG_RETRY
    assert second["pid"] == first["pid"] and second["counter"] == first["counter"] + 1
    assert second["content"] != first["content"]  # sealed again with the new keys


def test_authenticated_dead_resends_on_a_new_pair(relay_and_session):
    relay, s = relay_and_session
    relay.script = [("error", 562, "decode_failed", "dead", False), OK]
    assert s.post("/x", json={"a": 1}).status_code == 200
    first, second = relay.seen
    assert second["pid"] != first["pid"] and second["counter"] == 0
    assert not second["flags"] & FLAG_RETRY


def test_retry_refused_is_outcome_unknown(relay_and_session):
    relay, s = relay_and_session
    relay.script = [("plain", 200), ("error", 564, "retry_refused", "dead", False)]
    with pytest.raises(pqrelay.OutcomeUnknownError, match="outcome_unknown"):
        s.post("/x", content=b"once")
    assert [x["flags"] & FLAG_RETRY for x in relay.seen] == [0, FLAG_RETRY]


def test_authenticated_refusal_is_returned_with_its_verdict(relay_and_session):
    relay, s = relay_and_session
    relay.script = [("error", 404, "not_found", "dead", False)]
    r = s.post("/x", content=b"a")
    assert (r.status_code, r.relay_error, r.verdict, r.sealed) == (404, "not_found", "dead", False)
    assert json.loads(r.content)["error"] == "not_found"


def test_error_tag_bound_to_the_attempt(relay_and_session):
    # A genuine tag of one attempt does not authenticate another: a tampered verdict fails.
    relay, s = relay_and_session
    relay.script = [("error", 502, "bad_gateway", "complete", False)]
    with pytest.raises(pqrelay.OutcomeUnknownError) as info:
        s.post("/x", content=b"a")
    assert info.value.verdict == "complete"
