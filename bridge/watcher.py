"""L1 → L2: turn confirmed ``Staked``, ``Unbonded``, ``Beacon``, ``ForcedAction`` and
``TaskCreated`` logs into system actions (``l1_deposit_pop``, ``l1_unbond``, ``l1_beacon``,
``l1_forced_action``, ``l1_task_created_v2``), in L1 order, exactly once.

Why this is exactly-once without a private cursor file: the L2 state itself records the
last injected L1 position (``l1_cursor``; the sequencer also counts queued system
actions), every log carries its ``(block, log_index)``, and the STF rejects anything at or
before the cursor. The watcher resumes from that position after any restart and only
reads logs at least ``confirmations`` blocks deep (``DEFAULT_CONFIRMATIONS`` unless the
caller knows its chain cannot reorg, e.g. the embedded dev chain), so reorgs shallower than
that depth never reach L2 (issue 11, F-11).

Why a log that cannot become an action is skipped, not retried: the contracts range-check
every field, so this cannot happen with the shipped contracts; if it ever does (another
contract version, a bug), retrying forever would stop ingestion, and with it every later
deposit, for good (F-02). Such a log is recorded in ``ignored`` with its reason and the
watcher moves past it; the rollup never saw it, so no verifier can be misled by it.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

from web3 import Web3

from bridge.contracts import Deployment
from bridge.ports import SystemSink
from state_machine.actions import (
    BeaconBody,
    Body,
    DepositPopBody,
    ForcedActionBody,
    TaskCreatedBody,
    UnbondBody,
)

log = logging.getLogger(__name__)

DEFAULT_CONFIRMATIONS = 2


@dataclass(frozen=True)
class L1Event:
    l1_block: int
    log_index: int
    typ: str
    body: Body


def _addr(a: str) -> bytes:
    return bytes.fromhex(a[2:])


def _event_to_action(ev: dict) -> L1Event:
    name = ev["event"]
    args = ev["args"]
    blk, idx, txh = int(ev["blockNumber"]), int(ev["logIndex"]), bytes(ev["transactionHash"])
    if name == "Staked":
        body: Body = DepositPopBody(_addr(args["account"]), bytes(args["pubkey"]),
                                    int(args["amount"]), bytes(args["pop"]), blk, idx, txh)
        return L1Event(blk, idx, "l1_deposit_pop", body)
    if name == "Unbonded":
        body = UnbondBody(_addr(args["account"]), bytes(args["pubkey"]), int(args["unlockTime"]),
                          blk, idx, txh)
        return L1Event(blk, idx, "l1_unbond", body)
    if name == "Beacon":
        body = BeaconBody(int(args["number"]), bytes(args["randomness"]), blk, idx, txh)
        return L1Event(blk, idx, "l1_beacon", body)
    if name == "ForcedAction":
        body = ForcedActionBody(int(args["number"]), bytes(args["action"]), blk, idx, txh)
        return L1Event(blk, idx, "l1_forced_action", body)
    if name == "TaskCreated":
        body = TaskCreatedBody(
            int(args["taskId"]), _addr(args["owner"]), bytes(args["specHash"]),
            int(args["maxEpochs"]), int(args["targetAccuracyBps"]), bytes(args["taskParams"]),
            int(args["escrow"]), blk, idx, txh,
        )
        # v2: the task expires if it idles (F-10); v1 ``l1_task_created`` is for old chains
        return L1Event(blk, idx, "l1_task_created_v2", body)
    raise ValueError(f"unexpected event {name}")


def _encodable(ev: L1Event) -> str | None:
    """Why ``ev`` cannot be carried to L2 (None when it can): its body must survive the
    action codec unchanged."""
    try:
        again = type(ev.body).from_wire(ev.body.to_wire())
    except (ValueError, OverflowError, TypeError) as exc:
        return str(exc)
    return None if again == ev.body else "body does not round-trip"


class L1Watcher:
    """Polls the registry and reward manager for new confirmed logs."""

    def __init__(self, w3: Web3, deployment: Deployment, sink: SystemSink,
                 confirmations: int = DEFAULT_CONFIRMATIONS, max_range: int = 5_000) -> None:
        self.w3 = w3
        self.sink = sink
        self.confirmations = confirmations
        self.max_range = max_range
        self.registry = deployment.contract(w3, "StakingRegistry")
        self.rewards = deployment.contract(w3, "RewardManager")
        self.start_block = deployment.deploy_block
        self.scanned_to = -1  # highest L1 block fully scanned in this process
        self.ignored: list[tuple[int, int, str, str]] = []  # (block, log, type, why)

    def fetch(self, from_block: int, to_block: int) -> list[L1Event]:
        """All relevant logs in [from_block, to_block], sorted by L1 position."""
        logs = []
        with warnings.catch_warnings():  # web3 warns about the contracts' other events
            warnings.simplefilter("ignore", UserWarning)
            for event in (self.registry.events.Staked, self.registry.events.Unbonded,
                          self.registry.events.Beacon, self.registry.events.ForcedAction,
                          self.rewards.events.TaskCreated):
                logs.extend(event.get_logs(from_block=from_block, to_block=to_block))
        events = []
        for e in logs:
            try:
                ev = _event_to_action(dict(e))
            except (ValueError, OverflowError, TypeError, KeyError) as exc:
                self._ignore(int(e["blockNumber"]), int(e["logIndex"]), str(e["event"]),
                             str(exc))
                continue
            why = _encodable(ev)
            if why is None:
                events.append(ev)
            else:  # the verifier's fetch drops it too, so it never counts as skipped
                self._ignore(ev.l1_block, ev.log_index, ev.typ, why)
        return sorted(events, key=lambda e: (e.l1_block, e.log_index))

    def _ignore(self, block: int, index: int, typ: str, why: str) -> None:
        entry = (block, index, typ, why)
        if entry not in self.ignored:
            self.ignored.append(entry)
            log.error("L1 %s at %d/%d cannot be carried to L2, skipped: %s", typ, block,
                      index, why)

    def poll(self) -> int:
        """Inject every new confirmed log; returns how many were injected."""
        head = self.w3.eth.block_number - self.confirmations
        cursor = self.sink.l1_cursor()
        start = max(self.start_block, self.scanned_to + 1)
        if cursor is not None:
            start = max(self.start_block, min(start, cursor[0]))
        injected = 0
        while start <= head:
            end = min(head, start + self.max_range - 1)
            for ev in self.fetch(start, end):
                if cursor is not None and (ev.l1_block, ev.log_index) <= cursor:
                    continue  # already on L2 (or queued for it)
                self.sink.submit_system(ev.typ, ev.body)
                cursor = (ev.l1_block, ev.log_index)
                injected += 1
                log.info("L1 %s at %d/%d injected", ev.typ, ev.l1_block, ev.log_index)
            self.scanned_to = end
            start = end + 1
        return injected
