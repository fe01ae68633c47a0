"""StateCommitment: bonded sequencer, consecutive batches, challenges and their resolution."""

from __future__ import annotations

import pytest
from web3 import Web3

from bridge import l1

from .helpers import PARAMS, SLACK, Env, reverts

SEQ_BOND = PARAMS.sequencer_bond
CH_BOND = PARAMS.challenge_bond
PERIOD = PARAMS.challenge_period
ZERO = "0x" + "00" * 20


def root(n: int) -> bytes:
    return Web3.keccak(text=f"root-{n}")


def propose_raw(env: Env, index: int, first: int, last: int, sender: str | None = None):
    return env.tx(
        env.commitment.functions.proposeBatch(
            index, first, last, Web3.keccak(last), root(index), Web3.keccak(b"da")
        ),
        sender or env.sequencer,
    )


def test_bond(env: Env) -> None:
    sc = env.commitment.functions
    assert not sc.sequencerBonded().call()
    with reverts("NotSequencer", env.other):
        env.tx(sc.bond(), env.other, SEQ_BOND)
    for wrong in (0, SEQ_BOND - 1, SEQ_BOND + 1):
        with reverts("WrongBondAmount", wrong, SEQ_BOND):
            env.tx(sc.bond(), env.sequencer, wrong)
    receipt = env.tx(sc.bond(), env.sequencer, SEQ_BOND)
    assert env.events(env.commitment, "SequencerBonded", receipt) == [
        {"sequencer": env.sequencer, "amount": SEQ_BOND}
    ]
    assert sc.sequencerBonded().call()
    assert env.balance(env.commitment) == SEQ_BOND
    with reverts("AlreadyBonded"):
        env.tx(sc.bond(), env.sequencer, SEQ_BOND)


def test_unbonded_sequencer_cannot_propose(env: Env) -> None:
    with reverts("SequencerNotBonded"):
        propose_raw(env, 0, 1, 5)


def test_non_sequencer_cannot_propose(env: Env) -> None:
    env.bond()
    for who in (env.owner, env.other):
        with reverts("NotSequencer", who):
            propose_raw(env, 0, 1, 5, sender=who)


def test_propose_and_views(env: Env) -> None:
    env.bond()
    sc = env.commitment.functions
    assert sc.nextIndex().call() == 0
    with reverts("BatchNotFound", 0):
        sc.stateRoot(0).call()
    receipt = propose_raw(env, 0, 0, 0)  # batch 0 may start anywhere, single block ok
    ts = env.w3.eth.get_block(receipt["blockNumber"])["timestamp"]
    [ev] = env.events(env.commitment, "BatchProposed", receipt)
    assert ev == {
        "index": 0,
        "firstHeight": 0,
        "lastHeight": 0,
        "lastBlockHash": Web3.keccak(0),
        "stateRoot": root(0),
        "daHash": Web3.keccak(b"da"),
        "challengeDeadline": ts + PERIOD,
    }
    assert sc.batch(0).call() == (0, 0, Web3.keccak(0), root(0), Web3.keccak(b"da"), ts, 0, 0)
    assert sc.stateRoot(0).call() == root(0)
    assert sc.challengeDeadline(0).call() == ts + PERIOD
    assert sc.nextIndex().call() == 1
    propose_raw(env, 1, 1, 10)
    propose_raw(env, 2, 11, 11)
    assert sc.nextIndex().call() == 3
    assert sc.batch(2).call()[:2] == (11, 11)


def test_batch_zero_any_first_height(env: Env) -> None:
    env.bond()
    propose_raw(env, 0, 1000, 1009)
    propose_raw(env, 1, 1010, 1010)
    assert env.commitment.functions.batch(1).call()[:2] == (1010, 1010)


def test_out_of_order_batches(env: Env) -> None:
    env.bond()
    with reverts("WrongBatchIndex", 0, 1):
        propose_raw(env, 1, 1, 5)
    propose_raw(env, 0, 1, 5)
    with reverts("WrongBatchIndex", 1, 0):  # replay of an index
        propose_raw(env, 0, 6, 9)
    with reverts("WrongBatchIndex", 1, 2):  # skipping ahead
        propose_raw(env, 2, 6, 9)
    with reverts("NonConsecutiveHeights", 6, 7):  # gap
        propose_raw(env, 1, 7, 9)
    with reverts("NonConsecutiveHeights", 6, 5):  # overlap
        propose_raw(env, 1, 5, 9)
    with reverts("InvalidHeightRange", 6, 5):
        propose_raw(env, 1, 6, 5)
    with reverts("InvalidHeightRange", 6, 2**64):
        propose_raw(env, 1, 6, 2**64)
    propose_raw(env, 1, 6, 9)


def test_finality_after_period(env: Env) -> None:
    sc = env.commitment.functions
    assert not sc.isFinal(0).call()  # does not exist
    i = env.propose(root(0))
    assert not sc.isFinal(i).call()
    env.advance(PERIOD - SLACK)
    assert not sc.isFinal(i).call()
    env.advance(SLACK + 1)
    assert sc.isFinal(i).call()
    assert not sc.isFinal(i + 1).call()


def test_challenge(env: Env) -> None:
    i = env.propose(root(0))
    sc = env.commitment.functions
    receipt = env.tx(sc.challenge(i), env.challenger, CH_BOND)
    assert env.events(env.commitment, "BatchChallenged", receipt) == [
        {"index": i, "challenger": env.challenger, "bond": CH_BOND, "disputeId": 1}
    ]
    assert sc.batch(i).call()[6:] == (1, 1)
    assert sc.pendingChallenges().call() == [i]
    assert sc.pendingCount().call() == 1
    assert env.balance(env.commitment) == SEQ_BOND + CH_BOND
    with reverts("AlreadyJoined", i, env.challenger):
        env.tx(sc.challenge(i), env.challenger, CH_BOND)
    env.tx(sc.challenge(i), env.other, CH_BOND)  # open game: others join the same dispute
    assert sc.dispute(1).call()[5] == 2


@pytest.mark.parametrize("value", [0, CH_BOND - 1, CH_BOND + 1])
def test_challenge_wrong_bond(env: Env, value: int) -> None:
    i = env.propose(root(0))
    with reverts("WrongBondAmount", value, CH_BOND):
        env.tx(env.commitment.functions.challenge(i), env.challenger, value)


def test_challenge_missing_batch(env: Env) -> None:
    with reverts("BatchNotFound", 0):
        env.tx(env.commitment.functions.challenge(0), env.challenger, CH_BOND)
    env.propose(root(0))
    with reverts("BatchNotFound", 1):
        env.tx(env.commitment.functions.challenge(1), env.challenger, CH_BOND)


def test_late_challenge(env: Env) -> None:
    i = env.propose(root(0))
    deadline = env.commitment.functions.challengeDeadline(i).call()
    env.finalize()
    with reverts("ChallengePeriodOver", i, deadline):
        env.tx(env.commitment.functions.challenge(i), env.challenger, CH_BOND)


def test_pending_challenge_blocks_batch_and_successors(env: Env) -> None:
    sc = env.commitment.functions
    b0 = env.propose(root(0))
    b1 = env.propose(root(1))
    env.tx(sc.challenge(b1), env.challenger, CH_BOND)
    b2 = env.propose(root(2))
    env.finalize()
    assert sc.isFinal(b0).call()  # predecessors are unaffected
    assert not sc.isFinal(b1).call()  # challenged, unresolved
    assert not sc.isFinal(b2).call()  # successor of an unresolved challenge


def test_resolve_access(env: Env) -> None:
    i = env.propose(root(0))
    sc = env.commitment.functions
    with reverts("NoPendingChallenge", i):
        env.tx(sc.proposeVerdict(i, True), env.owner)
    with reverts("NoPendingChallenge", 5):
        env.tx(sc.proposeVerdict(5, False), env.owner)
    with reverts("NoPendingChallenge", i):
        env.tx(sc.executeVerdict(i), env.other)
    with reverts("NoPendingChallenge", i):
        env.tx(sc.resolveByDefault(i), env.other)
    env.tx(sc.challenge(i), env.challenger, CH_BOND)
    for who in (env.challenger, env.sequencer, env.other):
        with reverts("OwnableUnauthorizedAccount", who):
            env.tx(sc.proposeVerdict(i, True), who)
    with reverts("NoVerdictQueued", i):
        env.tx(sc.executeVerdict(i), env.other)
    receipt = env.tx(sc.proposeVerdict(i, True), env.owner)
    [ev] = env.events(env.commitment, "VerdictQueued", receipt)
    with reverts("VerdictAlreadyQueued", i):
        env.tx(sc.proposeVerdict(i, False), env.owner)
    with reverts("VerdictNotReady", i, ev["eta"]):  # the timelock
        env.tx(sc.executeVerdict(i), env.other)


def test_resolve_root_wrong(env: Env) -> None:
    sc = env.commitment.functions
    b0 = env.propose(root(0))
    b1 = env.propose(root(1))
    b2 = env.propose(root(2))
    b3 = env.propose(root(3))
    env.tx(sc.challenge(b1), env.challenger, CH_BOND)
    env.tx(sc.challenge(b3), env.other, CH_BOND)  # on a successor: cancelled and refunded
    receipt = env.resolve(b1, True)

    assert env.events(env.commitment, "DisputeResolved", receipt) == [
        {"index": b1, "disputeId": 1, "outcome": 1},
        {"index": b3, "disputeId": 2, "outcome": 3},
    ]
    assert env.events(env.commitment, "BatchesDeleted", receipt) == [
        {"fromIndex": b1, "toIndex": b3}
    ]
    assert env.events(env.commitment, "SequencerBondSlashed", receipt) == [
        {"sequencer": env.sequencer, "amount": SEQ_BOND, "disputeId": 1}
    ]
    # Batch b1 and its successors are gone; b0 stays.
    assert sc.nextIndex().call() == b1
    for i in (b1, b2, b3):
        with reverts("BatchNotFound", i):
            sc.batch(i).call()
        assert not sc.isFinal(i).call()
    assert sc.stateRoot(b0).call() == root(0)
    assert sc.pendingChallenges().call() == []
    assert not sc.sequencerBonded().call()

    # Bonds: the challenger gets the sequencer bond plus its own back; the other its own.
    env.tx(sc.claimChallenge(1), env.challenger)
    env.tx(sc.claimChallenge(2), env.other)
    with reverts("NothingToCollect", 1, env.challenger):
        env.tx(sc.claimChallenge(1), env.challenger)
    with reverts("NothingToCollect", 1, env.other):
        env.tx(sc.claimChallenge(1), env.other)
    assert sc.payouts(env.challenger).call() == SEQ_BOND + CH_BOND
    assert sc.payouts(env.other).call() == CH_BOND
    for who, amount in ((env.challenger, SEQ_BOND + CH_BOND), (env.other, CH_BOND)):
        before = env.balance(who)
        receipt = env.tx(sc.claimPayout(), who)
        assert env.balance(who) == before + amount - l1.gas_cost(receipt)
        assert env.events(env.commitment, "PayoutClaimed", receipt) == [
            {"account": who, "amount": amount}
        ]
        with reverts("NothingToClaim"):
            env.tx(sc.claimPayout(), who)
    assert env.balance(env.commitment) == 0

    # The sequencer must re-bond, then continues from the deleted index.
    with reverts("SequencerNotBonded"):
        propose_raw(env, b1, 6, 10)
    env.tx(sc.bond(), env.sequencer, SEQ_BOND)
    with reverts("WrongBatchIndex", b1, b2):
        propose_raw(env, b2, 6, 10)
    propose_raw(env, b1, 6, 10)
    assert sc.batch(b1).call()[6:] == (0, 0)  # fresh, unchallenged
    assert sc.stateRoot(b1).call() == root(b1)
    env.finalize()
    assert sc.isFinal(b1).call()


def test_resolve_root_wrong_on_first_batch(env: Env) -> None:
    sc = env.commitment.functions
    env.propose(root(0))
    env.tx(sc.challenge(0), env.challenger, CH_BOND)
    env.resolve(0, True)
    assert sc.nextIndex().call() == 0
    env.tx(sc.bond(), env.sequencer, SEQ_BOND)
    propose_raw(env, 0, 77, 80)  # batch 0 again starts anywhere


def test_resolve_frivolous(env: Env) -> None:
    sc = env.commitment.functions
    b0 = env.propose(root(0))
    b1 = env.propose(root(1))
    env.tx(sc.challenge(b0), env.challenger, CH_BOND)
    receipt = env.resolve(b0, False)
    assert env.events(env.commitment, "DisputeResolved", receipt) == [
        {"index": b0, "disputeId": 1, "outcome": 2}
    ]
    assert env.events(env.commitment, "PayoutCredited", receipt) == []
    # The bond is forfeited and locked: neither the challenger nor governance gets it.
    assert sc.forfeitedBonds().call() == CH_BOND
    env.tx(sc.claimChallenge(1), env.challenger)
    assert sc.payouts(env.challenger).call() == 0
    assert sc.payouts(env.owner).call() == 0
    assert sc.nextIndex().call() == 2
    assert sc.sequencerBonded().call()
    assert sc.batch(b0).call()[6:] == (1, 2)
    with reverts("NoPendingChallenge", b0):
        env.tx(sc.proposeVerdict(b0, True), env.owner)
    assert not sc.isFinal(b0).call()  # period not over yet
    env.finalize()
    assert sc.isFinal(b0).call() and sc.isFinal(b1).call()
    assert env.balance(env.commitment) == SEQ_BOND + CH_BOND


def test_frivolous_resolution_after_period_is_final_at_once(env: Env) -> None:
    sc = env.commitment.functions
    b0 = env.propose(root(0))
    env.advance(PERIOD - SLACK)  # challenged late: the verdict comes after the period
    env.tx(sc.challenge(b0), env.challenger, CH_BOND)
    env.advance(SLACK + 1)
    assert not sc.isFinal(b0).call()
    env.resolve(b0, False)
    assert sc.isFinal(b0).call()


def test_payout_to_rejecting_contract_stays_claimable(env: Env) -> None:
    from bridge.deploy import deploy_contract

    sc = env.commitment
    challenger = deploy_contract(env.w3, "test/Reenterer", env.owner)
    b0 = env.propose(root(0))
    env.tx(
        challenger.functions.execute(sc.address, sc.encode_abi("challenge", [b0])),
        env.owner,
        CH_BOND,
    )
    env.tx(challenger.functions.setRejectPayments(True), env.owner)
    env.resolve(b0, True)  # never blocked by the challenger
    env.tx(challenger.functions.execute(sc.address, sc.encode_abi("claimChallenge", [1])),
           env.owner)
    claim = challenger.functions.execute(sc.address, sc.encode_abi("claimPayout", []))
    with reverts("TransferFailed", challenger.address, SEQ_BOND + CH_BOND):
        env.tx(claim, env.owner)
    env.tx(challenger.functions.setRejectPayments(False), env.owner)
    env.tx(claim, env.owner)
    assert challenger.functions.received().call() == SEQ_BOND + CH_BOND


def test_withdraw_bond_only_when_nothing_is_disputable(env: Env) -> None:
    sc = env.commitment.functions
    with reverts("NotSequencer", env.other):
        env.tx(sc.withdrawBond(), env.other)
    with reverts("SequencerNotBonded"):
        env.tx(sc.withdrawBond(), env.sequencer)
    env.propose(root(0))
    with reverts("LatestBatchNotFinal", 0):
        env.tx(sc.withdrawBond(), env.sequencer)
    env.advance(PERIOD - SLACK)
    env.tx(sc.challenge(0), env.other, CH_BOND)
    env.advance(SLACK + 1)
    with reverts("ChallengesPending", 1):
        env.tx(sc.withdrawBond(), env.sequencer)
    env.resolve(0, False)  # frivolous: batch 0 final again
    before = env.balance(env.sequencer)
    receipt = env.tx(sc.withdrawBond(), env.sequencer)
    assert env.events(env.commitment, "SequencerBondWithdrawn", receipt) == [
        {"sequencer": env.sequencer, "amount": SEQ_BOND}
    ]
    gas = receipt["gasUsed"] * receipt["effectiveGasPrice"]
    assert env.balance(env.sequencer) == before + SEQ_BOND - gas
    assert not sc.sequencerBonded().call()
    with reverts("SequencerNotBonded"):  # must bond again to propose
        propose_raw(env, 1, 6, 10)
