"""Leaf encodings and the state-root composition that L1 contracts re-derive.

Why a module of its own: these byte layouts are a contract between the STF and
Solidity (SlashingManager, RewardManager). Changing one breaks proofs on L1, so they
live in one small place that both the state and the bridge import.

State root (SPEC §9)::

    state_root = keccak256(abi.encode(accounts_root, tasks_root, epochs_root, meta_root))

A *state proof* for a leaf in sub-tree ``k`` is the leaf's Merkle proof inside that
sub-tree followed by the other ``NUM_SUBROOTS - 1`` sub-roots in their fixed order
(skipping ``k``). The contracts recompute the sub-root with ``MerkleProof.processProof``
and then the state root with ``abi.encode`` of the four sub-roots.
"""

from __future__ import annotations

from collections.abc import Sequence

from state_machine.crypto import abi_address, abi_bytes32, abi_uint, keccak256
from state_machine.merkle import process_proof

SUBROOT_ACCOUNTS = 0
SUBROOT_TASKS = 1
SUBROOT_EPOCHS = 2
SUBROOT_META = 3
NUM_SUBROOTS = 4


def account_leaf(
    l1_address: bytes, pubkey: bytes, stake: int, cumulative_slashed: int, cumulative_reward: int
) -> bytes:
    """keccak256(abi.encode(address, bytes32, uint256, uint256, uint256)) (SPEC §8, §9)."""
    return keccak256(
        abi_address(l1_address),
        abi_bytes32(pubkey),
        abi_uint(stake),
        abi_uint(cumulative_slashed),
        abi_uint(cumulative_reward),
    )


def task_leaf(
    task_id: int,
    owner: bytes,
    escrow_wei: int,
    charged_wei: int,
    treasury_wei: int,
    status: int,
    detail_hash: bytes,
) -> bytes:
    """keccak256(abi.encode(uint256 taskId, address owner, uint256 escrow, uint256 charged,
    uint256 treasuryShare, uint256 status, bytes32 detailHash)).

    ``status``: 0 running, 1 completed, 2 rejected (invalid parameters; nothing charged).
    RewardManager refunds ``escrow - charged`` and forwards ``treasuryShare`` once the
    status is non-zero; ``detailHash`` commits to the rest of the task's L2 state.
    """
    return keccak256(
        abi_uint(task_id),
        abi_address(owner),
        abi_uint(escrow_wei),
        abi_uint(charged_wei),
        abi_uint(treasury_wei),
        abi_uint(status),
        abi_bytes32(detail_hash),
    )


def epoch_leaf(task_id: int, epoch: int, record_hash: bytes) -> bytes:
    """keccak256(abi.encode(uint256 taskId, uint256 epoch, bytes32 recordHash))."""
    return keccak256(abi_uint(task_id), abi_uint(epoch), abi_bytes32(record_hash))


def compose_state_root(subroots: Sequence[bytes]) -> bytes:
    """keccak256(abi.encode(accounts_root, tasks_root, epochs_root, meta_root))."""
    if len(subroots) != NUM_SUBROOTS:
        raise ValueError("wrong number of sub-roots")
    return keccak256(*(abi_bytes32(r) for r in subroots))


def state_proof(subroots: Sequence[bytes], which: int, inner_proof: Sequence[bytes]) -> list[bytes]:
    """Proof of a leaf of sub-tree ``which`` against the state root."""
    return list(inner_proof) + [r for k, r in enumerate(subroots) if k != which]


def verify_state_proof(leaf: bytes, proof: Sequence[bytes], which: int, state_root: bytes) -> bool:
    """Python mirror of the contracts' ``StateProof.verify``."""
    if len(proof) < NUM_SUBROOTS - 1:
        return False
    inner = proof[: len(proof) - (NUM_SUBROOTS - 1)]
    others = list(proof[len(proof) - (NUM_SUBROOTS - 1) :])
    sub = process_proof(leaf, inner)
    roots = [*others[:which], sub, *others[which:]]
    return compose_state_root(roots) == state_root
