// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {StateCommitment} from "./StateCommitment.sol";
import {StateProof} from "./StateProof.sol";

/// @notice What the registry asks the SlashingManager before letting a stake leave.
interface ISlashLedger {
    function alreadySlashed(address account) external view returns (uint256);
}

/// @title StakingRegistry
/// @notice Clients stake exactly `stakeAmount` wei on L1, binding an ed25519 public key used
///         on the rollup. Unbonding starts a timelock of `unbondPeriod` seconds; the remaining
///         (post-slash) stake can be withdrawn only after it, and only once the exit is tied
///         to finality (F-03): no dispute may be open on StateCommitment, and the caller proves
///         its account leaf in a final batch proposed at or after `unlockTime -
///         challengePeriod` whose `cumulativeSlashed` is fully settled on L1. Because the
///         rollup stops selecting an account once its unbond is processed and every task
///         phase fits inside `unbondPeriod - challengePeriod` (checked at deploy), every slash
///         the account can still receive is in that leaf. Only the SlashingManager can reduce
///         a stake.
/// @dev Binding rule: the first stake permanently binds `account -> pubkey`: an address that
///      withdrew can stake again only with the same pubkey. Which address owns a pubkey is
///      decided by the rollup, from the proof of possession `pop` each stake carries (an
///      ed25519 signature of the key over the staking address, F-15): L1 cannot verify
///      ed25519 cheaply, so it does not let the first staker of a pubkey lock it (a
///      front-runner copying a victim's pubkey would otherwise block the victim for good);
///      the rollup rejects a deposit whose `pop` does not verify, and such a stake can
///      never prove an account leaf, so it can never leave. This keeps the rollup's per-account cumulative
///      counters (`cumulativeSlashed`, `cumulativeReward`) and the L1 managers' per-address
///      "already settled" counters referring to the same identity forever.
contract StakingRegistry is Ownable, ReentrancyGuard {
    /// @notice Lifecycle of an address' stake.
    enum Status {
        None, // never staked, or withdrawn
        Active, // staked, counts on the rollup
        Unbonding // unbond() called, waiting for unlockTime
    }

    /// @notice Per-address stake record.
    struct StakeInfo {
        uint256 amount; // remaining stake in wei (after slashes)
        uint256 unlockTime; // set by unbond()
        Status status;
    }

    /// @notice The exact amount (wei) `stake` requires.
    uint256 public immutable stakeAmount;
    /// @notice Seconds between `unbond()` and the earliest `withdraw()`.
    uint256 public immutable unbondPeriod;
    /// @notice The rollup's batches: exits need a final batch and no open dispute.
    StateCommitment public immutable commitment;
    /// @notice The only address allowed to call `reduceStake`; set once by the owner.
    address public slashingManager;
    /// @notice L1 blocks between two randomness beacons.
    uint256 public constant BEACON_INTERVAL = 32;
    /// @notice Number of `Beacon` logs emitted so far.
    uint256 public beaconCount;
    /// @notice L1 block of the latest beacon.
    uint256 public lastBeaconBlock;
    /// @notice Largest action `forceInclude` accepts, in bytes: commits, votes and v2 reveals
    ///         (hashes, not update bytes) fit in a few hundred bytes.
    uint256 public constant MAX_FORCED_ACTION_BYTES = 1024;
    /// @notice Number of `ForcedAction` logs emitted so far.
    uint256 public forcedCount;
    /// @notice Number of bridge logs (`Staked`, `Unbonded`, `Beacon`, `ForcedAction`) emitted
    ///         so far (F-09).
    uint256 public inboxCount;
    /// @notice Running hash over the bridge logs: `keccak256(abi.encode(prev, kind, account,
    ///         pubkey, value))` (kind 1 stake, 2 unbond, 3 beacon, 4 forced action with
    ///         `pubkey = keccak256(action)` and `value` its number); lets a batch be checked for
    ///         a skipped or withheld log.
    bytes32 public inboxHash;

    mapping(address account => StakeInfo) private _stakes;
    mapping(address account => bytes32 pubkey) private _pubkeyOf;
    mapping(bytes32 pubkey => address account) private _accountOf;

    /// @notice A stake of `amount` wei was deposited by `account` for `pubkey`, with the
    ///         key's proof of possession `pop` (checked by the rollup).
    event Staked(address indexed account, bytes32 indexed pubkey, uint256 amount, bytes pop);
    /// @notice `account` started unbonding; it can withdraw at `unlockTime`.
    event Unbonded(address indexed account, bytes32 indexed pubkey, uint256 unlockTime);
    /// @notice `account` withdrew its remaining stake of `amount` wei.
    event Withdrawn(address indexed account, bytes32 indexed pubkey, uint256 amount);
    /// @notice The SlashingManager took `amount` wei from `account`'s stake; `remaining` is left.
    event StakeReduced(address indexed account, bytes32 indexed pubkey, uint256 amount, uint256 remaining);
    /// @notice The SlashingManager address was set.
    event SlashingManagerSet(address indexed slashingManager);
    /// @notice Randomness beacon `number`: this block's `prevrandao`, carried to the rollup,
    ///         where it seeds epoch selection (nobody on the rollup can grind it).
    event Beacon(uint256 indexed number, bytes32 randomness);
    /// @notice Forced inclusion number `number` (F-12): `action` is a client's signed rollup
    ///         action (canonical msgpack, as sent to the sequencer). The rollup must apply it
    ///         with the same checks as a mempool action, in L1 order like every bridge log.
    event ForcedAction(uint256 indexed number, address indexed sender, bytes action);

    /// @notice `msg.value` was not exactly `stakeAmount`.
    error WrongStakeAmount(uint256 sent, uint256 required);
    /// @notice The pubkey is the zero word.
    error InvalidPubkey();
    /// @notice The proof of possession is not a 64-byte ed25519 signature.
    error InvalidPop(uint256 length);
    /// @notice The address already has an active or unbonding stake.
    error AlreadyStaked(address account);
    /// @notice The address is bound to another pubkey.
    error AccountBoundToOtherPubkey(address account, bytes32 boundPubkey);
    /// @notice The address has no active stake.
    error NotActive(address account);
    /// @notice The address is not unbonding.
    error NotUnbonding(address account);
    /// @notice The unbonding timelock has not elapsed.
    error StillLocked(uint256 unlockTime, uint256 nowTime);
    /// @notice The caller is not the SlashingManager.
    error NotSlashingManager(address caller);
    /// @notice The SlashingManager was already set.
    error SlashingManagerAlreadySet();
    /// @notice A zero address was given.
    error ZeroAddress();
    /// @notice A zero amount was given.
    error ZeroAmount();
    /// @notice The stake is smaller than the requested reduction.
    error InsufficientStake(uint256 available, uint256 requested);
    /// @notice An ETH transfer failed.
    error TransferFailed(address to, uint256 amount);
    /// @notice A period does not fit in 64 bits.
    error InvalidPeriod(uint256 period);
    /// @notice The next beacon can be posted from block `nextBlock`.
    error BeaconTooSoon(uint256 nextBlock);
    /// @notice A forced action must not be empty.
    error EmptyForcedAction();
    /// @notice A forced action is longer than `MAX_FORCED_ACTION_BYTES`.
    error ForcedActionTooLong(uint256 length, uint256 max);
    /// @notice `unbondPeriod` must exceed `challengePeriod + resolutionWindow` of the commitment.
    error PeriodsDoNotFit(uint256 unbondPeriod, uint256 challengePeriod, uint256 resolutionWindow);
    /// @notice Exits wait while a dispute is open on StateCommitment.
    error ChallengesPending(uint256 count);
    /// @notice The batch is not final.
    error BatchNotFinal(uint256 batchIndex);
    /// @notice The batch was proposed before `notBefore`: it may miss slashes.
    error BatchTooOld(uint256 batchIndex, uint256 proposedAt, uint256 notBefore);
    /// @notice The state proof does not verify.
    error InvalidProof();
    /// @notice The proven slash is not yet settled on L1 (relay it with `SlashingManager.slash`).
    error SlashNotSettled(uint256 cumulativeSlashed, uint256 alreadySlashed);

    /// @param stakeAmount_ Exact stake in wei (must be > 0).
    /// @param unbondPeriod_ Unbonding timelock in seconds (< 2^64).
    /// @param commitment_ The StateCommitment; `unbondPeriod_` must exceed its challenge period
    ///        plus resolution window, so a dispute opened on the last batch before the unlock is
    ///        over before the stake can leave.
    constructor(uint256 stakeAmount_, uint256 unbondPeriod_, StateCommitment commitment_) Ownable(msg.sender) {
        if (stakeAmount_ == 0) revert ZeroAmount();
        if (address(commitment_) == address(0)) revert ZeroAddress();
        if (unbondPeriod_ > type(uint64).max) revert InvalidPeriod(unbondPeriod_);
        uint256 cp = commitment_.challengePeriod();
        uint256 rw = commitment_.resolutionWindow();
        if (unbondPeriod_ <= cp + rw) revert PeriodsDoNotFit(unbondPeriod_, cp, rw);
        stakeAmount = stakeAmount_;
        unbondPeriod = unbondPeriod_;
        commitment = commitment_;
    }

    modifier onlySlashingManager() {
        if (msg.sender != slashingManager) revert NotSlashingManager(msg.sender);
        _;
    }

    /// @notice Set the SlashingManager, once.
    /// @param manager The SlashingManager contract.
    function setSlashingManager(address manager) external onlyOwner {
        if (manager == address(0)) revert ZeroAddress();
        if (slashingManager != address(0)) revert SlashingManagerAlreadySet();
        slashingManager = manager;
        emit SlashingManagerSet(manager);
    }

    /// @notice Stake exactly `stakeAmount` wei, binding `pubkey` to the caller.
    /// @param pubkey The caller's ed25519 public key on the rollup.
    /// @param pop ed25519 signature by `pubkey` over `"flockchain/pop/v1" || uint64 chainId ||
    ///        caller` (proof of possession, verified by the rollup).
    function stake(bytes32 pubkey, bytes calldata pop) external payable {
        if (msg.value != stakeAmount) revert WrongStakeAmount(msg.value, stakeAmount);
        if (pubkey == bytes32(0)) revert InvalidPubkey();
        if (pop.length != 64) revert InvalidPop(pop.length);
        StakeInfo storage s = _stakes[msg.sender];
        if (s.status != Status.None) revert AlreadyStaked(msg.sender);
        bytes32 boundKey = _pubkeyOf[msg.sender];
        if (boundKey != bytes32(0) && boundKey != pubkey) revert AccountBoundToOtherPubkey(msg.sender, boundKey);

        if (_accountOf[pubkey] == address(0)) _accountOf[pubkey] = msg.sender;
        _pubkeyOf[msg.sender] = pubkey;
        s.amount = msg.value;
        s.unlockTime = 0;
        s.status = Status.Active;
        _record(1, msg.sender, pubkey, uint256(keccak256(abi.encode(msg.value, pop))));
        emit Staked(msg.sender, pubkey, msg.value, pop);
    }

    /// @notice Post the next randomness beacon (anyone; at most one per `BEACON_INTERVAL`
    ///         blocks). Its value is `block.prevrandao`, fixed by L1, not by the caller.
    function postBeacon() external {
        uint256 next = lastBeaconBlock + BEACON_INTERVAL;
        if (beaconCount != 0 && block.number < next) revert BeaconTooSoon(next);
        lastBeaconBlock = block.number;
        uint256 n = ++beaconCount;
        bytes32 r = bytes32(block.prevrandao);
        _record(3, address(0), r, n);
        emit Beacon(n, r);
    }

    /// @notice Force the rollup to consider a signed action a censoring sequencer leaves out
    ///         (F-12). Anyone may call it (the action carries its own signature); L1 checks
    ///         only its size, the rollup checks everything else and records a rejection if
    ///         the action is invalid. Counted into `inboxCount`/`inboxHash` like every bridge
    ///         log, so a batch that skips or sits on it is challengeable.
    /// @param action The signed action's wire bytes (`SignedAction.encode()`).
    function forceInclude(bytes calldata action) external {
        uint256 len = action.length;
        if (len == 0) revert EmptyForcedAction();
        if (len > MAX_FORCED_ACTION_BYTES) revert ForcedActionTooLong(len, MAX_FORCED_ACTION_BYTES);
        uint256 n = ++forcedCount;
        _record(4, msg.sender, keccak256(action), n);
        emit ForcedAction(n, msg.sender, action);
    }

    /// @notice Start the unbonding timelock; the stake stays slashable until withdrawn.
    function unbond() external {
        StakeInfo storage s = _stakes[msg.sender];
        if (s.status != Status.Active) revert NotActive(msg.sender);
        uint256 unlock = block.timestamp + unbondPeriod;
        s.unlockTime = unlock;
        s.status = Status.Unbonding;
        _record(2, msg.sender, _pubkeyOf[msg.sender], unlock);
        emit Unbonded(msg.sender, _pubkeyOf[msg.sender], unlock);
    }

    /// @notice Withdraw the remaining (post-slash) stake once the timelock has elapsed and the
    ///         exit is tied to finality (see the contract notice).
    /// @param stake_ Rollup stake field of the caller's account leaf (only hashed).
    /// @param cumulativeSlashed Rollup cumulative slash of the caller (must be settled on L1).
    /// @param cumulativeReward Rollup cumulative reward field (only hashed).
    /// @param batchIndex A final batch proposed at or after `unlockTime - challengePeriod`.
    /// @param proof State proof of the leaf (see StateProof).
    function withdraw(
        uint256 stake_,
        uint256 cumulativeSlashed,
        uint256 cumulativeReward,
        uint256 batchIndex,
        bytes32[] calldata proof
    ) external nonReentrant {
        StakeInfo storage s = _stakes[msg.sender];
        if (s.status != Status.Unbonding) revert NotUnbonding(msg.sender);
        if (block.timestamp < s.unlockTime) revert StillLocked(s.unlockTime, block.timestamp);
        uint256 amount = s.amount;
        if (amount > 0) _checkExit(s.unlockTime, stake_, cumulativeSlashed, cumulativeReward, batchIndex, proof);
        // Effects before the interaction.
        delete _stakes[msg.sender];
        emit Withdrawn(msg.sender, _pubkeyOf[msg.sender], amount);
        if (amount > 0) {
            (bool ok,) = payable(msg.sender).call{value: amount}("");
            if (!ok) revert TransferFailed(msg.sender, amount);
        }
    }

    /// @dev The exit rule: no open dispute, a final recent batch proving the caller's leaf,
    ///      and every wei of its proven slash already moved on L1.
    function _checkExit(
        uint256 unlockTime,
        uint256 stake_,
        uint256 cumulativeSlashed,
        uint256 cumulativeReward,
        uint256 batchIndex,
        bytes32[] calldata proof
    ) private view {
        uint256 pending = commitment.pendingCount();
        if (pending != 0) revert ChallengesPending(pending);
        if (!commitment.isFinal(batchIndex)) revert BatchNotFinal(batchIndex);
        uint256 notBefore = unlockTime - commitment.challengePeriod();
        uint256 proposedAt = commitment.batch(batchIndex).proposedAt;
        if (proposedAt < notBefore) revert BatchTooOld(batchIndex, proposedAt, notBefore);
        bytes32 leaf =
            StateProof.accountLeaf(msg.sender, _pubkeyOf[msg.sender], stake_, cumulativeSlashed, cumulativeReward);
        if (!StateProof.verify(commitment.stateRoot(batchIndex), StateProof.SUBTREE_ACCOUNTS, leaf, proof)) {
            revert InvalidProof();
        }
        uint256 settled = ISlashLedger(slashingManager).alreadySlashed(msg.sender);
        if (cumulativeSlashed > settled) revert SlashNotSettled(cumulativeSlashed, settled);
    }

    /// @notice Take `amount` wei out of `account`'s stake and send it to the SlashingManager.
    /// @param account The slashed address.
    /// @param amount Wei to take; must be > 0 and at most the remaining stake.
    /// @return The amount sent to the caller.
    function reduceStake(address account, uint256 amount) external onlySlashingManager nonReentrant returns (uint256) {
        if (amount == 0) revert ZeroAmount();
        StakeInfo storage s = _stakes[account];
        uint256 available = s.amount;
        if (amount > available) revert InsufficientStake(available, amount);
        uint256 remaining = available - amount;
        s.amount = remaining;
        emit StakeReduced(account, _pubkeyOf[account], amount, remaining);
        (bool ok,) = payable(msg.sender).call{value: amount}("");
        if (!ok) revert TransferFailed(msg.sender, amount);
        return amount;
    }

    function _record(uint256 kind, address account, bytes32 pubkey, uint256 value) private {
        inboxHash = keccak256(abi.encode(inboxHash, kind, account, pubkey, value));
        ++inboxCount;
    }

    /// @notice Remaining stake of `account` in wei (0 once withdrawn).
    function stakeOf(address account) external view returns (uint256) {
        return _stakes[account].amount;
    }

    /// @notice The pubkey bound to `account` (zero if it never staked). The binding is permanent.
    function pubkeyOf(address account) external view returns (bytes32) {
        return _pubkeyOf[account];
    }

    /// @notice The first address that staked `pubkey` (zero if unused). Informational only:
    ///         the rollup binds a pubkey to the first address with a valid proof of possession.
    function accountOf(bytes32 pubkey) external view returns (address) {
        return _accountOf[pubkey];
    }

    /// @notice Full stake record of `account`.
    function stakeInfo(address account) external view returns (StakeInfo memory) {
        return _stakes[account];
    }
}
