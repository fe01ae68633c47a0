"""Whether the node's writes are succeeding (``/v1/healthz`` reports it).

Why: a node whose disk is full still answered ``ok`` while every write failed. The writer
thread records the outcome of each transaction here; the node is *degraded* while the
latest write failed, and *read-only* when it could not write at start-up (it then serves
reads and refuses submissions with 503 ``read_only`` instead of not starting at all).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from sqlalchemy.exc import SQLAlchemyError

from sequencer.errors import RecoveryError

if TYPE_CHECKING:
    from sequencer.store import Store

log = logging.getLogger("flockchain.sequencer")


class WriteHealth:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.last_ok: float | None = None
        self.last_failed: float | None = None
        self.last_error: str | None = None
        self.failures = 0
        self.read_only = False

    def ok(self) -> None:
        with self._lock:
            self.last_ok = time.time()

    def failed(self, exc: BaseException) -> None:
        with self._lock:
            self.last_failed = time.time()
            self.last_error = f"{type(exc).__name__}: {str(exc)[:200]}"
            self.failures += 1

    @property
    def degraded(self) -> bool:
        """The latest write failed (or none could be made: read-only)."""
        with self._lock:
            if self.read_only:
                return True
            return self.last_failed is not None and (self.last_ok is None
                                                     or self.last_failed >= self.last_ok)

    @property
    def status(self) -> str:
        if self.read_only:
            return "read_only"
        return "degraded" if self.degraded else "ok"


def claim_store(store: Store, chain_id: int, pubkey: bytes, health: WriteHealth) -> None:
    """Bind the database to ``chain_id`` and this sequencer key. A database of another chain
    is refused; one that cannot be written (e.g. a full disk) is opened read-only: reads of
    the stored chain are served, writes refused (503)."""
    stored = store.get_meta("chain_id")
    if stored is not None and int(stored) != chain_id:
        raise RecoveryError(f"database belongs to chain {stored}, not {chain_id}")
    try:
        with store.begin() as conn:
            if stored is None:
                store.set_meta(conn, "chain_id", str(chain_id))
            store.set_meta(conn, "sequencer_pubkey", pubkey.hex())
    except (SQLAlchemyError, OSError) as exc:
        if stored is None:
            raise
        log.error("database not writable (%s): starting read-only", exc)
        health.failed(exc)
        health.read_only = True
