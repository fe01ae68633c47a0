// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";

/// @title StateCommitment
/// @notice The rollup's batches on L1 and an open dispute game over them.
///
///         The bonded sequencer posts consecutive batches `(index, firstHeight, lastHeight,
///         lastBlockHash, stateRoot, daHash)`. A batch is final `challengePeriod` seconds after
///         it was proposed unless it, or an earlier batch, has an unresolved dispute.
///
///         Disputes are open: during the challenge period any number of addresses may join the
///         dispute of a batch, each posting `challengeBond` (one join per address and dispute).
///         A dispute is resolved in exactly one of three ways:
///         - a verdict queued by governance (`proposeVerdict`) and executed by anyone after the
///           timelock `resolutionDelay` (`executeVerdict`). The verdict must be queued early
///           enough to become executable before the dispute's deadline
///           (`openedAt + resolutionWindow`);
///           * root wrong: the batch and all its successors are deleted (`nextIndex` rewinds),
///             every challenger gets its bond back plus an equal share of the sequencer bond
///             that backed the batch (if that bond is still held), and the sequencer must
///             `bond()` again. Disputes on deleted successors are cancelled (bonds refunded);
///           * root right: the challengers' bonds are forfeited and stay locked in this
///             contract forever (`forfeitedBonds`): never paid to the resolver, so governance
///             gains nothing by dismissing. The batch may finalize; while its challenge period
///             runs, a new dispute can still be opened on it.
///         - the default, by anyone once the deadline passed without a queued verdict
///           (`resolveByDefault`): the batch and its successors are deleted (an unproven root
///           never finalizes) and every bond, the challengers' and the sequencer's, stays with
///           its owner: nobody is punished without a verdict.
///
/// @dev Payouts are pull-based: a resolution only records the outcome of the dispute (O(1),
///      whatever the number of challengers); each challenger collects with `claimChallenge`,
///      which credits `payouts`, withdrawn with `claimPayout`. The sequencer bond is tied to a
///      bond generation: a batch can only cost the bond that was posted when it was proposed,
///      and only once (F-01). Ownership moves in two steps and cannot be renounced.
contract StateCommitment is Ownable2Step, ReentrancyGuard {
    /// @notice Challenge state of a batch.
    enum ChallengeStatus {
        None, // never challenged
        Pending, // a dispute is open
        Dismissed // the last dispute was resolved as "root right"
    }

    /// @notice How a dispute ended.
    enum Outcome {
        Open,
        Upheld, // root was wrong: challengers rewarded
        Dismissed, // root was right: challenger bonds forfeited (locked)
        Cancelled, // the batch was deleted by an earlier upheld dispute: bonds refunded
        Defaulted // no verdict in time: batch deleted, bonds refunded
    }

    /// @notice A posted batch of consecutive rollup blocks, as returned by `batch()`.
    struct Batch {
        uint256 firstHeight;
        uint256 lastHeight;
        bytes32 lastBlockHash;
        bytes32 stateRoot;
        bytes32 daHash;
        uint256 proposedAt; // block.timestamp of proposeBatch
        uint256 disputeId; // latest dispute on this batch (0: never challenged)
        ChallengeStatus challengeStatus;
    }

    /// @notice A dispute, as returned by `dispute()`.
    struct Dispute {
        uint256 batchIndex;
        uint256 openedAt;
        uint256 verdictEta; // 0 until a verdict is queued
        bool verdictRootWrong;
        Outcome outcome;
        uint256 challengers;
        uint256 rewardEach; // share of the sequencer bond per challenger (Upheld only)
    }

    struct StoredBatch {
        uint64 firstHeight;
        uint64 lastHeight;
        uint64 proposedAt;
        ChallengeStatus challengeStatus;
        uint32 bondGeneration;
        bytes32 lastBlockHash;
        bytes32 stateRoot;
        bytes32 daHash;
        uint256 disputeId;
    }

    struct StoredDispute {
        uint64 batchIndex;
        uint64 openedAt;
        uint64 verdictEta;
        bool verdictRootWrong;
        Outcome outcome;
        uint64 challengers;
        uint256 rewardEach;
    }

    /// @notice The only address allowed to bond and propose batches.
    address public immutable sequencer;
    /// @notice Exact wei the sequencer must bond before proposing.
    uint256 public immutable sequencerBond;
    /// @notice Exact wei each challenger must post.
    uint256 public immutable challengeBond;
    /// @notice Seconds after proposal during which a batch can be challenged.
    uint256 public immutable challengePeriod;
    /// @notice Seconds between a queued verdict and the earliest time it can be executed.
    uint256 public immutable resolutionDelay;
    /// @notice Seconds after a dispute opened after which the default applies.
    uint256 public immutable resolutionWindow;

    /// @notice Whether the sequencer's bond is currently posted.
    bool public sequencerBonded;
    /// @notice Incremented by every `bond()`; each batch remembers the generation backing it.
    uint32 public bondGeneration;
    /// @notice Index the next proposed batch must have (= number of live batches).
    uint256 public nextIndex;
    /// @notice Number of disputes ever opened (dispute ids start at 1).
    uint256 public disputeCount;
    /// @notice Wei of forfeited challenge bonds and rounding dust: locked here for good.
    uint256 public forfeitedBonds;
    /// @notice Wei credited to an address, withdrawable with `claimPayout`.
    mapping(address account => uint256 amount) public payouts;
    /// @notice 1 if `account` joined dispute `id` and has not collected yet, 2 once collected.
    mapping(uint256 id => mapping(address account => uint8 state)) public joined;

    mapping(uint256 index => StoredBatch) private _batches;
    mapping(uint256 id => StoredDispute) private _disputes;
    uint256[] private _pending; // indices with an open dispute (unordered, usually empty)

    /// @notice The sequencer posted its bond.
    event SequencerBonded(address indexed sequencer, uint256 amount);
    /// @notice The sequencer lost its bond to an upheld dispute.
    event SequencerBondSlashed(address indexed sequencer, uint256 amount, uint256 indexed disputeId);
    /// @notice A batch was posted.
    event BatchProposed(
        uint256 indexed index,
        uint256 firstHeight,
        uint256 lastHeight,
        bytes32 lastBlockHash,
        bytes32 stateRoot,
        bytes32 daHash,
        uint256 challengeDeadline
    );
    /// @notice `challenger` joined dispute `disputeId` on batch `index`, posting `bond` wei.
    event BatchChallenged(uint256 indexed index, address indexed challenger, uint256 bond, uint256 disputeId);
    /// @notice Governance queued a verdict, executable from `eta`.
    event VerdictQueued(uint256 indexed index, uint256 indexed disputeId, bool rootWasWrong, uint256 eta);
    /// @notice Dispute `disputeId` on batch `index` ended with `outcome`.
    event DisputeResolved(uint256 indexed index, uint256 indexed disputeId, Outcome outcome);
    /// @notice Batches `fromIndex..toIndex` (inclusive) were deleted; `nextIndex` is now `fromIndex`.
    event BatchesDeleted(uint256 indexed fromIndex, uint256 toIndex);
    /// @notice `amount` wei was credited to `account` (see `payouts`).
    event PayoutCredited(address indexed account, uint256 amount);
    /// @notice `account` withdrew `amount` wei of credited payouts.
    event PayoutClaimed(address indexed account, uint256 amount);
    /// @notice The sequencer took its bond back (it must bond again to propose).
    event SequencerBondWithdrawn(address indexed sequencer, uint256 amount);

    /// @notice The caller is not the sequencer.
    error NotSequencer(address caller);
    /// @notice The sequencer has not posted its bond.
    error SequencerNotBonded();
    /// @notice The sequencer's bond is already posted.
    error AlreadyBonded();
    /// @notice `msg.value` was not the exact bond.
    error WrongBondAmount(uint256 sent, uint256 required);
    /// @notice A batch was proposed out of order.
    error WrongBatchIndex(uint256 expected, uint256 given);
    /// @notice `firstHeight` does not follow the previous batch's `lastHeight`.
    error NonConsecutiveHeights(uint256 expectedFirstHeight, uint256 givenFirstHeight);
    /// @notice `lastHeight < firstHeight`, or a height does not fit in 64 bits.
    error InvalidHeightRange(uint256 firstHeight, uint256 lastHeight);
    /// @notice No live batch has this index.
    error BatchNotFound(uint256 index);
    /// @notice The caller already joined the open dispute of this batch.
    error AlreadyJoined(uint256 index, address challenger);
    /// @notice The challenge period of the batch is over.
    error ChallengePeriodOver(uint256 index, uint256 deadline);
    /// @notice The batch has no open dispute.
    error NoPendingChallenge(uint256 index);
    /// @notice A verdict is already queued for this dispute.
    error VerdictAlreadyQueued(uint256 index);
    /// @notice No verdict is queued for this dispute.
    error NoVerdictQueued(uint256 index);
    /// @notice The queued verdict's timelock has not elapsed.
    error VerdictNotReady(uint256 index, uint256 eta);
    /// @notice A verdict queued now could not execute before the dispute's deadline.
    error VerdictTooLate(uint256 index, uint256 deadline);
    /// @notice The dispute's deadline has not passed (or a verdict is queued).
    error DeadlineNotReached(uint256 index, uint256 deadline);
    /// @notice The dispute is not over, or the caller has nothing to collect from it.
    error NothingToCollect(uint256 disputeId, address account);
    /// @notice Nothing is credited to the caller.
    error NothingToClaim();
    /// @notice An ETH transfer failed.
    error TransferFailed(address to, uint256 amount);
    /// @notice A zero address was given.
    error ZeroAddress();
    /// @notice A period does not fit in 64 bits, or the resolution periods are inconsistent.
    error InvalidPeriod(uint256 period);
    /// @notice The bond cannot leave while a dispute is open.
    error ChallengesPending(uint256 count);
    /// @notice The bond cannot leave before the latest batch is final.
    error LatestBatchNotFinal(uint256 index);
    /// @notice Ownership cannot be renounced: disputes would never get a verdict.
    error RenounceDisabled();

    /// @param sequencer_ The sequencer's L1 address.
    /// @param sequencerBond_ Exact sequencer bond in wei.
    /// @param challengeBond_ Exact challenge bond in wei (> 0).
    /// @param challengePeriod_ Challenge window in seconds (< 2^64).
    /// @param resolutionDelay_ Verdict timelock in seconds (< resolutionWindow_).
    /// @param resolutionWindow_ Seconds a dispute may stay open before the default (< 2^64).
    constructor(
        address sequencer_,
        uint256 sequencerBond_,
        uint256 challengeBond_,
        uint256 challengePeriod_,
        uint256 resolutionDelay_,
        uint256 resolutionWindow_
    ) Ownable(msg.sender) {
        if (sequencer_ == address(0)) revert ZeroAddress();
        if (challengePeriod_ > type(uint64).max) revert InvalidPeriod(challengePeriod_);
        if (resolutionWindow_ > type(uint32).max) revert InvalidPeriod(resolutionWindow_);
        if (resolutionDelay_ >= resolutionWindow_) revert InvalidPeriod(resolutionDelay_);
        if (challengeBond_ == 0) revert WrongBondAmount(0, 1);
        sequencer = sequencer_;
        sequencerBond = sequencerBond_;
        challengeBond = challengeBond_;
        challengePeriod = challengePeriod_;
        resolutionDelay = resolutionDelay_;
        resolutionWindow = resolutionWindow_;
    }

    modifier onlySequencer() {
        if (msg.sender != sequencer) revert NotSequencer(msg.sender);
        _;
    }

    /// @notice Disabled: without an owner no verdict could be queued (F-07).
    function renounceOwnership() public view override onlyOwner {
        revert RenounceDisabled();
    }

    /// @notice Post the sequencer bond (exactly `sequencerBond`).
    function bond() external payable onlySequencer {
        if (sequencerBonded) revert AlreadyBonded();
        if (msg.value != sequencerBond) revert WrongBondAmount(msg.value, sequencerBond);
        sequencerBonded = true;
        ++bondGeneration;
        emit SequencerBonded(msg.sender, msg.value);
    }

    /// @notice Take the sequencer bond back once nothing it answers for can still be
    ///         disputed: no open dispute and the latest batch (if any) is final.
    function withdrawBond() external onlySequencer nonReentrant {
        if (!sequencerBonded) revert SequencerNotBonded();
        if (_pending.length != 0) revert ChallengesPending(_pending.length);
        if (nextIndex > 0 && !isFinal(nextIndex - 1)) revert LatestBatchNotFinal(nextIndex - 1);
        sequencerBonded = false;
        emit SequencerBondWithdrawn(msg.sender, sequencerBond);
        _send(msg.sender, sequencerBond);
    }

    /// @notice Post batch `index` covering rollup blocks `firstHeight..lastHeight`.
    /// @dev Batch 0 may start at any height; later batches start right after their predecessor.
    function proposeBatch(
        uint256 index,
        uint256 firstHeight,
        uint256 lastHeight,
        bytes32 lastBlockHash,
        bytes32 stateRoot_,
        bytes32 daHash
    ) external onlySequencer {
        if (!sequencerBonded) revert SequencerNotBonded();
        if (index != nextIndex) revert WrongBatchIndex(nextIndex, index);
        if (index > 0) {
            uint256 expected = uint256(_batches[index - 1].lastHeight) + 1;
            if (firstHeight != expected) revert NonConsecutiveHeights(expected, firstHeight);
        }
        if (lastHeight < firstHeight || lastHeight > type(uint64).max) {
            revert InvalidHeightRange(firstHeight, lastHeight);
        }
        _batches[index] = StoredBatch({
            firstHeight: uint64(firstHeight),
            lastHeight: uint64(lastHeight),
            proposedAt: uint64(block.timestamp),
            challengeStatus: ChallengeStatus.None,
            bondGeneration: bondGeneration,
            lastBlockHash: lastBlockHash,
            stateRoot: stateRoot_,
            daHash: daHash,
            disputeId: 0
        });
        nextIndex = index + 1;
        emit BatchProposed(
            index, firstHeight, lastHeight, lastBlockHash, stateRoot_, daHash, block.timestamp + challengePeriod
        );
    }

    /// @notice Join (or open) the dispute of batch `index` before its challenge period ends,
    ///         posting `challengeBond`. Any number of addresses may join the same dispute.
    function challenge(uint256 index) external payable {
        StoredBatch storage b = _live(index);
        uint256 deadline = b.proposedAt + challengePeriod;
        if (block.timestamp >= deadline) revert ChallengePeriodOver(index, deadline);
        if (msg.value != challengeBond) revert WrongBondAmount(msg.value, challengeBond);
        uint256 id = b.disputeId;
        if (b.challengeStatus != ChallengeStatus.Pending) {
            id = ++disputeCount;
            b.disputeId = id;
            b.challengeStatus = ChallengeStatus.Pending;
            _disputes[id].batchIndex = uint64(index);
            _disputes[id].openedAt = uint64(block.timestamp);
            _pending.push(index);
        }
        if (joined[id][msg.sender] != 0) revert AlreadyJoined(index, msg.sender);
        joined[id][msg.sender] = 1;
        ++_disputes[id].challengers;
        emit BatchChallenged(index, msg.sender, msg.value, id);
    }

    /// @notice Governance queues its verdict on the open dispute of batch `index`; anyone can
    ///         execute it `resolutionDelay` seconds later. One verdict per dispute.
    /// @param rootWasWrong True: the challengers were right.
    function proposeVerdict(uint256 index, bool rootWasWrong) external onlyOwner {
        StoredDispute storage d = _openDispute(index);
        if (d.verdictEta != 0) revert VerdictAlreadyQueued(index);
        uint256 deadline = uint256(d.openedAt) + resolutionWindow;
        uint256 eta = block.timestamp + resolutionDelay;
        if (eta > deadline) revert VerdictTooLate(index, deadline);
        d.verdictEta = uint64(eta);
        d.verdictRootWrong = rootWasWrong;
        emit VerdictQueued(index, _batches[index].disputeId, rootWasWrong, eta);
    }

    /// @notice Execute the queued verdict on batch `index` once its timelock elapsed (anyone).
    function executeVerdict(uint256 index) external {
        StoredDispute storage d = _openDispute(index);
        if (d.verdictEta == 0) revert NoVerdictQueued(index);
        if (block.timestamp < d.verdictEta) revert VerdictNotReady(index, d.verdictEta);
        if (d.verdictRootWrong) {
            _uphold(index);
        } else {
            _dismiss(index);
        }
    }

    /// @notice Apply the default to a dispute whose deadline passed with no verdict queued:
    ///         delete the batch and its successors, refund every bond (anyone may call).
    function resolveByDefault(uint256 index) external {
        StoredDispute storage d = _openDispute(index);
        uint256 deadline = uint256(d.openedAt) + resolutionWindow;
        if (d.verdictEta != 0 || block.timestamp < deadline) revert DeadlineNotReached(index, deadline);
        uint256 id = _batches[index].disputeId;
        _removePending(index);
        d.outcome = Outcome.Defaulted;
        emit DisputeResolved(index, id, Outcome.Defaulted);
        _deleteFrom(index);
    }

    /// @notice Collect what dispute `id` owes the caller into `payouts`: bond + reward
    ///         (upheld), bond (cancelled / defaulted), nothing (dismissed).
    function claimChallenge(uint256 id) external returns (uint256 amount) {
        StoredDispute storage d = _disputes[id];
        if (d.outcome == Outcome.Open || joined[id][msg.sender] != 1) revert NothingToCollect(id, msg.sender);
        joined[id][msg.sender] = 2;
        if (d.outcome == Outcome.Upheld) {
            amount = challengeBond + d.rewardEach;
        } else if (d.outcome != Outcome.Dismissed) {
            amount = challengeBond;
        }
        _credit(msg.sender, amount);
    }

    /// @notice Withdraw every wei credited to the caller.
    function claimPayout() external nonReentrant {
        uint256 amount = payouts[msg.sender];
        if (amount == 0) revert NothingToClaim();
        payouts[msg.sender] = 0;
        emit PayoutClaimed(msg.sender, amount);
        _send(msg.sender, amount);
    }

    /// @notice True iff batch `index` exists, its challenge period is over, it has no open
    ///         dispute and no earlier batch has one. Only final roots may be used on L1.
    function isFinal(uint256 index) public view returns (bool) {
        if (index >= nextIndex) return false;
        StoredBatch storage b = _batches[index];
        if (b.challengeStatus == ChallengeStatus.Pending) return false;
        if (block.timestamp < b.proposedAt + challengePeriod) return false;
        uint256 n = _pending.length;
        for (uint256 i = 0; i < n; ++i) {
            if (_pending[i] < index) return false;
        }
        return true;
    }

    /// @notice State root of live batch `index` (final or not: check `isFinal`).
    function stateRoot(uint256 index) external view returns (bytes32) {
        return _live(index).stateRoot;
    }

    /// @notice Full record of live batch `index`.
    function batch(uint256 index) external view returns (Batch memory) {
        StoredBatch storage b = _live(index);
        return Batch({
            firstHeight: b.firstHeight,
            lastHeight: b.lastHeight,
            lastBlockHash: b.lastBlockHash,
            stateRoot: b.stateRoot,
            daHash: b.daHash,
            proposedAt: b.proposedAt,
            disputeId: b.disputeId,
            challengeStatus: b.challengeStatus
        });
    }

    /// @notice Record of dispute `id`.
    function dispute(uint256 id) external view returns (Dispute memory) {
        StoredDispute storage d = _disputes[id];
        return Dispute({
            batchIndex: d.batchIndex,
            openedAt: d.openedAt,
            verdictEta: d.verdictEta,
            verdictRootWrong: d.verdictRootWrong,
            outcome: d.outcome,
            challengers: d.challengers,
            rewardEach: d.rewardEach
        });
    }

    /// @notice Timestamp from which batch `index` can no longer be challenged.
    function challengeDeadline(uint256 index) external view returns (uint256) {
        return _live(index).proposedAt + challengePeriod;
    }

    /// @notice Indices of batches with an open dispute (unordered).
    function pendingChallenges() external view returns (uint256[] memory) {
        return _pending;
    }

    /// @notice Number of open disputes (exits wait while it is non-zero).
    function pendingCount() external view returns (uint256) {
        return _pending.length;
    }

    function _uphold(uint256 index) private {
        StoredBatch storage b = _batches[index];
        uint256 id = b.disputeId;
        StoredDispute storage d = _disputes[id];
        _removePending(index);
        uint256 taken = 0;
        // F-01: only the bond that backed this batch, and only if it is still held.
        if (sequencerBonded && b.bondGeneration == bondGeneration) {
            sequencerBonded = false;
            taken = sequencerBond;
            emit SequencerBondSlashed(sequencer, taken, id);
        }
        uint256 each = taken / d.challengers;
        d.rewardEach = each;
        forfeitedBonds += taken - each * d.challengers;
        d.outcome = Outcome.Upheld;
        emit DisputeResolved(index, id, Outcome.Upheld);
        _deleteFrom(index);
    }

    function _dismiss(uint256 index) private {
        StoredBatch storage b = _batches[index];
        uint256 id = b.disputeId;
        StoredDispute storage d = _disputes[id];
        _removePending(index);
        b.challengeStatus = ChallengeStatus.Dismissed;
        d.outcome = Outcome.Dismissed;
        forfeitedBonds += challengeBond * d.challengers;
        emit DisputeResolved(index, id, Outcome.Dismissed);
    }

    /// @dev Delete batches `index..nextIndex-1`, cancelling (refunding) their open disputes.
    function _deleteFrom(uint256 index) private {
        uint256 i = 0;
        while (i < _pending.length) {
            uint256 idx = _pending[i];
            if (idx > index) {
                uint256 id = _batches[idx].disputeId;
                _disputes[id].outcome = Outcome.Cancelled;
                _pending[i] = _pending[_pending.length - 1];
                _pending.pop();
                emit DisputeResolved(idx, id, Outcome.Cancelled);
            } else {
                ++i;
            }
        }
        uint256 last = nextIndex - 1;
        nextIndex = index;
        emit BatchesDeleted(index, last);
    }

    function _openDispute(uint256 index) private view returns (StoredDispute storage) {
        if (index >= nextIndex || _batches[index].challengeStatus != ChallengeStatus.Pending) {
            revert NoPendingChallenge(index);
        }
        return _disputes[_batches[index].disputeId];
    }

    function _live(uint256 index) private view returns (StoredBatch storage) {
        if (index >= nextIndex) revert BatchNotFound(index);
        return _batches[index];
    }

    function _removePending(uint256 index) private {
        uint256 n = _pending.length;
        for (uint256 i = 0; i < n; ++i) {
            if (_pending[i] == index) {
                _pending[i] = _pending[n - 1];
                _pending.pop();
                return;
            }
        }
    }

    function _credit(address account, uint256 amount) private {
        if (amount == 0) return;
        payouts[account] += amount;
        emit PayoutCredited(account, amount);
    }

    function _send(address to, uint256 amount) private {
        (bool ok,) = payable(to).call{value: amount}("");
        if (!ok) revert TransferFailed(to, amount);
    }
}
