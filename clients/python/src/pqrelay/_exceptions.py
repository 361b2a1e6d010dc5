"""Exceptions raised by pqrelay.

Every exception the package raises on purpose derives from :class:`PQRelayError`::

    PQRelayError
    ├── TransportError        the relay could not be reached / the connection failed
    ├── NotARelayError        discovery answered without ``x-mte-relay``: not a pqrelay
    ├── ProtocolError         the relay sent something that breaks PROTOCOL.md
    │   └── DecodeError       a sealed item did not open, or a body's framing is wrong
    ├── PairingError          ``POST /api/mte-pair`` failed
    ├── RelayError            the relay answered a 559–569 error that re-pairing and the one
    │                         allowed retry did not fix (``.status``, ``.code``, ``.message``)
    └── HTTPStatusError       raised by ``RelayResponse.raise_for_status()`` (4xx/5xx)

``ValueError``/``TypeError`` are raised for caller mistakes (e.g. a sealed header name that
the relay would refuse), before any pair is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from ._models import RelayResponse

__all__ = [
    "PQRelayError",
    "TransportError",
    "NotARelayError",
    "ProtocolError",
    "DecodeError",
    "PairingError",
    "RelayError",
    "HTTPStatusError",
]


class PQRelayError(Exception):
    """Base class of every pqrelay exception."""


class TransportError(PQRelayError):
    """The HTTP transport failed (connect, read, write, timeout). Wraps the httpx error."""


class NotARelayError(PQRelayError):
    """The server answered discovery without an ``x-mte-relay`` header."""


class ProtocolError(PQRelayError):
    """The relay's answer does not follow the protocol (malformed header, wrong pair, ...).

    ``kind`` names the failure as the shared test vectors do (``invalid_header``,
    ``unsupported_version``, ``forbidden_header``, ``invalid_url``, ``invalid_length``,
    ``headers_too_large``, ``decode_failure``, ``framing_failure``, ...).
    """

    def __init__(self, message: str, kind: str = "protocol_error") -> None:
        super().__init__(message)
        self.kind = kind


class DecodeError(ProtocolError):
    """A sealed item failed to open, or a STREAM body is truncated, extended or malformed.

    Deliberately carries no detail about *why* a tag failed. ``kind`` is ``decode_failure``
    (an item did not open) or ``framing_failure`` (records malformed, truncated, extended).
    """

    def __init__(self, message: str, kind: str = "decode_failure") -> None:
        super().__init__(message, kind)


class PairingError(PQRelayError):
    """The pairing request was refused or its answer was unusable."""

    kind = "invalid_pairing"

    def __init__(self, message: str, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class RelayError(PQRelayError):
    """The relay answered an MTE error (559–569) that the client could not recover from."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"relay error {status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class HTTPStatusError(PQRelayError):
    """Raised by :meth:`RelayResponse.raise_for_status` for a 4xx or 5xx response."""

    def __init__(self, message: str, response: RelayResponse) -> None:
        super().__init__(message)
        self.response = response
