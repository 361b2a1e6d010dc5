"""X-Wing KEM (draft-connolly-cfrg-xwing-kem-06), composed from pyca ``cryptography``.

Nothing here is a home-made primitive: ML-KEM-768 and X25519 come from ``cryptography``,
SHAKE-256 and SHA3-256 from :mod:`hashlib`. This module only wires them together exactly as
the draft's §5 pseudo-code does; each step is quoted in the comments.

Sizes (draft §5.1): decapsulation key 32 bytes, encapsulation key 1216, ciphertext 1120,
shared secret 32.

A pqrelay client encapsulates to the relay key and to nothing else (:func:`encapsulate`),
and decapsulates the relay's answer with an ephemeral key (:func:`generate_keypair`,
:func:`decapsulate`). Both directions refuse an all-zero X25519 share (PROTOCOL.md §2).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric import mlkem, x25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

__all__ = [
    "SEED_SIZE",
    "EK_SIZE",
    "CT_SIZE",
    "SS_SIZE",
    "XWING_LABEL",
    "DecapsulationKey",
    "generate_keypair",
    "decapsulate",
    "encapsulate",
    "check_encapsulation_key",
    "combiner",
]

SEED_SIZE = 32
EK_SIZE = 1216
CT_SIZE = 1120
SS_SIZE = 32

_MLKEM_EK_SIZE = 1184
_MLKEM_CT_SIZE = 1088
_X25519_SIZE = 32

#: draft §5.3: XWingLabel = concat("\./", "/^\"), hex 5c2e2f2f5e5c.
XWING_LABEL = b"\\.//^\\"
assert XWING_LABEL.hex() == "5c2e2f2f5e5c"


@dataclass(frozen=True)
class DecapsulationKey:
    """An expanded X-Wing decapsulation key (draft §5.5.1 allows caching the expansion).

    Only the 32-byte ``seed`` is the key proper; the expanded parts never leave the process.
    """

    seed: bytes = field(repr=False)
    sk_m: mlkem.MLKEM768PrivateKey = field(repr=False)
    sk_x: x25519.X25519PrivateKey = field(repr=False)
    pk_m: bytes = field(repr=False)
    pk_x: bytes = field(repr=False)

    @property
    def encapsulation_key(self) -> bytes:
        # draft §5.2 GenerateKeyPair: return sk, concat(pk_M, pk_X)
        return self.pk_m + self.pk_x

    @classmethod
    def from_seed(cls, seed: bytes) -> DecapsulationKey:
        """draft §5.2 ``expandDecapsulationKey(sk)``."""
        if len(seed) != SEED_SIZE:
            raise ValueError("X-Wing decapsulation key is 32 bytes")
        # expanded = SHAKE256(sk, 96)
        expanded = hashlib.shake_256(seed).digest(96)
        # (pk_M, sk_M) = ML-KEM-768.KeyGen_internal(expanded[0:32], expanded[32:64])
        # cryptography's 64-byte ML-KEM seed is FIPS 203's d || z, i.e. KeyGen_internal(d, z).
        sk_m = mlkem.MLKEM768PrivateKey.from_seed_bytes(expanded[0:64])
        pk_m = sk_m.public_key().public_bytes_raw()
        # sk_X = expanded[64:96]
        sk_x = x25519.X25519PrivateKey.from_private_bytes(expanded[64:96])
        # pk_X = X25519(sk_X, X25519_BASE)
        pk_x = sk_x.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return cls(bytes(seed), sk_m, sk_x, pk_m, pk_x)


def generate_keypair() -> tuple[DecapsulationKey, bytes]:
    """draft §5.2 ``GenerateKeyPair()``: ``sk = random(32)``; returns (key, 1216-byte ek)."""
    dk = DecapsulationKey.from_seed(os.urandom(SEED_SIZE))
    return dk, dk.encapsulation_key


def combiner(ss_m: bytes, ss_x: bytes, ct_x: bytes, pk_x: bytes) -> bytes:
    """draft §5.3 ``Combiner``: SHA3-256(concat(ss_M, ss_X, ct_X, pk_X, XWingLabel))."""
    return hashlib.sha3_256(ss_m + ss_x + ct_x + pk_x + XWING_LABEL).digest()


def decapsulate(dk: DecapsulationKey | bytes, ct: bytes) -> bytes:
    """draft §5.5 ``Decapsulate(ct, sk)`` → 32-byte shared secret."""
    if not isinstance(dk, DecapsulationKey):
        dk = DecapsulationKey.from_seed(dk)
    if len(ct) != CT_SIZE:
        raise ValueError("X-Wing ciphertext is 1120 bytes")
    # ct_M = ct[0:1088]; ct_X = ct[1088:1120]
    ct_m = ct[0:_MLKEM_CT_SIZE]
    ct_x = ct[_MLKEM_CT_SIZE:CT_SIZE]
    # ss_M = ML-KEM-768.Decapsulate(ct_M, sk_M)   (implicit rejection: never fails on bad ct)
    ss_m = dk.sk_m.decapsulate(ct_m)
    # ss_X = X25519(sk_X, ct_X)
    # RFC 7748 X25519 never rejects; cryptography raises ValueError on an all-zero result
    # (low-order ct_X), which PROTOCOL.md §2 requires refusing.
    ss_x = dk.sk_x.exchange(x25519.X25519PublicKey.from_public_bytes(ct_x))
    # return Combiner(ss_M, ss_X, ct_X, pk_X)
    return combiner(ss_m, ss_x, ct_x, dk.pk_x)


def check_encapsulation_key(ek: bytes) -> None:
    """PROTOCOL.md §2: an ``ek`` whose ML-KEM part fails the FIPS 203 modulus check (loading
    it in ``cryptography`` performs that check) or whose X25519 part is a low-order point (its
    share with any clamped scalar is all zero, which ``cryptography`` refuses) is refused with
    ``ValueError``."""
    if len(ek) != EK_SIZE:
        raise ValueError("X-Wing encapsulation key is 1216 bytes")
    mlkem.MLKEM768PublicKey.from_public_bytes(ek[0:_MLKEM_EK_SIZE])
    x25519.X25519PrivateKey.generate().exchange(
        x25519.X25519PublicKey.from_public_bytes(ek[_MLKEM_EK_SIZE:EK_SIZE])
    )


def encapsulate(ek: bytes) -> tuple[bytes, bytes]:
    """draft §5.4 ``Encapsulate(pk)`` → (ss, ct). Randomized (``cryptography``'s ML-KEM
    encapsulation takes no fixed input). ``ValueError`` for a key of the wrong size, an ML-KEM
    part that fails the modulus check, or a low-order X25519 part."""
    if len(ek) != EK_SIZE:
        raise ValueError("X-Wing encapsulation key is 1216 bytes")
    # pk_M = pk[0:1184]; pk_X = pk[1184:1216]
    pk_m = ek[0:_MLKEM_EK_SIZE]
    pk_x = ek[_MLKEM_EK_SIZE:EK_SIZE]
    # ek_X = random(32); ct_X = X25519(ek_X, X25519_BASE); ss_X = X25519(ek_X, pk_X)
    # (cryptography raises ValueError when ss_X is all zero: a low-order pk_X)
    ek_x = x25519.X25519PrivateKey.generate()
    ct_x = ek_x.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    ss_x = ek_x.exchange(x25519.X25519PublicKey.from_public_bytes(pk_x))
    # (ss_M, ct_M) = ML-KEM-768.Encaps(pk_M)  (loading the key performs the FIPS 203 §7.2 check)
    ss_m, ct_m = mlkem.MLKEM768PublicKey.from_public_bytes(pk_m).encapsulate()
    # ss = Combiner(ss_M, ss_X, ct_X, pk_X); ct = concat(ct_M, ct_X)
    return combiner(ss_m, ss_x, ct_x, pk_x), ct_m + ct_x
