"""Regression tests, one per bug of the seed contracts. Each fails on the seed's logic."""

from __future__ import annotations

from web3 import Web3

from bridge import l1

from .helpers import PARAMS, POP, SLACK, AccountRec, Env, RollupState, TaskRec, pk, reverts

STAKE = PARAMS.stake_amount


def test_seed_stake_accepts_exact_amount_rejects_others(env: Env) -> None:
    """Seed: the amount check was inverted (correct amount refused, anything else taken)."""
    for i, wrong in enumerate((0, 1, STAKE - 1, STAKE + 1)):
        with reverts("WrongStakeAmount", wrong, STAKE):
            env.tx(env.registry.functions.stake(pk(i), POP), env.clients[0], wrong)
    env.tx(env.registry.functions.stake(pk(0), POP), env.clients[0], STAKE)
    assert env.registry.functions.stakeOf(env.clients[0]).call() == STAKE
    assert env.balance(env.registry) == STAKE


def test_seed_withdraw_only_after_timelock(env: Env) -> None:
    """Seed: the timelock comparison was reversed (withdraw allowed before, refused after)."""
    alice = env.clients[0]
    env.stake(alice, pk(0))
    env.tx(env.registry.functions.unbond(), alice)
    with reverts("StillLocked"):
        env.tx(env.registry.functions.withdraw(0, 0, 0, 0, []), alice)
    env.advance(PARAMS.unbond_period // 2)
    with reverts("StillLocked"):
        env.tx(env.registry.functions.withdraw(0, 0, 0, 0, []), alice)
    receipt = env.withdraw(alice)
    assert env.events(env.registry, "Withdrawn", receipt)[0]["amount"] == STAKE


def test_seed_zero_eth_staker_cannot_drain(env: Env) -> None:
    """Seed: a 0-ETH 'stake' registered the caller, whose withdraw then paid out a full stake
    taken from everybody else's deposits."""
    victims = env.clients[:3]
    for i, v in enumerate(victims):
        env.stake(v, pk(i))
    pool = env.balance(env.registry)
    thief = env.other
    with reverts("WrongStakeAmount", 0, STAKE):
        env.tx(env.registry.functions.stake(pk(50), POP), thief, 0)
    with reverts("NotActive", thief):
        env.tx(env.registry.functions.unbond(), thief)
    env.advance(PARAMS.unbond_period + SLACK)
    with reverts("NotUnbonding", thief):
        env.tx(env.registry.functions.withdraw(0, 0, 0, 0, []), thief)
    assert env.balance(env.registry) == pool
    # A real staker gets back exactly what it put in, once.
    env.stake(thief, pk(50))
    env.tx(env.registry.functions.unbond(), thief)
    args = env.exit_args(thief)
    env.tx(env.registry.functions.withdraw(*args), thief)
    with reverts("NotUnbonding", thief):
        env.tx(env.registry.functions.withdraw(*args), thief)
    assert env.balance(env.registry) == pool
    for v in victims:
        assert env.registry.functions.stakeOf(v).call() == STAKE


def test_seed_slashing_is_proven_and_partial(env: Env) -> None:
    """Seed: a trusted address could slash any stake in full, without proof."""
    alice = env.clients[0]
    env.stake(alice, pk(0))
    # Neither the owner nor anyone else can take stake directly.
    for who in (env.owner, env.sequencer, env.other):
        with reverts("NotSlashingManager", who):
            env.tx(env.registry.functions.reduceStake(alice, STAKE), who)
    # The owner gets no special path through the manager either: no proof, no slash.
    rec = AccountRec(alice, pk(0), STAKE, STAKE)
    honest = AccountRec(alice, pk(0), STAKE, STAKE // 10)
    state = RollupState([honest])
    batch = env.publish(state)
    with reverts("InvalidProof"):
        env.slash(rec, batch, state.account_proof(0), env.owner)
    # With the rollup's proof, exactly the decided part moves (10 %), not the whole stake.
    env.slash(honest, batch, state.account_proof(0), env.other)
    assert env.registry.functions.stakeOf(alice).call() == STAKE - STAKE // 10


def test_seed_fee_collection_not_repeatable_and_no_overpayment(env: Env) -> None:
    """Seed: anyone could collect a task's fees repeatedly, and overpayments were kept."""
    rm = env.rewards.functions
    price = PARAMS.base_fee + 2 * PARAMS.fee_per_epoch
    with reverts("WrongPayment", price + 1, price):
        env.tx(rm.createTask(Web3.keccak(b"s"), 2, 9000, b""), env.task_owner, price + 1)
    tid = env.create_task(env.task_owner, 2)
    t = TaskRec(tid, env.task_owner, 2 * PARAMS.fee_per_epoch, PARAMS.fee_per_epoch, 200, 1)
    state = RollupState(tasks=[t])
    batch = env.publish(state)
    env.refund(t, batch, state.task_proof(0), env.other)
    treasury = env.balance(env.reward_treasury)
    for who in (env.other, env.task_owner, env.owner):
        with reverts("AlreadyRefunded", tid):
            env.refund(t, batch, state.task_proof(0), who)
    assert env.balance(env.reward_treasury) == treasury
    owed = t.escrow - t.charged
    assert env.rewards.functions.refunds(env.task_owner).call() == owed  # pulled, not pushed
    assert env.balance(env.rewards) == t.charged - t.treasury_share + owed
    env.tx(rm.withdrawRefund(), env.task_owner)
    assert env.balance(env.rewards) == t.charged - t.treasury_share
    # Treasury funds leave only through the owner.
    with reverts("OwnableUnauthorizedAccount", env.other):
        env.tx(env.reward_treasury.functions.withdraw(env.other, 1), env.other)


def test_seed_base_fee_is_charged(env: Env) -> None:
    """Seed: createTask took only the escrow; BASE_FEE was never charged."""
    rm = env.rewards.functions
    escrow_only = 3 * PARAMS.fee_per_epoch
    with reverts("WrongPayment", escrow_only, escrow_only + PARAMS.base_fee):
        env.tx(rm.createTask(Web3.keccak(b"s"), 3, 9000, b""), env.task_owner, escrow_only)
    before = env.balance(env.reward_treasury)
    owner_before = env.balance(env.task_owner)
    receipt = env.tx(
        rm.createTask(Web3.keccak(b"s"), 3, 9000, b""),
        env.task_owner,
        escrow_only + PARAMS.base_fee,
    )
    assert env.balance(env.reward_treasury) == before + PARAMS.base_fee
    assert env.balance(env.rewards) == escrow_only
    assert env.balance(env.task_owner) == (
        owner_before - escrow_only - PARAMS.base_fee - l1.gas_cost(receipt)
    )
