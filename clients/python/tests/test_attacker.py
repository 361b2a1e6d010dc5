"""An active attacker on the wire (issue 15, PROTOCOL.md §16), played by the testkit's
``pqrelay-attacker`` between the session and a real relay in front of
``pqrelay-test-upstream``, which counts every request it runs (``/count/<name>``).

(a) ``substitute-key`` and ``answer-pairing``: a pinned session, and one that trusts the
    relay's key after one clean contact, refuse to pair with an error naming the fingerprint;
(b) ``forge-error`` and (c) ``cut``: the upstream runs each POST exactly once and the caller
    gets the real answer or OutcomeUnknownError, while a GET is resent and succeeds;
(d) ``add-headers``: plain headers added on the wire never reach the upstream.
"""

from __future__ import annotations

import itertools

import httpx
import pytest

import pqrelay

from .conftest import Route, needs_attacker, needs_relay, relay_fingerprint

pytestmark = [needs_relay, needs_attacker]

_names = itertools.count()


def fresh(prefix: str) -> str:
    """A counter name used by one test only (the test upstream lives for the whole run)."""
    return f"py-{prefix}-{next(_names)}"


def upstream_count(test_upstream: str, name: str) -> int:
    r = httpx.get(f"{test_upstream}/counts/{name}", timeout=5)
    if r.status_code == 404:
        return 0
    r.raise_for_status()
    return int(r.json()["count"])


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1].rstrip("/"))


# -- (a) posing as the relay ----------------------------------------------------------------

EXPECTED = {
    "substitute-key": pqrelay.RelayKeyNotTrustedError,
    "answer-pairing": pqrelay.PairingNotConfirmedError,
}


@pytest.mark.parametrize("mode", sorted(EXPECTED))
def test_pinned_session_refuses_an_attacker_relay(attacker, test_upstream, mode):
    fp = relay_fingerprint()
    name = fresh("pinned")
    with pqrelay.RelaySession(attacker(mode), pin=fp) as s:
        with pytest.raises(EXPECTED[mode]) as info:
            s.post(f"/count/{name}", content=b"secret")
        assert fp in str(info.value)
        assert s.pool_size == 0 and s.relay_fingerprint is None
        with pytest.raises(EXPECTED[mode]):  # never a silent re-pair with another key
            s.get(f"/count/{name}")
    assert upstream_count(test_upstream, name) == 0


@pytest.mark.parametrize("mode", sorted(EXPECTED))
def test_trust_on_first_use_refuses_an_attacker_after_one_clean_contact(
    counting_relay, attacker, test_upstream, mode
):
    fp = relay_fingerprint()
    name = fresh("tofu")
    # First contact, clean: the session trusts the relay's key and the app persists it.
    with pqrelay.RelaySession(counting_relay.url, transport=Route(counting_relay.port)) as s:
        assert s.post(f"/count/{name}", content=b"1").json()["count"] == 1
        assert s.trusted_keys == [fp]
        saved = (s.token, s.trusted_keys)
    # Later, the attacker is on the path to the same origin.
    route = Route(port_of(attacker(mode)))
    with pqrelay.RelaySession(counting_relay.url, transport=route) as s:
        s.token, s.trusted_keys = saved
        with pytest.raises(EXPECTED[mode]) as info:
            s.post(f"/count/{name}", content=b"2")
        assert fp in str(info.value)
        assert s.trusted_keys == [fp]  # what the attacker offered was not stored
    assert upstream_count(test_upstream, name) == 1


# -- (b) forged errors, (c) cut connections -------------------------------------------------


@pytest.mark.parametrize("mode", ["forge-error", "cut"])
@pytest.mark.parametrize("times", [1, 2])
def test_post_runs_once_whatever_the_attacker_does(attacker, test_upstream, mode, times):
    name = fresh(f"post-{mode}")
    with pqrelay.RelaySession(attacker(mode, times=times), pin=relay_fingerprint()) as s:
        s.connect()
        try:
            r = s.post(f"/count/{name}", json={"n": 1})
            outcome = r.json()
        except pqrelay.OutcomeUnknownError as exc:
            outcome = exc
        # the request ran once; the client knows it cannot tell, and says so
        assert upstream_count(test_upstream, name) == 1
        assert isinstance(outcome, pqrelay.OutcomeUnknownError) or outcome["count"] == 1
        if times == 1:  # the retry attempt passes: the relay refuses it, authenticated
            assert isinstance(outcome, pqrelay.OutcomeUnknownError)
            assert (outcome.status, outcome.error_code, outcome.verdict) == (
                564, "retry_refused", "dead"
            )
        # the session goes on working once the attacker has had its turns
        after = s.post(f"/count/{name}-after", json={})
        assert after.json()["count"] == 1 and after.json()["method"] == "POST"


@pytest.mark.parametrize("mode", ["forge-error", "cut"])
def test_get_is_resent_and_succeeds(attacker, test_upstream, mode):
    name = fresh(f"get-{mode}")
    with pqrelay.RelaySession(attacker(mode), pin=relay_fingerprint()) as s:
        s.connect()
        got = s.get(f"/count/{name}").json()
    assert got["method"] == "GET" and got["name"] == name
    assert got["count"] == 2 == upstream_count(test_upstream, name)  # idempotent: ran twice


def test_post_with_idempotency_key_is_resent(attacker, test_upstream):
    name = fresh("idem")
    with pqrelay.RelaySession(attacker("forge-error"), pin=relay_fingerprint()) as s:
        s.connect()
        got = s.post(f"/count/{name}", json={}, headers={"Idempotency-Key": name}).json()
    assert got["count"] == 2  # the upstream is told to deduplicate; this one does not


# -- (d) plain headers added on the wire ----------------------------------------------------


def test_added_plain_headers_never_reach_the_upstream(attacker, test_upstream):
    name = fresh("headers")
    with pqrelay.RelaySession(attacker("add-headers", times=100), pin=relay_fingerprint()) as s:
        seen = s.get("/headers", headers={"X-Sealed": "yes"}).json()
        counted = s.post(f"/count/{name}", json={}).json()
    names = {k.lower() for k in seen}
    assert "x-sealed" in names  # sealed headers do
    for added in ("x-http-method-override", "x-original-url", "x-attacker"):
        assert added not in names
    assert "6.6.6.6" not in str(seen)  # x-forwarded-for is the relay's own
    assert counted["method"] == "POST" and counted["count"] == 1
