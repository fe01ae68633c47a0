"""Block production: execute the next block and derive every row it writes.

Why apart from the sequencer: this is the pure part of production (STF, header, receipts,
action status updates, blobs made available); the facade only picks the mempool entries
and commits the rows through the writer.
"""

from __future__ import annotations

from collections.abc import Container, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sequencer.store import BlobWrite, BlockRow, ReceiptRow
from state_machine import codec
from state_machine.epochs import can_open, next_deadline
from state_machine.forced import inner_v2_update
from state_machine.indexes import tasks_with_deadlines
from state_machine.state import WAITING_CLIENTS, State, model_hash
from state_machine.transition import Block, BlockResult, Receipt, execute_block


def block_due(state: State) -> bool:
    """Without queued actions, a block is due only to move a pending phase deadline closer
    (windows count blocks) or to open an epoch for a task waiting on clients."""
    if next_deadline(state) is not None:
        return True
    return any(t.phase == WAITING_CLIENTS and can_open(state, t)
               for t in (state.tasks.peek(tid) for tid in tasks_with_deadlines(state)))


@dataclass(frozen=True)
class BuiltBlock:
    result: BlockResult
    row: BlockRow
    receipt_rows: list[ReceiptRow]
    action_updates: list[dict[str, Any]]
    blobs: list[BlobWrite]


def build_block(state: State, block: Block, seqs: Sequence[int],
                verified: Container[bytes] = ()) -> BuiltBlock:
    """Execute ``block`` (its actions are the mempool entries ``seqs``) on ``state``;
    ``verified``: hashes of the actions whose signatures admission verified."""
    res = execute_block(state, block, verified=verified)
    h = block.height
    row = BlockRow(h, res.hash, block.parent_hash, block.timestamp, res.state_root,
                   codec.encode(res.header), len(seqs))
    rrows = [
        ReceiptRow(h, i, r.action_hash, r.applied, r.reason, r.detail, ",".join(r.events))
        for i, r in enumerate(res.receipts)
    ]
    updates = [
        {
            "b_seq": seq, "b_status": "included" if r.applied else "rejected",
            "b_reason": r.reason, "b_detail": r.detail or None, "b_height": h, "b_index": i,
        }
        for i, (seq, r) in enumerate(zip(seqs, res.receipts, strict=True))
    ]
    blobs = collect_blobs(state, res.state, block, seqs, res.receipts)
    return BuiltBlock(res, row, rrows, updates, blobs)


def closed_epoch(old: State, new: State) -> bool:
    """An epoch was finalized in this block: some task ran one more epoch (O(tasks))."""
    for tid, t in new.tasks.items():
        o = old.tasks.peek(tid)
        if o is None or o.epochs_run != t.epochs_run:
            return t.epochs_run > (0 if o is None else o.epochs_run)
    return False


def _le_view(arr: Any, dtype: str) -> Any:
    """The array's little-endian bytes without a copy when it already is one (a 2^28 zero
    Δ_prev is 512 MiB of untouched pages: ``tobytes`` would make them resident)."""
    return memoryview(np.ascontiguousarray(arr, dtype=dtype)).cast("B")


def collect_blobs(old: State, new: State, block: Block, seqs: Sequence[int],
                  receipts: list[Receipt]) -> list[BlobWrite]:
    """Blobs a block makes available: applied reveal updates (by reference to their
    action), and every global model, previous delta and vote candidate that changed."""
    out: list[BlobWrite] = []
    stored: set[bytes] = set()  # blobs already in the blob store (uploaded, chunk-verified)
    for sa, seq, r in zip(block.actions, seqs, receipts, strict=True):
        a = sa.action
        if r.applied and a.type == "publish_genesis_v2":  # the model is a stored blob
            stored.add(a.body.model_root)  # type: ignore[attr-defined]
        if r.applied and a.type == "reveal_update":
            b = a.body
            ep = new.epochs.peek((b.task_id, b.epoch))  # type: ignore[attr-defined]
            out.append(BlobWrite(ep.update_hashes[a.sender], "update",
                                 len(b.update_bytes), action_seq=seq))  # type: ignore[attr-defined]
        elif r.applied and a.type == "reveal_update_v2":  # bytes already in the blob store
            out.append(BlobWrite(a.body.update_hash, "update", a.body.size))  # type: ignore[attr-defined]
        elif r.applied and a.type == "l1_forced_action" and r.events[1:2] == [
                "update_revealed"]:  # a forced v2 reveal (F-12)
            v2 = inner_v2_update(a.body)  # type: ignore[arg-type]
            if v2 is not None:
                out.append(BlobWrite(v2[0], "update", v2[1]))
    for tid, t in new.tasks.items():
        o = old.tasks.peek(tid)
        if t.global_model is not None and (o is None or o.global_hash != t.global_hash):
            if t.global_hash in stored:
                out.append(BlobWrite(t.global_hash, "global_model", 4 * t.global_model.size))
            else:
                data = _le_view(t.global_model, "<i4")
                out.append(BlobWrite(t.global_hash, "global_model", len(data), data=data))
        if t.prev_delta is not None and (o is None or o.prev_delta_hash != t.prev_delta_hash):
            data = _le_view(t.prev_delta, "<i2")
            out.append(BlobWrite(t.prev_delta_hash, "prev_delta", len(data), data=data))
        ep = new.epochs.peek((tid, t.epoch))
        if ep is not None and ep.candidate is not None:
            prev = old.epochs.peek((tid, t.epoch))
            if prev is None or prev.candidate_hash != ep.candidate_hash:
                data = _le_view(ep.candidate, "<i4")
                out.append(BlobWrite(ep.candidate_hash, "candidate", len(data), data=data))
                if ep.candidate_delta is not None:  # snapshots refer to it by hash
                    data = _le_view(ep.candidate_delta, "<i2")
                    out.append(BlobWrite(model_hash(ep.candidate_delta), "candidate_delta",
                                         len(data), data=data))
    return out
