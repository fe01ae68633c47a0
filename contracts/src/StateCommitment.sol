// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";

/// @title StateCommitment
/// @notice The rollup's batches on L1. The bonded sequencer posts consecutive batches
///         `(index, firstHeight, lastHeight, lastBlockHash, stateRoot, daHash)`. A batch is final
///         `challengePeriod` seconds after it was proposed unless it, or an earlier batch, has an
///         unresolved challenge. Anyone may challenge a batch before its period ends by posting
///         `challengeBond`; governance (the owner) resolves challenges:
///         - root was wrong: the sequencer's bond and the challenger's bond are credited to the
///           challenger, the batch and all its successors are deleted (`nextIndex` rewinds to
///           the challenged index), challenges on deleted successors are cancelled with their
///           bonds credited back, and the sequencer must `bond()` again before proposing;
///         - frivolous: the challenger's bond is forfeited to the owner (governance treasury)
///           and the batch becomes finalizable again (it cannot be challenged a second time).
/// @dev Bonds move by pull payment (`claimPayout`), so a challenger that cannot receive ETH
///      can never block a resolution. Deleted batches are removed logically: every view
///      treats `index >= nextIndex` as absent and `proposeBatch` overwrites the whole slot.
contract StateCommitment is Ownable, ReentrancyGuard {
    /// @notice Challenge state of a batch.
    enum ChallengeStatus {
        None, // never challenged
        Pending, // challenged, waiting for governance
        Dismissed // challenge resolved as frivolous; batch may finalize
    }

    /// @notice A posted batch of consecutive rollup blocks, as returned by `batch()`.
    struct Batch {
        uint256 firstHeight;
        uint256 lastHeight;
        bytes32 lastBlockHash;
        bytes32 stateRoot;
        bytes32 daHash;
        uint256 proposedAt; // block.timestamp of proposeBatch
        address challenger; // zero unless challenged
        ChallengeStatus challengeStatus;
    }

    /// @dev Storage form of a batch: 5 slots, of which a proposal writes 4 (heights, time and
    ///      status share one; the challenger slot stays zero until a challenge).
    struct StoredBatch {
        uint64 firstHeight;
        uint64 lastHeight;
        uint64 proposedAt;
        ChallengeStatus challengeStatus;
        address challenger;
        bytes32 lastBlockHash;
        bytes32 stateRoot;
        bytes32 daHash;
    }

    /// @notice The only address allowed to bond and propose batches.
    address public immutable sequencer;
    /// @notice Exact wei the sequencer must bond before proposing.
    uint256 public immutable sequencerBond;
    /// @notice Exact wei a challenger must post.
    uint256 public immutable challengeBond;
    /// @notice Seconds after proposal during which a batch can be challenged.
    uint256 public immutable challengePeriod;

    /// @notice Whether the sequencer's bond is currently posted.
    bool public sequencerBonded;
    /// @notice Index the next proposed batch must have (= number of live batches).
    uint256 public nextIndex;
    /// @notice Wei credited to an address by challenge resolutions, withdrawable with `claimPayout`.
    mapping(address account => uint256 amount) public payouts;

    mapping(uint256 index => StoredBatch) private _batches;
    uint256[] private _pending; // indices with an unresolved challenge (unordered, usually empty)

    /// @notice The sequencer posted its bond.
    event SequencerBonded(address indexed sequencer, uint256 amount);
    /// @notice The sequencer lost its bond to a successful challenge.
    event SequencerBondSlashed(address indexed sequencer, uint256 amount, address indexed challenger);
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
    /// @notice `challenger` challenged batch `index`, posting `bond` wei.
    event BatchChallenged(uint256 indexed index, address indexed challenger, uint256 bond);
    /// @notice Governance resolved the challenge on batch `index`.
    event ChallengeResolved(uint256 indexed index, address indexed challenger, bool rootWasWrong);
    /// @notice A challenge was cancelled because its batch was deleted; its bond was credited back.
    event ChallengeCancelled(uint256 indexed index, address indexed challenger, uint256 refund);
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
    /// @notice The batch already has an unresolved challenge.
    error AlreadyChallenged(uint256 index);
    /// @notice The batch's challenge was already resolved (as frivolous).
    error ChallengeAlreadyResolved(uint256 index);
    /// @notice The challenge period of the batch is over.
    error ChallengePeriodOver(uint256 index, uint256 deadline);
    /// @notice The batch has no unresolved challenge.
    error NoPendingChallenge(uint256 index);
    /// @notice Nothing is credited to the caller.
    error NothingToClaim();
    /// @notice An ETH transfer failed.
    error TransferFailed(address to, uint256 amount);
    /// @notice A zero address was given.
    error ZeroAddress();
    /// @notice The challenge period does not fit in 64 bits.
    error InvalidPeriod(uint256 period);
    /// @notice The bond cannot leave while a challenge is unresolved.
    error ChallengesPending(uint256 count);
    /// @notice The bond cannot leave before the latest batch is final.
    error LatestBatchNotFinal(uint256 index);

    /// @param sequencer_ The sequencer's L1 address.
    /// @param sequencerBond_ Exact sequencer bond in wei.
    /// @param challengeBond_ Exact challenge bond in wei.
    /// @param challengePeriod_ Challenge window in seconds (< 2^64).
    constructor(address sequencer_, uint256 sequencerBond_, uint256 challengeBond_, uint256 challengePeriod_)
        Ownable(msg.sender)
    {
        if (sequencer_ == address(0)) revert ZeroAddress();
        if (challengePeriod_ > type(uint64).max) revert InvalidPeriod(challengePeriod_);
        sequencer = sequencer_;
        sequencerBond = sequencerBond_;
        challengeBond = challengeBond_;
        challengePeriod = challengePeriod_;
    }

    modifier onlySequencer() {
        if (msg.sender != sequencer) revert NotSequencer(msg.sender);
        _;
    }

    /// @notice Post the sequencer bond (exactly `sequencerBond`).
    function bond() external payable onlySequencer {
        if (sequencerBonded) revert AlreadyBonded();
        if (msg.value != sequencerBond) revert WrongBondAmount(msg.value, sequencerBond);
        sequencerBonded = true;
        emit SequencerBonded(msg.sender, msg.value);
    }

    /// @notice Take the sequencer bond back once nothing it answers for can still be
    ///         disputed: no unresolved challenge and the latest batch (if any) is final.
    ///         Proposing again needs a new `bond()`.
    function withdrawBond() external onlySequencer nonReentrant {
        if (!sequencerBonded) revert SequencerNotBonded();
        if (_pending.length != 0) revert ChallengesPending(_pending.length);
        if (nextIndex > 0 && !isFinal(nextIndex - 1)) revert LatestBatchNotFinal(nextIndex - 1);
        sequencerBonded = false;
        emit SequencerBondWithdrawn(msg.sender, sequencerBond);
        (bool ok,) = payable(msg.sender).call{value: sequencerBond}("");
        if (!ok) revert TransferFailed(msg.sender, sequencerBond);
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
            challenger: address(0),
            lastBlockHash: lastBlockHash,
            stateRoot: stateRoot_,
            daHash: daHash
        });
        nextIndex = index + 1;
        emit BatchProposed(
            index, firstHeight, lastHeight, lastBlockHash, stateRoot_, daHash, block.timestamp + challengePeriod
        );
    }

    /// @notice Challenge batch `index` before its challenge period ends, posting `challengeBond`.
    function challenge(uint256 index) external payable {
        StoredBatch storage b = _live(index);
        if (b.challengeStatus == ChallengeStatus.Pending) revert AlreadyChallenged(index);
        if (b.challengeStatus == ChallengeStatus.Dismissed) revert ChallengeAlreadyResolved(index);
        uint256 deadline = b.proposedAt + challengePeriod;
        if (block.timestamp >= deadline) revert ChallengePeriodOver(index, deadline);
        if (msg.value != challengeBond) revert WrongBondAmount(msg.value, challengeBond);

        b.challenger = msg.sender;
        b.challengeStatus = ChallengeStatus.Pending;
        _pending.push(index);
        emit BatchChallenged(index, msg.sender, msg.value);
    }

    /// @notice Governance verdict on the pending challenge of batch `index`.
    /// @param rootWasWrong True: the challenger was right (see contract docs for the effects).
    function resolveChallenge(uint256 index, bool rootWasWrong) external onlyOwner {
        if (index >= nextIndex || _batches[index].challengeStatus != ChallengeStatus.Pending) {
            revert NoPendingChallenge(index);
        }
        StoredBatch storage b = _batches[index];
        address challenger = b.challenger;
        _removePending(index);

        if (rootWasWrong) {
            // Cancel challenges on the successors that are about to be deleted.
            uint256 i = 0;
            while (i < _pending.length) {
                uint256 idx = _pending[i];
                if (idx > index) {
                    address other = _batches[idx].challenger;
                    _pending[i] = _pending[_pending.length - 1];
                    _pending.pop();
                    _credit(other, challengeBond);
                    emit ChallengeCancelled(idx, other, challengeBond);
                } else {
                    ++i;
                }
            }
            uint256 last = nextIndex - 1;
            nextIndex = index;
            delete _batches[index];
            sequencerBonded = false;
            emit ChallengeResolved(index, challenger, true);
            emit BatchesDeleted(index, last);
            emit SequencerBondSlashed(sequencer, sequencerBond, challenger);
            _credit(challenger, challengeBond + sequencerBond);
        } else {
            b.challengeStatus = ChallengeStatus.Dismissed;
            emit ChallengeResolved(index, challenger, false);
            _credit(owner(), challengeBond);
        }
    }

    /// @notice Withdraw every wei credited to the caller by challenge resolutions.
    function claimPayout() external nonReentrant {
        uint256 amount = payouts[msg.sender];
        if (amount == 0) revert NothingToClaim();
        payouts[msg.sender] = 0;
        emit PayoutClaimed(msg.sender, amount);
        (bool ok,) = payable(msg.sender).call{value: amount}("");
        if (!ok) revert TransferFailed(msg.sender, amount);
    }

    /// @notice True iff batch `index` exists, its challenge period is over, it has no unresolved
    ///         challenge and no earlier batch has one. Only final roots may be used on L1.
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
            challenger: b.challenger,
            challengeStatus: b.challengeStatus
        });
    }

    /// @notice Timestamp from which batch `index` can no longer be challenged.
    function challengeDeadline(uint256 index) external view returns (uint256) {
        return _live(index).proposedAt + challengePeriod;
    }

    /// @notice Indices of batches with an unresolved challenge (unordered).
    function pendingChallenges() external view returns (uint256[] memory) {
        return _pending;
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
}
