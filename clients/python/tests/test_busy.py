"""A pairing refused with 429 (``rate_limited``, ``Retry-After: 1``) is sent again after the
wait, at most ``PAIRING_ATTEMPTS`` attempts in all (PROTOCOL.md §11.1), against the real relay
started with ``PAIR_RATE_PER_IP=1``; and how ``Retry-After`` is read."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import pytest

import pqrelay
from pqrelay._session import MAX_RETRY_AFTER, PAIRING_ATTEMPTS, retry_after_seconds

from .conftest import RelayProcess, needs_relay

ONE_PER_SECOND = {"PAIR_RATE_PER_IP": "1", "PAIR_RATE_PER_CLIENT": "0"}


@pytest.fixture(scope="module")
def busy_relay(demo_upstream, tmp_path_factory) -> Iterator[RelayProcess]:
    relay = RelayProcess(demo_upstream, tmp_path_factory.mktemp("busy-relay"), ONE_PER_SECOND)
    with relay.running() as r:
        yield r


def _recorder() -> tuple[list[tuple[str, str, BaseException | None]], object]:
    events: list[tuple[str, str, BaseException | None]] = []

    def hook(kind: str, name: str, ms: float, length: int, exc: BaseException | None) -> None:
        events.append((kind, name, exc))

    return events, hook


def test_retry_after_is_delta_seconds_capped_and_one_second_otherwise():
    assert PAIRING_ATTEMPTS == pqrelay.RelaySession.PAIRING_ATTEMPTS == 3
    assert MAX_RETRY_AFTER == 10.0
    assert retry_after_seconds(429, "2") == 2.0
    assert retry_after_seconds(503, " 0 ") == 0.0
    assert retry_after_seconds(503, "3600") == MAX_RETRY_AFTER
    assert retry_after_seconds(429, None) == 1.0
    assert retry_after_seconds(503, "Fri, 04 Dec 2026 10:00:00 GMT") == 1.0
    assert retry_after_seconds(429, "1.5") == 1.0
    assert retry_after_seconds(500, "1") is None
    assert retry_after_seconds(400, None) is None


@needs_relay
def test_a_pairing_refused_with_429_is_sent_again_after_retry_after(busy_relay):
    with pqrelay.RelaySession(busy_relay.url, number_of_pairs=1) as first:
        first.connect()  # this second's one pairing
    events, hook = _recorder()
    with pqrelay.RelaySession(busy_relay.url, number_of_pairs=1, event_hook=hook) as second:
        started = time.monotonic()
        second.connect()
        elapsed = time.monotonic() - started
        pairings = [exc for kind, name, exc in events if name == "/api/mte-pair"]
        assert len(pairings) == 2, events
        refused, paired = pairings
        assert isinstance(refused, pqrelay.PairingError)
        assert (refused.status, refused.code) == (429, "rate_limited")
        assert refused.attempt == 1
        assert 1.0 <= refused.retry_after <= 1.25
        assert paired is None
        assert elapsed >= 0.9, elapsed
        assert second.busy_retries == 1
        r = second.get("/echo?msg=after-429")
        assert r.status_code == 200


@needs_relay
def test_a_pairing_refused_every_time_fails_after_three_attempts(busy_relay):
    # Pairing requests from this IP as fast as the relay answers: every rate window's one
    # pairing goes to them (the relay counts them before it reads anything else). The client
    # starts once one of them was refused, so the current window is already spent.
    stop = threading.Event()
    spent = threading.Event()

    def hammer() -> None:
        with httpx.Client(base_url=busy_relay.url) as c:
            while not stop.is_set():
                if c.post("/api/mte-pair").status_code == 429:
                    spent.set()

    hammers = [threading.Thread(target=hammer) for _ in range(2)]
    for t in hammers:
        t.start()
    events, hook = _recorder()
    try:
        assert spent.wait(10), "the relay refuses a hammer's pairing within its window"
        with pqrelay.RelaySession(busy_relay.url, number_of_pairs=1, event_hook=hook) as s:
            with pytest.raises(pqrelay.PairingError) as raised:
                s.connect()
            assert (raised.value.status, raised.value.code) == (429, "rate_limited")
            assert s.busy_retries == PAIRING_ATTEMPTS - 1
    finally:
        stop.set()
        for t in hammers:
            t.join()
    pairings = [exc for kind, name, exc in events if name == "/api/mte-pair"]
    assert [getattr(e, "attempt", "last") for e in pairings] == [1, 2, "last"], pairings
    assert all(isinstance(e, pqrelay.PairingError) and e.status == 429 for e in pairings)
