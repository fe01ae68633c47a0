"""Running chunk keccaks fed side by side: the multi-buffer hash of the upload path.

Why: while several chunks stream in, each arriving slice must go into its own chunk's
keccak, in order. One FIFO thread per chunk would hash one slice per call; here every
worker takes the oldest pending slice of each chunk that no other worker holds (up to
``MAX_LANES`` of them) and hashes them in one ``keccak_native.update_many`` call, so 4-8
chunks share one SIMD permutation. The queue builds up while a worker is busy, so the
batches grow with the load. A chunk's slices still run one after another, in the order
they were submitted (one slice per hasher per batch, never two workers on one hasher).

Without the native library (or for hashers of another type) each slice is hashed on its
own, by whichever worker took it; the digests are the same.

When to hash: a slice need not be hashed before its chunk commits, so a worker waits until
every open stream (``start_stream`` .. ``end_stream``, at most ``max_lanes``) has a slice
pending, or a slice is ``urgent`` (its chunk waits to commit), or ``MAX_DEFER_S`` passed.
Hashing each slice the moment it arrives would make every call one lane wide whenever the
hash keeps up with the network, which is exactly when the SIMD lanes would pay.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from concurrent.futures import Future
from typing import Any

from state_machine import keccak_native

MAX_LANES = 8
IDLE_S = 2.0  # a worker with nothing to do for this long exits (started again on demand)
MAX_DEFER_S = 0.25  # longest a pending slice waits for other streams' slices


class BatchHasher:
    """``submit(hasher, piece)`` -> a Future done once ``hasher.update(piece)`` ran after
    every piece submitted before for the same hasher."""

    def __init__(self, threads: int = 1, max_lanes: int = MAX_LANES,
                 name: str = "chunk-hash") -> None:
        self.threads, self.max_lanes, self.name = threads, max_lanes, name
        self._cv = threading.Condition()
        self._queue: deque[tuple[Any, Any, Future[None]]] = deque()
        self._busy: set[int] = set()  # id() of hashers a worker is feeding
        self._live = 0  # workers started and not exited
        self._waiting = 0  # of those, blocked in wait()
        self._streams = 0  # open streams (chunks being received)
        self._urgent = 0  # pending jobs whose chunk waits for them

    def start_stream(self) -> None:
        with self._cv:
            self._streams += 1

    def end_stream(self) -> None:
        with self._cv:
            self._streams -= 1
            self._cv.notify_all()

    def submit(self, hasher: Any, piece: Any, urgent: bool = False) -> Future[None]:
        """Queue ``hasher.update(piece)``; ``urgent``: the caller waits for it now, so
        workers stop deferring until it ran (with the slices queued before it)."""
        fut: Future[None] = Future()
        with self._cv:
            self._queue.append((hasher, piece, fut))
            if urgent:
                self._urgent += 1
                fut.add_done_callback(self._urgent_done)
            if self._waiting == 0 and self._live < self.threads:
                self._live += 1
                threading.Thread(target=self._work, name=f"{self.name}-{self._live}",
                                 daemon=True).start()
            else:
                self._cv.notify()
        return fut

    def _urgent_done(self, _fut: Future[None]) -> None:
        with self._cv:
            self._urgent -= 1

    def _ready(self, since: float) -> bool:
        """Hash now (caller holds the condition): enough streams have a slice pending, one
        is urgent, or the oldest waited MAX_DEFER_S."""
        if not self._queue:
            return False
        if self._urgent or time.monotonic() - since >= MAX_DEFER_S:
            return True
        free = {id(j[0]) for j in self._queue} - self._busy
        return len(free) >= min(self.max_lanes, max(1, self._streams - len(self._busy)))

    def _take(self) -> list[tuple[Any, Any, Future[None]]] | None:
        """The oldest pending slice of each free hasher (caller holds the condition);
        None once idle for IDLE_S (the worker then exits)."""
        since = time.monotonic()
        while True:
            if not self._ready(since):
                self._waiting += 1
                woken = self._cv.wait(MAX_DEFER_S if self._queue else IDLE_S)
                self._waiting -= 1
                if not woken and not self._queue:
                    self._live -= 1
                    return None
                if not self._queue:
                    since = time.monotonic()
                continue
            batch, chosen, keep = [], set(), deque()
            for job in self._queue:  # every pending slice of up to max_lanes free hashers
                key = id(job[0])
                if key not in self._busy and (key in chosen or len(chosen) < self.max_lanes):
                    chosen.add(key)
                    batch.append(job)
                else:
                    keep.append(job)
            self._queue = keep
            if batch:
                self._busy.update(id(j[0]) for j in batch)
                return batch
            self._waiting += 1  # every pending hasher is busy: wait for one to free
            self._cv.wait(MAX_DEFER_S)
            self._waiting -= 1

    def _work(self) -> None:
        while True:
            with self._cv:
                batch = self._take()
            if batch is None:
                return
            try:
                self._hash(batch)
            finally:
                with self._cv:
                    self._busy.difference_update(id(j[0]) for j in batch)
                    self._cv.notify_all()

    @staticmethod
    def _hash(batch: list[tuple[Any, Any, Future[None]]]) -> None:
        """Round r feeds the r-th slice of each hasher in the batch (one multi-buffer call
        for the native hashers of the round, in queue order)."""
        rounds: list[list[tuple[Any, Any, Future[None]]]] = []
        depth: dict[int, int] = {}
        for job in batch:
            r = depth.get(id(job[0]), 0)
            depth[id(job[0])] = r + 1
            if r == len(rounds):
                rounds.append([])
            rounds[r].append(job)
        for jobs in rounds:
            native = [j for j in jobs if isinstance(j[0], keccak_native.Hasher)]
            if len(native) > 1:
                _run(lambda n=native: keccak_native.update_many([j[0] for j in n],
                                                                [j[1] for j in n]), native)
                jobs = [j for j in jobs if not isinstance(j[0], keccak_native.Hasher)]
            for job in jobs:
                _run(lambda j=job: j[0].update(j[1]), [job])


def _run(fn: Any, jobs: list[tuple[Any, Any, Future[None]]]) -> None:
    """Run ``fn`` and settle the futures of ``jobs`` with its outcome."""
    try:
        fn()
    except BaseException as exc:  # reported to every waiter
        for _h, _p, fut in jobs:
            fut.set_exception(exc)
    else:
        for _h, _p, fut in jobs:
            fut.set_result(None)

