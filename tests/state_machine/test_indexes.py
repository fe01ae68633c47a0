"""Derived indexes of the state (issue 14): block start and ``can_open`` use them instead of
scanning every task and every account; they must always equal what the scans give."""

from __future__ import annotations

from pathlib import Path

import msgpack
import numpy as np
import pytest
from stf_harness import Client, Harness, default_params

from state_machine import indexes, snapshot
from state_machine.actions import decode_signed
from state_machine.constants import MIN_STAKE, PROTOCOL_V1
from state_machine.epochs import eligible_clients
from state_machine.phases import IDLE_PHASES
from state_machine.state import DEADLINE_PHASES, WAITING_CLIENTS, State
from state_machine.transition import GENESIS_PARENT, Block, execute_block, genesis_state

FIXTURES = [Path(__file__).resolve().parents[1] / "fixtures" / name
            for name in ("chain_v1.msgpack", "chain_v2.msgpack")]  # protocols 1 and 2


def _scanned(state: State) -> tuple[int, list[int]]:
    tasks = sorted(t.task_id for t in state.tasks.values()
                   if t.phase in DEADLINE_PHASES or t.phase in IDLE_PHASES)
    return len(eligible_clients(state)), tasks


def _indexed(state: State) -> tuple[int, list[int]]:
    return indexes.eligible_count(state), indexes.tasks_with_deadlines(state)


@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda p: p.stem)
def test_indexes_match_the_scans_along_the_recorded_chain(fixture: Path):
    chain = msgpack.unpackb(fixture.read_bytes(), raw=False)
    protocol = chain.get("protocol_version", PROTOCOL_V1)  # chain_v1 predates versions
    state, parent = genesis_state(chain["chain_id"], protocol), GENESIS_PARENT
    seen_active = 0
    for rec in chain["blocks"]:
        block = Block(rec["height"], parent, rec["timestamp"],
                      [decode_signed(raw) for raw in rec["actions"]])
        res = execute_block(state, block, rec["state_root"], rec["block_hash"])
        state, parent = res.state, res.hash
        assert _indexed(state) == _scanned(state), rec["height"]
        seen_active += bool(state._active_tasks)
        rebuilt = state.copy()
        indexes.rebuild(rebuilt)  # what a restored snapshot derives
        assert _indexed(rebuilt) == _indexed(state)
    assert seen_active > 10 and indexes.eligible_count(state) > 0


def test_eligible_count_follows_changes_inside_a_block():
    """``can_open`` is also asked mid-block (``advance``): the count includes the accounts
    changed since the last flush, and a rolled-back action leaves it as it was."""
    h = Harness()
    clients = [Client.make(f"ix{i}") for i in range(6)]
    h.block(*[h.deposit(c) for c in clients])
    st = h.state.copy()
    assert indexes.eligible_count(st) == 6
    st.begin_action()
    acc = st.accounts[clients[0].pubkey]
    acc.stake = MIN_STAKE - 1
    st.touch_account(clients[0].pubkey)
    assert indexes.eligible_count(st) == 5 == len(eligible_clients(st))
    st.rollback_action()
    assert indexes.eligible_count(st) == 6
    st.state_root()
    assert st._eligible_count == 6 and _indexed(st) == _scanned(st)


def test_waiting_task_is_indexed_and_snapshots_leave_indexes_out():
    h = Harness()
    clients = [Client.make(f"iw{i}") for i in range(3)]  # too few to open an epoch
    g = np.arange(16, dtype=np.int32)
    h.block(*[h.deposit(c) for c in clients], h.create_task(1, default_params(16, g)))
    h.block(h.genesis(clients[0], 1, g))
    h.block()
    assert h.state.tasks[1].phase == WAITING_CLIENTS
    assert indexes.tasks_with_deadlines(h.state) == [1] and _indexed(h.state) == _scanned(h.state)
    payload = snapshot.decode(snapshot.encode(h.state, None, None, 0))
    assert not any(name.startswith("_") for name in payload["maps"])
