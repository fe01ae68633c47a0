"""The mempool and its indexes.

Why: the bridge asks for the highest queued L1 position before every event and ``/healthz``
reports it; a scan of the mempool made both O(mempool) (8.6 ms per event with 10k queued).
"""

from __future__ import annotations

from collections import deque
from typing import Any

from sequencer.admission import PendingView
from sequencer.types import Entry
from state_machine.state import State


class EntryIndex(dict[bytes, Entry]):
    """Entries by hash, plus the L1 positions of queued system actions in admission order.

    Why: the bridge asks for the highest queued L1 position before every event, and
    ``/healthz`` reports it; scanning the mempool made both O(mempool). Admission only
    accepts an L1 event after that position, so admission order is position order and the
    newest queued system action holds the maximum: O(1)."""

    def __init__(self) -> None:
        super().__init__()
        self._l1: dict[bytes, tuple[int, int]] = {}

    def __setitem__(self, h: bytes, e: Entry) -> None:
        super().__setitem__(h, e)
        a = e.sa.action
        if a.is_system:
            self._l1[h] = (a.body.l1_block, a.body.log_index)  # type: ignore[attr-defined]

    def pop(self, h: bytes, *default: Any) -> Any:
        self._l1.pop(h, None)
        return super().pop(h, *default)

    def last_l1_position(self) -> tuple[int, int] | None:
        return next(reversed(self._l1.values())) if self._l1 else None


class Mempool:
    """Acknowledged actions not yet in a block: FIFO queue (durable entries), entries by
    hash (in flight or queued), per-sender counts (pending nonces) and the pending view of
    tasks that admission checks windows against. The caller holds the sequencer's lock."""

    def __init__(self) -> None:
        self.by_hash = EntryIndex()
        self.queue: deque[Entry] = deque()  # durable, FIFO by seq
        self.pending: dict[bytes, int] = {}  # sender -> acked, not included
        self.view = PendingView()

    def requeue(self, e: Entry) -> None:
        """An entry recovered from the store (acked before a restart)."""
        self.by_hash[e.hash] = e
        self.queue.append(e)
        s = e.sa.action.sender
        self.pending[s] = self.pending.get(s, 0) + 1
        self.view.add(e.sa)

    def forget(self, e: Entry) -> None:
        """Drop an entry from the pending view (included in a block, or failed to store)."""
        self.by_hash.pop(e.hash, None)
        s = e.sa.action.sender
        n = self.pending.get(s, 0) - 1
        if n > 0:
            self.pending[s] = n
        else:
            self.pending.pop(s, None)
        self.view.remove(e.sa)

    def l1_cursor(self, state: State) -> tuple[int, int] | None:
        """Highest ``(l1_block, log_index)`` applied or queued: O(1)."""
        best = state.l1_cursor if state.l1_seen else None
        queued = self.by_hash.last_l1_position()
        if queued is not None and (best is None or queued > best):
            best = queued
        return best

    def status(self, action_hash: bytes) -> dict[str, Any] | None:
        """``action_status`` of a queued (or in-flight) action; None if not here."""
        e = self.by_hash.get(action_hash)
        if e is None:
            return None
        a = e.sa.action
        return {
            "action_hash": action_hash, "status": "queued", "seq": e.seq, "type": a.type,
            "sender": a.sender, "nonce": a.nonce, "received_height": e.received_height,
            "ack": e.ack, "block_height": None, "block_index": None, "reason": None,
            "detail": None,
        }
