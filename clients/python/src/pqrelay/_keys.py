"""Key schedule and ratchet (PROTOCOL.md §6) and the AEAD of §7.

HKDF (RFC 5869, SHA-256) and AES-256-GCM come from pyca ``cryptography``.

Python cannot promise that old key bytes are wiped from memory: the ratchet drops every
reference to ``ck_n`` as soon as ``ck_{n+1}`` exists, which is the most it can do.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF, HKDFExpand

from ._exceptions import DecodeError

__all__ = [
    "KEY_SIZE",
    "TAG_SIZE",
    "MAX_COUNTER",
    "hkdf_extract",
    "hkdf_expand",
    "initial_chain_key",
    "ExchangeKeys",
    "derive_exchange",
    "Ratchet",
    "seal",
    "open_",
]

KEY_SIZE = 32
TAG_SIZE = 16
#: §6: a pair whose counter would exceed 2^64 - 2 MUST be re-paired.
MAX_COUNTER = 2**64 - 2

_SALT_PAIR = b"pqrelay/1 pair"
_INFO_CHAIN = b"pqrelay/1 chain"
_INFO_REQUEST = b"pqrelay/1 request"
_INFO_RESPONSE = b"pqrelay/1 response"
_INFO_NEXT = b"pqrelay/1 next"


def hkdf_extract(salt: bytes, ikm: bytes) -> bytes:
    """RFC 5869 HKDF-Extract with SHA-256."""
    return HKDF.extract(hashes.SHA256(), salt, ikm)


def hkdf_expand(prk: bytes, info: bytes, length: int = KEY_SIZE) -> bytes:
    """RFC 5869 HKDF-Expand with SHA-256; ``prk`` is used directly as the PRK."""
    return HKDFExpand(hashes.SHA256(), length, info).derive(prk)


def initial_chain_key(shared_secret: bytes, client_id: bytes, pid: bytes) -> bytes:
    """``ck_0 = HKDF-Expand(HKDF-Extract("pqrelay/1 pair", ss), "pqrelay/1 chain"||id||pid)``."""
    if len(client_id) != 16 or len(pid) != 16:
        raise ValueError("client id and pair id are 16 bytes")
    prk = hkdf_extract(_SALT_PAIR, shared_secret)
    return hkdf_expand(prk, _INFO_CHAIN + client_id + pid)


@dataclass(frozen=True)
class ExchangeKeys:
    """The single-use keys of exchange ``counter``."""

    counter: int
    request_key: bytes = field(repr=False)
    response_key: bytes = field(repr=False)


def derive_exchange(chain_key: bytes, counter: int) -> tuple[ExchangeKeys, bytes]:
    """From ``ck_n``: (``kq_n``, ``ks_n``) and ``ck_{n+1}``."""
    keys = ExchangeKeys(
        counter,
        hkdf_expand(chain_key, _INFO_REQUEST),
        hkdf_expand(chain_key, _INFO_RESPONSE),
    )
    return keys, hkdf_expand(chain_key, _INFO_NEXT)


class Ratchet:
    """The client side of one pair: ``(n, ck_n)``.

    :meth:`advance` hands out the keys of counter ``n`` and moves to ``(n+1, ck_{n+1})``
    before returning, whatever later happens to the request (§6).
    """

    __slots__ = ("_counter", "_chain_key", "_lock")

    def __init__(self, chain_key: bytes, counter: int = 0) -> None:
        self._counter = counter
        self._chain_key: bytes | None = chain_key
        self._lock = threading.Lock()

    @property
    def counter(self) -> int:
        """The counter the next exchange will use."""
        return self._counter

    @property
    def exhausted(self) -> bool:
        return self._chain_key is None or self._counter > MAX_COUNTER

    def advance(self) -> ExchangeKeys:
        with self._lock:
            if self._chain_key is None or self._counter > MAX_COUNTER:
                raise ValueError("pair exhausted: re-pair")
            keys, next_ck = derive_exchange(self._chain_key, self._counter)
            self._chain_key = next_ck if self._counter < MAX_COUNTER else None
            self._counter += 1
            return keys

    def __repr__(self) -> str:
        return f"Ratchet(counter={self._counter})"


def seal(key: bytes, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """AES-256-GCM → ``ciphertext || tag``."""
    return AESGCM(key).encrypt(nonce, plaintext, aad)


def open_(key: bytes, nonce: bytes, sealed: bytes, aad: bytes) -> bytes:
    """Inverse of :func:`seal`; any failure is one opaque :class:`DecodeError`."""
    try:
        return AESGCM(key).decrypt(nonce, sealed, aad)
    except (InvalidTag, ValueError):
        raise DecodeError("sealed item did not open") from None
