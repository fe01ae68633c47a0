"""Cutting batches: the consecutive blocks not yet in a batch, their DA hash, a snapshot.

Why a snapshot at every batch end: proofs for slash relays and reward claims are made
against final batches' state roots; with a snapshot there they need no replay at all.
"""

from __future__ import annotations

from sqlalchemy import Connection

from sequencer.da import build_da
from sequencer.history import History
from sequencer.store import BatchRow, Store
from state_machine.crypto import keccak256
from state_machine.state import State


def cut_batch(store: Store, history: History, conn: Connection, chain_id: int, head: State,
              max_blocks: int | None) -> BatchRow | None:
    """In the writer's transaction: store the next batch (``l1_status="pending"``) over the
    blocks after the last batch, up to ``head`` or ``max_blocks`` of them; None if there is
    no new block. ``head`` is the state after the newest block."""
    last = store.latest_batch(conn)
    first = last.last_height + 1 if last else 1
    idx = last.idx + 1 if last else 0
    end = head.height if max_blocks is None else min(head.height, first + max_blocks - 1)
    if first > end:
        return None
    blk = next(iter(store.iter_blocks(end, end, conn=conn)))
    da = build_da(store, conn, chain_id, idx, first, end)
    row = BatchRow(idx, first, end, blk.hash, blk.state_root, keccak256(da), None, "pending")
    store.insert_batch(conn, row)
    if head.height == end:  # proofs against this batch need no replay
        history.write_snapshot(conn, head)
    return row
