"""Epoch selection seeds no single party can grind (issue 11).

Why: the v1 seed is ``keccak256(state_root_before_block || task || epoch)``; the sequencer
chooses which actions precede that block, so it can try orderings until its own keys are
selected. Once the rollup has applied an L1 randomness beacon (``l1_beacon``: L1's
``prevrandao`` of the block that called ``StakingRegistry.postBeacon``), the seed is
``keccak256("flockchain/seed/v1" || randomness || beacon_number || task || epoch)``: no
rollup state the sequencer can reorder enters it. Beacons are L1 logs, so they are applied
in L1 order, cannot be forged (verifiers compare them with the log) nor skipped or held
back past the lag bound (``bridge/inclusion.py``). What the sequencer keeps is a choice
among the few beacons it may still apply before an epoch opens (at most lag/interval =
256/32 = 8), against v1's unbounded grinding; L1 proposers keep their one-bit withholding
bias. A chain that never saw a beacon keeps the v1 seed, so recorded v1 chains replay.
"""

from __future__ import annotations

from state_machine.crypto import abi_uint, keccak256
from state_machine.state import State

SEED_DOMAIN = b"flockchain/seed/v1"


def legacy_seed(pre_root: bytes, task_id: int, epoch: int) -> bytes:
    """v1: keccak256(state_root_at_open || task_id || epoch)."""
    return keccak256(pre_root, abi_uint(task_id), abi_uint(epoch))


def beacon_seed(randomness: bytes, number: int, task_id: int, epoch: int) -> bytes:
    """keccak256(domain || L1 randomness || beacon number || task_id || epoch)."""
    return keccak256(SEED_DOMAIN, randomness, abi_uint(number), abi_uint(task_id),
                     abi_uint(epoch))


def epoch_seed(state: State, pre_root: bytes, task_id: int, epoch: int) -> bytes:
    """The selection seed of an epoch opening now."""
    number, randomness = state.beacon
    if number == 0:
        return legacy_seed(pre_root, task_id, epoch)
    return beacon_seed(randomness, number, task_id, epoch)
