// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {StateCommitment} from "./StateCommitment.sol";
import {RewardTreasury} from "./RewardTreasury.sol";
import {StateProof} from "./StateProof.sol";

/// @title RewardManager
/// @notice Task creation and pull-based settlement of rewards and refunds.
///         - `createTask` takes exactly `baseFee + maxEpochs * feePerEpoch`; the base fee goes to
///           the RewardTreasury at once, the rest is held as the task's escrow.
///         - `claim` pays an account `cumulativeReward - alreadyClaimed[account]`, proven by its
///           account leaf in a final state root. Anyone may trigger it; funds go to the account.
///         - `refund` settles a finished task once, proven by its task leaf: `escrow - charged`
///           to the task owner (credited: pulled with `withdrawRefund`, so an owner that
///           refuses ETH strands nothing but its own refund) and `treasuryShare` to the
///           RewardTreasury. The remaining `charged - treasuryShare` stays here to back the
///           participants' rewards.
///         Every field of `TaskCreated` is range-checked here so that the log always encodes
///         as the rollup's `l1_task_created_v2` action (u64 ids and counts, bps <= 10000,
///         bounded params): one log can never stop the bridge (F-02).
contract RewardManager is ReentrancyGuard {
    /// @notice Task states in the rollup's task leaf.
    uint256 public constant TASK_RUNNING = 0;
    /// @notice Largest accepted `maxEpochs` (keeps the fee arithmetic far from overflow).
    uint256 public constant MAX_EPOCHS = type(uint32).max;
    /// @notice Largest accepted `targetAccuracyBps` (100 %).
    uint256 public constant MAX_TARGET_ACCURACY_BPS = 10_000;
    /// @notice Largest accepted `taskParams` length in bytes.
    uint256 public constant MAX_TASK_PARAMS_BYTES = 4096;

    /// @notice A task as recorded on L1 at creation.
    struct Task {
        address owner;
        bool refunded;
        uint256 escrow;
    }

    /// @notice Source of final state roots.
    StateCommitment public immutable commitment;
    /// @notice Receives base fees and protocol shares.
    RewardTreasury public immutable treasury;
    /// @notice Non-refundable fee per task (wei).
    uint256 public immutable baseFee;
    /// @notice Escrow per requested epoch (wei).
    uint256 public immutable feePerEpoch;

    /// @notice Id the next task will get (ids start at 1).
    uint256 public nextTaskId = 1;
    /// @notice Cumulative reward already paid per address.
    mapping(address account => uint256 amount) public alreadyClaimed;
    /// @notice Number of `TaskCreated` logs emitted so far (F-09).
    uint256 public inboxCount;
    /// @notice Running hash over the `TaskCreated` logs: `keccak256(abi.encode(prev, taskId,
    ///         owner, specHash, maxEpochs, targetAccuracyBps, keccak256(taskParams), escrow))`.
    bytes32 public inboxHash;
    /// @notice Refunds credited to task owners, withdrawn with `withdrawRefund`.
    mapping(address owner => uint256 amount) public refunds;

    mapping(uint256 taskId => Task) private _tasks;

    /// @notice A task was created; the rollup derives its `l1_task_created_v2` action from this log.
    event TaskCreated(
        uint256 indexed taskId,
        address indexed owner,
        bytes32 specHash,
        uint256 maxEpochs,
        uint256 targetAccuracyBps,
        bytes taskParams,
        uint256 escrow
    );
    /// @notice The base fee of `taskId` was forwarded to the RewardTreasury.
    event BaseFeeCollected(uint256 indexed taskId, uint256 amount);
    /// @notice `amount` wei of rewards was paid to `account` (cumulative now `cumulativeReward`).
    event RewardClaimed(address indexed account, uint256 indexed batchIndex, uint256 cumulativeReward, uint256 amount);
    /// @notice A finished task was settled: `refund` to the owner, `treasuryShare` to the treasury.
    event TaskRefunded(
        uint256 indexed taskId, address indexed owner, uint256 indexed batchIndex, uint256 refund, uint256 treasuryShare
    );

    /// @notice `owner` withdrew `amount` wei of credited refunds.
    event RefundWithdrawn(address indexed owner, uint256 amount);

    /// @notice A zero address was given.
    error ZeroAddress();
    /// @notice `targetAccuracyBps` is above 10000.
    error InvalidTargetAccuracy(uint256 targetAccuracyBps);
    /// @notice `taskParams` is longer than `MAX_TASK_PARAMS_BYTES`.
    error TaskParamsTooLong(uint256 length);
    /// @notice Nothing is credited to the caller.
    error NothingToWithdraw(address owner);
    /// @notice `maxEpochs` is 0 or above `MAX_EPOCHS`.
    error InvalidMaxEpochs(uint256 maxEpochs);
    /// @notice `msg.value` was not exactly `baseFee + maxEpochs * feePerEpoch`.
    error WrongPayment(uint256 sent, uint256 required);
    /// @notice The batch is not final.
    error BatchNotFinal(uint256 batchIndex);
    /// @notice The state proof does not verify.
    error InvalidProof();
    /// @notice The leaf's cumulative reward is not above what was already paid.
    error NothingToClaim(address account, uint256 cumulativeReward, uint256 alreadyClaimed);
    /// @notice No task with this id was created on L1.
    error UnknownTask(uint256 taskId);
    /// @notice The leaf's owner or escrow differ from the L1 record.
    error TaskMismatch(uint256 taskId);
    /// @notice The task is still running on the rollup.
    error TaskNotFinished(uint256 taskId);
    /// @notice `charged > escrow` or `treasuryShare > charged`.
    error InvalidSettlement(uint256 escrow, uint256 charged, uint256 treasuryShare);
    /// @notice The task was already refunded.
    error AlreadyRefunded(uint256 taskId);
    /// @notice An ETH transfer failed.
    error TransferFailed(address to, uint256 amount);

    /// @param commitment_ The StateCommitment holding the rollup's batches.
    /// @param treasury_ The RewardTreasury.
    /// @param baseFee_ Non-refundable fee per task (wei).
    /// @param feePerEpoch_ Escrow per epoch (wei).
    constructor(StateCommitment commitment_, RewardTreasury treasury_, uint256 baseFee_, uint256 feePerEpoch_) {
        if (address(commitment_) == address(0) || address(treasury_) == address(0)) revert ZeroAddress();
        commitment = commitment_;
        treasury = treasury_;
        baseFee = baseFee_;
        feePerEpoch = feePerEpoch_;
    }

    /// @notice Wei `createTask` requires for `maxEpochs` epochs.
    function taskPrice(uint256 maxEpochs) public view returns (uint256) {
        if (maxEpochs == 0 || maxEpochs > MAX_EPOCHS) revert InvalidMaxEpochs(maxEpochs);
        return baseFee + maxEpochs * feePerEpoch;
    }

    /// @notice Create a training task, paying exactly `taskPrice(maxEpochs)`.
    /// @param specHash Hash of the model spec the clients know.
    /// @param maxEpochs Epochs paid for (>= 1).
    /// @param targetAccuracyBps Accuracy at which the task completes early (validated on L2).
    /// @param taskParams Opaque task parameters interpreted by the rollup.
    /// @return taskId The new task's id.
    function createTask(bytes32 specHash, uint256 maxEpochs, uint256 targetAccuracyBps, bytes calldata taskParams)
        external
        payable
        nonReentrant
        returns (uint256 taskId)
    {
        uint256 price = taskPrice(maxEpochs);
        if (targetAccuracyBps > MAX_TARGET_ACCURACY_BPS) revert InvalidTargetAccuracy(targetAccuracyBps);
        if (taskParams.length > MAX_TASK_PARAMS_BYTES) revert TaskParamsTooLong(taskParams.length);
        if (msg.value != price) revert WrongPayment(msg.value, price);
        uint256 escrow = price - baseFee;
        taskId = nextTaskId++;
        _tasks[taskId] = Task({owner: msg.sender, refunded: false, escrow: escrow});
        inboxHash = keccak256(
            abi.encode(
                inboxHash, taskId, msg.sender, specHash, maxEpochs, targetAccuracyBps, keccak256(taskParams), escrow
            )
        );
        ++inboxCount;
        emit TaskCreated(taskId, msg.sender, specHash, maxEpochs, targetAccuracyBps, taskParams, escrow);
        emit BaseFeeCollected(taskId, baseFee);
        _send(payable(address(treasury)), baseFee);
    }

    /// @notice Pay `account` its rewards up to `cumulativeReward` proven in final batch `batchIndex`.
    /// @return amount Wei paid.
    function claim(
        address account,
        bytes32 pubkey,
        uint256 stake,
        uint256 cumulativeSlashed,
        uint256 cumulativeReward,
        uint256 batchIndex,
        bytes32[] calldata proof
    ) external nonReentrant returns (uint256 amount) {
        _checkProof(
            batchIndex,
            StateProof.SUBTREE_ACCOUNTS,
            StateProof.accountLeaf(account, pubkey, stake, cumulativeSlashed, cumulativeReward),
            proof
        );
        uint256 already = alreadyClaimed[account];
        if (cumulativeReward <= already) revert NothingToClaim(account, cumulativeReward, already);
        amount = cumulativeReward - already;
        alreadyClaimed[account] = cumulativeReward;
        emit RewardClaimed(account, batchIndex, cumulativeReward, amount);
        _send(payable(account), amount);
    }

    /// @notice Settle finished task `taskId` from its task leaf in final batch `batchIndex`.
    function refund(
        uint256 taskId,
        address owner,
        uint256 escrow,
        uint256 charged,
        uint256 treasuryShare,
        uint256 status,
        bytes32 detailHash,
        uint256 batchIndex,
        bytes32[] calldata proof
    ) external nonReentrant {
        Task storage t = _tasks[taskId];
        if (t.owner == address(0)) revert UnknownTask(taskId);
        if (t.refunded) revert AlreadyRefunded(taskId);
        if (t.owner != owner || t.escrow != escrow) revert TaskMismatch(taskId);
        if (status == TASK_RUNNING) revert TaskNotFinished(taskId);
        if (charged > escrow || treasuryShare > charged) revert InvalidSettlement(escrow, charged, treasuryShare);
        _checkProof(
            batchIndex,
            StateProof.SUBTREE_TASKS,
            StateProof.taskLeaf(taskId, owner, escrow, charged, treasuryShare, status, detailHash),
            proof
        );
        t.refunded = true;
        uint256 back = escrow - charged;
        emit TaskRefunded(taskId, owner, batchIndex, back, treasuryShare);
        _send(payable(address(treasury)), treasuryShare);
        if (back > 0) refunds[owner] += back;
    }

    /// @notice Withdraw every refund credited to the caller.
    function withdrawRefund() external nonReentrant {
        uint256 amount = refunds[msg.sender];
        if (amount == 0) revert NothingToWithdraw(msg.sender);
        refunds[msg.sender] = 0;
        emit RefundWithdrawn(msg.sender, amount);
        _send(payable(msg.sender), amount);
    }

    /// @notice L1 record of task `taskId` (zero owner if unknown).
    function task(uint256 taskId) external view returns (Task memory) {
        return _tasks[taskId];
    }

    function _checkProof(uint256 batchIndex, uint256 subtree, bytes32 leaf, bytes32[] calldata proof) private view {
        if (!commitment.isFinal(batchIndex)) revert BatchNotFinal(batchIndex);
        if (!StateProof.verify(commitment.stateRoot(batchIndex), subtree, leaf, proof)) revert InvalidProof();
    }

    function _send(address payable to, uint256 amount) private {
        if (amount == 0) return;
        (bool ok,) = to.call{value: amount}("");
        if (!ok) revert TransferFailed(to, amount);
    }
}
