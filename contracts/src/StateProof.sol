// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";

/// @title StateProof
/// @notice Verifies that a leaf belongs to a FLockChain rollup state root.
/// @dev Mirrors `state_machine.leaves.verify_state_proof`. The state root is
///      `keccak256(abi.encode(accountsRoot, tasksRoot, epochsRoot, metaRoot))`; every sub-root
///      is the root of an OpenZeppelin-style (commutative keccak256) Merkle tree. A proof for
///      a leaf of sub-tree `subtree` is the leaf's sibling path inside that sub-tree followed by
///      the other three sub-roots in their fixed order, skipping `subtree`.
library StateProof {
    /// @notice Number of sub-roots composed into the state root.
    uint256 internal constant NUM_SUBROOTS = 4;
    /// @notice Sub-tree index of the account leaves.
    uint256 internal constant SUBTREE_ACCOUNTS = 0;
    /// @notice Sub-tree index of the task leaves.
    uint256 internal constant SUBTREE_TASKS = 1;

    /// @notice True iff `leaf` is in sub-tree `subtree` of the state committed to by `stateRoot`.
    /// @param stateRoot The rollup state root (from StateCommitment).
    /// @param subtree Which sub-tree the leaf lives in (0 accounts, 1 tasks, 2 epochs, 3 meta).
    /// @param leaf The leaf hash.
    /// @param proof Inner sibling path, then the three other sub-roots in order.
    /// @return ok Whether the proof recomposes `stateRoot`.
    function verify(bytes32 stateRoot, uint256 subtree, bytes32 leaf, bytes32[] calldata proof)
        internal
        pure
        returns (bool ok)
    {
        if (subtree >= NUM_SUBROOTS || proof.length < NUM_SUBROOTS - 1) return false;
        uint256 innerLen = proof.length - (NUM_SUBROOTS - 1);
        bytes32 subRoot = MerkleProof.processProofCalldata(proof[:innerLen], leaf);

        bytes32[NUM_SUBROOTS] memory roots;
        uint256 o = innerLen;
        for (uint256 k = 0; k < NUM_SUBROOTS; ++k) {
            if (k == subtree) {
                roots[k] = subRoot;
            } else {
                roots[k] = proof[o];
                ++o;
            }
        }
        return keccak256(abi.encode(roots[0], roots[1], roots[2], roots[3])) == stateRoot;
    }

    /// @notice The account leaf: `keccak256(abi.encode(l1Address, pubkey, stake,
    ///         cumulativeSlashed, cumulativeReward))` (mirrors `leaves.account_leaf`).
    function accountLeaf(
        address l1Address,
        bytes32 pubkey,
        uint256 stake,
        uint256 cumulativeSlashed,
        uint256 cumulativeReward
    ) internal pure returns (bytes32) {
        return keccak256(abi.encode(l1Address, pubkey, stake, cumulativeSlashed, cumulativeReward));
    }

    /// @notice The task leaf: `keccak256(abi.encode(taskId, owner, escrow, charged,
    ///         treasuryShare, status, detailHash))` (mirrors `leaves.task_leaf`).
    function taskLeaf(
        uint256 taskId,
        address owner,
        uint256 escrow,
        uint256 charged,
        uint256 treasuryShare,
        uint256 status,
        bytes32 detailHash
    ) internal pure returns (bytes32) {
        return keccak256(abi.encode(taskId, owner, escrow, charged, treasuryShare, status, detailHash));
    }
}
