"""Data availability payload of a batch (SPEC §10) and its re-execution.

Why this shape: a verifier holding only the previous batch's state must be able to
re-execute the batch and compare every block's root and hash. So the payload carries, per
block, exactly what ``apply_block`` consumes (height, parent hash, timestamp, the actions'
canonical wire bytes, in order) plus the claimed state root and block hash to compare
against. Revealed updates travel inside their ``reveal_update`` actions (``update_bytes``),
so they are covered by ``da_hash`` without being duplicated; ``updates`` indexes them as
``[height, action_index, keccak256(update_bytes)]`` for applied reveals, which lets a
verifier cross-check the epoch records' ``update_hashes``.

Encoding: canonical msgpack (``state_machine.codec``) of::

    {"version": 1, "chain_id": int, "batch_index": int, "first_height": int,
     "last_height": int,
     "blocks": [{"height", "parent_hash", "timestamp", "state_root", "block_hash",
                 "actions": [bin, ...]}, ...],
     "updates": [[height, index, bin32], ...]}

``da_hash = keccak256(payload)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select

from sequencer.errors import ChainMismatch
from sequencer.store import Store, actions
from state_machine import codec
from state_machine.actions import decode_signed
from state_machine.crypto import keccak256
from state_machine.state import State
from state_machine.transition import Block, apply_block, block_hash, block_header

DA_VERSION = 1


def build_da(store: Store, conn: Connection, chain_id: int, batch_index: int, first: int,
             last: int) -> bytes:
    """The canonical DA payload of blocks ``first..last`` (deterministic from the DB)."""
    blocks_out: list[dict[str, Any]] = []
    updates: list[list[Any]] = []
    for b in store.iter_blocks(first, last, conn=conn):
        rows = conn.execute(
            select(actions.c.bytes, actions.c.type, actions.c.status)
            .where(actions.c.block_height == b.height)
            .order_by(actions.c.block_index)
        ).all()
        raws = [bytes(r[0]) for r in rows]
        for i, r in enumerate(rows):
            if r[1] == "reveal_update" and r[2] == "included":
                ub = decode_signed(raws[i]).action.body.update_bytes  # type: ignore[attr-defined]
                updates.append([b.height, i, keccak256(ub)])
            elif r[1] == "reveal_update_v2" and r[2] == "included":  # bytes: GET /v1/blobs
                uh = decode_signed(raws[i]).action.body.update_hash  # type: ignore[attr-defined]
                updates.append([b.height, i, uh])
        blocks_out.append({
            "height": b.height,
            "parent_hash": b.parent_hash,
            "timestamp": b.timestamp,
            "state_root": b.state_root,
            "block_hash": b.hash,
            "actions": raws,
        })
    if len(blocks_out) != last - first + 1:
        raise ValueError(f"blocks {first}..{last} are not all stored")
    return codec.encode({
        "version": DA_VERSION,
        "chain_id": chain_id,
        "batch_index": batch_index,
        "first_height": first,
        "last_height": last,
        "blocks": blocks_out,
        "updates": updates,
    })


def decode_da(data: bytes) -> dict[str, Any]:
    """Parse a DA payload (canonical msgpack); raises ``codec.CodecError`` if malformed."""
    da = codec.decode(data)
    if not isinstance(da, dict) or da.get("version") != DA_VERSION:
        raise codec.CodecError("not a DA payload of a known version")
    return da


@dataclass(frozen=True)
class DaReplay:
    state: State
    last_block_hash: bytes
    state_root: bytes


def replay_da(state: State, da: dict[str, Any],
              on_block: Callable[[int, bytes, bytes], None] | None = None,
              blobs: Any = None) -> DaReplay:
    """Re-execute a decoded DA payload on top of ``state`` (the state after block
    ``first_height - 1``). Raises :class:`ChainMismatch` at the first block whose recomputed
    root or hash differs from the one claimed in the payload."""
    last_hash = b""
    root = state.state_root()
    for blk in da["blocks"]:
        acts = [decode_signed(raw) for raw in blk["actions"]]
        block = Block(blk["height"], blk["parent_hash"], blk["timestamp"], acts, blobs=blobs)
        state, receipts = apply_block(state, block)
        root = state.state_root()
        last_hash = block_hash(block_header(block, root, receipts))
        if root != blk["state_root"] or last_hash != blk["block_hash"]:
            raise ChainMismatch(blk["height"], blk["state_root"], root, blk["block_hash"],
                                last_hash)
        if on_block is not None:
            on_block(blk["height"], root, last_hash)
    return DaReplay(state, last_hash, root)
