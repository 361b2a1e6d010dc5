"""PROTOCOL.md §12 (delivery: retries and at-most-once) and §11.1 (client actions), as unit
tests of the session's delivery loop on a real PairPool. No server: pairing is a local function
that makes fresh ratchets, and each attempt's outcome is scripted (a sealed response, an
authenticated or unauthenticated error reply, or a lost connection). What each attempt was —
pair, counter, flag retry — is recorded.

The same rules are exercised against the real relay and an on-path attacker in
test_attacker.py; the wire form of an attempt (flag retry, empty bodies) in test_wire.py.
"""

from __future__ import annotations

import os

import httpx
import pytest

import pqrelay
from pqrelay._codec import RelayToken, b64encode, parse_info
from pqrelay._keys import Ratchet
from pqrelay._pool import PairPool
from pqrelay._session import _Failure

OK = "sealed response"


def dead(status=562, code="decode_failed"):
    return _Failure(status=status, code=code, verdict="dead", message="m", wire=_wire(status, code))


def unauth(status=562, code="decode_failed"):
    return _Failure(status=status, code=code, verdict=None, message="m", wire=_wire(status, code))


def verdict(v, status=502, code="bad_gateway"):
    return _Failure(status=status, code=code, verdict=v, message="m", wire=_wire(status, code))


def lost():
    return _Failure(exc=pqrelay.TransportError("connection closed"))


def _wire(status, code):
    return httpx.Response(status, headers={"x-mte-relay-error": code}, content=b'{"message":"m"}')


class Harness:
    def __init__(self, pairs: int = 3) -> None:
        self.pairings: list[int] = []
        self.rediscoveries = 0
        self.attempts: list[tuple[bytes, int, bool]] = []  # (pid, counter, retry)
        self.script: list = []
        s = pqrelay.RelaySession("http://127.0.0.1:9", number_of_pairs=pairs)
        s._token = RelayToken.parse(b64encode(bytes(48)))
        s._info = parse_info("versions=2;max-pairs=25;chunk-size=65536;max-skip=16")
        s._pool = PairPool(self._pair, pairs, pairs, lambda: 25)
        s._rediscover = self._rediscover
        s._exchange = self._exchange
        self.s = s

    def _pair(self, count):
        self.pairings.append(count)
        return [(os.urandom(16), Ratchet(os.urandom(32))) for _ in range(count)]

    def _rediscover(self):
        self.rediscoveries += 1

    def _exchange(self, lease, req, retry):
        keys = lease.pair.ratchet.advance()
        self.attempts.append((lease.pair.pid, keys.counter, retry))
        outcome = self.script.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        lease.release()
        return outcome

    def run(self, method, *outcomes, **kw):
        self.script = list(outcomes)
        try:
            return self.s.request(method, "/x", **kw)
        finally:
            assert not self.script, "every scripted outcome was used"


# -- non-idempotent requests ----------------------------------------------------------------


def test_post_unauthenticated_error_retries_once_on_same_pair_with_flag_retry():
    t = Harness()
    assert t.run("POST", unauth(), OK, content=b"x") == OK
    (p0, n0, r0), (p1, n1, r1) = t.attempts
    assert (r0, r1) == (False, True) and p1 == p0 and n1 == n0 + 1
    assert t.pairings == [3]  # no re-pairing before the retry


def test_post_forged_error_then_retry_refused_is_outcome_unknown():
    t = Harness()
    with pytest.raises(pqrelay.OutcomeUnknownError) as info:
        t.run("POST", unauth(), dead(564, "retry_refused"), content=b"x")
    assert len(t.attempts) == 2 and t.attempts[1][2] is True
    err = info.value
    assert (err.status, err.error_code, err.verdict) == (564, "retry_refused", "dead")
    assert isinstance(err.__cause__, pqrelay.RelayError)
    assert t.s.pool_size == 3  # retry_refused does not end the pair


def test_post_lost_connection_retries_once_then_outcome_unknown():
    t = Harness()
    assert t.run("POST", lost(), OK, content=b"x") == OK
    assert [a[2] for a in t.attempts] == [False, True]
    t.attempts.clear()
    with pytest.raises(pqrelay.OutcomeUnknownError) as info:
        t.run("POST", lost(), lost(), content=b"x")
    assert len(t.attempts) == 2 and info.value.status is None
    assert isinstance(info.value.__cause__, pqrelay.TransportError)


@pytest.mark.parametrize("v", ["partial", "complete"])
def test_post_partial_or_complete_is_outcome_unknown_at_once(v):
    t = Harness()
    with pytest.raises(pqrelay.OutcomeUnknownError) as info:
        t.run("POST", verdict(v), content=b"x")
    assert len(t.attempts) == 1 and info.value.verdict == v


def test_post_authenticated_unknown_retries_on_same_pair():
    t = Harness()
    assert t.run("POST", verdict("unknown", 503, "state_store_unavailable"), OK, json={}) == OK
    (p0, n0, _), (p1, n1, r1) = t.attempts
    assert p1 == p0 and n1 == n0 + 1 and r1


def test_post_authenticated_dead_repairs_and_resends_as_new_attempt():
    t = Harness()
    assert t.run("POST", dead(562), OK, content=b"x") == OK
    (p0, _, _), (p1, n1, r1) = t.attempts
    assert p1 != p0 and n1 == 0 and not r1  # a new pair, paired just now
    assert len(t.pairings) == 2


def test_post_dead_twice_gives_the_relay_error():
    t = Harness()
    with pytest.raises(pqrelay.RelayError) as info:
        t.run("POST", dead(562), dead(562), content=b"x")
    assert info.value.verdict == "dead" and info.value.authenticated
    assert len(t.attempts) == 2


def test_post_makes_at_most_three_attempts():
    t = Harness()
    with pytest.raises(pqrelay.OutcomeUnknownError):
        t.run("POST", dead(562), lost(), lost(), content=b"x")
    (p0, _, r0), (p1, n1, r1), (p2, n2, r2) = t.attempts
    assert (r0, r1, r2) == (False, False, True) and p2 == p1 != p0 and n2 == n1 + 1


@pytest.mark.parametrize("status", [560, 563, 566, 568, 569])
def test_post_unauthenticated_error_that_ends_the_pair_is_outcome_unknown(status):
    t = Harness()
    with pytest.raises(pqrelay.OutcomeUnknownError):
        t.run("POST", unauth(status, "x"), content=b"x")
    assert len(t.attempts) == 1


def test_post_iterator_body_is_never_sent_again():
    t = Harness()
    with pytest.raises(pqrelay.OutcomeUnknownError):
        t.run("POST", unauth(), content=iter([b"a"]))
    with pytest.raises(pqrelay.RelayError):
        t.run("POST", dead(), content=iter([b"a"]))
    assert len(t.attempts) == 2


def test_idempotency_key_makes_a_post_idempotent():
    t = Harness()
    assert t.run("POST", unauth(), OK, content=b"x", headers={"Idempotency-Key": "k1"}) == OK
    (p0, _, _), (p1, n1, r1) = t.attempts
    assert p1 != p0 and n1 == 0 and not r1  # re-paired (562) and resent, no flag retry


def test_dead_refusal_of_the_request_itself_is_delivered():
    t = Harness()
    r = t.run("POST", dead(400, "forbidden_header"), content=b"x")
    assert (r.status_code, r.relay_error, r.verdict, r.sealed) == (400, "forbidden_header", "dead", False)
    assert len(t.attempts) == 1


# -- idempotent requests --------------------------------------------------------------------


def test_get_forged_error_repairs_and_resends_on_the_new_pair():
    t = Harness()
    assert t.run("GET", unauth(), OK) == OK
    (p0, _, _), (p1, n1, r1) = t.attempts
    assert p1 != p0 and n1 == 0 and not r1


def test_get_one_resend_per_relay_error_and_one_per_lost_connection():
    t = Harness()
    assert t.run("GET", unauth(), lost(), OK) == OK
    assert len(t.attempts) == 3 and not any(a[2] for a in t.attempts)
    t.attempts.clear()
    with pytest.raises(pqrelay.RelayError) as info:
        t.run("GET", unauth(), unauth())
    assert info.value.verdict is None and not info.value.authenticated
    t.attempts.clear()
    with pytest.raises(pqrelay.TransportError):
        t.run("DELETE", lost(), lost())
    assert len(t.attempts) == 2 and t.attempts[0][0] == t.attempts[1][0]  # same pair


def test_get_563_drops_every_pair_paired_no_later_and_resends_on_a_fresh_one():
    t = Harness(pairs=3)
    t.s._pool.fill()
    assert t.s._pool.idle == 3
    assert t.run("GET", unauth(563, "state_not_found"), OK) == OK
    (p0, _, _), (p1, n1, _) = t.attempts
    assert p1 != p0 and n1 == 0
    assert len(t.pairings) == 2 and t.s.pool_size == 3  # the old idle pairs are gone


def test_566_rediscovers_and_repairs_all():
    t = Harness()
    assert t.run("GET", unauth(566, "invalid_client_id"), OK) == OK
    assert t.rediscoveries == 1 and len(t.pairings) == 2


def test_569_repairs_all():
    t = Harness()
    t.s._pool.fill()
    assert t.run("GET", unauth(569, "repair_required"), OK) == OK
    assert len(t.pairings) == 2 and t.s.pool_size == 3


def test_failed_repair_gives_the_pair_up():
    t = Harness(pairs=1)

    def broken(count):
        raise pqrelay.PairingError("down", 503, None)

    t.s._pool.fill()
    t.s._pool._pair_fn = broken
    t.script = [unauth(562)]
    with pytest.raises(pqrelay.PairingError):
        t.s.request("GET", "/x")
    assert t.s.pool_size == 0


def test_non_mte_error_after_resend_is_returned_unsealed():
    t = Harness()
    r = t.run("GET", unauth(502, "bad_gateway"), unauth(502, "bad_gateway"))
    assert r.status_code == 502 and r.relay_error == "bad_gateway" and r.verdict is None
