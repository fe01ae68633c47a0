"""SlashingManager: proven, partial, idempotent slashes settled from final state roots."""

from __future__ import annotations

import pytest
from web3 import Web3

from bridge import l1

from .helpers import PARAMS, SLACK, AccountRec, Env, RollupState, pk, reverts

STAKE = PARAMS.stake_amount
CH_BOND = PARAMS.challenge_bond


def staked(env: Env, n: int = 2) -> list[AccountRec]:
    recs = []
    for i in range(n):
        env.stake(env.clients[i], pk(i))
        recs.append(AccountRec(env.clients[i], pk(i), STAKE))
    return recs


def test_slash_moves_delta_and_splits(env: Env) -> None:
    alice, bob = staked(env)
    alice.cumulative_slashed = STAKE // 10  # one SLASH_BPS=1000 slash
    alice.stake = STAKE - STAKE // 10
    state = RollupState([alice, bob], filler_accounts=5)
    batch = env.publish(state)

    treasury0, relayer0 = env.balance(env.slash_treasury), env.balance(env.relayer)
    registry0 = env.balance(env.registry)
    receipt = env.slash(alice, batch, state.account_proof(0), env.relayer)

    amount = STAKE // 10
    reward = amount // 10
    assert env.registry.functions.stakeOf(alice.address).call() == STAKE - amount
    assert env.registry.functions.stakeOf(bob.address).call() == STAKE  # partial, targeted
    assert env.balance(env.registry) == registry0 - amount
    assert env.balance(env.slash_treasury) == treasury0 + amount - reward
    assert env.balance(env.relayer) == relayer0 + reward - l1.gas_cost(receipt)
    assert env.balance(env.slashing) == 0
    assert env.slashing.functions.alreadySlashed(alice.address).call() == amount
    assert env.events(env.slashing, "Slashed", receipt) == [
        {
            "account": alice.address,
            "pubkey": alice.pubkey,
            "batchIndex": batch,
            "cumulativeSlashed": amount,
            "delta": amount,
            "amount": amount,
            "toTreasury": amount - reward,
            "callerReward": reward,
            "caller": env.relayer,
        }
    ]
    assert env.events(env.registry, "StakeReduced", receipt) == [
        {
            "account": alice.address,
            "pubkey": alice.pubkey,
            "amount": amount,
            "remaining": STAKE - amount,
        }
    ]
    assert env.events(env.slash_treasury, "Received", receipt) == [
        {"from": env.slashing.address, "amount": amount - reward}
    ]


def test_double_slash_moves_nothing(env: Env) -> None:
    alice, bob = staked(env)
    alice.cumulative_slashed = STAKE // 10
    state = RollupState([alice, bob])
    batch = env.publish(state)
    env.slash(alice, batch, state.account_proof(0), env.relayer)
    treasury0 = env.balance(env.slash_treasury)
    for caller in (env.relayer, env.other, env.owner):
        with reverts("NothingToSlash", alice.address, STAKE // 10, STAKE // 10):
            env.slash(alice, batch, state.account_proof(0), caller)
    assert env.registry.functions.stakeOf(alice.address).call() == STAKE - STAKE // 10
    assert env.balance(env.slash_treasury) == treasury0


def test_later_root_moves_only_new_part_and_stale_root_nothing(env: Env) -> None:
    alice, bob = staked(env)
    alice.cumulative_slashed = 1_000
    old_state = RollupState([alice, bob])
    old_batch = env.publish(old_state)
    old_proof = old_state.account_proof(0)
    old_alice = AccountRec(**vars(alice))

    alice.cumulative_slashed = 3_500
    new_state = RollupState([alice, bob])
    new_batch = env.publish(new_state)
    receipt = env.slash(alice, new_batch, new_state.account_proof(0), env.relayer)
    assert env.events(env.slashing, "Slashed", receipt)[0]["amount"] == 3_500
    # The older (stale) root now has a smaller cumulative value: nothing to move.
    with reverts("NothingToSlash", alice.address, 1_000, 3_500):
        env.slash(old_alice, old_batch, old_proof, env.relayer)
    assert env.registry.functions.stakeOf(alice.address).call() == STAKE - 3_500


def test_sequential_slashes_accumulate(env: Env) -> None:
    alice, bob = staked(env)
    total = 0
    for step in (700, 1_300, 10):
        alice.cumulative_slashed += step
        state = RollupState([alice, bob])
        batch = env.publish(state)
        receipt = env.slash(alice, batch, state.account_proof(0), env.relayer)
        total += step
        [ev] = env.events(env.slashing, "Slashed", receipt)
        assert (ev["delta"], ev["amount"]) == (step, step)
    assert env.registry.functions.stakeOf(alice.address).call() == STAKE - total


def test_slash_capped_at_remaining_stake(env: Env) -> None:
    alice, bob = staked(env)
    alice.cumulative_slashed = 3 * STAKE  # more than what is on L1
    state = RollupState([alice, bob])
    batch = env.publish(state)
    receipt = env.slash(alice, batch, state.account_proof(0), env.relayer)
    [ev] = env.events(env.slashing, "Slashed", receipt)
    assert (ev["delta"], ev["amount"]) == (3 * STAKE, STAKE)
    assert env.registry.functions.stakeOf(alice.address).call() == 0
    # F-04: only what was taken is settled; the rest stays owed.
    assert env.slashing.functions.alreadySlashed(alice.address).call() == STAKE
    with reverts("NothingToTake", alice.address, 2 * STAKE):
        env.slash(alice, batch, state.account_proof(0), env.relayer)
    assert env.slashing.functions.alreadySlashed(alice.address).call() == STAKE
    # Other stakes are untouched, and withdrawing the slashed stake pays nothing.
    assert env.balance(env.registry) == STAKE
    env.tx(env.registry.functions.unbond(), alice.address)
    env.advance(PARAMS.unbond_period + SLACK)
    receipt = env.tx(env.registry.functions.withdraw(0, 0, 0, 0, []), alice.address)
    assert env.events(env.registry, "Withdrawn", receipt)[0]["amount"] == 0
    # Re-staking does not wash the debt: the same leaf takes the new stake too.
    env.stake(alice.address, alice.pubkey)
    env.slash(alice, batch, state.account_proof(0), env.relayer)
    assert env.registry.functions.stakeOf(alice.address).call() == 0
    assert env.slashing.functions.alreadySlashed(alice.address).call() == 2 * STAKE


def test_withdraw_after_timelock_pays_post_slash_amount(env: Env) -> None:
    alice, bob = staked(env)
    env.tx(env.registry.functions.unbond(), alice.address)  # unbonding stake stays slashable
    alice.cumulative_slashed = STAKE // 100
    state = RollupState([alice, bob])
    batch = env.publish(state)
    env.slash(alice, batch, state.account_proof(0), env.relayer)
    args = env.exit_args(alice.address, alice)
    before = env.balance(alice.address)
    receipt = env.tx(env.registry.functions.withdraw(*args), alice.address)
    paid = STAKE - STAKE // 100
    assert env.balance(alice.address) == before + paid - l1.gas_cost(receipt)
    assert env.events(env.registry, "Withdrawn", receipt)[0]["amount"] == paid
    assert env.balance(env.registry) == STAKE  # bob's stake only


def test_slash_after_withdraw_moves_nothing_and_stays_owed(env: Env) -> None:
    alice, bob = staked(env)
    env.tx(env.registry.functions.unbond(), alice.address)
    env.withdraw(alice.address)
    alice.cumulative_slashed = 5_000
    state = RollupState([alice, bob])
    batch = env.publish(state)
    with reverts("NothingToTake", alice.address, 5_000):
        env.slash(alice, batch, state.account_proof(0), env.relayer)
    assert env.slashing.functions.alreadySlashed(alice.address).call() == 0
    assert env.balance(env.registry) == STAKE


@pytest.mark.parametrize("tamper", ["sibling", "field", "address", "short", "empty", "subtree"])
def test_slash_bad_proof(env: Env, tamper: str) -> None:
    alice, bob = staked(env)
    alice.cumulative_slashed = 1_000
    state = RollupState([alice, bob], filler_accounts=3)
    batch = env.publish(state)
    proof = state.account_proof(0)
    rec = AccountRec(**vars(alice))
    if tamper == "sibling":
        proof[0] = Web3.keccak(proof[0])
    elif tamper == "field":
        rec.cumulative_slashed = STAKE  # claim a bigger slash than the rollup decided
    elif tamper == "address":
        # bob's leaf proof used for alice's address: wrong leaf
        rec = AccountRec(bob.address, bob.pubkey, STAKE, 1_000)
    elif tamper == "short":
        proof = proof[-2:]
    elif tamper == "empty":
        proof = []
    elif tamper == "subtree":
        # A valid inner path but with the sub-roots reordered (as if proving a task leaf).
        inner = proof[: len(proof) - 3]
        tasks, epochs, meta = proof[-3:]
        proof = [*inner, state.subroots()[0], epochs, meta]
        del tasks
    with reverts("InvalidProof"):
        env.slash(rec, batch, proof, env.relayer)
    assert env.registry.functions.stakeOf(alice.address).call() == STAKE


def test_slash_non_final_batch(env: Env) -> None:
    alice, bob = staked(env)
    alice.cumulative_slashed = 1_000
    state = RollupState([alice, bob])
    with reverts("BatchNotFinal", 0):  # no batch at all
        env.slash(alice, 0, state.account_proof(0), env.relayer)
    batch = env.propose(state.root())
    with reverts("BatchNotFinal", batch):
        env.slash(alice, batch, state.account_proof(0), env.relayer)
    env.finalize()
    env.slash(alice, batch, state.account_proof(0), env.relayer)


def test_slash_challenged_batch(env: Env) -> None:
    alice, bob = staked(env)
    alice.cumulative_slashed = 1_000
    state = RollupState([alice, bob])
    batch = env.propose(state.root())
    succ = env.propose(state.root())
    env.advance(PARAMS.challenge_period - SLACK)
    env.tx(env.commitment.functions.challenge(batch), env.challenger, CH_BOND)
    env.advance(SLACK + 1)
    for b in (batch, succ):  # the challenged batch and its successor
        with reverts("BatchNotFinal", b):
            env.slash(alice, b, state.account_proof(0), env.relayer)
    env.resolve(batch, True)
    for b in (batch, succ):  # deleted
        with reverts("BatchNotFinal", b):
            env.slash(alice, b, state.account_proof(0), env.relayer)
    assert env.registry.functions.stakeOf(alice.address).call() == STAKE


def test_slash_after_frivolous_challenge(env: Env) -> None:
    alice, bob = staked(env)
    alice.cumulative_slashed = 1_000
    state = RollupState([alice, bob])
    batch = env.propose(state.root())
    env.advance(PARAMS.challenge_period - SLACK)
    env.tx(env.commitment.functions.challenge(batch), env.challenger, CH_BOND)
    env.advance(SLACK + 1)
    env.resolve(batch, False)
    env.slash(alice, batch, state.account_proof(0), env.relayer)
    assert env.registry.functions.stakeOf(alice.address).call() == STAKE - 1_000


def test_slash_wrong_pubkey(env: Env) -> None:
    alice, bob = staked(env)
    # A leaf that binds alice's address to a pubkey she never registered on L1.
    forged = AccountRec(alice.address, pk(99), STAKE, STAKE)
    state = RollupState([forged, bob])
    batch = env.publish(state)
    with reverts("PubkeyMismatch", alice.address, pk(99), pk(0)):
        env.slash(forged, batch, state.account_proof(0), env.relayer)
    # An address that never staked has no pubkey at all.
    ghost = AccountRec(env.other, pk(50), 0, 1_000)
    state = RollupState([ghost])
    batch = env.publish(state)
    with reverts("PubkeyMismatch", env.other, pk(50), b"\x00" * 32):
        env.slash(ghost, batch, state.account_proof(0), env.relayer)


def test_slashing_manager_rejects_stray_eth(env: Env) -> None:
    with pytest.raises(l1.TxFailed) as info:
        l1.send_value(env.w3, env.other, env.slashing.address, 1)
    assert info.value.error == "UnexpectedSender"
