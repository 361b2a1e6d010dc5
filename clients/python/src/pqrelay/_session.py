"""``RelaySession``: discovery (PROTOCOL.md §5), trust in the relay's key (§13), pairing (§6),
exchanges (§9), error recovery (§11) and the delivery rules (§12)."""

from __future__ import annotations

import io
import json as _json
import os
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any, NoReturn, Union
from urllib.parse import urlencode

import httpx

from ._codec import (
    FLAG_BODY,
    FLAG_HEADERS,
    FLAG_RETRY,
    FLAG_STREAMING,
    FLAG_URL,
    PROTOCOL_VERSION,
    ExchangeHeader,
    RelayInfo,
    RelayToken,
    is_forbidden_request_header,
    parse_decimal,
    parse_discovery_header,
    parse_exchange_header,
    parse_info,
    validate_header,
    validate_origin_form,
)
from ._error_tag import DEAD, UNKNOWN, verify_error_reply
from ._exceptions import (
    DecodeError,
    NotARelayError,
    OutcomeUnknownError,
    PairingError,
    PQRelayError,
    ProtocolError,
    RelayError,
    RelayKeyNotTrustedError,
    TransportError,
)
from ._exchange import Exchange
from ._keys import Ratchet
from ._models import RelayResponse
from ._pairing import ClientPairing
from ._pool import Pair, PairPool
from ._relay_keys import RelayKey, choose, fingerprint, parse_fingerprint, parse_relay_keys
from ._stream import CHUNK_SIZE, StreamOpener, encoded_len, plain_len, seal_sized, seal_streaming

__all__ = [
    "RelaySession",
    "EventHook",
    "HeaderTypes",
    "RequestContent",
    "IDEMPOTENT_METHODS",
]

HeaderTypes = Union[Mapping[str, str], Sequence[tuple[str, str]], httpx.Headers]
RequestContent = Union[bytes, bytearray, memoryview, str, IO[bytes], Iterable[bytes]]
#: ``hook(request_type, name, response_time_ms, response_length, exception)`` for discovery and
#: pairing requests (used by :mod:`pqrelay.locust`).
EventHook = Callable[[str, str, float, int, Union[BaseException, None]], None]

DISCOVERY_PATH = "/api/mte-relay"
PAIRING_PATH = "/api/mte-pair"

#: §12 (RFC 9110 §9.2.2); a request with an ``idempotency-key`` header is idempotent too.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
#: Sealed whatever ``encode_headers`` says: the relay forwards plain headers only from its
#: allow-list (§9.2), and these decide how the upstream reads the body / deduplicates.
_ALWAYS_SEALED = frozenset({"content-type", "idempotency-key"})
#: §11.1 "re-pair this pair" (564 only as counter_rejected, not retry_refused).
_REPAIR_THIS = frozenset({559, 561, 562, 564, 565})
#: §12: after these the pair (or the client id) cannot be used for a ``retry`` attempt.
_ENDS_PAIR = frozenset({560, 563, 566, 568, 569})
#: Methods whose body-less request is sent with ``content-length: 0`` (as HTTP clients do).
_LENGTH_ZERO_WHEN_EMPTY = frozenset({"POST", "PUT", "PATCH"})
#: Most attempts of one discovery or pairing request that the relay refuses with 429
#: (``rate_limited``) or 503 (``pairing_busy``, ...): the first, and after each refusal its
#: ``Retry-After`` wait and one more (PROTOCOL.md §11.1). The last refusal is raised as before.
#: A refused pairing created no pair, so sending it again (fresh pair ids) is safe; sealed
#: exchanges are never sent again for this (§12 decides).
PAIRING_ATTEMPTS = 3
#: The longest ``Retry-After`` honoured, in seconds.
MAX_RETRY_AFTER = 10.0
#: The most random jitter added to a ``Retry-After`` wait, in seconds (0 to this).
RETRY_JITTER = 0.25
_MAX_ERROR_BODY = 65536
_READ_SIZE = CHUNK_SIZE
_USER_AGENT = "pqrelay-python/0.2.0"


class _Failure(Exception):
    """Internal: an attempt that did not deliver a sealed response (§12 outcomes 2 and 3).

    An error reply has ``status`` and ``code`` (``verdict`` is ``None`` unless its tag
    verified); no answer (the connection failed) or a response head that did not open has
    ``exc``.
    """

    def __init__(
        self,
        *,
        status: int | None = None,
        code: str | None = None,
        verdict: str | None = None,
        message: str = "",
        wire: httpx.Response | None = None,
        body: bytes = b"",
        exc: PQRelayErrorType | None = None,
    ) -> None:
        super().__init__(status, code, verdict)
        self.status = status
        self.code = code
        self.verdict = verdict
        self.message = message
        self.wire = wire
        self.body = body
        self.exc = exc

    @property
    def is_mte_error(self) -> bool:
        return self.exc is None and self.status is not None and 559 <= self.status <= 569

    def describe(self) -> str:
        if self.exc is not None:
            return f"no answer the client can trust ({self.exc})"
        auth = f"verdict {self.verdict}" if self.verdict else "unauthenticated"
        return f"{self.status} {self.code or ''} ({auth})".replace("  ", " ")

    def as_error(self) -> BaseException:
        if self.exc is not None:
            return self.exc
        return RelayError(self.status or 0, self.code or "mte_error", self.message, self.verdict)

    def response(self, method: str, target: str, stream: bool) -> RelayResponse:
        """An error the relay answered itself, returned unsealed (as before version 2)."""
        assert self.wire is not None and self.status is not None
        resp = RelayResponse(
            status_code=self.status,
            headers=self.wire.headers,
            wire=self.wire,
            method=method,
            url=target,
            sealed=False,
            body=iter([self.body]),
            on_close=lambda: None,
            relay_error=self.code,
            verdict=self.verdict,
        )
        if not stream:
            resp.read()
        return resp

    def final(self, method: str, target: str, stream: bool) -> RelayResponse:
        """What the caller gets when this failure ends the request: the failure itself, a
        :class:`RelayError` for 559–569, else the relay's error reply as an unsealed
        response."""
        if self.exc is not None:
            raise self.exc
        if self.is_mte_error:
            raise self.as_error()
        if self.code is None and (self.status or 0) < 400:
            raise ProtocolError(f"response {self.status} is not sealed (no x-mte-relay)")
        return self.response(method, target, stream)


PQRelayErrorType = Union[TransportError, ProtocolError]


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


@dataclass(frozen=True)
class _Prepared:
    """One request as the caller gave it, sealed anew for each attempt (§12)."""

    method: str
    target: str
    sealed: list[tuple[str, str]]
    unsealed: list[tuple[str, str]]
    body: _Body | None
    stream: bool
    idempotent: bool

    @property
    def replayable(self) -> bool:
        return self.body is None or self.body.replayable


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


def retry_after_seconds(status: int, value: str | None) -> float | None:
    """The wait before a discovery or pairing answered ``status`` is sent again, jitter not
    included: ``None`` unless 429 or 503; else ``Retry-After`` in delta-seconds, at most
    :data:`MAX_RETRY_AFTER`, and 1 s when absent or not delta-seconds (an HTTP-date is not
    honoured)."""
    if status not in (429, 503):
        return None
    text = (value or "").strip()
    seconds = float(int(text)) if text.isascii() and text.isdigit() else 1.0
    return min(seconds, MAX_RETRY_AFTER)


def _parse_pin(text: str) -> bytes:
    try:
        return parse_fingerprint(text)
    except ProtocolError:
        raise ValueError(
            f"{text!r} is not a relay key fingerprint (sha256: and 43 base64url characters)"
        ) from None


class RelaySession:
    """A pqrelay client session: a ``requests``-like API whose requests are sealed end to end.

    ``relay_url`` is the relay's origin (``https://relay.example``); request URLs are paths
    on it (``/api/v1/items?x=1``), which the relay forwards to its UPSTREAM.

    * ``number_of_pairs`` pairs are created by the first exchange (one pairing request);
      when all are busy the pool grows up to ``max_pairs`` (default: ``number_of_pairs``),
      then callers wait for a free pair. One pair is never used by two exchanges at once.
    * ``encode_urls``: seal path and query (else they travel plain, bound into the AAD).
    * ``encode_headers``: ``True`` seals every request header, ``False`` only
      ``content-type`` and ``idempotency-key``, a list of names seals those too. The relay
      forwards plain headers only from its allow-list (``PLAIN_HEADERS``, default
      ``cookie``): other unsealed headers do not reach the upstream.
    * ``pin``: one fingerprint (``"sha256:…"``) or a list of them: the session pairs only
      with those relay keys. Without pins, it trusts the first key it is shown (trust on
      first use) and then the keys in :attr:`trusted_keys`; persist them with :attr:`token`.

    A discovery or pairing the relay refuses with 429 (``rate_limited``) or 503
    (``pairing_busy``) is sent again after the answer's ``Retry-After`` (at most 10 s, 1 s when
    absent) plus 0–250 ms of jitter, :attr:`PAIRING_ATTEMPTS` attempts in all; each refused
    attempt is reported to ``event_hook`` as a failed request and counted in
    :attr:`busy_retries`.

    Thread-safe: share one session between threads. Use as a context manager or call
    :meth:`close`.
    """

    #: Most attempts of one discovery or pairing request refused with 429 or 503 (§11.1).
    PAIRING_ATTEMPTS = PAIRING_ATTEMPTS

    def __init__(
        self,
        relay_url: str,
        number_of_pairs: int = 5,
        max_pairs: int | None = None,
        encode_urls: bool = True,
        encode_headers: bool | Sequence[str] = True,
        *,
        pin: str | Sequence[str] | None = None,
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
            self._seal_names: frozenset[str] = frozenset()
            self._seal_all = encode_headers
        else:
            self._seal_names = frozenset(n.lower() for n in encode_headers)
            self._seal_all = False
        self.encode_headers = encode_headers
        self._pins: tuple[bytes, ...] | None = None
        if pin is not None:
            pins = [pin] if isinstance(pin, str) else list(pin)
            if not pins:
                raise ValueError("pin: give at least one fingerprint (or None)")
            self._pins = tuple(_parse_pin(p) for p in pins)
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
        self._offered: list[RelayKey] = []
        self._trusted: list[bytes] = []  # trust on first use, beside the token
        self._relay_key: RelayKey | None = None
        self._busy_retries = 0
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
        """The newest client-id token the relay gave. Persist it (with
        :attr:`trusted_keys`) to keep the client id, and set it on a new session."""
        token = self._token
        return None if token is None else token.token

    @token.setter
    def token(self, value: str | None) -> None:
        self._token = None if value is None else RelayToken.parse(value)

    @property
    def pins(self) -> list[str] | None:
        """The pinned fingerprints, or ``None`` (trust on first use)."""
        return None if self._pins is None else [fingerprint(p) for p in self._pins]

    @property
    def trusted_keys(self) -> list[str]:
        """The relay keys this session trusts, as fingerprints: the pins, or (trust on first
        use) the keys stored after the first confirmed pairing — every key the relay listed,
        so that a rotation it announces is followed. Empty before the first pairing.

        Without pins, persist this list beside :attr:`token` and set it on the next session
        for the same relay: from then on a relay that offers none of these keys is refused
        (:class:`RelayKeyNotTrustedError`). Setting ``[]`` clears the stored trust.
        """
        with self._lock:
            ids = self._pins if self._pins is not None else tuple(self._trusted)
        return [fingerprint(k) for k in ids]

    @trusted_keys.setter
    def trusted_keys(self, fingerprints: Sequence[str]) -> None:
        if self._pins is not None:
            raise ValueError("a pinned session trusts exactly its pins")
        if isinstance(fingerprints, str):
            fingerprints = [fingerprints]
        ids = [_parse_pin(f) for f in fingerprints]
        with self._lock:
            self._trusted = list(dict.fromkeys(ids))

    @property
    def relay_fingerprint(self) -> str | None:
        """The fingerprint of the relay key the current pairs were made with (``None`` before
        the first pairing)."""
        key = self._relay_key
        return None if key is None else key.fingerprint

    @property
    def offered_keys(self) -> list[str]:
        """The fingerprints of the keys the relay offered at the last discovery (current
        first); unauthenticated until a pairing with one of them is confirmed."""
        return [k.fingerprint for k in self._offered]

    @property
    def busy_retries(self) -> int:
        """Discoveries and pairings sent again after a 429 or 503 answer, once its
        ``Retry-After`` had passed."""
        return self._busy_retries

    @property
    def pool_size(self) -> int:
        """Pairs currently owned (idle, busy or being paired)."""
        return self._pool.size

    # -- discovery (§5) ------------------------------------------------------------------

    def _emit(
        self, kind: str, name: str, start: float, length: int, exc: BaseException | None
    ) -> None:
        if self._event_hook is not None:
            self._event_hook(kind, name, (time.perf_counter() - start) * 1000.0, length, exc)

    def _back_off(
        self, kind: str, name: str, start: float, refused: PQRelayError, attempt: int, wait: float
    ) -> None:
        """Attempt ``attempt`` of a discovery or pairing was refused (429/503): reports it as a
        failed request, counts it, and waits ``wait`` seconds plus jitter."""
        wait += random.uniform(0.0, RETRY_JITTER)
        with self._lock:
            self._busy_retries += 1
        refused.retry_after = wait  # type: ignore[attr-defined]
        refused.attempt = attempt  # type: ignore[attr-defined]
        self._emit(kind, name, start, 0, refused)
        time.sleep(wait)

    def discover(self) -> RelayInfo:
        """``HEAD /api/mte-relay``: obtain (or confirm) the client id, the relay's limits and
        the relay keys it offers."""
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
        for attempt in range(1, PAIRING_ATTEMPTS + 1):
            start = time.perf_counter()
            try:
                resp = self._http.head(DISCOVERY_PATH, headers=headers)
            except httpx.HTTPError as exc:
                raise TransportError(f"discovery failed: {exc}") from exc
            wait = retry_after_seconds(resp.status_code, resp.headers.get("retry-after"))
            if wait is None or attempt >= PAIRING_ATTEMPTS:
                break
            refused = ProtocolError(f"discovery answered {resp.status_code}; trying again")
            self._back_off("HEAD", DISCOVERY_PATH, start, refused, attempt, wait)
        if "x-mte-relay" not in resp.headers:
            raise NotARelayError(
                f"{self.relay_url} answered {resp.status_code} without x-mte-relay: not a pqrelay"
            )
        if resp.status_code != 200:
            raise ProtocolError(f"discovery answered {resp.status_code}")
        token = parse_discovery_header(resp.headers["x-mte-relay"])
        info = parse_info(resp.headers.get("x-mte-relay-info"))
        offered = parse_relay_keys(resp.headers.get("x-mte-relay-keys"))
        with self._lock:
            old = self._token
            self._token = token
            self._info = info
            self._offered = offered
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

    def _rediscover(self) -> None:
        with self._discover_lock:
            self.discover()

    def _forget_discovery(self) -> None:
        """The next request discovers again (after 560, 566, 568 ended a request)."""
        with self._lock:
            self._info = None

    def _store_token(self, token: RelayToken, expected_id: bytes) -> None:
        if token.client_id != expected_id:
            raise ProtocolError("relay answered with another client id")
        with self._lock:
            if self._token is None or self._token.token != token.token:
                if self._token is None or self._token.client_id == token.client_id:
                    self._token = token

    def _batch_limit(self) -> int:
        info = self._info
        return info.pairs_per_request if info is not None else 1

    # -- trust (§13) and pairing (§6) ----------------------------------------------------

    def _choose_key(self) -> RelayKey:
        """The first offered key that is pinned or trusted (first contact without pins: the
        first offered key); none is a hard error."""
        with self._lock:
            trusted = list(self._pins) if self._pins is not None else list(self._trusted)
            offered = list(self._offered)
        try:
            return choose(offered, trusted)
        except ProtocolError:
            raise RelayKeyNotTrustedError(
                [fingerprint(t) for t in trusted], [k.fingerprint for k in offered]
            ) from None

    def connect(self) -> None:
        """Discover and pair ``number_of_pairs`` pairs now instead of on the first request."""
        self._ensure_discovered()
        self._pool.fill()

    def _pair(self, count: int) -> list[tuple[bytes, Ratchet]]:
        start = time.perf_counter()
        try:
            pairs = self._pair_once(count, retry=True)
        except BaseException as exc:
            self._emit("POST", PAIRING_PATH, start, 0, exc)
            raise
        self._emit("POST", PAIRING_PATH, start, 0, None)
        return pairs

    def _pair_once(self, count: int, retry: bool) -> list[tuple[bytes, Ratchet]]:
        token = self._ensure_discovered()
        key = self._choose_key()
        for attempt in range(1, PAIRING_ATTEMPTS + 1):
            start = time.perf_counter()
            pids: list[bytes] = []
            while len(pids) < count:  # fresh, distinct pair ids for every pairing request
                pid = os.urandom(16)
                if pid not in pids:
                    pids.append(pid)
            pairing = ClientPairing(token.client_id, key, pids)
            try:
                resp = self._http.post(
                    PAIRING_PATH,
                    content=pairing.body,
                    headers={
                        "x-mte-relay": f"{PROTOCOL_VERSION}.{token.token}",
                        "content-type": "application/json",
                    },
                )
            except httpx.HTTPError as exc:
                raise TransportError(f"pairing failed: {exc}") from exc
            status, code = resp.status_code, resp.headers.get("x-mte-relay-error")
            wait = retry_after_seconds(status, resp.headers.get("retry-after"))
            if wait is None or attempt >= PAIRING_ATTEMPTS:
                break
            why = f"pairing answered {status} {code or ''}; trying again"
            refused = PairingError(why, status, code)
            self._back_off("POST", PAIRING_PATH, start, refused, attempt, wait)
        unknown_key = status == 400 and code == "unknown_relay_key"
        if retry and (status in (560, 566, 568) or unknown_key):
            # §13: an unknown key makes the client re-discover once, then choose again.
            self._rediscover()
            return self._pair_once(count, retry=False)
        if unknown_key:
            raise PairingError(
                f"unknown_relay_key: the relay refuses the key it offers, {key.fingerprint}",
                status,
                code,
            )
        if status != 200:
            raise PairingError(
                f"pairing answered {status} {code or ''}: {resp.text[:200]}", status, code
            )
        confirmed = pairing.complete(resp.content)  # PairingNotConfirmedError: hard error
        self._store_token(parse_discovery_header(resp.headers.get("x-mte-relay")), token.client_id)
        with self._lock:
            self._relay_key = key
            if self._pins is None:  # trust on first use: store every key the relay listed
                for key_id in confirmed.key_ids:
                    if key_id not in self._trusted:
                        self._trusted.append(key_id)
        return [(pid, Ratchet(ck)) for pid, ck in zip(pids, confirmed.chain_keys)]


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
        gives the plain length). An empty body (``b""``, or no body on ``POST``/``PUT``/
        ``PATCH``) is sent as ``content-length: 0``; no content type is ever invented.
        ``data`` (a dict, form-encoded) and ``json`` work as in ``requests``. With
        ``stream=True`` the body is decoded as you iterate :meth:`RelayResponse.iter_content`.

        Delivery (PROTOCOL.md §12): an idempotent request (``GET HEAD OPTIONS TRACE PUT
        DELETE``, or one with an ``idempotency-key`` header) is sent again after a relay error
        or a lost connection (once each) when its body can be replayed. Any other request is
        sent again only when the relay proves that no earlier attempt can reach the upstream;
        otherwise :class:`OutcomeUnknownError` is raised: it may or may not have run.

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
            elif is_forbidden_request_header(low):
                continue  # host, hop-by-hop and forwarding headers are not the caller's
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

        if plain:
            return self._plain_request(method, target, kept, body, stream)

        sealed: list[tuple[str, str]] = []
        unsealed: list[tuple[str, str]] = []
        for name, value in kept:
            if self._seal_all or name in _ALWAYS_SEALED or name in self._seal_names:
                try:
                    validate_header(name, value, request=True)
                except ProtocolError as exc:
                    raise ValueError(str(exc)) from None
                sealed.append((name, value))
            else:
                unsealed.append((name, value))

        idempotent = method in IDEMPOTENT_METHODS or any(n == "idempotency-key" for n, _ in kept)
        self._ensure_discovered()  # so that the first pairing knows the relay's max-pairs
        return self._deliver(
            _Prepared(method, target, sealed, unsealed, body, stream, idempotent)
        )

    def _deliver(self, req: _Prepared) -> RelayResponse:
        """§12: attempts until a sealed response, a final error, or outcome unknown."""
        method, target, stream, replayable = req.method, req.target, req.stream, req.replayable
        lease = _Lease(self._pool, self._pool.acquire(self.timeout))
        retry = False  # flag retry on the next attempt
        resent_error = resent_lost = resent_dead = sent_retry = False
        while True:
            try:
                return self._exchange(lease, req, retry)
            except _Failure as failure_:
                failure = failure_
            except BaseException:
                lease.release()
                raise
            retry = False
            if (
                failure.verdict == DEAD
                and not failure.is_mte_error
                and failure.status is not None
                and failure.status < 500
            ):
                # The relay refused the request itself (400 forbidden_header, 404, 413, ...)
                # and says, authenticated, that it never ran: resending cannot help.
                lease.release()
                return failure.response(method, target, stream)
            if req.idempotent:
                lost = failure.status is None
                if replayable and not (resent_lost if lost else resent_error):
                    if lost:
                        resent_lost = True
                    else:
                        resent_error = True
                    lease = self._recover(lease, failure, resend=True)
                    continue
                self._recover(lease, failure, resend=False)
                return failure.final(method, target, stream)
            # Non-idempotent: the upstream must see it at most once.
            if failure.verdict == DEAD and failure.code != "retry_refused":
                # 2. It never ran and never can: one new attempt after the §11.1 action.
                if replayable and not resent_dead:
                    resent_dead = True
                    lease = self._recover(lease, failure, resend=True)
                    continue
                self._recover(lease, failure, resend=False)
                return failure.final(method, target, stream)
            if (
                failure.verdict in (None, UNKNOWN)
                and not sent_retry
                and replayable
                and failure.status not in _ENDS_PAIR
                and not lease.pair.ratchet.exhausted
            ):
                # 3. Once, on the same pair with counter n + 1 and flag retry: the relay runs
                # it only if counter n was never accepted, and spends n for good.
                sent_retry = retry = True
                continue
            # 4. Anything else: the caller must not assume either way.
            self._recover(lease, failure, resend=False)
            self._outcome_unknown(method, target, failure)

    @staticmethod
    def _outcome_unknown(method: str, target: str, failure: _Failure) -> NoReturn:
        raise OutcomeUnknownError(
            f"outcome_unknown: {method} {target}: the upstream may or may not have run this "
            f"request; last answer: {failure.describe()}",
            failure.status if failure.exc is None else None,
            failure.code,
            failure.verdict,
        ) from failure.as_error()

    def _recover(self, lease: _Lease, failure: _Failure, resend: bool) -> _Lease:
        """§11.1's client action for ``failure`` (also for unauthenticated errors: they may
        cost a re-pairing, never a second run). With ``resend``, returns the lease for the next
        attempt: the pair just paired when the old one was dropped (never another old pair),
        else the same pair. Without, the lease is given back or dropped."""
        status = None if failure.exc is not None else failure.status
        pair = lease.pair
        if status in _REPAIR_THIS and not (status == 564 and failure.code == "retry_refused"):
            lease.discard()  # re-pair this pair: a new pair, since ids are never reused
        elif status == 563:
            self._pool.drop_through(pair)  # and every pair paired no later than it
            lease.discard()
        elif status in (560, 566, 568):  # re-discover (and re-pair all)
            lease.discard()
            if resend:
                self._rediscover()
            else:
                self._forget_discovery()
            self._pool.invalidate_all()
        elif status == 569:  # re-pair all
            lease.discard()
            self._pool.invalidate_all()
        else:  # lost connection, unopened head, 567, 503 and others: the pair is intact
            if resend:
                return lease
            lease.release()
            return lease
        if resend:
            return _Lease(self._pool, self._pool.acquire_fresh())
        return lease

    def _exchange(self, lease: _Lease, req: _Prepared, retry: bool) -> RelayResponse:
        """One attempt. Raises :class:`_Failure` unless a sealed response head opened."""
        method, target, body = req.method, req.target, req.body
        token = self._ensure_discovered()
        pair = lease.pair
        keys = pair.ratchet.advance()  # §7: the chain moves on before sending
        ex = Exchange(token.client_id, pair.pid, keys, method)

        flags = FLAG_HEADERS
        if self.encode_urls:
            flags |= FLAG_URL
        if retry:
            flags |= FLAG_RETRY
        has_body = body is not None and body.length != 0
        if has_body:
            assert body is not None
            flags |= FLAG_BODY
            if body.length is None:
                flags |= FLAG_STREAMING

        wire_target = ex.seal_url(flags, target) if self.encode_urls else target
        header = ExchangeHeader(token, pair.pid, keys.counter, flags)
        wire_headers: list[tuple[str, str]] = [("x-mte-relay", header.encode())]
        content: Iterable[bytes] | None = None
        if has_body:
            assert body is not None
            aad_fn = ex.request_body_aad(flags)
            if body.length is not None:
                content = seal_sized(keys.request_key, aad_fn, body.factory(), body.length)
                wire_headers.append(("content-length", str(encoded_len(body.length))))
            else:
                content = seal_streaming(keys.request_key, aad_fn, body.factory())
                wire_headers.append(("transfer-encoding", "chunked"))
            wire_headers.append(("content-type", "application/octet-stream"))
        elif body is not None:
            # §9.2 / issue 19: an empty body stays empty with its framing: no flag body,
            # content-length: 0, no content type.
            if any(piece for piece in body.factory()):
                raise ValueError("request body longer than its declared length")
            wire_headers.append(("content-length", "0"))
        elif method in _LENGTH_ZERO_WHEN_EMPTY:
            wire_headers.append(("content-length", "0"))
        wire_headers.extend(req.unsealed)
        request = self._http.build_request(
            method, wire_target, headers=wire_headers, content=content
        )
        sent_target = request.url.raw_path.decode("ascii")
        if sent_target != wire_target:
            raise ValueError(f"request target {target!r} would not be sent as is")
        request.headers["x-mte-relay-eh"] = ex.seal_headers(
            flags, req.sealed, "" if self.encode_urls else sent_target
        )

        try:
            wire = self._http.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise _Failure(exc=TransportError(f"{method} {target}: {exc}")) from exc

        try:
            return self._open_response(lease, ex, flags, token, wire, target, req.stream)
        except BaseException:
            wire.close()
            raise

    def _error_reply(self, ex: Exchange, wire: httpx.Response) -> _Failure:
        """An error the relay (or anyone on the wire) answered: verify its tag (§11.2)."""
        status = wire.status_code
        code = wire.headers.get("x-mte-relay-error")
        body = bytearray()
        try:
            for piece in wire.iter_bytes():
                body += piece
                if len(body) > _MAX_ERROR_BODY:
                    break
        except httpx.HTTPError:
            pass
        finally:
            wire.close()
        try:
            verdict: str | None = verify_error_reply(
                ex.keys.error_key,
                ex.client_id,
                ex.pid,
                ex.counter,
                status,
                code,
                wire.headers.get("x-mte-relay-verdict"),
                wire.headers.get("x-mte-relay-tag"),
            )
        except ProtocolError:
            verdict = None  # unauthenticated: says nothing about the request's fate
        message = ""
        try:
            doc = _json.loads(bytes(body))
            if isinstance(doc, dict):
                message = str(doc.get("message", ""))[:500]
        except ValueError:
            message = bytes(body[:200]).decode("utf-8", "replace")
        if code is None and status < 400:
            return _Failure(
                status=status,
                exc=ProtocolError(f"response {status} is not sealed (no x-mte-relay)"),
            )
        return _Failure(
            status=status, code=code, verdict=verdict, message=message, wire=wire, body=bytes(body)
        )

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
        relay_header = wire.headers.get("x-mte-relay")
        if "x-mte-relay-error" in wire.headers or relay_header is None:
            raise self._error_reply(ex, wire)

        try:
            hdr = parse_exchange_header(relay_header)
            if hdr.pid != lease.pair.pid or hdr.counter != ex.counter:
                raise ProtocolError("response is for another pair or counter")
            if (hdr.flags & FLAG_URL) != (request_flags & FLAG_URL):
                raise ProtocolError("response does not echo the url flag")
            self._store_token(hdr.token, token.client_id)
            opened = ex.open_headers(hdr.flags, status, wire.headers.get("x-mte-relay-eh"))
            no_body = ex.method == "HEAD" or 100 <= status < 200 or status in (204, 304)
            expected: int | None = None
            if hdr.flags & FLAG_BODY:
                if no_body:
                    raise ProtocolError(f"a {status} response to {ex.method} cannot have a body")
                if not hdr.flags & FLAG_STREAMING:
                    length = wire.headers.get("content-length")
                    if length is None:
                        raise ProtocolError("sized response body without content-length")
                    expected = plain_len(parse_decimal(length.strip()))
            elif hdr.flags & FLAG_STREAMING:
                raise ProtocolError("streaming flag without body flag")
        except ProtocolError as exc:
            # A response head that does not open is no answer the client can trust (§12).
            raise _Failure(status=status, exc=exc) from None

        # The head opened: the exchange is delivered. Body errors reach the caller as such.
        headers = httpx.Headers(
            opened + [("set-cookie", v) for v in wire.headers.get_list("set-cookie")]
        )
        if hdr.flags & FLAG_BODY:
            opener = StreamOpener(
                ex.keys.response_key, ex.response_body_aad(hdr.flags, status), expected
            )
            body = self._opened_body(wire, opener)
        else:
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

