"""Exceptions raised by pqrelay.

Every exception the package raises on purpose derives from :class:`PQRelayError`::

    PQRelayError
    ├── TransportError               the relay could not be reached / the connection failed
    ├── NotARelayError               discovery answered without ``x-mte-relay``: not a pqrelay
    ├── ProtocolError                the relay sent something that breaks PROTOCOL.md
    │   └── DecodeError              a sealed item did not open, or a body's framing is wrong
    ├── PairingError                 ``POST /api/mte-pair`` failed
    │   ├── RelayKeyNotTrustedError  relay_key_not_trusted: no offered relay key is pinned or
    │   │                            trusted (hard error; names both sets of fingerprints)
    │   └── PairingNotConfirmedError pairing_not_confirmed: the answer did not prove that the
    │                                relay holds the key (hard error; names its fingerprint)
    ├── RelayError                   the relay answered an error (559–569) that the recovery of
    │                                PROTOCOL.md §11–§12 did not fix (``.status``, ``.code``)
    ├── OutcomeUnknownError          outcome_unknown: a non-idempotent request may or may not
    │                                have run upstream; it is never sent again on its own
    └── HTTPStatusError              raised by ``RelayResponse.raise_for_status()`` (4xx/5xx)

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
    "RelayKeyNotTrustedError",
    "PairingNotConfirmedError",
    "RelayError",
    "OutcomeUnknownError",
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


class RelayKeyNotTrustedError(PairingError):
    """Hard error ``relay_key_not_trusted`` (PROTOCOL.md §13): none of the relay keys that
    discovery offered is pinned or trusted. Either the relay no longer offers the pinned or
    stored keys, or an attacker replaced them. Never followed by a pairing with another key.

    ``trusted`` and ``offered`` are the fingerprints (``sha256:…``) of both sets.
    """

    kind = "untrusted_relay_key"
    code = "relay_key_not_trusted"

    def __init__(self, trusted: list[str], offered: list[str]) -> None:
        super().__init__(
            "relay_key_not_trusted: the relay offers "
            + (", ".join(offered) or "no key")
            + "; trusted: "
            + ", ".join(trusted),
            None,
            self.code,
        )
        self.trusted = list(trusted)
        self.offered = list(offered)


class PairingNotConfirmedError(PairingError):
    """Hard error ``pairing_not_confirmed`` (PROTOCOL.md §6): the pairing answer did not prove
    that it comes from the holder of the relay key ``fingerprint`` (malformed, an all-zero
    X25519 share, ``confirm`` does not verify, or ``keys`` lacks the key). Either an attacker
    answered or the relay does not hold the key. No pair of that request is used.
    """

    kind = "pairing_not_confirmed"
    code = "pairing_not_confirmed"

    def __init__(self, fingerprint: str, reason: str) -> None:
        super().__init__(
            f"pairing_not_confirmed: relay key {fingerprint}: {reason}", None, self.code
        )
        self.fingerprint = fingerprint
        self.reason = reason


class RelayError(PQRelayError):
    """The relay answered an MTE error (559–569) that the client could not recover from.

    ``verdict`` is what the relay said became of the request (``dead``, ``unknown``,
    ``partial``, ``complete``) when the error was authenticated (PROTOCOL.md §11.2), else
    ``None``: an unauthenticated error says nothing about the request's fate.
    """

    def __init__(
        self, status: int, code: str, message: str, verdict: str | None = None
    ) -> None:
        auth = f"verdict {verdict}" if verdict is not None else "error_unauthenticated"
        super().__init__(f"relay error {status} {code} ({auth}): {message}")
        self.status = status
        self.code = code
        self.message = message
        self.verdict = verdict

    @property
    def authenticated(self) -> bool:
        """True if the error's tag verified (§11.2)."""
        return self.verdict is not None


class OutcomeUnknownError(PQRelayError):
    """``outcome_unknown`` (PROTOCOL.md §12): a non-idempotent request (e.g. ``POST``) got no
    answer the client can trust, and sending it again could make the upstream run it twice.
    The upstream may or may not have run it. The client never resends it on its own; the
    application decides (e.g. check the upstream's state, or resend with an
    ``idempotency-key``).

    ``status``, ``code`` and ``verdict`` describe the last answer, if any (``None`` after a
    lost connection); ``__cause__`` is the last failure.
    """

    code = "outcome_unknown"

    def __init__(
        self,
        message: str,
        status: int | None = None,
        error_code: str | None = None,
        verdict: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.verdict = verdict


class HTTPStatusError(PQRelayError):
    """Raised by :meth:`RelayResponse.raise_for_status` for a 4xx or 5xx response."""

    def __init__(self, message: str, response: RelayResponse) -> None:
        super().__init__(message)
        self.response = response
