"""A chain recorded by earlier code replays to the same roots (``scripts/record_chain.py``).

Refactors of the STF, state layout or block execution must leave every root unchanged; a
deliberate protocol change re-records the fixture and bumps its ``protocol`` field.
"""

from __future__ import annotations

from pathlib import Path

import msgpack

from state_machine.actions import decode_signed
from state_machine.transition import (
    GENESIS_PARENT,
    Block,
    apply_block,
    block_hash,
    block_header,
    genesis_state,
)

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "chain_v1.msgpack"


def _load() -> dict:
    return msgpack.unpackb(FIXTURE.read_bytes(), raw=False)


def test_fixture_exercises_epochs_slashes_and_rejections():
    chain = _load()
    applied = [ok for b in chain["blocks"] for ok in b["applied"]]
    assert len(chain["blocks"]) > 20 and False in applied and applied.count(True) > 50


def test_recorded_chain_replays_to_the_same_roots():
    chain = _load()
    state, parent = genesis_state(chain["chain_id"]), GENESIS_PARENT
    slashed = 0
    for rec in chain["blocks"]:
        block = Block(rec["height"], parent, rec["timestamp"],
                      [decode_signed(raw) for raw in rec["actions"]])
        state, receipts = apply_block(state, block)
        assert [r.applied for r in receipts] == rec["applied"], rec["height"]
        root = state.state_root()
        assert root == rec["state_root"], f"state root differs at height {rec['height']}"
        parent = block_hash(block_header(block, root, receipts))
        assert parent == rec["block_hash"], f"block hash differs at height {rec['height']}"
    slashed = sum(1 for a in state.accounts.values() if a.cumulative_slashed > 0)
    assert slashed >= 3
