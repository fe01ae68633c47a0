"""The group-commit writer: one thread, one transaction at a time, many acks per fsync.

Why: SQLite never sees competing writers, and acks that arrive while a commit is in flight
are committed together in the next transaction (group commit: one fsync for many acks).
Every write (ack groups, blocks, batches) goes through :meth:`GroupCommitWriter.write`.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError

from sequencer.errors import SubmitError
from sequencer.health import WriteHealth
from sequencer.ratelog import RateLimitedLog
from sequencer.store import ACTION_COLUMNS, Store, StoreWriter
from sequencer.types import STOP, Entry, Job
from state_machine.reasons import Reason

log = logging.getLogger("flockchain.sequencer")
_write_log = RateLimitedLog(log, every_s=30.0)  # a full disk fails every write


def _values(e: Entry) -> tuple[Any, ...]:
    """The action's row in ``ACTION_COLUMNS`` order (status ``queued``)."""
    a = e.sa.action
    return (e.seq, e.hash, e.raw, a.sender, a.nonce, a.type, len(e.raw), "queued", None,
            None, e.received_height, e.ack, None, None)


assert ACTION_COLUMNS == (
    "seq", "hash", "bytes", "sender", "nonce", "type", "size", "status", "reason", "detail",
    "received_height", "ack", "block_height", "block_index"), "update _values"


class GroupCommitWriter:
    """Owns the writer thread and its queue of :class:`Entry` (acks), lists of them (a
    batch admitted together, committed in one group) and :class:`Job`.

    ``on_acked(group, seconds)`` runs after a group of acks is durable; ``on_failed(group,
    error)`` after it could not be stored (the entries must be forgotten and refused)."""

    def __init__(self, store: Store, max_group: int, wait: float,
                 on_acked: Callable[[list[Entry], float], None],
                 on_failed: Callable[[list[Entry], SubmitError], None],
                 health: WriteHealth | None = None) -> None:
        self.store = store
        self.health = health or WriteHealth()
        self.max_group = max_group
        self.wait = wait
        self.on_acked = on_acked
        self.on_failed = on_failed
        self.queue: queue.Queue[Any] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._w: StoreWriter | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="seq-writer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Finish queued work, stop the thread, refuse anything that raced with shutdown."""
        if self._thread is None:
            return
        self.queue.put(STOP)
        self._thread.join()
        self._thread = None
        while True:
            try:
                job = self.queue.get_nowait()
            except queue.Empty:
                break
            for j in job if isinstance(job, list) else [job]:
                if isinstance(j, (Entry, Job)):
                    j.future.set_exception(SubmitError(Reason.SHUTTING_DOWN))

    def write(self, fn: Callable[[Connection], Any]) -> Any:
        """Run ``fn(conn)`` in one transaction on the writer thread and wait for it."""
        if self._thread is None:
            with self.store.begin() as conn:
                return fn(conn)
        job = Job(fn)
        self.queue.put(job)
        return job.future.result()

    def _loop(self) -> None:
        self._w = self.store.writer()
        try:
            self._run()
        finally:
            self._w.close()

    def _run(self) -> None:
        carry: Any = None
        while True:
            job = carry if carry is not None else self.queue.get()
            carry = None
            if job is STOP:
                return
            if isinstance(job, (Entry, list)):
                group, carry = self._gather(job)
                self._commit_acks(group)
            else:
                assert self._w is not None
                try:
                    with self._w.begin() as conn:
                        result = job.fn(conn)
                except BaseException as exc:  # handed to the waiting caller
                    if isinstance(exc, (SQLAlchemyError, OSError)):
                        self.health.failed(exc)
                    job.future.set_exception(exc)
                else:
                    self.health.ok()
                    job.future.set_result(result)

    def _gather(self, first: Entry | list[Entry]) -> tuple[list[Entry], Any]:
        """``first`` (an ack, or a batch of acks admitted together) plus every ack already
        queued (up to ``max_group``, a batch is never split), waiting at most ``wait``
        seconds for more; a non-ack job met on the way is carried over."""
        group = list(first) if isinstance(first, list) else [first]
        deadline = time.monotonic() + self.wait
        while len(group) < self.max_group:
            try:
                nxt = self.queue.get_nowait()
            except queue.Empty:
                # a short wait lets concurrent submissions share the commit (fsync)
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    nxt = self.queue.get(timeout=left)
                except queue.Empty:
                    break
            if isinstance(nxt, list):
                group.extend(nxt)
            elif isinstance(nxt, Entry):
                group.append(nxt)
            else:
                return group, nxt
        return group, None

    def _commit_acks(self, group: list[Entry]) -> None:
        assert self._w is not None
        t0 = time.perf_counter()
        try:
            self._w.insert_actions([_values(e) for e in group])
        except Exception as exc:
            self.health.failed(exc)
            _write_log.exception("ack commit failed for %d actions", len(group))
            self.on_failed(group, SubmitError(Reason.STORAGE_ERROR, str(exc)[:200]))
            return
        self.health.ok()
        self.on_acked(group, time.perf_counter() - t0)


def checkpoint_thread(store: Store, stopping: threading.Event) -> threading.Thread:
    """Background WAL checkpoints (SQLite) until ``stopping`` is set, so commits on the ack
    path stay short."""

    def _loop() -> None:
        while not stopping.wait(0.25):
            try:
                store.checkpoint()
            except Exception as exc:  # busy or closing: try again next time
                log.debug("checkpoint skipped: %s", exc)

    t = threading.Thread(target=_loop, name="seq-maint", daemon=True)
    t.start()
    return t
