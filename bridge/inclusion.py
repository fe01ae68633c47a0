"""Enforced inclusion of L1 events (issue 11, F-09): what a verifier checks so that the
sequencer can neither skip nor sit on a ``Staked``, ``Unbonded`` or ``TaskCreated`` log.

Why these two rules and where they come from: every state root commits to the rollup's
L1 cursor (the meta root holds ``(l1_block, log_index)`` of the last log applied), and
the L1 contracts keep a running count and hash of the logs they emitted
(``StakingRegistry.inboxCount/inboxHash``, ``RewardManager.inboxCount/inboxHash``). So a
batch states, on L1, how far it consumed the L1 logs, and two faults are provable:

* **skipping**: the cursor moved past a log that no block of the batch carries as a system
  action (the STF would refuse it later as ``l1_out_of_order``: lost for good);
* **lagging**: a log at least ``max_lag_blocks`` L1 blocks older than the batch's own
  ``proposeBatch`` is still beyond the cursor.

Either makes the batch wrong, and the verifier challenges it like a wrong root.

A third rule anchors the rollup's clock to L1 (protocol 3, ``state_machine.pacing``): phase
windows wait on block timestamps, so a batch must not state a block timestamp ahead of the
L1 block that proposed it (plus ``max_clock_drift_s``): ``timestamp_ahead_of_l1``. Together
with the STF's "timestamps never decrease" a window of ``W`` blocks then lasts at least
``window_floor_s(W) - max_clock_drift_s`` of L1 time, however fast blocks are produced.
And the lag rule gets a per-block form in that clock (protocol 3): a block stamped ``ts``
may not start while a log mined at L1 time ``<= ts - max_lag_s`` is still beyond the
cursor (``l1_inclusion_lag``). The batch form alone let a sequencer that posts one long
batch order the phase's closing block before the forced action inside it; the block form
makes "force by L1 time ``phase_not_before - max_lag_s``" a guarantee a client reads off
the state.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable
from typing import Any

from bridge.watcher import L1Event

DEFAULT_MAX_LAG_BLOCKS = 256
# how far a block timestamp may run ahead of its proposal's L1 block: 10 L1 slots. It is a
# one-off offset, not a rate (timestamps never decrease), so it shortens a window's floor by
# at most this much; it absorbs clock skew and the wait between producing and proposing.
DEFAULT_MAX_CLOCK_DRIFT_S = 120
# the per-block lag bound in seconds: ``DEFAULT_MAX_LAG_BLOCKS`` Ethereum slots of 12 s
DEFAULT_MAX_LAG_S = DEFAULT_MAX_LAG_BLOCKS * 12

Position = tuple[int, int]


def skipped_events(events: Iterable[L1Event], carried: set[Position],
                   before: Position | None, after: Position | None) -> list[L1Event]:
    """Logs in ``(before, after]`` (L1 order) that no system action of the batch carried."""
    if after is None:
        return []
    return [ev for ev in events
            if (before is None or (ev.l1_block, ev.log_index) > before)
            and (ev.l1_block, ev.log_index) <= after
            and (ev.l1_block, ev.log_index) not in carried]


def lagging_events(events: Iterable[L1Event], cursor: Position | None, proposed_block: int,
                   max_lag_blocks: int = DEFAULT_MAX_LAG_BLOCKS) -> list[L1Event]:
    """Logs beyond ``cursor`` mined at least ``max_lag_blocks`` before ``proposed_block``."""
    limit = proposed_block - max_lag_blocks
    return [ev for ev in events
            if ev.l1_block <= limit
            and (cursor is None or (ev.l1_block, ev.log_index) > cursor)]


def ahead_of_l1(stamps: Iterable[tuple[int, int]], l1_timestamp: int,
                max_clock_drift_s: int = DEFAULT_MAX_CLOCK_DRIFT_S) -> tuple[int, int] | None:
    """The first ``(height, timestamp)`` stamped later than ``l1_timestamp`` (the batch's
    proposal block) allows, or None."""
    return next(((h, ts) for h, ts in stamps if ts > l1_timestamp + max_clock_drift_s), None)


def block_lag(blocks: Iterable[tuple[int, int, Iterable[Position]]], events: list[L1Event],
              start: Position | None, l1_time: Callable[[int], int],
              max_lag_s: int = DEFAULT_MAX_LAG_S) -> tuple[int, L1Event] | None:
    """The first ``(height, log)`` where a block ``(height, timestamp, positions carried)``
    starts while ``log``, mined at L1 time ``<= timestamp - max_lag_s``, is still beyond
    the cursor (``start`` before the first block; ``events`` in L1 order; ``l1_time(n)``:
    the timestamp of L1 block ``n``). Only the oldest pending log needs a look: L1 time
    never decreases along L1 order."""
    keys = [(ev.l1_block, ev.log_index) for ev in events]
    cursor = start
    for height, ts, carried in blocks:
        i = 0 if cursor is None else bisect.bisect_right(keys, cursor)
        if i < len(events) and l1_time(events[i].l1_block) <= ts - max_lag_s:
            return height, events[i]
        cursor = max([*carried, *([cursor] if cursor is not None else [])], default=None)
    return None


class L1Index:
    """Every bridge log and the block of every ``BatchProposed``, read once and extended
    incrementally: the inclusion checks of N batches cost one scan of L1, not N (a scan
    per batch made the verifier quadratic in the chain's age)."""

    def __init__(self, watcher: Any, commitment: Any) -> None:
        self.watcher, self.sc = watcher, commitment
        self.events: list[L1Event] = []
        self.at: dict[Position, L1Event] = {}
        self.proposed: dict[int, int] = {}  # batch index -> L1 block of its latest proposal
        self.scanned = watcher.start_block - 1

    def refresh(self, upto: int) -> None:
        """Read blocks ``(scanned, upto]``."""
        if upto <= self.scanned:
            return
        frm = self.scanned + 1
        for ev in self.watcher.fetch(frm, upto):
            self.events.append(ev)
            self.at[(ev.l1_block, ev.log_index)] = ev
        for e in self.sc.events.BatchProposed.get_logs(from_block=frm, to_block=upto):
            self.proposed[int(e["args"]["index"])] = int(e["blockNumber"])
        self.scanned = upto
