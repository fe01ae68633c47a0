"""Issue 11, F-09: the verifier's inclusion rules over real L1 logs (eth-tester): a batch
that moves the L1 cursor past a log it did not carry, or sits on a log older than the lag
bound, is at fault; an honest batch is not."""

from __future__ import annotations

from bridge import l1
from bridge.deploy import DeployParams, deploy_all
from bridge.inclusion import ahead_of_l1, block_lag, lagging_events, skipped_events
from bridge.watcher import L1Watcher
from devtools import l1 as dev_l1


def _logs():
    w3 = dev_l1.embedded_web3()
    a = w3.eth.accounts
    dep = deploy_all(w3, a[0], a[1], DeployParams())
    reg = dep.contract(w3, "StakingRegistry")
    for i, who in enumerate(a[2:6]):
        l1.send(w3, reg.functions.stake(bytes([i + 1]) * 32, b"\x00" * 64), who,
                value=reg.functions.stakeAmount().call())
    watcher = L1Watcher(w3, dep, sink=None, confirmations=0)  # type: ignore[arg-type]
    return watcher.fetch(dep.deploy_block, w3.eth.block_number)


def test_skipping_a_log_is_a_fault_carrying_all_is_not():
    evs = _logs()
    pos = [(e.l1_block, e.log_index) for e in evs]
    assert len(pos) == 4
    assert skipped_events(evs, set(pos), None, pos[-1]) == []
    # the sequencer dropped the second deposit but moved its cursor past it
    skipped = skipped_events(evs, {pos[0], pos[2], pos[3]}, None, pos[-1])
    assert [(e.l1_block, e.log_index) for e in skipped] == [pos[1]]
    # a batch that consumed only up to pos[1] is judged on (cursor_before, pos[1]] only
    assert skipped_events(evs, {pos[1]}, pos[0], pos[1]) == []
    assert skipped_events(evs, set(), None, None) == []  # no L1 log consumed yet


def test_sitting_on_a_log_past_the_lag_bound_is_a_fault():
    evs = _logs()
    last = evs[-1]
    cursor = (evs[1].l1_block, evs[1].log_index)
    # a batch proposed soon after: within the bound, no fault
    assert lagging_events(evs, cursor, last.l1_block + 10, max_lag_blocks=256) == []
    # proposed long after, still not past the 3rd and 4th logs: both are late
    late = lagging_events(evs, cursor, last.l1_block + 256, max_lag_blocks=256)
    assert late == evs[2:]
    assert lagging_events(evs, None, last.l1_block + 256, max_lag_blocks=256) == evs


def test_a_block_stamped_ahead_of_its_proposal_is_a_fault():
    stamps = [(1, 100), (2, 100), (3, 230)]
    assert ahead_of_l1(stamps, 110, max_clock_drift_s=120) is None
    assert ahead_of_l1(stamps, 109, max_clock_drift_s=120) == (3, 230)
    assert ahead_of_l1(stamps, 99, max_clock_drift_s=0) == (1, 100)


def test_a_block_starting_over_an_overdue_log_is_a_fault():
    """Per block, in the rollup's clock: only the oldest pending log matters, a log the
    block itself carries is judged at that block's start, carried logs stop counting."""
    evs = _logs()
    pos = [(e.l1_block, e.log_index) for e in evs]
    mined = {e.l1_block: 1_000 + 10 * i for i, e in enumerate(evs)}
    t = mined.__getitem__
    # every log carried by the block right after it was mined: never late
    honest = [(h + 1, t(e.l1_block) + 5, [p])
              for h, (e, p) in enumerate(zip(evs, pos, strict=True))]
    assert block_lag(honest, evs, None, t, max_lag_s=60) is None
    # the second log sits: the first block stamped 60 s after it was mined is at fault
    sitting = [(1, 1_005, [pos[0]]), (2, 1_060, []), (3, 1_070, []), (4, 1_100, pos[1:])]
    assert block_lag(sitting, evs, None, t, max_lag_s=60) == (3, evs[1])
    # a cursor already past a log (``start``): it is not pending
    assert block_lag([(9, 5_000, [])], evs, pos[-1], t, max_lag_s=60) is None


def test_the_protecting_window_relation():
    """docs/protocol.md "Paced phase windows": force by ``phase_not_before - max_lag_s``; a
    window protects when its floor covers the lag plus the client's reaction time."""
    from bridge.inclusion import DEFAULT_MAX_LAG_S
    from bridge.settlement import force_deadline_l1, min_protecting_window_blocks
    from state_machine.constants import MAX_WINDOW_BLOCKS
    from state_machine.pacing import window_floor_s

    assert DEFAULT_MAX_LAG_S == 3_072
    assert force_deadline_l1(10_000) == 10_000 - DEFAULT_MAX_LAG_S
    need = min_protecting_window_blocks()
    assert need == 14_685 <= MAX_WINDOW_BLOCKS  # the CLI's --require-protection figure
    assert window_floor_s(need) >= DEFAULT_MAX_LAG_S + 600 > window_floor_s(need - 1)
