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
"""

from __future__ import annotations

import threading
from collections import deque
from concurrent.futures import Future
from typing import Any

from state_machine import keccak_native

MAX_LANES = 8
IDLE_S = 2.0  # a worker with nothing to do for this long exits (started again on demand)


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

    def submit(self, hasher: Any, piece: Any) -> Future[None]:
        fut: Future[None] = Future()
        with self._cv:
            self._queue.append((hasher, piece, fut))
            if self._waiting == 0 and self._live < self.threads:
                self._live += 1
                threading.Thread(target=self._work, name=f"{self.name}-{self._live}",
                                 daemon=True).start()
            else:
                self._cv.notify()
        return fut

    def _take(self) -> list[tuple[Any, Any, Future[None]]] | None:
        """The oldest pending slice of each free hasher (caller holds the condition);
        None once idle for IDLE_S (the worker then exits)."""
        while True:
            batch, seen, keep = [], set(self._busy), deque()
            while self._queue:
                job = self._queue.popleft()
                key = id(job[0])
                if key in seen or len(batch) >= self.max_lanes:
                    keep.append(job)
                else:
                    seen.add(key)
                    batch.append(job)
            self._queue = keep
            if batch:
                self._busy.update(id(j[0]) for j in batch)
                return batch
            self._waiting += 1
            woken = self._cv.wait(IDLE_S)
            self._waiting -= 1
            if not woken and not self._queue:
                self._live -= 1
                return None

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
        native = [j for j in batch if isinstance(j[0], keccak_native.Hasher)]
        error: BaseException | None = None
        if len(native) > 1:
            try:
                keccak_native.update_many([j[0] for j in native], [j[1] for j in native])
            except BaseException as exc:  # reported to every waiter of the batch
                error = exc
            for _h, _p, fut in native:
                if error is None:
                    fut.set_result(None)
                else:
                    fut.set_exception(error)
            batch = [j for j in batch if not isinstance(j[0], keccak_native.Hasher)]
        for hasher, piece, fut in batch:
            try:
                hasher.update(piece)
            except BaseException as exc:
                fut.set_exception(exc)
            else:
                fut.set_result(None)
