"""An in-process relay (PROTOCOL.md's relay side) behind ``httpx.MockTransport``, for tests.

It is written from the spec with the package's own primitives, so it checks the client's
state machine (pool, retries, streaming), not interoperability — the shared vectors and the
real-relay tests do that.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from pqrelay import _xwing
from pqrelay._codec import (
    DIR_REQUEST,
    DIR_RESPONSE,
    FLAG_BODY,
    FLAG_HEADERS,
    FLAG_STREAMING,
    FLAG_URL,
    PART_HEADERS,
    PART_URL,
    aad,
    b64decode,
    b64encode,
    decode_header_list,
    encode_header_list,
    nonce,
    parse_exchange_header,
)
from pqrelay._exceptions import PQRelayError
from pqrelay._keys import derive_exchange, initial_chain_key, open_, seal
from pqrelay._stream import StreamOpener, encoded_len, plain_len, seal_sized, seal_streaming

Upstream = Callable[[str, str, list[tuple[str, str]], bytes], tuple[int, list[tuple[str, str]], object]]


def default_upstream(method, target, headers, body):
    path = target.split("?")[0]
    if path == "/upload":
        return 200, [("content-type", "application/json")], json.dumps(
            {"size": len(body), "sha256": hashlib.sha256(body).hexdigest()}
        ).encode()
    if path == "/headers":
        return 200, [("content-type", "application/json")], json.dumps(
            {"method": method, "target": target, "headers": headers}
        ).encode()
    if path == "/echo-body":
        return 200, [("content-type", "application/octet-stream")], body
    if path == "/events":
        def events():
            for i in range(3):
                yield f"data: {i}\n\n".encode()
        return 200, [("content-type", "text/event-stream")], events()
    if path == "/login":
        creds = json.loads(body or b"{}")
        if not creds.get("password"):
            return 401, [("content-type", "application/json")], b'{"error":"invalid credentials"}'
        return 200, [("content-type", "application/json"), ("set-cookie", "demo_session=1")], json.dumps(
            {"message": "Welcome", "user": creds.get("username")}
        ).encode()
    if path == "/nocontent":
        return 204, [], b""
    if path == "/cookie":
        return 200, [("content-type", "text/plain"), ("set-cookie", "a=1")], b"ok"
    return 404, [("content-type", "text/plain")], b"not found"


@dataclass
class _State:
    e: int
    ck: bytes


class MockRelay:
    def __init__(self, secret: bytes = b"s" * 32, max_pairs: int = 25, upstream: Upstream = default_upstream):
        self.secret = secret
        self.max_pairs = max_pairs
        self.upstream = upstream
        self.states: dict[tuple[bytes, bytes], _State] = {}
        self.lock = threading.Lock()
        self.in_flight: set[bytes] = set()
        self.overlaps = 0
        self.fail_next: list[int] = []
        self.pairings = 0
        self.pairs_paired = 0
        self.exchanges = 0
        self.log: list[tuple[str, int]] = []

    # -- helpers ---------------------------------------------------------------------------

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def restart(self) -> None:
        with self.lock:
            self.states.clear()

    def _token(self, cid: bytes) -> str:
        mac = hmac.new(self.secret, b"pqrelay/1 client-id" + cid, hashlib.sha256).digest()
        return b64encode(cid + mac)

    def _verify(self, token: str) -> bytes | None:
        try:
            raw = b64decode(token)
        except PQRelayError:
            return None
        if len(raw) != 48:
            return None
        cid = raw[:16]
        good = hmac.new(self.secret, b"pqrelay/1 client-id" + cid, hashlib.sha256).digest()
        return cid if hmac.compare_digest(good, raw[16:]) else None

    @staticmethod
    def _error(status: int, code: str, message: str = "") -> httpx.Response:
        return httpx.Response(
            status,
            headers={"x-mte-relay-error": code, "content-type": "application/json"},
            json={"status": status, "error": code, "message": message},
        )

    # -- routes ----------------------------------------------------------------------------

    def handle(self, request: httpx.Request) -> httpx.Response:
        resp = self._route(request)
        # Hand the body back as a stream, as a real connection would (httpx pre-reads bytes).
        data = resp.read()
        return httpx.Response(resp.status_code, headers=resp.headers, content=iter([data]))

    def _route(self, request: httpx.Request) -> httpx.Response:
        path = request.url.raw_path.decode()
        if path == "/api/mte-relay" and request.method == "HEAD":
            return self.discover(request)
        if path == "/api/mte-pair" and request.method == "POST":
            return self.pair(request)
        if path.startswith("/api/mte-echo/"):
            return httpx.Response(200, json={"echo": path[len("/api/mte-echo/"):], "time": 0})
        return self.exchange(request)

    def discover(self, request):
        value = request.headers.get("x-mte-relay", "")
        cid = None
        if value.startswith("1."):
            cid = self._verify(value[2:])
        if cid is None:
            cid = os.urandom(16)
        return httpx.Response(
            200,
            headers={
                "x-mte-relay": "1." + self._token(cid),
                "x-mte-relay-info": f"versions=1;max-pairs={self.max_pairs};chunk-size=65536;max-skip=16;future=x",
            },
        )

    def pair(self, request):
        value = request.headers.get("x-mte-relay")
        if not value:
            return self._error(560, "client_id_missing")
        cid = self._verify(value[2:]) if value.startswith("1.") else None
        if cid is None:
            return self._error(566, "invalid_client_id")
        body = json.loads(request.read())
        assert set(body) == {"pairs"}
        assert 1 <= len(body["pairs"]) <= self.max_pairs
        out = []
        new = {}
        for entry in body["pairs"]:
            assert set(entry) == {"id", "ek"}
            pid = b64decode(entry["id"])
            ek = b64decode(entry["ek"])
            ss, ct = _xwing.encapsulate(ek)
            new[(cid, pid)] = _State(0, initial_chain_key(ss, cid, pid))
            out.append({"id": entry["id"], "ct": b64encode(ct)})
        with self.lock:
            self.states.update(new)
            self.pairings += 1
            self.pairs_paired += len(new)
        return httpx.Response(200, headers={"x-mte-relay": "1." + self._token(cid)}, json={"pairs": out})

    def exchange(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.exchanges += 1
            forced = self.fail_next.pop(0) if self.fail_next else None
        try:
            hdr = parse_exchange_header(request.headers.get("x-mte-relay"))
        except PQRelayError:
            return self._error(561, "relay_header_invalid")
        cid = self._verify(hdr.token.token)
        if cid is None:
            return self._error(566, "invalid_client_id")
        if forced is not None:
            request.read()
            self.log.append(("forced", forced))
            return self._error(forced, "forced", "injected by the test")
        key = (cid, hdr.pid)
        with self.lock:
            if hdr.pid in self.in_flight:
                self.overlaps += 1
            self.in_flight.add(hdr.pid)
            state = self.states.get(key)
        try:
            if state is None:
                request.read()
                return self._error(563, "state_not_found")
            if not state.e <= hdr.counter <= state.e + 16:
                request.read()
                return self._error(564, "counter_rejected")
            ck = state.ck
            for _ in range(hdr.counter - state.e):
                _, ck = derive_exchange(ck, 0)
            keys, next_ck = derive_exchange(ck, hdr.counter)
            method = request.method
            wire_target = request.url.raw_path.decode()

            def a(direction, part, flags, index=0, final=True, status=0, target=""):
                return aad(direction=direction, part=part, flags=flags, client_id=cid, pid=hdr.pid,
                           counter=hdr.counter, index=index, final=final, status=status,
                           method=method, target=target)

            flags = hdr.flags
            try:
                if flags & FLAG_URL:
                    target = open_(keys.request_key, nonce(PART_URL, True, 0),
                                   b64decode(wire_target[1:]), a(DIR_REQUEST, PART_URL, flags)).decode()
                else:
                    target = wire_target
                eh = open_(keys.request_key, nonce(PART_HEADERS, True, 0),
                           b64decode(request.headers["x-mte-relay-eh"]),
                           a(DIR_REQUEST, PART_HEADERS, flags, target="" if flags & FLAG_URL else wire_target))
            except PQRelayError:
                request.read()
                return self._error(562, "decode_failed")
            with self.lock:
                if self.states.get(key) is not state:
                    request.read()
                    return self._error(564, "counter_rejected")
                self.states[key] = _State(hdr.counter + 1, next_ck)
            headers = decode_header_list(eh)
            raw = request.read()
            body = b""
            if flags & FLAG_BODY:
                expected = None
                if not flags & FLAG_STREAMING:
                    expected = plain_len(int(request.headers["content-length"]))
                opener = StreamOpener(keys.request_key,
                                      lambda i, f: a(DIR_REQUEST, 3, flags, index=i, final=f), expected)
                body = b"".join(opener.feed(raw))
                opener.finish()
            status, up_headers, up_body = self.upstream(method, target, headers, body)
            plain_cookies = [(n, v) for n, v in up_headers if n == "set-cookie"]
            sealed_headers = [(n, v) for n, v in up_headers if n != "set-cookie"]
            rflags = FLAG_HEADERS | (flags & FLAG_URL)
            no_body = method == "HEAD" or status in (204, 304) or status < 200
            out_headers = [("x-mte-relay", "")]
            content: object = b""
            if not no_body:
                rflags |= FLAG_BODY
                if isinstance(up_body, bytes):
                    out_headers.append(("content-length", str(encoded_len(len(up_body)))))
                else:
                    rflags |= FLAG_STREAMING
            eh_out = seal(keys.response_key, nonce(PART_HEADERS, True, 0), encode_header_list(sealed_headers),
                          a(DIR_RESPONSE, PART_HEADERS, rflags, status=status))
            out_headers[0] = ("x-mte-relay", f"1.{self._token(cid)}.{b64encode(hdr.pid)}.{hdr.counter}.{rflags}")
            out_headers.append(("x-mte-relay-eh", b64encode(eh_out)))
            out_headers.extend(plain_cookies)
            if rflags & FLAG_BODY:
                out_headers.append(("content-type", "application/octet-stream"))
                aad_fn = lambda i, f: a(DIR_RESPONSE, 3, rflags, index=i, final=f, status=status)  # noqa: E731
                if rflags & FLAG_STREAMING:
                    content = b"".join(seal_streaming(keys.response_key, aad_fn, up_body))
                else:
                    content = b"".join(seal_sized(keys.response_key, aad_fn, [up_body], len(up_body)))
            return httpx.Response(status, headers=out_headers, content=content)
        finally:
            with self.lock:
                self.in_flight.discard(hdr.pid)


__all__ = ["MockRelay", "default_upstream"]
