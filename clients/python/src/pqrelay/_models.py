"""The response object handed to callers."""

from __future__ import annotations

import json as _json
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx

from ._exceptions import HTTPStatusError

__all__ = ["RelayResponse"]


class RelayResponse:
    """A decoded, verified response.

    ``headers`` are the headers the upstream sent (opened from ``x-mte-relay-eh``) plus the
    plain ``set-cookie`` ones; ``wire_headers`` are the headers as they crossed the wire.
    For errors the relay answers itself (plain JSON, not sealed) ``sealed`` is False,
    ``relay_error`` holds the error code and ``verdict`` what the relay says became of the
    request (``dead``: it never reached the upstream) when the error's tag verified, else
    ``None`` (PROTOCOL.md §11.2).

    The body is decoded record by record as it is read: ``iter_content()`` streams, while
    ``content`` reads everything. A response opened with ``stream=True`` holds its pair until
    the body is fully read or :meth:`close` is called; use it as a context manager.
    """

    def __init__(
        self,
        *,
        status_code: int,
        headers: httpx.Headers,
        wire: httpx.Response,
        method: str,
        url: str,
        sealed: bool,
        body: Iterator[bytes],
        on_close: Callable[[], None],
        relay_error: str | None = None,
        verdict: str | None = None,
    ) -> None:
        self.status_code = status_code
        self.headers = headers
        self.wire_headers = wire.headers
        self.method = method
        self.url = url
        self.sealed = sealed
        self.relay_error = relay_error
        self.verdict = verdict
        self.reason_phrase = wire.reason_phrase
        self._wire = wire
        self._body = body
        self._on_close = on_close
        self._content: bytes | None = None
        self._consumed = False
        self._closed = False
        self._lock = threading.Lock()

    # -- body ----------------------------------------------------------------------------

    def read(self) -> bytes:
        """Read, verify and return the whole body."""
        if self._content is None:
            if self._consumed:
                raise RuntimeError("response body already streamed with iter_content()")
            self._content = b"".join(self._iter_decoded())
        return self._content

    @property
    def content(self) -> bytes:
        return self.read()

    @property
    def encoding(self) -> str:
        ctype = self.headers.get("content-type", "")
        for param in ctype.split(";")[1:]:
            key, _, value = param.strip().partition("=")
            if key.lower() == "charset" and value:
                return value.strip('"')
        return "utf-8"

    @property
    def text(self) -> str:
        return self.read().decode(self.encoding, errors="replace")

    def json(self, **kwargs: Any) -> Any:
        return _json.loads(self.read(), **kwargs)

    def iter_content(self, chunk_size: int | None = None) -> Iterator[bytes]:
        """Yield the decoded body as it arrives (each piece verified before it is yielded).

        With ``chunk_size`` pieces are re-cut to at most that many bytes.
        """
        source = iter([self._content]) if self._content is not None else self._iter_decoded()
        if chunk_size is None:
            for piece in source:
                if piece:
                    yield piece
            return
        if chunk_size <= 0:
            raise ValueError("chunk_size must be positive")
        for piece in source:
            for start in range(0, len(piece), chunk_size):
                yield piece[start : start + chunk_size]

    def iter_lines(self) -> Iterator[str]:
        """Yield decoded text lines (for e.g. Server-Sent Events) as they arrive."""
        pending = ""
        for piece in self.iter_content():
            pending += piece.decode(self.encoding, errors="replace")
            *lines, pending = pending.split("\n")
            for line in lines:
                yield line.rstrip("\r")
        if pending:
            yield pending

    def _iter_decoded(self) -> Iterator[bytes]:
        with self._lock:
            if self._consumed:
                raise RuntimeError("response body already consumed")
            self._consumed = True
        try:
            yield from self._body
        finally:
            self.close()

    def close(self) -> None:
        """Release the connection and the pair. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            self._wire.close()
        finally:
            self._on_close()

    @property
    def is_closed(self) -> bool:
        return self._closed

    def __enter__(self) -> RelayResponse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- status --------------------------------------------------------------------------

    @property
    def ok(self) -> bool:
        return self.status_code < 400

    def raise_for_status(self) -> RelayResponse:
        if self.status_code >= 400:
            kind = "client error" if self.status_code < 500 else "server error"
            raise HTTPStatusError(
                f"{kind} {self.status_code} {self.reason_phrase} for {self.method} {self.url}",
                self,
            )
        return self

    def __repr__(self) -> str:
        seal = "sealed" if self.sealed else "plain"
        return f"<RelayResponse [{self.status_code}] {seal}>"
