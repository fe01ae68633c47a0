"""RewardManager: exact task payment, proven reward claims and one-time task refunds."""

from __future__ import annotations

import pytest
from web3 import Web3

from bridge import l1
from bridge.deploy import deploy_contract

from .helpers import PARAMS, SLACK, AccountRec, Env, RollupState, TaskRec, pk, reverts

BASE = PARAMS.base_fee
PER_EPOCH = PARAMS.fee_per_epoch
CH_BOND = PARAMS.challenge_bond


def price(epochs: int) -> int:
    return BASE + epochs * PER_EPOCH


def create(env: Env, epochs: int = 3, owner: str | None = None) -> int:
    return env.create_task(owner or env.task_owner, epochs)


# ------------------------------------------------------------------------------ createTask


def test_create_task(env: Env) -> None:
    rm = env.rewards.functions
    assert rm.taskPrice(3).call() == price(3)
    treasury0 = env.balance(env.reward_treasury)
    spec = Web3.keccak(b"spec")
    params = b"\x81\xa1k\x01"
    receipt = env.tx(rm.createTask(spec, 3, 9000, params), env.task_owner, price(3))
    assert env.events(env.rewards, "TaskCreated", receipt) == [
        {
            "taskId": 1,
            "owner": env.task_owner,
            "specHash": spec,
            "maxEpochs": 3,
            "targetAccuracyBps": 9000,
            "taskParams": params,
            "escrow": 3 * PER_EPOCH,
        }
    ]
    assert env.events(env.rewards, "BaseFeeCollected", receipt) == [{"taskId": 1, "amount": BASE}]
    assert env.events(env.reward_treasury, "Received", receipt) == [
        {"from": env.rewards.address, "amount": BASE}
    ]
    # BASE_FEE is taken by the contract and forwarded at once; only the escrow stays.
    assert env.balance(env.reward_treasury) == treasury0 + BASE
    assert env.balance(env.rewards) == 3 * PER_EPOCH
    assert rm.task(1).call() == (env.task_owner, False, 3 * PER_EPOCH)
    assert create(env, 1, env.other) == 2
    assert rm.nextTaskId().call() == 3
    assert env.balance(env.rewards) == 4 * PER_EPOCH


@pytest.mark.parametrize(
    "value", [0, 1, BASE, price(3) - 1, price(3) + 1, 3 * PER_EPOCH, 2 * price(3)]
)
def test_create_task_wrong_payment(env: Env, value: int) -> None:
    fn = env.rewards.functions.createTask(Web3.keccak(b"spec"), 3, 9000, b"")
    with reverts("WrongPayment", value, price(3)):
        env.tx(fn, env.task_owner, value)
    assert env.balance(env.rewards) == 0
    assert env.rewards.functions.nextTaskId().call() == 1


@pytest.mark.parametrize("epochs", [0, 2**32, 2**256 - 1])
def test_create_task_invalid_epochs(env: Env, epochs: int) -> None:
    fn = env.rewards.functions.createTask(Web3.keccak(b"spec"), epochs, 9000, b"")
    with reverts("InvalidMaxEpochs", epochs):
        env.tx(fn, env.task_owner, BASE)


# ------------------------------------------------------------------------------ claim


def funded(env: Env, tasks: int = 2) -> None:
    for _ in range(tasks):
        create(env, 5)


def test_claim_pays_exact_cumulative_reward(env: Env) -> None:
    funded(env)
    alice = AccountRec(env.clients[0], pk(0), PARAMS.stake_amount, 0, 12_345)
    bob = AccountRec(env.clients[1], pk(1), PARAMS.stake_amount, 0, 999)
    state = RollupState([alice, bob], filler_accounts=4)
    batch = env.publish(state)
    alice0, pool0 = env.balance(alice.address), env.balance(env.rewards)
    receipt = env.claim(alice, batch, state.account_proof(0), env.relayer)  # anyone triggers
    assert env.balance(alice.address) == alice0 + 12_345  # funds go to the account
    assert env.balance(env.rewards) == pool0 - 12_345
    assert env.rewards.functions.alreadyClaimed(alice.address).call() == 12_345
    assert env.events(env.rewards, "RewardClaimed", receipt) == [
        {
            "account": alice.address,
            "batchIndex": batch,
            "cumulativeReward": 12_345,
            "amount": 12_345,
        }
    ]


def test_double_claim_moves_nothing(env: Env) -> None:
    funded(env)
    alice = AccountRec(env.clients[0], pk(0), PARAMS.stake_amount, 0, 5_000)
    state = RollupState([alice])
    batch = env.publish(state)
    env.claim(alice, batch, state.account_proof(0), env.relayer)
    pool = env.balance(env.rewards)
    for caller in (env.relayer, alice.address):
        with reverts("NothingToClaim", alice.address, 5_000, 5_000):
            env.claim(alice, batch, state.account_proof(0), caller)
    assert env.balance(env.rewards) == pool


def test_claim_delta_and_stale_root(env: Env) -> None:
    funded(env)
    alice = AccountRec(env.clients[0], pk(0), PARAMS.stake_amount, 0, 1_000)
    old = RollupState([alice])
    old_batch, old_proof, old_rec = (
        env.publish(old),
        old.account_proof(0),
        AccountRec(**vars(alice)),
    )
    env.claim(alice, old_batch, old_proof, env.relayer)
    alice.cumulative_reward = 4_000
    new = RollupState([alice])
    new_batch = env.publish(new)
    before = env.balance(alice.address)
    env.claim(alice, new_batch, new.account_proof(0), env.relayer)
    assert env.balance(alice.address) == before + 3_000
    with reverts("NothingToClaim", alice.address, 1_000, 4_000):
        env.claim(old_rec, old_batch, old_proof, env.relayer)


def test_claim_bad_proof(env: Env) -> None:
    funded(env)
    alice = AccountRec(env.clients[0], pk(0), PARAMS.stake_amount, 0, 1_000)
    state = RollupState([alice], filler_accounts=2)
    batch = env.publish(state)
    inflated = AccountRec(**vars(alice))
    inflated.cumulative_reward = 10**17
    with reverts("InvalidProof"):
        env.claim(inflated, batch, state.account_proof(0), env.relayer)
    thief = AccountRec(env.other, pk(0), PARAMS.stake_amount, 0, 1_000)
    with reverts("InvalidProof"):
        env.claim(thief, batch, state.account_proof(0), env.relayer)
    bad = state.account_proof(0)
    bad[-1] = b"\x00" * 32
    with reverts("InvalidProof"):
        env.claim(alice, batch, bad, env.relayer)


def test_claim_non_final_and_challenged(env: Env) -> None:
    funded(env)
    alice = AccountRec(env.clients[0], pk(0), PARAMS.stake_amount, 0, 1_000)
    state = RollupState([alice])
    batch = env.propose(state.root())
    with reverts("BatchNotFinal", batch):
        env.claim(alice, batch, state.account_proof(0), env.relayer)
    env.advance(PARAMS.challenge_period - SLACK)
    env.tx(env.commitment.functions.challenge(batch), env.challenger, CH_BOND)
    env.advance(SLACK + 1)
    with reverts("BatchNotFinal", batch):
        env.claim(alice, batch, state.account_proof(0), env.relayer)
    env.resolve(batch, False)
    env.claim(alice, batch, state.account_proof(0), env.relayer)


def test_claim_cannot_exceed_pool(env: Env) -> None:
    alice = AccountRec(env.clients[0], pk(0), PARAMS.stake_amount, 0, 1)
    state = RollupState([alice])
    batch = env.publish(state)  # no task was ever paid for: the pool is empty
    with reverts("TransferFailed", alice.address, 1):
        env.claim(alice, batch, state.account_proof(0), env.relayer)
    assert env.rewards.functions.alreadyClaimed(alice.address).call() == 0


def test_claim_is_not_reentrant(env: Env) -> None:
    funded(env)
    attacker = deploy_contract(env.w3, "test/Reenterer", env.owner)
    rec = AccountRec(attacker.address, pk(5), PARAMS.stake_amount, 0, 7_000)
    state = RollupState([rec])
    batch = env.publish(state)
    args = [*rec.args(), batch, state.account_proof(0)]
    env.tx(
        attacker.functions.setReenter(env.rewards.address, env.rewards.encode_abi("claim", args)),
        env.owner,
    )
    env.claim(rec, batch, state.account_proof(0), env.relayer)
    a = attacker.functions
    assert a.reenterAttempted().call() and not a.reenterSucceeded().call()
    assert a.received().call() == 7_000


# ------------------------------------------------------------------------------ refund


def finished_task(env: Env, status: int = 1, epochs: int = 5, used: int = 3) -> TaskRec:
    tid = create(env, epochs)
    escrow = epochs * PER_EPOCH
    charged = used * PER_EPOCH if status == 1 else 0
    return TaskRec(tid, env.task_owner, escrow, charged, charged * 200 // 10_000, status)


def test_refund_completed_task(env: Env) -> None:
    t = finished_task(env)
    state = RollupState(tasks=[TaskRec(99, env.other, 1, 0, 0, 1), t])
    batch = env.publish(state)
    owner0, treasury0 = env.balance(env.task_owner), env.balance(env.reward_treasury)
    pool0 = env.balance(env.rewards)
    receipt = env.refund(t, batch, state.task_proof(1), env.relayer)
    back = t.escrow - t.charged
    assert env.rewards.functions.refunds(env.task_owner).call() == back
    pull = env.tx(env.rewards.functions.withdrawRefund(), env.task_owner)
    assert env.events(env.rewards, "RefundWithdrawn", pull) == [
        {"owner": env.task_owner, "amount": back}]
    assert env.balance(env.task_owner) == owner0 + back - l1.gas_cost(pull)
    assert env.balance(env.reward_treasury) == treasury0 + t.treasury_share
    # The participants' part of the charge stays to back their reward claims.
    assert env.balance(env.rewards) == pool0 - back - t.treasury_share
    assert env.balance(env.rewards) == t.charged - t.treasury_share
    assert env.events(env.rewards, "TaskRefunded", receipt) == [
        {
            "taskId": t.task_id,
            "owner": env.task_owner,
            "batchIndex": batch,
            "refund": back,
            "treasuryShare": t.treasury_share,
        }
    ]
    assert env.rewards.functions.task(t.task_id).call() == (env.task_owner, True, t.escrow)


def test_refund_rejected_task_returns_whole_escrow(env: Env) -> None:
    t = finished_task(env, status=2)
    state = RollupState(tasks=[t])
    batch = env.publish(state)
    env.refund(t, batch, state.task_proof(0), env.relayer)
    assert env.rewards.functions.refunds(env.task_owner).call() == t.escrow
    with reverts("NothingToWithdraw", env.other):
        env.tx(env.rewards.functions.withdrawRefund(), env.other)
    env.tx(env.rewards.functions.withdrawRefund(), env.task_owner)
    assert env.balance(env.rewards) == 0
    with reverts("NothingToWithdraw", env.task_owner):
        env.tx(env.rewards.functions.withdrawRefund(), env.task_owner)


def test_refund_twice_reverts(env: Env) -> None:
    t = finished_task(env)
    state = RollupState(tasks=[t])
    batch = env.publish(state)
    env.refund(t, batch, state.task_proof(0), env.relayer)
    pool = env.balance(env.rewards)
    for caller in (env.relayer, env.task_owner):
        with reverts("AlreadyRefunded", t.task_id):
            env.refund(t, batch, state.task_proof(0), caller)
    # Not even with a different (later) leaf for the same task.
    later = TaskRec(**{**vars(t), "charged": 0, "treasury_share": 0})
    state2 = RollupState(tasks=[later])
    batch2 = env.publish(state2)
    with reverts("AlreadyRefunded", t.task_id):
        env.refund(later, batch2, state2.task_proof(0), env.relayer)
    assert env.balance(env.rewards) == pool


def test_refund_running_task(env: Env) -> None:
    t = finished_task(env, status=0)
    state = RollupState(tasks=[t])
    batch = env.publish(state)
    with reverts("TaskNotFinished", t.task_id):
        env.refund(t, batch, state.task_proof(0), env.relayer)


@pytest.mark.parametrize("field", ["escrow", "owner"])
def test_refund_mismatch(env: Env, field: str) -> None:
    t = finished_task(env)
    if field == "escrow":
        t.escrow += PER_EPOCH
    else:
        t.owner = env.other
    state = RollupState(tasks=[t])  # even a proven leaf cannot change the L1 record
    batch = env.publish(state)
    with reverts("TaskMismatch", t.task_id):
        env.refund(t, batch, state.task_proof(0), env.relayer)


def test_refund_unknown_task(env: Env) -> None:
    t = TaskRec(42, env.task_owner, 0, 0, 0, 1)
    state = RollupState(tasks=[t])
    batch = env.publish(state)
    with reverts("UnknownTask", 42):
        env.refund(t, batch, state.task_proof(0), env.relayer)


@pytest.mark.parametrize("case", ["overcharged", "treasury_over_charge"])
def test_refund_invalid_settlement(env: Env, case: str) -> None:
    t = finished_task(env)
    if case == "overcharged":
        t.charged = t.escrow + 1
    else:
        t.treasury_share = t.charged + 1
    state = RollupState(tasks=[t])
    batch = env.publish(state)
    with reverts("InvalidSettlement", t.escrow, t.charged, t.treasury_share):
        env.refund(t, batch, state.task_proof(0), env.relayer)


def test_refund_bad_proof_and_non_final(env: Env) -> None:
    t = finished_task(env)
    other = TaskRec(7, env.other, 1, 0, 0, 1)
    state = RollupState(tasks=[t, other])
    batch = env.propose(state.root())
    with reverts("BatchNotFinal", batch):
        env.refund(t, batch, state.task_proof(0), env.relayer)
    env.finalize()
    cheaper = TaskRec(**{**vars(t), "charged": 0, "treasury_share": 0})
    with reverts("InvalidProof"):  # pretend nothing was charged
        env.refund(cheaper, batch, state.task_proof(0), env.relayer)
    with reverts("InvalidProof"):  # a task leaf proven as if it were in the accounts tree
        acc_shaped = state.task_proof(0)
        acc_shaped[-3] = state.subroots()[1]
        env.refund(t, batch, acc_shaped, env.relayer)
    env.refund(t, batch, state.task_proof(0), env.relayer)
