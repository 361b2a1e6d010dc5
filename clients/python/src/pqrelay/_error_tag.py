"""Authenticated errors (PROTOCOL.md §11.2).

Once the relay has read a pair's state and derived the keys of counter ``m``, every error it
answers for that request carries::

    x-mte-relay-verdict: dead | unknown | partial | complete
    x-mte-relay-tag: b64(HMAC(ke_m, "pqrelay/2 error" || id || pid || u64(m) || u16(status)
                              || u8(len(code)) || code || u8(verdict)))

A reply whose verdict or tag is missing, malformed or does not verify is *unauthenticated*:
it says nothing about the request's fate (an attacker on the wire can forge it).
"""

from __future__ import annotations

import hmac
import struct

from ._codec import b64decode
from ._exceptions import ProtocolError
from ._keys import hmac_sha256

__all__ = [
    "VERDICTS",
    "DEAD",
    "UNKNOWN",
    "PARTIAL",
    "COMPLETE",
    "error_tag_message",
    "error_tag",
    "verify_error_reply",
]

DEAD = "dead"
UNKNOWN = "unknown"
PARTIAL = "partial"
COMPLETE = "complete"
#: verdict → the byte bound into the tag.
VERDICTS = {DEAD: 0, UNKNOWN: 1, PARTIAL: 2, COMPLETE: 3}

_LABEL = b"pqrelay/2 error"
_KIND = "unauthenticated_error"


def error_tag_message(
    client_id: bytes, pid: bytes, counter: int, status: int, code: str, verdict: str
) -> bytes:
    """The exact MAC input of §11.2. A code over 255 bytes or an unknown verdict cannot be
    bound: ``unauthenticated_error``."""
    code_b = code.encode("utf-8")
    if len(code_b) > 255:
        raise ProtocolError("error code over 255 bytes", _KIND)
    if verdict not in VERDICTS:
        raise ProtocolError("unknown verdict", _KIND)
    if len(client_id) != 16 or len(pid) != 16:
        raise ValueError("client id and pair id are 16 bytes")
    return b"".join(
        [
            _LABEL,
            client_id,
            pid,
            struct.pack(">QH", counter, status),
            bytes([len(code_b)]),
            code_b,
            bytes([VERDICTS[verdict]]),
        ]
    )


def error_tag(
    error_key: bytes,
    client_id: bytes,
    pid: bytes,
    counter: int,
    status: int,
    code: str,
    verdict: str,
) -> bytes:
    """``HMAC(ke_m, message)``: the 32-byte tag (the relay's side; tests use it)."""
    return hmac_sha256(
        error_key, error_tag_message(client_id, pid, counter, status, code, verdict)
    )


def verify_error_reply(
    error_key: bytes,
    client_id: bytes,
    pid: bytes,
    counter: int,
    status: int,
    code: str | None,
    verdict: str | None,
    tag: str | None,
) -> str:
    """Client side: the authenticated verdict of an error reply to the request sent with
    ``ke_m`` = ``error_key`` (its own ``id``, ``pid``, ``m``), from the reply's status and its
    ``x-mte-relay-error``, ``x-mte-relay-verdict`` and ``x-mte-relay-tag`` values (``None``
    when absent). Any failure is :class:`ProtocolError` ``unauthenticated_error``."""
    if code is None or verdict is None or tag is None:
        raise ProtocolError("error reply without code, verdict or tag", _KIND)
    if verdict not in VERDICTS:
        raise ProtocolError("error reply with an unknown verdict", _KIND)
    if len(tag) != 43:
        raise ProtocolError("error tag is not 43 characters", _KIND)
    raw = b64decode(tag, _KIND)
    expected = error_tag(error_key, client_id, pid, counter, status, code, verdict)
    if not hmac.compare_digest(expected, raw):
        raise ProtocolError("error tag does not verify", _KIND)
    return verdict
