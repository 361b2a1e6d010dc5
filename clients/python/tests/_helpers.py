"""Test-only helpers: deterministic X-Wing encapsulation (kyber-py) and the relay's side."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import x25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from kyber_py.ml_kem import ML_KEM_768

from pqrelay import _xwing


def xwing_encapsulate_derand(ek: bytes, eseed: bytes) -> tuple[bytes, bytes]:
    """draft-06 §5.4.1 EncapsulateDerand(pk, eseed) → (ss, ct)."""
    assert len(ek) == 1216 and len(eseed) == 64
    pk_m, pk_x = ek[:1184], ek[1184:]
    # ek_X = eseed[32:64]; ct_X = X25519(ek_X, BASE); ss_X = X25519(ek_X, pk_X)
    ek_x = x25519.X25519PrivateKey.from_private_bytes(eseed[32:64])
    ct_x = ek_x.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    ss_x = ek_x.exchange(x25519.X25519PublicKey.from_public_bytes(pk_x))
    # (ss_M, ct_M) = ML-KEM-768.EncapsDerand(pk_M, eseed[0:32])  (FIPS 203 Encaps_internal)
    ss_m, ct_m = ML_KEM_768._encaps_internal(pk_m, eseed[0:32])
    return _xwing.combiner(ss_m, ss_x, ct_x, pk_x), ct_m + ct_x


def read_draft_vector(path: str) -> dict[str, bytes]:
    out: dict[str, str] = {}
    key = None
    for line in open(path):
        if line.startswith("#") or not line.strip():
            continue
        if not line.startswith(" "):
            parts = line.split()
            key = parts[0]
            out[key] = "".join(parts[1:])
        else:
            assert key is not None
            out[key] += line.strip()
    return {k: bytes.fromhex(v) for k, v in out.items()}
