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
from state_machine.constants import CURRENT_PROTOCOL, KNOWN_PROTOCOLS, PROTOCOL_V1

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


def chain_protocol(store: Store) -> int:
    """The protocol version of the chain in ``store`` (fixed when the database was created).
    A database without the entry predates versions: its chain runs protocol 1."""
    stored = store.get_meta("protocol")
    protocol = PROTOCOL_V1 if stored is None else int(stored)
    if protocol not in KNOWN_PROTOCOLS:
        raise RecoveryError(f"database holds a chain of unknown protocol {protocol}")
    return protocol


def claim_store(store: Store, chain_id: int, pubkey: bytes, health: WriteHealth,
                protocol: int = CURRENT_PROTOCOL) -> int:
    """Bind the database to ``chain_id`` and this sequencer key, and return the chain's
    protocol version: ``protocol`` for a new database, the stored one otherwise (a chain
    never changes its rule set on restart). A database of another chain is refused; one that
    cannot be written (e.g. a full disk) is opened read-only: reads of the stored chain are
    served, writes refused (503)."""
    stored = store.get_meta("chain_id")
    if stored is not None and int(stored) != chain_id:
        raise RecoveryError(f"database belongs to chain {stored}, not {chain_id}")
    if protocol not in KNOWN_PROTOCOLS:
        raise RecoveryError(f"unknown protocol version {protocol}")
    try:
        with store.begin() as conn:
            if stored is None:
                store.set_meta(conn, "chain_id", str(chain_id))
                store.set_meta(conn, "protocol", str(protocol))
            store.set_meta(conn, "sequencer_pubkey", pubkey.hex())
    except (SQLAlchemyError, OSError) as exc:
        if stored is None:
            raise
        log.error("database not writable (%s): starting read-only", exc)
        health.failed(exc)
        health.read_only = True
    return chain_protocol(store)
