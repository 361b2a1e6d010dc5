"""Key schedule and ratchet (PROTOCOL.md §7), the pairing derivations (§6) and the AEAD of §8.

HKDF (RFC 5869, SHA-256) and AES-256-GCM come from pyca ``cryptography``.

Python cannot promise that old key bytes are wiped from memory: the ratchet drops every
reference to ``ck_n`` as soon as ``ck_{n+1}`` exists, which is the most it can do.
"""

from __future__ import annotations

import hashlib
import hmac
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
    "hmac_sha256",
    "transcript_hash",
    "pairing_root",
    "chain_key_0",
    "confirm_tag",
    "ExchangeKeys",
    "derive_exchange",
    "Ratchet",
    "seal",
    "open_",
]

KEY_SIZE = 32
TAG_SIZE = 16
#: §7: a pair whose counter would exceed 2^64 - 2 MUST be re-paired.
MAX_COUNTER = 2**64 - 2

_LABEL_PAIRING = b"pqrelay/2 pairing"
_SALT_PAIR = b"pqrelay/2 pair"
_INFO_ROOT = b"pqrelay/2 root"
_INFO_CHAIN = b"pqrelay/2 chain"
_LABEL_CONFIRM = b"pqrelay/2 confirm"
_INFO_REQUEST = b"pqrelay/2 request"
_INFO_RESPONSE = b"pqrelay/2 response"
_INFO_ERROR = b"pqrelay/2 error"
_INFO_NEXT = b"pqrelay/2 next"


def hkdf_extract(salt: bytes, ikm: bytes) -> bytes:
    """RFC 5869 HKDF-Extract with SHA-256."""
    return HKDF.extract(hashes.SHA256(), salt, ikm)


def hkdf_expand(prk: bytes, info: bytes, length: int = KEY_SIZE) -> bytes:
    """RFC 5869 HKDF-Expand with SHA-256; ``prk`` is used directly as the PRK."""
    return HKDFExpand(hashes.SHA256(), length, info).derive(prk)


def hmac_sha256(key: bytes, message: bytes) -> bytes:
    """HMAC-SHA256 (32-byte tag)."""
    return hmac.new(key, message, hashlib.sha256).digest()


def transcript_hash(
    client_id: bytes, key_id: bytes, ct_r: bytes, ek_e: bytes, pids: list[bytes], ct_e: bytes
) -> bytes:
    """§6: ``th = SHA-256("pqrelay/2 pairing" || id || fp || ct_R || ek_E || u8(n) || pid_1 ||
    ... || pid_n || ct_E)``."""
    if len(client_id) != 16 or len(key_id) != 32 or not 1 <= len(pids) <= 255:
        raise ValueError("client id 16 bytes, key id 32 bytes, 1 to 255 pairs")
    h = hashlib.sha256(_LABEL_PAIRING + client_id + key_id + ct_r + ek_e + bytes([len(pids)]))
    for pid in pids:
        if len(pid) != 16:
            raise ValueError("pair ids are 16 bytes")
        h.update(pid)
    h.update(ct_e)
    return h.digest()


def pairing_root(ss_r: bytes, ss_e: bytes, th: bytes) -> bytes:
    """§6: ``root = HKDF-Expand(HKDF-Extract("pqrelay/2 pair", ss_R || ss_E), "pqrelay/2 root"
    || th)``."""
    prk = hkdf_extract(_SALT_PAIR, ss_r + ss_e)
    return hkdf_expand(prk, _INFO_ROOT + th)


def chain_key_0(root: bytes, pid: bytes) -> bytes:
    """§6: ``ck_0(i) = HKDF-Expand(root, "pqrelay/2 chain" || pid_i)``."""
    return hkdf_expand(root, _INFO_CHAIN + pid)


def confirm_tag(root: bytes, key_ids: list[bytes] | tuple[bytes, ...]) -> bytes:
    """§6: ``kc = HKDF-Expand(root, "pqrelay/2 confirm")``, ``confirm = HMAC(kc,
    "pqrelay/2 confirm" || u8(k) || fp'_1 || ... || fp'_k)``."""
    if not 1 <= len(key_ids) <= 255:
        raise ValueError("1 to 255 key ids")
    kc = hkdf_expand(root, _LABEL_CONFIRM)
    return hmac_sha256(kc, _LABEL_CONFIRM + bytes([len(key_ids)]) + b"".join(key_ids))


@dataclass(frozen=True)
class ExchangeKeys:
    """The single-use keys of exchange ``counter``: request, response and error tag keys."""

    counter: int
    request_key: bytes = field(repr=False)
    response_key: bytes = field(repr=False)
    error_key: bytes = field(repr=False)


def derive_exchange(chain_key: bytes, counter: int) -> tuple[ExchangeKeys, bytes]:
    """From ``ck_n``: (``kq_n``, ``ks_n``, ``ke_n``) and ``ck_{n+1}``."""
    keys = ExchangeKeys(
        counter,
        hkdf_expand(chain_key, _INFO_REQUEST),
        hkdf_expand(chain_key, _INFO_RESPONSE),
        hkdf_expand(chain_key, _INFO_ERROR),
    )
    return keys, hkdf_expand(chain_key, _INFO_NEXT)


class Ratchet:
    """The client side of one pair: ``(n, ck_n)``.

    :meth:`advance` hands out the keys of counter ``n`` and moves to ``(n+1, ck_{n+1})``
    before returning, whatever later happens to the request (§7).
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
