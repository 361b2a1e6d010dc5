"""A thread-safe pool of pairs: one exchange in flight per pair, ever (PROTOCOL.md §1)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

from ._exceptions import PQRelayError
from ._keys import Ratchet

__all__ = ["Pair", "PairPool", "PairFn"]

#: ``pair_fn(pids) -> ratchets`` runs one pairing request for these pair ids.
PairFn = Callable[[list[bytes]], list[Ratchet]]


class Pair:
    """One pair: its id, its ratchet, and the pool generation it was paired in."""

    __slots__ = ("pid", "ratchet", "generation")

    def __init__(self, pid: bytes, ratchet: Ratchet, generation: int) -> None:
        self.pid = pid
        self.ratchet = ratchet
        self.generation = generation

    def __repr__(self) -> str:
        return f"Pair(counter={self.ratchet.counter})"


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
        self._generation = 0

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

    def _new_pairs(self, count: int, generation: int) -> list[Pair]:
        pids = [os.urandom(16) for _ in range(count)]
        ratchets = self._pair_fn(pids)
        return [Pair(pid, r, generation) for pid, r in zip(pids, ratchets, strict=True)]

    def fill(self) -> None:
        """Pair up to ``number_of_pairs`` now (used to warm the pool)."""
        with self._cond:
            want = min(self._target - self._total, max(1, self._batch_limit()))
            if want <= 0:
                return
            self._total += want
            generation = self._generation
        try:
            pairs = self._new_pairs(want, generation)
        except BaseException:
            with self._cond:
                self._total -= want
                self._cond.notify_all()
            raise
        with self._cond:
            self._idle.extend(pairs)
            self._cond.notify_all()

    def acquire(self, timeout: float | None = None) -> Pair:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                while self._idle:
                    pair = self._idle.pop()
                    if pair.generation == self._generation and not pair.ratchet.exhausted:
                        return pair
                    self._total -= 1
                if self._total < self._max:
                    want = min(
                        self._max - self._total,
                        max(1, self._target - self._total),
                        max(1, self._batch_limit()),
                    )
                    self._total += want
                    generation = self._generation
                    break
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise PQRelayError("timed out waiting for a free pair")
                self._cond.wait(remaining)
        try:
            pairs = self._new_pairs(want, generation)
        except BaseException:
            with self._cond:
                self._total -= want
                self._cond.notify_all()
            raise
        with self._cond:
            self._idle.extend(pairs[1:])
            self._cond.notify_all()
        return pairs[0]

    def release(self, pair: Pair) -> None:
        with self._cond:
            if pair.generation == self._generation and not pair.ratchet.exhausted:
                self._idle.append(pair)
            else:
                self._total -= 1
            self._cond.notify()

    def discard(self, pair: Pair) -> None:
        with self._cond:
            self._total -= 1
            self._cond.notify()

    def repair(self, pair: Pair) -> None:
        """Re-pair ``pair`` in place (same pair id: the relay replaces its state). The caller
        holds the pair; on failure it should :meth:`discard` it."""
        with self._cond:
            generation = self._generation
        (ratchet,) = self._pair_fn([pair.pid])
        pair.ratchet = ratchet
        pair.generation = generation

    def invalidate_all(self) -> None:
        """Forget every pair (idle ones now, busy ones when released)."""
        with self._cond:
            self._generation += 1
            self._total -= len(self._idle)
            self._idle.clear()
            self._cond.notify_all()
