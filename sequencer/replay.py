"""Full re-execution of a stored chain from genesis (``flockchain replay``).

Why from genesis and not from a snapshot: replay is the audit that the database's blocks,
actions and roots are consistent with the STF alone; a snapshot is a cache that this check
must not trust. Snapshots are checked too: each must equal the replayed state's root.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import inspect

from sequencer.errors import ChainMismatch
from sequencer.health import chain_protocol
from sequencer.history import replay_block
from sequencer.store import Store
from state_machine.transition import GENESIS_PARENT, genesis_state


@dataclass
class ReplayReport:
    ok: bool
    blocks: int
    head_height: int
    seconds: float
    first_mismatch_height: int | None = None
    expected_root: bytes | None = None
    got_root: bytes | None = None
    expected_hash: bytes | None = None
    got_hash: bytes | None = None
    problems: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        def hx(b: bytes | None) -> str | None:
            return None if b is None else "0x" + b.hex()

        return {
            "ok": self.ok,
            "blocks": self.blocks,
            "head_height": self.head_height,
            "seconds": round(self.seconds, 3),
            "first_mismatch_height": self.first_mismatch_height,
            "expected_root": hx(self.expected_root),
            "got_root": hx(self.got_root),
            "expected_hash": hx(self.expected_hash),
            "got_hash": hx(self.got_hash),
            "problems": self.problems,
        }


def replay_chain(store: Store, chain_id: int | None = None) -> ReplayReport:
    """Recompute every stored block from genesis; stop at the first mismatch."""
    t0 = time.perf_counter()
    if not inspect(store.engine).has_table("blocks"):
        return ReplayReport(True, 0, 0, 0.0, problems=["no chain in this database"])
    if chain_id is None:
        stored = store.get_meta("chain_id")
        if stored is None:
            return ReplayReport(True, 0, 0, 0.0, problems=["empty database"])
        chain_id = int(stored)
    state = genesis_state(chain_id, chain_protocol(store))
    snaps = set(store.snapshot_heights())
    report = ReplayReport(True, 0, 0, 0.0)
    parent = GENESIS_PARENT
    expected_height = 1
    for b in store.iter_blocks(1):
        if b.height != expected_height or b.parent_hash != parent:
            report.ok = False
            report.first_mismatch_height = b.height
            report.problems.append(f"block {b.height} does not link to block {b.height - 1}")
            break
        try:
            state = replay_block(store, state, b)
        except ChainMismatch as m:
            report.ok = False
            report.first_mismatch_height = m.height
            report.expected_root, report.got_root = m.expected_root, m.got_root
            report.expected_hash, report.got_hash = m.expected_hash, m.got_hash
            break
        report.blocks += 1
        report.head_height = b.height
        parent = b.hash
        expected_height += 1
        if b.height in snaps:
            snap = store.latest_snapshot(b.height)
            if snap is not None and snap[0] == b.height and snap[1] != b.state_root:
                report.problems.append(f"snapshot at {b.height} has a wrong root")
    report.seconds = time.perf_counter() - t0
    return report
