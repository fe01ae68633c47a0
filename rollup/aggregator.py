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
from bridge.l1 import Sender
from bridge.poster import BatchPoster
from bridge.settlement import SlashRelay
from bridge.watcher import L1Watcher
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
    confirmations: int = 0
    batch_every_s: float = 5.0
    advanced: set[tuple[int, int, str]] = field(default_factory=set)
    reported: set[tuple[int, int]] = field(default_factory=set)
    slashes: list[dict[str, Any]] = field(default_factory=list)
    last_batch_at: float = 0.0

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

    def step(self) -> None:
        self.watcher.poll()
        self.advance_ready()
        self.report_epochs()
        self.post_batches()
        self.slashes.extend(self.relay.run_once())
