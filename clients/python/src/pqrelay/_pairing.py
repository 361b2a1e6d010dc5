"""The client side of one ``POST /api/mte-pair`` (PROTOCOL.md §6).

::

    (ct_R, ss_R) = X-Wing.Encaps(pk_fp)            to the relay key: only its holder can answer
    (dk_E, ek_E) = a fresh X-Wing key pair          ephemeral, this request only
    request      = {"key": b64(fp), "ct": b64(ct_R), "ek": b64(ek_E), "pairs": [b64(pid)...]}
    answer       = {"ct": b64(ct_E), "keys": [b64(fp')...], "confirm": b64(confirm)}
    ss_E = Decaps(dk_E, ct_E); th = transcript hash; root from ss_R || ss_E and th;
    confirm verified (constant time) before any pair is used; ck_0(i) per pair id.

Any failure of the answer is the hard error :class:`PairingNotConfirmedError` naming the
key's fingerprint: either an attacker answered, or the relay does not hold the key.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Callable
from dataclasses import dataclass, field

from . import _xwing
from ._codec import encode_pairing_request, parse_pairing_response
from ._exceptions import PairingNotConfirmedError, ProtocolError
from ._keys import chain_key_0, confirm_tag, pairing_root, transcript_hash
from ._relay_keys import RelayKey, fingerprint

__all__ = ["ClientPairing", "ConfirmedPairing", "Encapsulate"]

#: ``encapsulate(pk) -> (ss, ct)``; tests pass a deterministic one (fixed ``eseed``).
Encapsulate = Callable[[bytes], "tuple[bytes, bytes]"]


@dataclass(frozen=True)
class ConfirmedPairing:
    """A pairing whose ``confirm`` verified: ``ck_0`` per pair id (request order), the relay's
    key ids (current first) and the key it was made with."""

    chain_keys: list[bytes] = field(repr=False)
    key_ids: tuple[bytes, ...]
    key: RelayKey
    transcript_hash: bytes


class ClientPairing:
    """One pairing request to ``key`` for the client ``client_id``: build it, send
    :attr:`body`, then :meth:`complete` it with the answer (at most once)."""

    def __init__(
        self,
        client_id: bytes,
        key: RelayKey,
        pids: list[bytes],
        *,
        encapsulate: Encapsulate = _xwing.encapsulate,
        ephemeral_seed: bytes | None = None,
    ) -> None:
        if len(client_id) != 16:
            raise ValueError("client id is 16 bytes")
        if not 1 <= len(pids) <= 255 or len(set(pids)) != len(pids):
            raise ValueError("1 to 255 distinct pair ids")
        if any(len(pid) != 16 for pid in pids):
            raise ValueError("pair ids are 16 bytes")
        self.client_id = client_id
        self.key = key
        self.pids = list(pids)
        ss_r, ct_r = encapsulate(key.public_key)
        seed = os.urandom(_xwing.SEED_SIZE) if ephemeral_seed is None else ephemeral_seed
        dk_e = _xwing.DecapsulationKey.from_seed(seed)
        self._ss_r: bytes | None = ss_r
        self._dk_e: _xwing.DecapsulationKey | None = dk_e
        self._ct_r = ct_r
        self._ek_e = dk_e.encapsulation_key
        self.body = encode_pairing_request(key.key_id, ct_r, self._ek_e, self.pids)

    def _fail(self, why: str) -> PairingNotConfirmedError:
        return PairingNotConfirmedError(self.key.fingerprint, why)

    def complete(self, response_body: bytes) -> ConfirmedPairing:
        """Checks the answer: its shape, ``ss_E`` (an all-zero X25519 share fails), ``confirm``
        in constant time, and that ``keys`` lists the key paired with. Erases (drops) ``dk_E``
        and ``ss_R`` whatever the outcome."""
        ss_r, dk_e = self._ss_r, self._dk_e
        self._ss_r = self._dk_e = None
        if ss_r is None or dk_e is None:
            raise RuntimeError("a pairing completes once")
        try:
            answer = parse_pairing_response(response_body)
        except ProtocolError as exc:
            raise self._fail(f"malformed answer ({exc})") from None
        try:
            ss_e = _xwing.decapsulate(dk_e, answer.ct)
        except ValueError:
            raise self._fail("the answer's X25519 share is all zero") from None
        th = transcript_hash(
            self.client_id, self.key.key_id, self._ct_r, self._ek_e, self.pids, answer.ct
        )
        root = pairing_root(ss_r, ss_e, th)
        if not hmac.compare_digest(confirm_tag(root, answer.keys), answer.confirm):
            raise self._fail("confirm does not verify")
        if self.key.key_id not in answer.keys:
            raise self._fail("the answer does not list the key paired with")
        return ConfirmedPairing(
            [chain_key_0(root, pid) for pid in self.pids], answer.keys, self.key, th
        )

    def __repr__(self) -> str:
        return f"ClientPairing(key={fingerprint(self.key.key_id)}, pairs={len(self.pids)})"
