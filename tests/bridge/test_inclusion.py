"""Issue 11, F-09: the verifier's inclusion rules over real L1 logs (eth-tester): a batch
that moves the L1 cursor past a log it did not carry, or sits on a log older than the lag
bound, is at fault; an honest batch is not."""

from __future__ import annotations

from bridge import l1
from bridge.deploy import DeployParams, deploy_all
from bridge.inclusion import lagging_events, skipped_events
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
