"""Protocol 3 paced windows (``state_machine.pacing``; issue 11, F-12 residual).

The attack: a sequencer that censors a proposer's reveal produces blocks as fast as it can
so the reveal window (counted in blocks) runs out before the client's forced reveal is due;
the honest client is slashed ``ABSENT``. From protocol 3 the window also has a time floor in
block timestamps, which the sequencer can only meet by letting time pass (or by stamping
blocks in the future, which the verifier challenges: end to end in
``tests/bridge/test_forced_inclusion.py``)."""

from __future__ import annotations

import numpy as np
import pytest
from stf_harness import Client, Harness, default_params

from state_machine.actions import ForcedActionBody
from state_machine.constants import (
    PROTOCOL_BOUND_COMMITMENTS,
    PROTOCOL_PACED_WINDOWS,
    WINDOW_FLOOR_MS_PER_BLOCK,
)
from state_machine.pacing import window_floor_s
from state_machine.transition import Block, BlockError, apply_block, genesis_state
from state_machine.verdicts import ABSENT

D = 64
N = 7
WINDOW = 40  # floor: 10 s
T0 = 1_700_000_000


def started(protocol: int) -> tuple[Harness, list[Client], list[np.ndarray]]:
    h = Harness(state=genesis_state(7, protocol))
    clients = [Client.make(f"pace{i}") for i in range(N)]
    g = np.zeros(D, dtype=np.int32)
    h.block(*[h.deposit(c) for c in clients],
            h.create_task(1, default_params(D, g, proposers=N, f=1, window=WINDOW),
                          max_epochs=3))
    h.block(h.genesis(clients[0], 1, g))
    h.block()
    rng = np.random.default_rng(3)
    base = rng.normal(0, 300, D)
    ds = [(base + rng.normal(0, 300, D)).astype(np.int16) for _ in range(N)]
    h.block(*[h.commit(c, 1, 0, ds[i]) for i, c in enumerate(clients)])
    h.block(h.advance(clients[0], 1, 0))  # everyone committed: closed early (no floor wait)
    assert h.state.tasks[1].phase == "update_reveal"
    return h, clients, ds


def rush(h: Harness, blocks: int) -> None:
    """The pacing sequencer: ``blocks`` blocks that all carry the same timestamp (as fast
    as it can produce them; it may not stamp them ahead of L1 time)."""
    for _ in range(blocks):
        h.block_at(h.state.timestamp)


def test_floor_is_a_quarter_second_a_block():
    assert WINDOW_FLOOR_MS_PER_BLOCK == 250
    assert [window_floor_s(w) for w in (1, 3, 4, 40, 120, 21_600)] == [1, 1, 1, 10, 30, 5_400]


def test_rushing_blocks_cannot_close_the_reveal_window():
    """Protocol 3: 5 windows' worth of blocks in no time leave the reveal phase open; the
    censored reveal, forced in later, still lands and nobody is slashed."""
    h, clients, ds = started(PROTOCOL_PACED_WINDOWS)
    task = h.state.tasks[1]
    assert task.phase_not_before == h.state.timestamp + window_floor_s(WINDOW)
    h.block(*[h.reveal(c, 1, 0, ds[i]) for i, c in enumerate(clients) if i != 3])
    rush(h, 5 * WINDOW)
    assert h.state.height > h.state.tasks[1].phase_deadline
    assert h.state.tasks[1].phase == "update_reveal"
    h.l1_block += 1  # the client forces its reveal through L1 (``l1_forced_action``)
    body = ForcedActionBody(1, h.reveal(clients[3], 1, 0, ds[3]).encode(), h.l1_block, 0,
                            b"\x55" * 32)
    (rc,) = h.block_at(h.state.timestamp, h._sys("l1_forced_action", body))
    assert rc.applied and rc.events == ["forced_action_applied", "update_revealed"]
    h.until_phase_changes(1)
    ep = h.state.epochs[(1, 0)]
    assert ABSENT not in ep.verdicts.values()
    assert all(h.state.accounts[c.pubkey].cumulative_slashed == 0 for c in clients)


def test_the_window_closes_once_both_height_and_floor_passed():
    h, clients, _ = started(PROTOCOL_PACED_WINDOWS)
    floor = h.state.tasks[1].phase_not_before
    rush(h, WINDOW + 1)
    assert h.state.tasks[1].phase == "update_reveal"
    h.block_at(floor - 1)
    assert h.state.tasks[1].phase == "update_reveal"
    h.block_at(floor)
    assert h.state.tasks[1].phase != "update_reveal"
    assert h.state.epochs[(1, 0)].verdicts[clients[0].pubkey] == ABSENT


def test_honest_pace_closes_on_height():
    """At one block a second (4x slower than the floor's pace) the height binds: the
    window closes at the first block past the deadline, as in protocol 2."""
    h, _, _ = started(PROTOCOL_PACED_WINDOWS)
    deadline = h.state.tasks[1].phase_deadline
    while h.state.tasks[1].phase == "update_reveal":
        h.block()
    assert h.state.height == deadline + 1


def test_advance_past_the_height_but_not_the_floor_is_refused():
    h, clients, _ = started(PROTOCOL_PACED_WINDOWS)
    rush(h, WINDOW + 1)
    (rc,) = h.block_at(h.state.timestamp, h.advance(clients[0], 1, 0))
    assert (rc.applied, rc.reason) == (False, "phase_incomplete")
    assert "not before time" in rc.detail


def test_protocol_2_still_closes_on_height_alone():
    """The gate: a protocol 2 chain ignores timestamps (recorded chains keep their roots)."""
    h, clients, _ = started(PROTOCOL_BOUND_COMMITMENTS)
    assert h.state.tasks[1].phase_not_before is None
    rush(h, WINDOW + 1)
    assert h.state.tasks[1].phase != "update_reveal"
    assert h.state.epochs[(1, 0)].verdicts[clients[0].pubkey] == ABSENT


@pytest.mark.parametrize("protocol", [PROTOCOL_BOUND_COMMITMENTS, PROTOCOL_PACED_WINDOWS])
def test_timestamps_never_go_backwards_from_protocol_3(protocol):
    h, _, _ = started(protocol)
    back = Block(h.state.height + 1, h.parent, h.state.timestamp - 1, [])
    if protocol == PROTOCOL_PACED_WINDOWS:
        with pytest.raises(BlockError, match="below the parent's"):
            apply_block(h.state, back)
    else:
        apply_block(h.state, Block(h.state.height + 1, h.parent, 0, []))


def test_the_timestamp_is_committed_from_protocol_3():
    h, _, _ = started(PROTOCOL_PACED_WINDOWS)
    a, _ = apply_block(h.state, Block(h.state.height + 1, h.parent, h.state.timestamp, []))
    b, _ = apply_block(h.state, Block(h.state.height + 1, h.parent, h.state.timestamp + 1, []))
    assert a.state_root() != b.state_root()
    h2, _, _ = started(PROTOCOL_BOUND_COMMITMENTS)
    a, _ = apply_block(h2.state, Block(h2.state.height + 1, h2.parent, 5, []))
    b, _ = apply_block(h2.state, Block(h2.state.height + 1, h2.parent, 6, []))
    assert a.state_root() == b.state_root()
