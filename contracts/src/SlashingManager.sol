// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {StakingRegistry} from "./StakingRegistry.sol";
import {StateCommitment} from "./StateCommitment.sol";
import {SlashTreasury} from "./SlashTreasury.sol";
import {StateProof} from "./StateProof.sol";

/// @title SlashingManager
/// @notice Moves rollup-decided slashes onto L1 stakes. Nobody is trusted: anyone may relay an
///         account leaf `(account, pubkey, stake, cumulativeSlashed, cumulativeReward)` proven
///         against a final state root. The manager moves the new part,
///         `cumulativeSlashed - alreadySlashed[account]`, capped at the remaining L1 stake;
///         90 % goes to the SlashTreasury and 10 % to the caller.
/// @dev Idempotent: `alreadySlashed` advances by the full (uncapped) delta, so relaying the same
///      or an older (stale) leaf again has a delta <= 0 and reverts with `NothingToSlash`
///      without moving anything. Cumulative values on the rollup are monotone.
contract SlashingManager is ReentrancyGuard {
    /// @notice Basis-point share of a slash paid to the caller (10 %).
    uint256 public constant CALLER_REWARD_BPS = 1000;
    uint256 private constant BPS = 10_000;

    /// @notice The stake registry whose stakes are reduced.
    StakingRegistry public immutable registry;
    /// @notice Source of final state roots.
    StateCommitment public immutable commitment;
    /// @notice Receives 90 % of each slash.
    SlashTreasury public immutable treasury;

    /// @notice Cumulative slash (in wei, rollup accounting) already settled per address.
    mapping(address account => uint256 amount) public alreadySlashed;

    /// @notice A slash was settled: `delta` newly recorded, `amount` actually taken from the stake
    ///         (`delta` capped at the remaining stake), split into `toTreasury` and `callerReward`.
    event Slashed(
        address indexed account,
        bytes32 indexed pubkey,
        uint256 indexed batchIndex,
        uint256 cumulativeSlashed,
        uint256 delta,
        uint256 amount,
        uint256 toTreasury,
        uint256 callerReward,
        address caller
    );

    /// @notice A zero address was given.
    error ZeroAddress();
    /// @notice The batch is not final.
    error BatchNotFinal(uint256 batchIndex);
    /// @notice `pubkey` is not the key bound to `account` in the registry.
    error PubkeyMismatch(address account, bytes32 pubkey, bytes32 registered);
    /// @notice The state proof does not verify.
    error InvalidProof();
    /// @notice The leaf's cumulative slash is not above what was already settled.
    error NothingToSlash(address account, uint256 cumulativeSlashed, uint256 alreadySlashed);
    /// @notice ETH arrived from somewhere other than the registry.
    error UnexpectedSender(address sender);
    /// @notice The registry returned a different amount than requested.
    error UnexpectedAmount(uint256 expected, uint256 received);
    /// @notice An ETH transfer failed.
    error TransferFailed(address to, uint256 amount);

    /// @param registry_ The StakingRegistry (its owner must call `setSlashingManager(this)`).
    /// @param commitment_ The StateCommitment holding the rollup's batches.
    /// @param treasury_ The SlashTreasury.
    constructor(StakingRegistry registry_, StateCommitment commitment_, SlashTreasury treasury_) {
        if (address(registry_) == address(0) || address(commitment_) == address(0) || address(treasury_) == address(0))
        {
            revert ZeroAddress();
        }
        registry = registry_;
        commitment = commitment_;
        treasury = treasury_;
    }

    /// @notice Only the registry sends ETH here (inside `reduceStake`).
    receive() external payable {
        if (msg.sender != address(registry)) revert UnexpectedSender(msg.sender);
    }

    /// @notice Settle the slashes recorded for `account` in final batch `batchIndex`.
    /// @param account L1 address of the account leaf.
    /// @param pubkey Rollup public key of the account leaf (must be bound to `account`).
    /// @param stake Rollup stake field of the leaf (only hashed).
    /// @param cumulativeSlashed Rollup cumulative slash of the account (wei).
    /// @param cumulativeReward Rollup cumulative reward field (only hashed).
    /// @param batchIndex A final batch whose state root contains the leaf.
    /// @param proof State proof of the leaf in the accounts sub-tree (see StateProof).
    /// @return amount Wei taken from the stake (0 if the stake is already gone).
    function slash(
        address account,
        bytes32 pubkey,
        uint256 stake,
        uint256 cumulativeSlashed,
        uint256 cumulativeReward,
        uint256 batchIndex,
        bytes32[] calldata proof
    ) external nonReentrant returns (uint256 amount) {
        if (!commitment.isFinal(batchIndex)) revert BatchNotFinal(batchIndex);
        bytes32 registered = registry.pubkeyOf(account);
        if (registered != pubkey) revert PubkeyMismatch(account, pubkey, registered);
        bytes32 leaf = StateProof.accountLeaf(account, pubkey, stake, cumulativeSlashed, cumulativeReward);
        if (!StateProof.verify(commitment.stateRoot(batchIndex), StateProof.SUBTREE_ACCOUNTS, leaf, proof)) {
            revert InvalidProof();
        }
        amount = _settle(account, pubkey, cumulativeSlashed, batchIndex);
    }

    function _settle(address account, bytes32 pubkey, uint256 cumulativeSlashed, uint256 batchIndex)
        private
        returns (uint256 amount)
    {
        uint256 already = alreadySlashed[account];
        if (cumulativeSlashed <= already) revert NothingToSlash(account, cumulativeSlashed, already);

        uint256 delta = cumulativeSlashed - already;
        alreadySlashed[account] = cumulativeSlashed;
        uint256 available = registry.stakeOf(account);
        amount = delta < available ? delta : available;
        uint256 callerReward = (amount * CALLER_REWARD_BPS) / BPS;
        uint256 toTreasury = amount - callerReward;
        emit Slashed(account, pubkey, batchIndex, cumulativeSlashed, delta, amount, toTreasury, callerReward, msg.sender);

        if (amount > 0) {
            uint256 received = registry.reduceStake(account, amount);
            if (received != amount) revert UnexpectedAmount(amount, received);
            _send(payable(address(treasury)), toTreasury);
            _send(payable(msg.sender), callerReward);
        }
    }

    function _send(address payable to, uint256 amount) private {
        if (amount == 0) return;
        (bool ok,) = to.call{value: amount}("");
        if (!ok) revert TransferFailed(to, amount);
    }
}
