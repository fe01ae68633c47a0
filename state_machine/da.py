"""Data-availability payload of a batch (SPEC §10) and its re-execution.

Why in the state machine: the sequencer publishes this payload and every verifier
re-executes it; both must agree on its bytes (``da_hash = keccak256(payload)``) and on
how it is replayed, so the format and the replay live with the STF.

Payload (canonical msgpack)::

    {"batch_index": int, "blocks": [{"height": int, "parent_hash": bin32,
      "timestamp": int, "actions": [bin (signed action wire bytes)], "header": {...}}]}

Revealed updates travel inside their ``reveal_update`` actions, so the payload holds
every update the STF scored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from state_machine import codec
from state_machine.actions import ActionError, SignedAction, decode_signed
from state_machine.crypto import keccak256
from state_machine.state import State
from state_machine.transition import Block, BlockError, apply_block, block_hash, block_header


class DAError(ValueError):
    """A payload that is malformed or does not match its commitment."""


@dataclass(frozen=True)
class DABlock:
    block: Block
    header: dict[str, Any]


def encode_payload(batch_index: int, blocks: Sequence[DABlock]) -> bytes:
    return codec.encode(
        {
            "batch_index": batch_index,
            "blocks": [
                {
                    "height": b.block.height,
                    "parent_hash": b.block.parent_hash,
                    "timestamp": b.block.timestamp,
                    "actions": [sa.encode() for sa in b.block.actions],
                    "header": b.header,
                }
                for b in blocks
            ],
        }
    )


def da_hash(payload: bytes) -> bytes:
    return keccak256(payload)


def decode_payload(payload: bytes) -> tuple[int, list[DABlock]]:
    try:
        raw = codec.decode(payload)
        blocks = []
        for rb in raw["blocks"]:
            actions: list[SignedAction] = [decode_signed(a) for a in rb["actions"]]
            block = Block(rb["height"], rb["parent_hash"], rb["timestamp"], actions)
            blocks.append(DABlock(block, rb["header"]))
        return int(raw["batch_index"]), blocks
    except (codec.CodecError, ActionError, KeyError, TypeError) as exc:
        raise DAError(f"malformed DA payload: {exc}") from exc


@dataclass
class ReplayResult:
    state: State
    last_block_hash: bytes
    first_mismatch: int | None  # height whose published header differs from ours
    system_actions: list[SignedAction]


def replay_blocks(state: State, parent_hash: bytes, blocks: Sequence[DABlock]) -> ReplayResult:
    """Re-execute ``blocks`` on ``state``; report the first header that differs."""
    mismatch = None
    system: list[SignedAction] = []
    for b in blocks:
        if b.block.parent_hash != parent_hash:
            mismatch = mismatch or b.block.height
        try:
            state, receipts = apply_block(state, b.block)
        except BlockError:
            mismatch = mismatch or b.block.height
            break
        header = block_header(b.block, state.state_root(), receipts)
        if header != b.header and mismatch is None:
            mismatch = b.block.height
        parent_hash = block_hash(header)
        system.extend(sa for sa in b.block.actions if sa.action.is_system)
    return ReplayResult(state, parent_hash, mismatch, system)
