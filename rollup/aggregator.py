"""The aggregator (operator) daemon: keeps epochs moving and settles them on L1.

Why it is untrusted: it never computes a score or a model; the STF does. It only (1)
carries L1 logs into the rollup, (2) sends ``advance`` when every selected participant of
a phase has acted (deadlines close phases on their own anyway), (3) cuts and posts
batches, and (4) relays slashes proven against final roots. Anyone can run one.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from web3 import Web3

from bridge.contracts import Deployment
from bridge.l1 import Sender, send
from bridge.poster import BatchPoster
from bridge.settlement import SlashRelay
from bridge.watcher import DEFAULT_CONFIRMATIONS, L1Watcher
from rollup.client import FlockClient, NodeError

log = logging.getLogger(__name__)


def phase_complete(task: dict[str, Any], rec: dict[str, Any]) -> bool:
    """Mirror of ``state_machine.epochs.phase_complete`` over the JSON epoch record."""
    phase = task["phase"]
    if phase == "update_commit":
        return len(rec["update_commits"]) == len(rec["proposers"])
    if phase == "update_reveal":
        return len(rec["update_hashes"]) == len(rec["update_commits"])
    if phase == "vote_commit":
        return len(rec["vote_commits"]) == len(rec["voters"])
    if phase == "vote_reveal":
        return len(rec["votes"]) == len(rec["vote_commits"])
    return False


@dataclass
class Aggregator:
    signer: FlockClient
    ports: Any  # SystemSink + BatchSource + ProofSource
    w3: Web3
    deployment: Deployment
    l1_sender: Sender
    confirmations: int = DEFAULT_CONFIRMATIONS
    batch_every_s: float = 5.0
    advanced: set[tuple[int, int, str]] = field(default_factory=set)
    reported: set[tuple[int, int]] = field(default_factory=set)
    slashes: list[dict[str, Any]] = field(default_factory=list)
    last_batch_at: float = 0.0
    failures: dict[str, int] = field(default_factory=dict)
    beacon_every_s: float = 60.0
    last_beacon_at: float = 0.0

    def __post_init__(self) -> None:
        self.watcher = L1Watcher(self.w3, self.deployment, self.ports, self.confirmations)
        self.poster = BatchPoster(self.w3, self.deployment, self.l1_sender, self.ports)
        self.relay = SlashRelay(self.w3, self.deployment, self.l1_sender, self.ports)

    def advance_ready(self) -> int:
        """Send ``advance`` for every phase whose participants have all acted."""
        sent = 0
        for task in self.signer.node.tasks():
            if task["phase"] not in ("update_commit", "update_reveal", "vote_commit",
                                     "vote_reveal"):
                continue
            key = (task["task_id"], task["epoch"], task["phase"])
            if key in self.advanced:
                continue
            rec = self.signer.node.epoch(task["task_id"], task["epoch"])
            if phase_complete(task, rec):
                try:
                    self.signer.advance(task["task_id"], task["epoch"])
                    sent += 1
                except NodeError as exc:
                    log.info("advance %s refused: %s", key, exc)
                self.advanced.add(key)
        return sent

    def report_epochs(self) -> list[dict[str, Any]]:
        """Log each newly finalized epoch's verdicts once."""
        out = []
        for task in self.signer.node.tasks():
            for e in range(task["epoch"] + 1):
                if (task["task_id"], e) in self.reported:
                    continue
                try:
                    rec = self.signer.node.epoch(task["task_id"], e)
                except NodeError:
                    continue
                if rec["outcome"] == "pending":
                    continue
                self.reported.add((task["task_id"], e))
                log.info("task %d epoch %d %s (%s): %s", task["task_id"], e, rec["outcome"],
                         rec["outcome_reason"], {v[0][:10]: v[1] for v in rec["verdicts"]})
                out.append(rec)
        return out

    def post_batches(self, force: bool = False) -> list[int]:
        if not force and time.monotonic() - self.last_batch_at < self.batch_every_s:
            return []
        self.last_batch_at = time.monotonic()
        return self.poster.post_pending(cut=True)

    def post_beacon(self, force: bool = False) -> bool:
        """Post the next L1 randomness beacon when one is due (anyone may; the operator
        does, so epochs get seeds the sequencer cannot grind, see
        ``state_machine.randomness``). Returns whether one was posted."""
        if not force and time.monotonic() - self.last_beacon_at < self.beacon_every_s:
            return False
        reg = self.deployment.contract(self.w3, "StakingRegistry").functions
        due = reg.lastBeaconBlock().call() + reg.BEACON_INTERVAL().call()
        if reg.beaconCount().call() and self.w3.eth.block_number < due:
            return False
        self.last_beacon_at = time.monotonic()
        send(self.w3, reg.postBeacon(), self.l1_sender)
        return True

    def step(self) -> None:
        """One round of every duty. Each runs on its own: a failing L1 log, node call or
        transaction in one never keeps the others from running (issue 11, F-02), so
        batches are posted and slashes relayed even while ingestion is stuck."""
        self._guard("ingest", self.watcher.poll)
        self._guard("advance", self.advance_ready)
        self._guard("report", self.report_epochs)
        self._guard("post", self.post_batches)
        self._guard("beacon", self.post_beacon)
        done = self._guard("relay", self.relay.run_once)
        if done:
            self.slashes.extend(done)

    def _guard(self, duty: str, fn: Any) -> Any:
        try:
            result = fn()
        except Exception as exc:
            self.failures[duty] = self.failures.get(duty, 0) + 1
            log.exception("aggregator %s failed: %s", duty, exc)
            return None
        return result
