"""A thread-safe pool of pairs: one exchange in flight per pair, ever (PROTOCOL.md §1).

Pair ids are never reused (§6: a pair is never replaced): re-pairing means dropping a pair and
pairing a new one. Every pairing request gets a sequence number, so that after ``563
state_not_found`` the pool can drop "this pair and every pair paired no later than it" (§11.1).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from ._exceptions import PQRelayError
from ._keys import Ratchet

__all__ = ["Pair", "PairPool", "PairFn"]

#: ``pair_fn(count) -> [(pid, ratchet), ...]`` runs one pairing request for ``count`` fresh
#: pair ids.
PairFn = Callable[[int], list[tuple[bytes, Ratchet]]]


class Pair:
    """One pair: its id, its ratchet, and the sequence number of its pairing request."""

    __slots__ = ("pid", "ratchet", "seq")

    def __init__(self, pid: bytes, ratchet: Ratchet, seq: int) -> None:
        self.pid = pid
        self.ratchet = ratchet
        self.seq = seq

    def __repr__(self) -> str:
        return f"Pair(seq={self.seq}, counter={self.ratchet.counter})"


class PairPool:
    """Hands out idle pairs; pairs new ones (in batches) while below ``max_pairs``; otherwise
    waits for a pair to come back. ``acquire``/``release`` bracket every exchange."""

    def __init__(
        self,
        pair_fn: PairFn,
        number_of_pairs: int,
        max_pairs: int,
        batch_limit: Callable[[], int],
    ) -> None:
        if number_of_pairs < 1 or max_pairs < number_of_pairs:
            raise ValueError("need 1 <= number_of_pairs <= max_pairs")
        self._pair_fn = pair_fn
        self._target = number_of_pairs
        self._max = max_pairs
        self._batch_limit = batch_limit
        self._cond = threading.Condition()
        self._idle: list[Pair] = []
        self._total = 0  # idle + busy + being paired
        self._next_seq = 0
        self._dropped_through = -1  # pairs with seq <= this are gone

    # -- introspection -------------------------------------------------------------------

    @property
    def size(self) -> int:
        with self._cond:
            return self._total

    @property
    def idle(self) -> int:
        with self._cond:
            return len(self._idle)

    # -- pairing -------------------------------------------------------------------------

    def _usable(self, pair: Pair) -> bool:
        return pair.seq > self._dropped_through and not pair.ratchet.exhausted

    def _reserve(self, want: int) -> int:
        """Under the lock: count ``want`` pairs as being paired; returns their sequence."""
        self._total += want
        seq = self._next_seq
        self._next_seq += 1
        return seq

    def _pair(self, want: int, seq: int) -> list[Pair]:
        """Outside the lock: one pairing request; on failure the reservation is undone."""
        try:
            made = self._pair_fn(want)
            if len(made) != want:
                raise AssertionError("pairing returned the wrong number of pairs")
        except BaseException:
            with self._cond:
                self._total -= want
                self._cond.notify_all()
            raise
        return [Pair(pid, ratchet, seq) for pid, ratchet in made]

    def _batch(self, room: int) -> int:
        return max(1, min(room, max(1, self._target - self._total), max(1, self._batch_limit())))

    def fill(self) -> None:
        """Pair up to ``number_of_pairs`` now (used to warm the pool)."""
        with self._cond:
            if self._target - self._total <= 0:
                return
            want = min(self._target - self._total, max(1, self._batch_limit()))
            seq = self._reserve(want)
        pairs = self._pair(want, seq)
        with self._cond:
            usable = [p for p in pairs if self._usable(p)]
            self._total -= len(pairs) - len(usable)
            self._idle.extend(usable)
            self._cond.notify_all()

    def _take(self, pairs: list[Pair]) -> Pair | None:
        """Under the lock: keep the fresh pairs that are still usable (an invalidation may have
        happened during the pairing request); returns the first, the rest go idle."""
        usable = [p for p in pairs if self._usable(p)]
        self._total -= len(pairs) - len(usable)
        self._idle.extend(usable[1:])
        self._cond.notify_all()
        return usable[0] if usable else None

    def acquire(self, timeout: float | None = None) -> Pair:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._cond:
                while True:
                    while self._idle:
                        pair = self._idle.pop()
                        if self._usable(pair):
                            return pair
                        self._total -= 1
                    if self._total < self._max:
                        want = self._batch(self._max - self._total)
                        seq = self._reserve(want)
                        break
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        raise PQRelayError("timed out waiting for a free pair")
                    self._cond.wait(remaining)
            pairs = self._pair(want, seq)
            with self._cond:
                first = self._take(pairs)
            if first is not None:
                return first

    def acquire_fresh(self) -> Pair:
        """A pair from a pairing request made now (never an idle one): the resend after a
        relay error runs on the pair just paired, never on another old pair (§12). Called
        after the failed pair was dropped, so there is room; if other threads took it, the
        pool exceeds ``max_pairs`` by one until a pair is dropped."""
        while True:
            with self._cond:
                want = self._batch(self._max - self._total)
                seq = self._reserve(want)
            pairs = self._pair(want, seq)
            with self._cond:
                first = self._take(pairs)
            if first is not None:
                return first

    def release(self, pair: Pair) -> None:
        with self._cond:
            if self._usable(pair):
                self._idle.append(pair)
            else:
                self._total -= 1
            self._cond.notify()

    def discard(self, pair: Pair) -> None:
        with self._cond:
            self._total -= 1
            self._cond.notify()

    def drop_through(self, pair: Pair) -> None:
        """Forget ``pair``'s pairing request and every earlier one (idle pairs now, busy ones
        when released). The caller still holds ``pair`` and must :meth:`discard` it."""
        with self._cond:
            self._dropped_through = max(self._dropped_through, pair.seq)
            kept = [p for p in self._idle if self._usable(p)]
            self._total -= len(self._idle) - len(kept)
            self._idle = kept
            self._cond.notify_all()

    def invalidate_all(self) -> None:
        """Forget every pair, including those being paired now (idle ones now, busy ones
        when released)."""
        with self._cond:
            self._dropped_through = self._next_seq - 1
            self._total -= len(self._idle)
            self._idle.clear()
            self._cond.notify_all()
