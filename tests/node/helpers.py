"""Shared helpers for node tests: deterministic members, system bodies, task params."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
from stf_harness import default_params

from rollup.keys import Keypair
from state_machine.actions import DepositBody, TaskCreatedBody
from state_machine.constants import FEE_PER_EPOCH, STAKE_AMOUNT
from state_machine.tasks import TaskParams

CHAIN_ID = 7


@dataclass(frozen=True)
class Member:
    name: str
    key: Keypair
    address: bytes

    @property
    def pubkey(self) -> bytes:
        return self.key.pubkey

    @property
    def seed(self) -> bytes:
        return self.key.seed


def member(name: str) -> Member:
    seed = hashlib.sha256(b"node-test-key:" + name.encode()).digest()
    return Member(name, Keypair.from_seed(seed), hashlib.sha256(name.encode()).digest()[:20])


def members(n: int, prefix: str = "m") -> list[Member]:
    return [member(f"{prefix}{i}") for i in range(n)]


def deposit_body(m: Member, l1_block: int, log_index: int = 0) -> DepositBody:
    return DepositBody(m.address, m.pubkey, STAKE_AMOUNT, l1_block, log_index, b"\x11" * 32)


def task_params(d: int, genesis: np.ndarray, proposers: int = 5, f: int = 1, voters: int = 0,
                window: int = 20) -> TaskParams:
    """The STF harness's task parameters with node-friendly defaults (wider windows)."""
    return default_params(d, genesis, proposers=proposers, f=f, voters=voters, window=window)


def task_body(task_id: int, params: TaskParams, l1_block: int, max_epochs: int = 2,
              target: int = 10_000) -> TaskCreatedBody:
    return TaskCreatedBody(task_id, b"\x22" * 20, b"\x33" * 32, max_epochs, target,
                           params.encode(), max_epochs * FEE_PER_EPOCH, l1_block, 0,
                           b"\x44" * 32)


def honest_deltas(n: int, d: int, seed: int = 0) -> list[np.ndarray]:
    """Updates pointing the same way with independent noise (cos ~ 0.5: not duplicates)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(-200, 200, d)
    return [(base + rng.integers(-200, 200, d)).astype(np.int16) for _ in range(n)]
