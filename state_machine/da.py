"""Data availability payload of a batch (SPEC §10): format, decoding and re-execution.

Why here, in the pure STF package: both the sequencer (which builds the payload from its
database) and the independent verifier (which re-executes it) need the format and the
replay, and the verifier must not import the sequencer it checks.

The payload carries, per block, exactly what ``apply_block`` consumes (height, parent hash,
timestamp, the actions' canonical wire bytes, in order) plus the claimed state root and
block hash to compare against. Revealed updates travel inside their ``reveal_update``
actions (``update_bytes``), so they are covered by ``da_hash`` without being duplicated;
``updates`` indexes them as ``[height, action_index, keccak256(update_bytes)]`` for applied
reveals, which lets a verifier cross-check the epoch records' ``update_hashes``; blobs an
applied action names (v2 reveals, a protocol 4 chunked genesis) are listed by their key.

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

from state_machine import codec
from state_machine.actions import decode_signed
from state_machine.state import State
from state_machine.transition import Block, execute_block

DA_VERSION = 1


def encode_da(chain_id: int, batch_index: int, first: int, last: int,
              blocks: list[dict[str, Any]], updates: list[list[Any]]) -> bytes:
    """The canonical payload of blocks ``first..last`` (``blocks`` as in the docstring)."""
    if len(blocks) != last - first + 1:
        raise ValueError(f"blocks {first}..{last} are not all stored")
    return codec.encode({
        "version": DA_VERSION,
        "chain_id": chain_id,
        "batch_index": batch_index,
        "first_height": first,
        "last_height": last,
        "blocks": blocks,
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
              blobs: Any = None, arrays: Any = None) -> DaReplay:
    """Re-execute a decoded DA payload on top of ``state`` (the state after block
    ``first_height - 1``). Raises ``ChainMismatch`` at the first block whose recomputed
    root or hash differs from the one claimed in the payload. ``blobs`` resolves v2 updates
    (``.get(update_hash) -> VerifiedBlob``), e.g. ``blobstore.source.VerifyingSource``;
    ``arrays`` where aggregates and candidates are written (``Block.arrays``)."""
    last_hash = b""
    root = state.state_root()
    for blk in da["blocks"]:
        acts = [decode_signed(raw) for raw in blk["actions"]]
        block = Block(blk["height"], blk["parent_hash"], blk["timestamp"], acts, blobs=blobs,
                      arrays=arrays)
        res = execute_block(state, block, blk["state_root"], blk["block_hash"])
        state, root, last_hash = res.state, res.state_root, res.hash
        if on_block is not None:
            on_block(blk["height"], root, last_hash)
    return DaReplay(state, last_hash, root)
