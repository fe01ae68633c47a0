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
///         90 % goes to the SlashTreasury and 10 % to the caller. A slashed account relaying
///         its own slash gets no reward (everything goes to the treasury, F-13); `slashMany`
///         settles many leaves in one transaction and pays the caller once, so the reward of
///         a batch covers its gas (F-14).
/// @dev Idempotent: `alreadySlashed` advances by the amount actually taken, so relaying the same
///      or an older (stale) leaf again moves nothing, and debt that could not be taken
///      (the stake was already gone) stays owed and is taken from the next stake of the same
///      account (F-04). Cumulative values on the rollup are monotone.
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

    /// @notice One leaf to settle in `slashMany`.
    struct SlashInput {
        address account;
        bytes32 pubkey;
        uint256 stake;
        uint256 cumulativeSlashed;
        uint256 cumulativeReward;
        uint256 batchIndex;
        bytes32[] proof;
    }

    /// @notice Cumulative slash (in wei, rollup accounting) already taken per address.
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
    /// @notice The account owes `owed` wei but has no stake left to take it from.
    error NothingToTake(address account, uint256 owed);
    /// @notice `slashMany` found nothing to move in any of its leaves.
    error NothingSettled();
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
        _verify(account, pubkey, stake, cumulativeSlashed, cumulativeReward, batchIndex, proof);
        uint256 owed = _owed(account, cumulativeSlashed);
        amount = _take(account, pubkey, cumulativeSlashed, owed, batchIndex);
        if (amount == 0) revert NothingToTake(account, owed);
        _send(payable(msg.sender), _callerReward(account, amount));
    }

    /// @notice Settle many leaves in one transaction; leaves with nothing left to move are
    ///         skipped (so a front-run leaf does not sink the batch), a bad proof reverts all.
    ///         The caller's reward (10 % of each slash of another account) is paid once.
    /// @return total Wei taken over all leaves.
    function slashMany(SlashInput[] calldata items) external nonReentrant returns (uint256 total) {
        uint256 reward = 0;
        for (uint256 i = 0; i < items.length; ++i) {
            SlashInput calldata it = items[i];
            _verify(it.account, it.pubkey, it.stake, it.cumulativeSlashed, it.cumulativeReward, it.batchIndex, it.proof);
            uint256 owed = _outstanding(it.account, it.cumulativeSlashed);
            if (owed == 0) continue;
            uint256 amount = _take(it.account, it.pubkey, it.cumulativeSlashed, owed, it.batchIndex);
            total += amount;
            reward += _callerReward(it.account, amount);
        }
        if (total == 0) revert NothingSettled();
        _send(payable(msg.sender), reward);
    }

    function _verify(
        address account,
        bytes32 pubkey,
        uint256 stake,
        uint256 cumulativeSlashed,
        uint256 cumulativeReward,
        uint256 batchIndex,
        bytes32[] calldata proof
    ) private view {
        if (!commitment.isFinal(batchIndex)) revert BatchNotFinal(batchIndex);
        bytes32 registered = registry.pubkeyOf(account);
        if (registered != pubkey) revert PubkeyMismatch(account, pubkey, registered);
        bytes32 leaf = StateProof.accountLeaf(account, pubkey, stake, cumulativeSlashed, cumulativeReward);
        if (!StateProof.verify(commitment.stateRoot(batchIndex), StateProof.SUBTREE_ACCOUNTS, leaf, proof)) {
            revert InvalidProof();
        }
    }

    /// @dev Proven cumulative slash not yet settled on L1 (0 when nothing is outstanding).
    function _outstanding(address account, uint256 cumulativeSlashed) private view returns (uint256) {
        uint256 already = alreadySlashed[account];
        return cumulativeSlashed > already ? cumulativeSlashed - already : 0;
    }

    /// @dev `_outstanding`, reverting when there is nothing to settle (single `slash`).
    function _owed(address account, uint256 cumulativeSlashed) private view returns (uint256) {
        uint256 owed = _outstanding(account, cumulativeSlashed);
        if (owed == 0) revert NothingToSlash(account, cumulativeSlashed, alreadySlashed[account]);
        return owed;
    }

    /// @dev Take `min(owed, stake)` from the stake; the treasury share is sent here, the
    ///      caller's share stays in this contract until the caller is paid (same transaction).
    function _take(address account, bytes32 pubkey, uint256 cumulativeSlashed, uint256 owed, uint256 batchIndex)
        private
        returns (uint256 amount)
    {
        uint256 available = registry.stakeOf(account);
        amount = owed < available ? owed : available;
        if (amount == 0) return 0;
        alreadySlashed[account] += amount; // F-04: only what was actually taken
        uint256 callerReward = _callerReward(account, amount);
        uint256 toTreasury = amount - callerReward;
        emit Slashed(account, pubkey, batchIndex, cumulativeSlashed, owed, amount, toTreasury, callerReward, msg.sender);
        uint256 received = registry.reduceStake(account, amount);
        if (received != amount) revert UnexpectedAmount(amount, received);
        _send(payable(address(treasury)), toTreasury);
    }

    /// @dev 10 % to the relayer, nothing when the slashed account relays its own slash.
    function _callerReward(address account, uint256 amount) private view returns (uint256) {
        if (msg.sender == account) return 0;
        return (amount * CALLER_REWARD_BPS) / BPS;
    }

    function _send(address payable to, uint256 amount) private {
        if (amount == 0) return;
        (bool ok,) = to.call{value: amount}("");
        if (!ok) revert TransferFailed(to, amount);
    }
}
