"""Relay keys (PROTOCOL.md §4), the ``x-mte-relay-keys`` header of discovery (§5) and the
choice of a trusted key (§13).

::

    entry       = u16(0x647a) || pk           relay key configuration (1218 bytes)
    fp          = SHA-256(entry)              the key's id (32 bytes)
    fingerprint = "sha256:" || b64(fp)        what operators publish and clients pin

Every parser raises :class:`ProtocolError` with kind ``invalid_relay_key``; :func:`choose`
raises ``untrusted_relay_key``.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from . import _xwing
from ._codec import b64decode, b64encode
from ._exceptions import ProtocolError

__all__ = [
    "KEM_ID",
    "ENTRY_SIZE",
    "KEY_ID_SIZE",
    "MAX_RELAY_KEYS",
    "FINGERPRINT_PREFIX",
    "RelayKey",
    "fingerprint",
    "parse_fingerprint",
    "parse_relay_keys",
    "choose",
]

#: HPKE KEM id of X-Wing, the first two bytes of an entry.
KEM_ID = 0x647A
ENTRY_SIZE = 2 + _xwing.EK_SIZE
KEY_ID_SIZE = 32
#: Most relay keys a relay offers (and a client accepts) in ``x-mte-relay-keys``.
MAX_RELAY_KEYS = 8
FINGERPRINT_PREFIX = "sha256:"
#: Longest item accepted in ``x-mte-relay-keys`` (room for entries of other KEMs, skipped).
_MAX_ITEM_LEN = 8192

_KIND = "invalid_relay_key"


def fingerprint(key_id: bytes) -> str:
    """``"sha256:" || b64(fp)``, 50 characters."""
    return FINGERPRINT_PREFIX + b64encode(key_id)


def parse_fingerprint(text: str) -> bytes:
    """The 32-byte key id of a fingerprint (``sha256:`` and 43 characters of strict b64)."""
    if not isinstance(text, str) or not text.startswith(FINGERPRINT_PREFIX):
        raise ProtocolError(f"{text!r} is not a sha256: fingerprint", _KIND)
    rest = text[len(FINGERPRINT_PREFIX) :]
    if len(rest) != 43:
        raise ProtocolError(f"{text!r} is not a sha256: fingerprint", _KIND)
    return b64decode(rest, _KIND)


class _OtherKem(Exception):
    """An entry of another KEM id: skipped by :func:`parse_relay_keys`."""


@dataclass(frozen=True)
class RelayKey:
    """A relay key configuration (the public part) and its id."""

    public_key: bytes = field(repr=False)
    key_id: bytes

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.key_id)

    @property
    def entry(self) -> bytes:
        return struct.pack(">H", KEM_ID) + self.public_key

    @classmethod
    def from_public_key(cls, public_key: bytes) -> RelayKey:
        entry = struct.pack(">H", KEM_ID) + public_key
        return cls(bytes(public_key), hashlib.sha256(entry).digest())

    @classmethod
    def parse(cls, entry: bytes) -> RelayKey:
        """An entry: exactly 1218 bytes, KEM id 0x647a, a valid X-Wing key (§2)."""
        return cls._parse(entry)

    @classmethod
    def _parse(cls, entry: bytes, skip_other_kem: bool = False) -> RelayKey:
        if len(entry) < 2:
            raise ProtocolError("relay key entry too short", _KIND)
        (kem,) = struct.unpack(">H", entry[:2])
        if kem != KEM_ID:
            if skip_other_kem:
                raise _OtherKem
            raise ProtocolError(f"relay key of KEM id {kem:#06x}, not X-Wing", _KIND)
        if len(entry) != ENTRY_SIZE:
            raise ProtocolError("relay key entry is not 1218 bytes", _KIND)
        pk = entry[2:]
        try:
            _xwing.check_encapsulation_key(pk)
        except ValueError:
            raise ProtocolError("relay key is not a valid X-Wing key", _KIND) from None
        return cls(pk, hashlib.sha256(entry).digest())

    def __repr__(self) -> str:
        return f"RelayKey({self.fingerprint})"


def parse_relay_keys(value: str | None) -> list[RelayKey]:
    """An ``x-mte-relay-keys`` value (§5): 1 to 8 ``,``-separated items (spaces around them
    ignored), each strict b64 of an entry; entries of another KEM id are skipped; no key
    twice; at least one X-Wing key left."""
    if value is None:
        raise ProtocolError("discovery answer lacks x-mte-relay-keys", _KIND)
    items = [item.strip(" \t") for item in value.split(",")]
    if len(items) > MAX_RELAY_KEYS or not value.strip(" \t"):
        raise ProtocolError("x-mte-relay-keys does not hold 1 to 8 entries", _KIND)
    keys: list[RelayKey] = []
    for item in items:
        if len(item) > _MAX_ITEM_LEN:
            raise ProtocolError("x-mte-relay-keys item too long", _KIND)
        try:
            key = RelayKey._parse(b64decode(item, _KIND), skip_other_kem=True)
        except _OtherKem:
            continue
        if any(k.key_id == key.key_id for k in keys):
            raise ProtocolError("x-mte-relay-keys offers a key twice", _KIND)
        keys.append(key)
    if not keys:
        raise ProtocolError("x-mte-relay-keys offers no X-Wing key", _KIND)
    return keys


def choose(offered: Sequence[RelayKey], trusted: Iterable[bytes]) -> RelayKey:
    """The key to pair with (§13): the first offered key whose id is trusted, or, with nothing
    trusted (trust on first use, first contact), the first offered key. None trusted is
    ``untrusted_relay_key``: a hard error, never a silent pairing with another key."""
    trusted = list(trusted)
    if not trusted:
        if not offered:
            raise ProtocolError("the relay offers no key", "untrusted_relay_key")
        return offered[0]
    for key in offered:
        if key.key_id in trusted:
            return key
    raise ProtocolError(
        "none of the offered relay keys ("
        + ", ".join(k.fingerprint for k in offered)
        + ") is trusted ("
        + ", ".join(fingerprint(t) for t in trusted)
        + ")",
        "untrusted_relay_key",
    )
