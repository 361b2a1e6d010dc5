"""``RelaySession``: discovery (§4), pairing (§5), exchanges (§8) and error recovery (§11)."""

from __future__ import annotations

import io
import json as _json
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any, Union
from urllib.parse import urlencode

import httpx

from . import _xwing
from ._codec import (
    FLAG_BODY,
    FLAG_HEADERS,
    FLAG_STREAMING,
    FLAG_URL,
    FORBIDDEN_SEALED_HEADERS,
    PROTOCOL_VERSION,
    ExchangeHeader,
    RelayInfo,
    RelayToken,
    encode_pairing_request,
    parse_decimal,
    parse_discovery_header,
    parse_exchange_header,
    parse_info,
    parse_pairing_response,
    validate_header,
    validate_origin_form,
)
from ._exceptions import (
    DecodeError,
    NotARelayError,
    PairingError,
    ProtocolError,
    RelayError,
    TransportError,
)
from ._exchange import Exchange
from ._keys import Ratchet, initial_chain_key
from ._models import RelayResponse
from ._pool import Pair, PairPool
from ._stream import CHUNK_SIZE, StreamOpener, encoded_len, plain_len, seal_sized, seal_streaming

__all__ = ["RelaySession", "EventHook", "HeaderTypes", "RequestContent"]

HeaderTypes = Union[Mapping[str, str], Sequence[tuple[str, str]], httpx.Headers]
RequestContent = Union[bytes, bytearray, memoryview, str, IO[bytes], Iterable[bytes]]
#: ``hook(request_type, name, response_time_ms, response_length, exception)`` for discovery and
#: pairing requests (used by :mod:`pqrelay.locust`).
EventHook = Callable[[str, str, float, int, Union[BaseException, None]], None]

DISCOVERY_PATH = "/api/mte-relay"
PAIRING_PATH = "/api/mte-pair"

_REPAIR_THIS = {559, 561, 562, 563, 564, 565}
_READ_SIZE = CHUNK_SIZE
_USER_AGENT = "pqrelay-python/0.1.0"


class _MteError(Exception):
    """Internal: the relay answered a 559–569 error."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(status, code, message)
        self.status = status
        self.code = code
        self.message = message


class _Lease:
    """One exchange's hold on a pair; giving it back is idempotent."""

    __slots__ = ("pool", "pair", "done")

    def __init__(self, pool: PairPool, pair: Pair) -> None:
        self.pool = pool
        self.pair = pair
        self.done = False

    def release(self) -> None:
        if not self.done:
            self.done = True
            self.pool.release(self.pair)

    def discard(self) -> None:
        if not self.done:
            self.done = True
            self.pool.discard(self.pair)


@dataclass
class _Body:
    """A request body: how to (re)produce its bytes, its plain length if known."""

    factory: Callable[[], Iterable[bytes]]
    length: int | None
    replayable: bool


def _file_length(f: IO[bytes]) -> int | None:
    try:
        return os.fstat(f.fileno()).st_size - f.tell()
    except (AttributeError, OSError, io.UnsupportedOperation):
        pass
    try:
        if f.seekable():
            here = f.tell()
            end = f.seek(0, io.SEEK_END)
            f.seek(here)
            return end - here
    except (AttributeError, OSError, io.UnsupportedOperation):
        pass
    return None


def _make_body(content: Any, declared_length: int | None) -> _Body | None:
    if content is None:
        return None
    if isinstance(content, str):
        content = content.encode("utf-8")
    if isinstance(content, (bytes, bytearray, memoryview)):
        data = bytes(content)
        return _Body(lambda: [data], len(data), True)
    if hasattr(content, "read"):
        f: IO[bytes] = content
        length = _file_length(f)
        if length is None:
            length = declared_length
        try:
            start: int | None = f.tell() if f.seekable() else None
        except (AttributeError, OSError, io.UnsupportedOperation):
            start = None

        def read_file() -> Iterator[bytes]:
            if start is not None:
                f.seek(start)
            while True:
                piece = f.read(_READ_SIZE)
                if not piece:
                    return
                if isinstance(piece, str):
                    piece = piece.encode("utf-8")
                yield piece

        return _Body(read_file, length, start is not None)
    if isinstance(content, Iterable):
        consumed = False

        def once() -> Iterable[bytes]:
            nonlocal consumed
            if consumed:
                raise RuntimeError("an iterator body cannot be sent twice")
            consumed = True
            return (p.encode("utf-8") if isinstance(p, str) else bytes(p) for p in content)

        return _Body(once, declared_length, False)
    raise TypeError(f"unsupported request content type {type(content).__name__}")


def _header_items(headers: HeaderTypes | None) -> list[tuple[str, str]]:
    if headers is None:
        return []
    if isinstance(headers, httpx.Headers):
        return list(headers.multi_items())
    if isinstance(headers, Mapping):
        return [(str(k), str(v)) for k, v in headers.items()]
    return [(str(k), str(v)) for k, v in headers]


class RelaySession:
    """A pqrelay client session: a ``requests``-like API whose requests are sealed end to end.

    ``relay_url`` is the relay's origin (``https://relay.example``); request URLs are paths
    on it (``/api/v1/items?x=1``), which the relay forwards to its UPSTREAM.

    * ``number_of_pairs`` pairs are created by the first exchange (one pairing request);
      when all are busy the pool grows up to ``max_pairs`` (default: ``number_of_pairs``),
      then callers wait for a free pair. One pair is never used by two exchanges at once.
    * ``encode_urls``: seal path and query (else they travel plain, bound into the AAD).
    * ``encode_headers``: ``True`` seals every request header, ``False`` only
      ``content-type``, a list of names seals those (plus ``content-type``).

    Thread-safe: share one session between threads. Use as a context manager or call
    :meth:`close`.
    """

    def __init__(
        self,
        relay_url: str,
        number_of_pairs: int = 5,
        max_pairs: int | None = None,
        encode_urls: bool = True,
        encode_headers: bool | Sequence[str] = True,
        *,
        headers: HeaderTypes | None = None,
        timeout: float | None = 30.0,
        verify: bool | str = True,
        transport: httpx.BaseTransport | None = None,
        event_hook: EventHook | None = None,
    ) -> None:
        base = httpx.URL(relay_url)
        if base.scheme not in ("http", "https") or not base.host:
            raise ValueError("relay_url must be an http(s) origin, e.g. https://relay.example")
        if base.path not in ("", "/") or base.query:
            raise ValueError("relay_url must be an origin without path or query")
        self.relay_url = str(base.copy_with(path="/", query=None)).rstrip("/")
        self.encode_urls = bool(encode_urls)
        if isinstance(encode_headers, bool):
            self._seal_names: frozenset[str] | None = None
            self._seal_all = encode_headers
        else:
            self._seal_names = frozenset(n.lower() for n in encode_headers)
            self._seal_all = False
        self.encode_headers = encode_headers
        self.headers = httpx.Headers(_header_items(headers))
        self.timeout = timeout
        self._http = httpx.Client(
            base_url=self.relay_url,
            timeout=timeout,
            verify=verify,
            transport=transport,
            headers={"user-agent": _USER_AGENT},
            follow_redirects=False,
        )
        self._event_hook = event_hook
        self._lock = threading.Lock()
        self._discover_lock = threading.Lock()
        self._token: RelayToken | None = None
        self._info: RelayInfo | None = None
        max_pairs = number_of_pairs if max_pairs is None else max_pairs
        self._pool = PairPool(self._pair, number_of_pairs, max_pairs, self._batch_limit)

    # -- lifecycle -----------------------------------------------------------------------

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RelaySession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- state ---------------------------------------------------------------------------

    @property
    def info(self) -> RelayInfo | None:
        """What discovery announced (``None`` before discovery)."""
        return self._info

    @property
    def client_id(self) -> bytes | None:
        """The raw 16-byte client id, once discovered."""
        token = self._token
        return None if token is None else token.client_id

    @property
    def token(self) -> str | None:
        """The newest client-id token the relay gave (persist it to keep the id)."""
        token = self._token
        return None if token is None else token.token

    @token.setter
    def token(self, value: str | None) -> None:
        self._token = None if value is None else RelayToken.parse(value)

    @property
    def pool_size(self) -> int:
        """Pairs currently owned (idle, busy or being paired)."""
        return self._pool.size

    # -- discovery (§4) ------------------------------------------------------------------

    def _emit(self, kind: str, name: str, start: float, length: int, exc: BaseException | None) -> None:
        if self._event_hook is not None:
            self._event_hook(kind, name, (time.perf_counter() - start) * 1000.0, length, exc)

    def discover(self) -> RelayInfo:
        """``HEAD /api/mte-relay``: obtain (or confirm) the client id and the relay's limits."""
        start = time.perf_counter()
        try:
            info = self._discover()
        except BaseException as exc:
            self._emit("HEAD", DISCOVERY_PATH, start, 0, exc)
            raise
        self._emit("HEAD", DISCOVERY_PATH, start, 0, None)
        return info

    def _discover(self) -> RelayInfo:
        headers = {}
        current = self._token
        if current is not None:
            headers["x-mte-relay"] = f"{PROTOCOL_VERSION}.{current.token}"
        try:
            resp = self._http.head(DISCOVERY_PATH, headers=headers)
        except httpx.HTTPError as exc:
            raise TransportError(f"discovery failed: {exc}") from exc
        if "x-mte-relay" not in resp.headers:
            raise NotARelayError(
                f"{self.relay_url} answered {resp.status_code} without x-mte-relay: not a pqrelay"
            )
        if resp.status_code != 200:
            raise ProtocolError(f"discovery answered {resp.status_code}")
        token = parse_discovery_header(resp.headers["x-mte-relay"])
        info = parse_info(resp.headers.get("x-mte-relay-info"))
        if PROTOCOL_VERSION not in info.versions:
            raise ProtocolError(f"relay supports versions {info.versions}, not {PROTOCOL_VERSION}")
        if info.chunk_size != CHUNK_SIZE:
            raise ProtocolError(f"relay chunk-size {info.chunk_size} is not {CHUNK_SIZE}")
        if info.max_pairs < 1:
            raise ProtocolError("relay max-pairs is 0")
        with self._lock:
            old = self._token
            self._token = token
            self._info = info
        if old is not None and old.client_id != token.client_id:
            self._pool.invalidate_all()
        return info

    def _ensure_discovered(self) -> RelayToken:
        token = self._token
        if token is not None and self._info is not None:
            return token
        with self._discover_lock:
            if self._token is None or self._info is None:
                self.discover()
            assert self._token is not None
            return self._token

    def _store_token(self, token: RelayToken, expected_id: bytes) -> None:
        if token.client_id != expected_id:
            raise ProtocolError("relay answered with another client id")
        with self._lock:
            if self._token is None or self._token.token != token.token:
                if self._token is None or self._token.client_id == token.client_id:
                    self._token = token

    def _batch_limit(self) -> int:
        info = self._info
        return info.max_pairs if info is not None else 1

    # -- pairing (§5) --------------------------------------------------------------------

    def connect(self) -> None:
        """Discover and pair ``number_of_pairs`` pairs now instead of on the first request."""
        self._ensure_discovered()
        self._pool.fill()

    def _pair(self, pids: list[bytes]) -> list[Ratchet]:
        start = time.perf_counter()
        try:
            ratchets = self._pair_once(pids, retry=True)
        except BaseException as exc:
            self._emit("POST", PAIRING_PATH, start, 0, exc)
            raise
        self._emit("POST", PAIRING_PATH, start, 0, None)
        return ratchets

    def _pair_once(self, pids: list[bytes], retry: bool) -> list[Ratchet]:
        token = self._ensure_discovered()
        keys = [_xwing.generate_keypair() for _ in pids]
        request_body = encode_pairing_request([(pid, ek) for pid, (_, ek) in zip(pids, keys)])
        try:
            resp = self._http.post(
                PAIRING_PATH,
                content=request_body,
                headers={
                    "x-mte-relay": f"{PROTOCOL_VERSION}.{token.token}",
                    "content-type": "application/json",
                },
            )
        except httpx.HTTPError as exc:
            raise TransportError(f"pairing failed: {exc}") from exc
        if resp.status_code in (560, 566, 568) and retry:
            self._rediscover()
            return self._pair_once(pids, retry=False)
        if resp.status_code != 200:
            code = resp.headers.get("x-mte-relay-error")
            raise PairingError(
                f"pairing answered {resp.status_code} {code or ''}: {resp.text[:200]}",
                resp.status_code,
                code,
            )
        self._store_token(parse_discovery_header(resp.headers.get("x-mte-relay")), token.client_id)
        cts = parse_pairing_response(resp.content, pids)
        ratchets = []
        for pid, (dk, _), ct in zip(pids, keys, cts):
            try:
                ss = _xwing.decapsulate(dk, ct)
            except ValueError as exc:  # e.g. a low-order X25519 ciphertext
                raise PairingError(f"pairing answer did not decapsulate: {exc}") from None
            ratchets.append(Ratchet(initial_chain_key(ss, token.client_id, pid)))
        return ratchets

    def _rediscover(self) -> None:
        with self._discover_lock:
            self.discover()

    # -- requests ------------------------------------------------------------------------

    def get(self, url: str, **kwargs: Any) -> RelayResponse:
        return self.request("GET", url, **kwargs)

    def head(self, url: str, **kwargs: Any) -> RelayResponse:
        return self.request("HEAD", url, **kwargs)

    def options(self, url: str, **kwargs: Any) -> RelayResponse:
        return self.request("OPTIONS", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> RelayResponse:
        return self.request("POST", url, **kwargs)

    def put(self, url: str, **kwargs: Any) -> RelayResponse:
        return self.request("PUT", url, **kwargs)

    def patch(self, url: str, **kwargs: Any) -> RelayResponse:
        return self.request("PATCH", url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> RelayResponse:
        return self.request("DELETE", url, **kwargs)

    def _target(self, url: str, params: Mapping[str, Any] | None) -> str:
        """The origin-form request target, exactly as it will be sent/sealed."""
        full = httpx.URL(self.relay_url).join(url)
        base = httpx.URL(self.relay_url)
        if (full.scheme, full.host, full.port) != (base.scheme, base.host, base.port):
            raise ValueError(f"{url} is not on the relay {self.relay_url}")
        if params:
            full = full.copy_merge_params(params)
        target = full.raw_path.decode("ascii")
        try:
            validate_origin_form(target)
        except ProtocolError as exc:
            raise ValueError(f"{target!r}: {exc}") from None
        return target

    def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: HeaderTypes | None = None,
        content: RequestContent | None = None,
        data: Mapping[str, Any] | bytes | str | None = None,
        json: Any = None,
        stream: bool = False,
        plain: bool = False,
    ) -> RelayResponse:
        """Send one request through the relay and return its decoded response.

        ``content`` may be bytes, str, a binary file object (sized mode when its length is
        known) or an iterable of bytes (streaming mode, unless a ``content-length`` header
        gives the plain length). ``data`` (a dict, form-encoded) and ``json`` work as in
        ``requests``. With ``stream=True`` the body is decoded as you iterate
        :meth:`RelayResponse.iter_content`.

        ``plain=True`` sends the request unsealed to the relay itself, for its own routes such
        as ``GET /api/mte-echo/<msg>``.
        """
        method = method.upper()
        target = self._target(url, params)
        items = _header_items(self.headers) + _header_items(headers)

        declared: int | None = None
        kept: list[tuple[str, str]] = []
        for name, value in items:
            low = name.lower()
            if low == "content-length":
                declared = parse_decimal(value.strip())
            elif low.startswith("x-mte-"):
                raise ValueError(f"header {name} is reserved for the protocol")
            elif low in FORBIDDEN_SEALED_HEADERS:
                continue  # host and hop-by-hop headers are the transport's business
            else:
                kept.append((low, value))

        if json is not None:
            content = _json.dumps(json, separators=(",", ":")).encode("utf-8")
            if not any(n == "content-type" for n, _ in kept):
                kept.append(("content-type", "application/json"))
        elif data is not None:
            if isinstance(data, Mapping):
                content = urlencode(data, doseq=True).encode("ascii")
                if not any(n == "content-type" for n, _ in kept):
                    kept.append(("content-type", "application/x-www-form-urlencoded"))
            else:
                content = data
        body = _make_body(content, declared)
        if body is not None and not any(n == "content-type" for n, _ in kept):
            kept.append(("content-type", "application/octet-stream"))

        if plain:
            return self._plain_request(method, target, kept, body, stream)

        sealed: list[tuple[str, str]] = []
        unsealed: list[tuple[str, str]] = []
        for name, value in kept:
            if self._seal_all or name == "content-type" or (
                self._seal_names is not None and name in self._seal_names
            ):
                try:
                    validate_header(name, value, request=True)
                except ProtocolError as exc:
                    raise ValueError(str(exc)) from None
                sealed.append((name, value))
            else:
                unsealed.append((name, value))

        attempts = 2 if body is None or body.replayable else 1
        self._ensure_discovered()  # so that the first pairing knows the relay's max-pairs
        lease: _Lease | None = None
        for attempt in range(attempts):
            if lease is None:
                lease = _Lease(self._pool, self._pool.acquire(self.timeout))
            try:
                response = self._exchange(lease, method, target, sealed, unsealed, body, stream)
            except _MteError as err:
                retry, kept = self._recover(lease, err)
                if retry and attempt + 1 < attempts:
                    # §11: the retry runs on the pair just re-paired (kept), never on another
                    # pair of the pool, which may be just as stale (a restarted relay).
                    if not kept:
                        lease = None
                    continue
                if kept:
                    lease.release()
                raise RelayError(err.status, err.code, err.message) from None
            except BaseException:
                lease.release()
                raise
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    def _recover(self, lease: _Lease, err: _MteError) -> tuple[bool, bool]:
        """Apply §11's client action for ``err``. Returns ``(retry, kept)``: whether a retry
        is allowed, and whether ``lease`` is still held (its pair re-paired or still valid) so
        that the retry uses it; otherwise the lease was given back."""
        status = err.status
        if status in _REPAIR_THIS:  # re-pair this pair, retry once (on it)
            try:
                self._pool.repair(lease.pair)
            except BaseException:
                lease.discard()
                raise
            return True, True
        if status == 567:  # retry once; the pair is intact (its ratchet moved on)
            return True, True
        if status in (560, 566):  # re-discover, re-pair all (566: retry once)
            lease.discard()
            self._rediscover()
            self._pool.invalidate_all()
            return status == 566, False
        if status == 568:  # re-discover
            lease.release()
            self._rediscover()
            return False, False
        if status == 569:  # re-pair all, retry once (on a pair of the new generation)
            lease.discard()
            self._pool.invalidate_all()
            return True, False
        lease.release()  # pragma: no cover - statuses outside 559..569 never get here
        return False, False

    def _exchange(
        self,
        lease: _Lease,
        method: str,
        target: str,
        sealed: list[tuple[str, str]],
        unsealed: list[tuple[str, str]],
        body: _Body | None,
        stream: bool,
    ) -> RelayResponse:
        token = self._ensure_discovered()
        pair = lease.pair
        keys = pair.ratchet.advance()  # §6: the chain moves on before sending
        ex = Exchange(token.client_id, pair.pid, keys, method)

        flags = FLAG_HEADERS
        if self.encode_urls:
            flags |= FLAG_URL
        if body is not None:
            flags |= FLAG_BODY
            if body.length is None:
                flags |= FLAG_STREAMING

        wire_target = ex.seal_url(flags, target) if self.encode_urls else target
        header = ExchangeHeader(token, pair.pid, keys.counter, flags)
        wire_headers: list[tuple[str, str]] = [("x-mte-relay", header.encode())]
        content: Iterable[bytes] | None = None
        if body is not None:
            aad_fn = ex.request_body_aad(flags)
            if body.length is not None:
                content = seal_sized(keys.request_key, aad_fn, body.factory(), body.length)
                wire_headers.append(("content-length", str(encoded_len(body.length))))
            else:
                content = seal_streaming(keys.request_key, aad_fn, body.factory())
                wire_headers.append(("transfer-encoding", "chunked"))
            wire_headers.append(("content-type", "application/octet-stream"))
        wire_headers.extend(unsealed)
        request = self._http.build_request(
            method, wire_target, headers=wire_headers, content=content
        )
        sent_target = request.url.raw_path.decode("ascii")
        if sent_target != wire_target:
            raise ValueError(f"request target {target!r} would not be sent as is")
        request.headers["x-mte-relay-eh"] = ex.seal_headers(
            flags, sealed, "" if self.encode_urls else sent_target
        )

        try:
            wire = self._http.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise TransportError(f"{method} {target}: {exc}") from exc

        try:
            return self._open_response(lease, ex, flags, token, wire, target, stream)
        except BaseException:
            wire.close()
            raise

    def _open_response(
        self,
        lease: _Lease,
        ex: Exchange,
        request_flags: int,
        token: RelayToken,
        wire: httpx.Response,
        target: str,
        stream: bool,
    ) -> RelayResponse:
        status = wire.status_code
        error_code = wire.headers.get("x-mte-relay-error")
        relay_header = wire.headers.get("x-mte-relay")
        if error_code is not None or relay_header is None:
            if 559 <= status <= 569:
                wire.read()
                message = ""
                try:
                    message = str(wire.json().get("message", ""))
                except (ValueError, AttributeError):
                    message = wire.text[:200]
                raise _MteError(status, error_code or "mte_error", message)
            if error_code is not None and status >= 400:
                # An error the relay answered itself: plain JSON (§8.3, §11).
                resp = RelayResponse(
                    status_code=status,
                    headers=wire.headers,
                    wire=wire,
                    method=ex.method,
                    url=target,
                    sealed=False,
                    body=self._raw_bytes(wire),
                    on_close=lease.release,
                    relay_error=error_code,
                )
                if not stream:
                    resp.read()
                return resp
            raise ProtocolError(f"response {status} is not sealed (no x-mte-relay)")

        hdr = parse_exchange_header(relay_header)
        if hdr.pid != lease.pair.pid or hdr.counter != ex.counter:
            raise ProtocolError("response is for another pair or counter")
        if not hdr.flags & FLAG_HEADERS:
            raise ProtocolError("response lacks the headers flag")
        if (hdr.flags & FLAG_URL) != (request_flags & FLAG_URL):
            raise ProtocolError("response does not echo the url flag")
        self._store_token(hdr.token, token.client_id)

        opened = ex.open_headers(hdr.flags, status, wire.headers.get("x-mte-relay-eh"))
        headers = httpx.Headers(
            opened + [("set-cookie", v) for v in wire.headers.get_list("set-cookie")]
        )
        no_body = ex.method == "HEAD" or 100 <= status < 200 or status in (204, 304)
        if hdr.flags & FLAG_BODY:
            if no_body:
                raise ProtocolError(f"a {status} response to {ex.method} cannot have a body")
            expected: int | None = None
            if not hdr.flags & FLAG_STREAMING:
                length = wire.headers.get("content-length")
                if length is None:
                    raise ProtocolError("sized response body without content-length")
                expected = plain_len(parse_decimal(length.strip()))
            opener = StreamOpener(
                ex.keys.response_key, ex.response_body_aad(hdr.flags, status), expected
            )
            body = self._opened_body(wire, opener)
        else:
            if hdr.flags & FLAG_STREAMING:
                raise ProtocolError("streaming flag without body flag")
            body = self._empty_body(wire)

        resp = RelayResponse(
            status_code=status,
            headers=headers,
            wire=wire,
            method=ex.method,
            url=target,
            sealed=True,
            body=body,
            on_close=lease.release,
        )
        if not stream:
            resp.read()
        return resp

    @staticmethod
    def _raw_chunks(wire: httpx.Response) -> Iterator[bytes]:
        try:
            # No chunk size: httpx would hold bytes back until that many arrived, which
            # delays short streaming records (Server-Sent Events) until the body ends.
            yield from wire.iter_raw()
        except httpx.HTTPError as exc:
            raise TransportError(f"reading the response failed: {exc}") from exc

    def _raw_bytes(self, wire: httpx.Response) -> Iterator[bytes]:
        yield from self._raw_chunks(wire)

    def _opened_body(self, wire: httpx.Response, opener: StreamOpener) -> Iterator[bytes]:
        for raw in self._raw_chunks(wire):
            yield from opener.feed(raw)
        opener.finish()

    def _empty_body(self, wire: httpx.Response) -> Iterator[bytes]:
        for raw in self._raw_chunks(wire):
            if raw:
                raise DecodeError("unexpected bytes in a response without the body flag")
        return
        yield  # pragma: no cover - makes this a generator

    def _plain_request(
        self,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: _Body | None,
        stream: bool,
    ) -> RelayResponse:
        content: Iterable[bytes] | None = None
        if body is not None:
            content = body.factory()
            if body.length is not None:
                headers = headers + [("content-length", str(body.length))]
        try:
            request = self._http.build_request(method, target, headers=headers, content=content)
            wire = self._http.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise TransportError(f"{method} {target}: {exc}") from exc

        def decoded() -> Iterator[bytes]:
            try:
                yield from wire.iter_bytes()
            except httpx.HTTPError as exc:
                raise TransportError(f"reading the response failed: {exc}") from exc

        resp = RelayResponse(
            status_code=wire.status_code,
            headers=wire.headers,
            wire=wire,
            method=method,
            url=target,
            sealed=False,
            body=decoded(),
            on_close=lambda: None,
            relay_error=wire.headers.get("x-mte-relay-error"),
        )
        if not stream:
            resp.read()
        return resp

