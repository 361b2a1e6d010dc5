"""§11's client actions for the errors a real relay cannot be made to answer on demand
(559 mte_error, 561 relay_header_invalid, 565 state_store_failed, 567 encode_failed,
569 repair_required), as a unit test of the session's recovery step on a real PairPool.

No server is involved: pairing is replaced by a local function that makes fresh ratchets. The
errors the relay can be provoked into (562, 563, 564, 566) are tested end to end in
test_session.py."""

from __future__ import annotations

import os

import pytest

import pqrelay
from pqrelay._keys import Ratchet
from pqrelay._pool import PairPool
from pqrelay._session import _Lease, _MteError


def make(pairs: int = 3):
    calls: list[list[bytes]] = []

    def pair_fn(pids):
        calls.append(list(pids))
        return [Ratchet(os.urandom(32)) for _ in pids]

    s = pqrelay.RelaySession("http://127.0.0.1:9", number_of_pairs=pairs)
    s._pool = PairPool(pair_fn, pairs, pairs, lambda: 25)
    s._pool.fill()
    return s, calls


@pytest.mark.parametrize("status", [559, 561, 562, 563, 564, 565])
def test_repair_this_pair_and_retry_on_it(status):
    s, calls = make()
    pair = s._pool.acquire()
    pair.ratchet.advance()
    lease = _Lease(s._pool, pair)
    retry, kept = s._recover(lease, _MteError(status, "x", ""))
    assert (retry, kept) == (True, True)
    assert not lease.done and lease.pair is pair  # still held: the retry runs on it
    assert calls[-1] == [pair.pid] and pair.ratchet.counter == 0  # re-paired in place
    assert s._pool.size == 3 and s._pool.idle == 2
    lease.release()
    assert s._pool.idle == 3


def test_encode_failed_retries_on_the_same_pair_without_pairing():
    s, calls = make()
    pair = s._pool.acquire()
    lease = _Lease(s._pool, pair)
    assert s._recover(lease, _MteError(567, "encode_failed", "")) == (True, True)
    assert len(calls) == 1 and not lease.done


def test_repair_required_drops_every_pair_and_retries_on_a_new_one():
    s, calls = make()
    old = s._pool.acquire()
    lease = _Lease(s._pool, old)
    assert s._recover(lease, _MteError(569, "repair_required", "")) == (True, False)
    assert lease.done and s._pool.size == 0
    new = s._pool.acquire()
    assert new.pid != old.pid and len(calls) == 2


def test_failed_repair_gives_the_pair_up():
    s, _ = make(1)
    pair = s._pool.acquire()

    def broken(pids):
        raise pqrelay.PairingError("down", 503, None)

    s._pool._pair_fn = broken
    lease = _Lease(s._pool, pair)
    with pytest.raises(pqrelay.PairingError):
        s._recover(lease, _MteError(563, "state_not_found", ""))
    assert lease.done and s._pool.size == 0
