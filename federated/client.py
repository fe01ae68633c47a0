"""The client daemon: poll the node, and act in whatever role the chain selected.

Why role "auto": selection is decided on chain each epoch (SPEC §3), so a client does not
choose to propose or vote; it looks itself up in the epoch record and acts. Every step is
idempotent (it checks the record before acting and derives salts and updates
deterministically), so a restarted client carries on where it stopped.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from federated.byo import TorchTrainer
from federated.roles import ClientProfile, make_update, make_vote
from rollup.client import FlockClient, NodeError, commit_update_auto, reveal_update_auto
from rollup.wire import hexb, unhex
from state_machine.aggregation import clip_update

log = logging.getLogger(__name__)

ACTIVE_PHASES = ("update_commit", "update_reveal", "vote_commit", "vote_reveal")


def _pairs(rows: list[list[Any]]) -> dict[str, Any]:
    return {r[0]: r[1] for r in rows}


@dataclass
class ClientAgent:
    """One staked participant driven by a behaviour profile."""

    client: FlockClient
    profile: ClientProfile | None = None
    role: str = "auto"  # auto | proposer | voter
    done: set[tuple[int, int, str]] = field(default_factory=set)
    log: list[dict[str, Any]] = field(default_factory=list)
    trainer: TorchTrainer | None = None  # bring your own torch model (see federated.byo)

    def __post_init__(self) -> None:
        if (self.profile is None) == (self.trainer is None):
            raise ValueError("give exactly one of profile (a behaviour) or trainer (a model)")

    @classmethod
    def with_model(cls, client: FlockClient, trainer: TorchTrainer, role: str = "auto"
                   ) -> ClientAgent:
        """A client that trains and votes with the user's own ``torch.nn.Module``; it acts
        only in tasks whose ``spec_hash`` is the hash of that module's architecture."""
        return cls(client, None, role, trainer=trainer)

    @property
    def name(self) -> str:
        return self.profile.name if self.profile is not None else f"byo:{self.me[:10]}"

    def serves(self, task: dict[str, Any]) -> bool:
        """Whether this client can work on ``task`` (a BYO model must match it by hash)."""
        if self.trainer is None:
            return True
        return self.trainer.matches(task["params"]["model"], unhex(task["spec_hash"], 32))

    def _update(self, params: dict[str, Any], global_q: np.ndarray, prev: np.ndarray,
                epoch: int) -> np.ndarray | None:
        bound = params.get("norm_bound", 0)
        if self.trainer is not None:  # honest BYO training, clipped to the task's norm bound
            return clip_update(self.trainer.propose(global_q, params["scale_bits"]), bound)
        assert self.profile is not None
        return make_update(self.profile, params["model"], params["scale_bits"], global_q, prev,
                           epoch, params["proposers_per_epoch"], params["f"], bound)

    def _vote(self, params: dict[str, Any], cand: np.ndarray, cur: np.ndarray
              ) -> tuple[int, int] | None:
        if self.trainer is not None:
            return self.trainer.vote(cand, cur, params["scale_bits"])
        assert self.profile is not None
        return make_vote(self.profile, params["model"], params["scale_bits"], cand, cur)

    @property
    def me(self) -> str:
        return hexb(self.client.pubkey)

    def _global(self, task: dict[str, Any]) -> np.ndarray:
        raw = self.client.node.blob(unhex(task["global_hash"], 32))
        return np.frombuffer(raw, dtype="<i4").astype(np.int32)

    def _prev_delta(self, task: dict[str, Any]) -> np.ndarray:
        raw = self.client.node.blob(unhex(task["prev_delta_hash"], 32))
        return np.frombuffer(raw, dtype="<i2").astype(np.int16)

    def _act(self, task_id: int, epoch: int, what: str, fn) -> None:
        key = (task_id, epoch, what)
        if key in self.done:
            return
        try:
            fn()
        except NodeError as exc:
            log.warning("%s: %s for task %d epoch %d refused: %s", self.name, what,
                        task_id, epoch, exc)
        self.done.add(key)
        self.log.append({"task": task_id, "epoch": epoch, "action": what})

    def step_task(self, task: dict[str, Any]) -> None:
        tid, e, phase = task["task_id"], task["epoch"], task["phase"]
        if phase not in ACTIVE_PHASES or not self.serves(task):
            return
        rec = self.client.node.epoch(tid, e)
        params = task["params"]
        is_prop = self.me in rec["proposers"] and self.role in ("auto", "proposer")
        is_voter = self.me in rec["voters"] and self.role in ("auto", "voter")
        if is_prop and phase == "update_commit" and self.me not in _pairs(rec["update_commits"]):
            delta = self._update(params, self._global(task), self._prev_delta(task), e)
            if delta is None:
                self.done.add((tid, e, "commit_update"))  # absent by choice
                return
            self._act(tid, e, "commit_update",
                      lambda: commit_update_auto(self.client, tid, e, delta))
        elif is_prop and phase == "update_reveal" and self.me in _pairs(rec["update_commits"]) \
                and self.me not in _pairs(rec["update_hashes"]):
            if (tid, e) not in self.client._updates:  # restarted: recompute deterministically
                before = np.frombuffer(self.client.node.blob(unhex(rec["global_before"], 32)),
                                       dtype="<i4").astype(np.int32)
                delta = self._update(params, before, self._prev_delta(task), e)
                if delta is None:
                    return
                self.client._updates[(tid, e)] = delta.astype("<i2").tobytes()
            self._act(tid, e, "reveal_update", lambda: reveal_update_auto(self.client, tid, e))
        elif is_voter and phase == "vote_commit" and self.me not in _pairs(rec["vote_commits"]):
            cand = np.frombuffer(self.client.node.blob(unhex(rec["candidate_hash"], 32)),
                                 dtype="<i4").astype(np.int32)
            vote = self._vote(params, cand, self._global(task))
            if vote is None:
                self.done.add((tid, e, "commit_vote"))
                return
            self._act(tid, e, "commit_vote", lambda: self.client.commit_vote(tid, e, *vote))
        elif is_voter and phase == "vote_reveal" and self.me in _pairs(rec["vote_commits"]) \
                and self.me not in {v[0] for v in rec["votes"]}:
            if (tid, e) in self.client._votes:
                self._act(tid, e, "reveal_vote", lambda: self.client.reveal_vote(tid, e))

    def step(self) -> None:
        """One poll over every running task."""
        for task in self.client.node.tasks():
            if task.get("status") == "running":
                self.step_task(task)
