"""Building a batch's DA payload from the node's database.

The format, its decoding and its re-execution are pure and live in ``state_machine.da``
(the verifier imports them from there, not from the sequencer); they are re-exported here
for existing callers.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select

from sequencer.store import Store, actions
from state_machine.actions import decode_signed
from state_machine.crypto import keccak256
from state_machine.da import DA_VERSION, DaReplay, decode_da, encode_da, replay_da

__all__ = ["DA_VERSION", "DaReplay", "build_da", "decode_da", "replay_da"]


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
            elif r[1] == "publish_genesis_v2" and r[2] == "included":  # protocol 4 genesis
                mr = decode_signed(raws[i]).action.body.model_root  # type: ignore[attr-defined]
                updates.append([b.height, i, mr])
        blocks_out.append({
            "height": b.height,
            "parent_hash": b.parent_hash,
            "timestamp": b.timestamp,
            "state_root": b.state_root,
            "block_hash": b.hash,
            "actions": raws,
        })
    return encode_da(chain_id, batch_index, first, last, blocks_out, updates)
