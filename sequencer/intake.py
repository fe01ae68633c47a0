"""Batched admission on one worker thread: what the HTTP event loop hands its small actions to.

Why: admitting an action costs ~130 µs of ed25519 (verify the sender's signature, sign the
ack), during which the thread that does it can do nothing else. On the event loop that
stalled every other connection for that long; on this worker, PyNaCl releases the GIL for
both, so the loop keeps parsing requests on the other core meanwhile. The worker takes
*everything* queued at once and admits it with :meth:`Sequencer.submit_many`: one lock
acquisition per batch, and the batch reaches the group-commit writer as one group, so the
number of actions per transaction (and per fsync) grows with the load instead of staying
at the handful that happened to arrive during the previous commit.

Nothing changes in what is checked or when an ack is returned: each action gets exactly the
checks and reasons of :meth:`Sequencer.submit_nowait`, and its future completes only after
the writer's commit.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, InvalidStateError
from typing import Any

from sequencer.errors import SubmitError
from sequencer.types import Ack
from state_machine.reasons import Reason

log = logging.getLogger("flockchain.sequencer")

MAX_BATCH = 1024  # actions per submit_many call: bounds one batch's latency and lock hold


def settle(fut: Future[Ack], result: Ack | None = None,
           exc: BaseException | None = None) -> None:
    """Complete ``fut`` unless something completed it first.

    Why: when a batch fails on a bug (:meth:`Intake._admit`), its futures fail at once, yet
    an entry already handed to the writer still commits, and the writer then completes the
    same future; a second completion must not raise in the writer thread and stop it from
    completing the rest of its group (the client that saw the error retries and gets the
    duplicate's ack)."""
    try:
        if exc is not None:
            fut.set_exception(exc)
        else:
            fut.set_result(result)  # type: ignore[arg-type]
    except InvalidStateError:
        pass


def _chain(src: Future[Ack], dst: Future[Ack]) -> None:
    def _copy(f: Future[Ack]) -> None:
        exc = f.exception()
        if exc is not None:
            dst.set_exception(exc)
        else:
            dst.set_result(f.result())

    src.add_done_callback(_copy)


class Intake:
    """A queue of raw actions and the thread that admits them in batches.

    ``submit_many(raws, futures)`` returns, per raw action and in order, the future of its
    ack (``futures[i]`` itself once admitted) or the SubmitError that refused it
    (:meth:`Sequencer.submit_many`)."""

    def __init__(self, submit_many: Callable[[Sequence[bytes], Sequence[Future[Ack]]],
                                             list[Any]],
                 max_batch: int = MAX_BATCH) -> None:
        self._submit_many = submit_many
        self.max_batch = max_batch
        self._cond = threading.Condition(threading.Lock())
        self._items: list[tuple[bytes, Future[Ack]]] = []
        self._closed = False
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and not self._closed

    def start(self) -> None:
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="seq-intake", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Admit what is queued, then stop; later submissions are refused (shutting_down)."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def submit(self, raw: bytes) -> Future[Ack]:
        """Queue one action; the future fails with SubmitError if it is refused."""
        fut: Future[Ack] = Future()
        with self._cond:
            if self._closed or self._thread is None:
                raise SubmitError(Reason.SHUTTING_DOWN, "sequencer is not running")
            self._items.append((raw, fut))
            if len(self._items) == 1:  # the worker waits only when the queue is empty
                self._cond.notify()
        return fut

    def _take(self) -> list[tuple[bytes, Future[Ack]]] | None:
        with self._cond:
            while not self._items and not self._closed:
                self._cond.wait()
            if not self._items:
                return None
            batch = self._items[:self.max_batch]
            del self._items[:self.max_batch]
            return batch

    def _loop(self) -> None:
        while True:
            batch = self._take()
            if batch is None:
                return
            self._admit(batch)

    def _admit(self, batch: list[tuple[bytes, Future[Ack]]]) -> None:
        try:
            results = self._submit_many([raw for raw, _ in batch], [f for _, f in batch])
        except BaseException as exc:  # a bug, not a refusal: fail the batch, keep serving
            log.exception("batched admission failed")
            for _, fut in batch:
                settle(fut, exc=exc)
            return
        for (_, fut), r in zip(batch, results, strict=True):
            if isinstance(r, BaseException):
                fut.set_exception(r)
            elif r is not fut:  # a duplicate's future (an admitted action completes fut)
                _chain(r, fut)
