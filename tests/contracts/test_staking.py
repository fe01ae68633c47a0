"""StakingRegistry: exact stakes, one binding per address and pubkey, timelocked withdraw."""

from __future__ import annotations

import pytest
from web3 import Web3

from bridge import l1
from bridge.deploy import deploy_contract

from .helpers import PARAMS, POP, SLACK, Env, pk, reverts

STAKE = PARAMS.stake_amount


NO_PROOF = (0, 0, 0, 0, [])


def test_stake_exact_amount(env: Env) -> None:
    alice = env.clients[0]
    before = env.balance(env.registry)
    receipt = env.stake(alice, pk(1))
    assert env.events(env.registry, "Staked", receipt) == [
        {"account": alice, "pubkey": pk(1), "amount": STAKE, "pop": POP}
    ]
    r = env.registry.functions
    assert r.stakeOf(alice).call() == STAKE
    assert r.pubkeyOf(alice).call() == pk(1)
    assert r.accountOf(pk(1)).call() == alice
    assert r.stakeInfo(alice).call() == (STAKE, 0, 1)
    assert env.balance(env.registry) == before + STAKE


@pytest.mark.parametrize("value", [0, 1, STAKE - 1, STAKE + 1, 2 * STAKE])
def test_stake_wrong_amount(env: Env, value: int) -> None:
    with reverts("WrongStakeAmount", value, STAKE):
        env.tx(env.registry.functions.stake(pk(1), POP), env.clients[0], value)
    assert env.registry.functions.stakeOf(env.clients[0]).call() == 0
    assert env.registry.functions.accountOf(pk(1)).call() == l1.Web3.to_checksum_address(
        "0x" + "00" * 20
    )


def test_stake_zero_pubkey(env: Env) -> None:
    with reverts("InvalidPubkey"):
        env.stake(env.clients[0], b"\x00" * 32)


def test_double_stake_same_address(env: Env) -> None:
    alice = env.clients[0]
    env.stake(alice, pk(1))
    with reverts("AlreadyStaked", alice):
        env.stake(alice, pk(1))
    with reverts("AlreadyStaked", alice):
        env.stake(alice, pk(2))
    env.tx(env.registry.functions.unbond(), alice)
    with reverts("AlreadyStaked", alice):  # unbonding still counts as staked
        env.stake(alice, pk(1))


def test_same_pubkey_other_address_is_not_locked_on_l1(env: Env) -> None:
    """F-15: L1 no longer lets the first staker of a pubkey lock it (a front-runner could
    block the key's owner for good); the rollup binds the key to the address whose proof of
    possession verifies (tests/bridge/test_pop.py)."""
    alice, bob = env.clients[0], env.clients[1]
    env.stake(bob, pk(1))  # front-runner copies alice's key from the mempool
    receipt = env.stake(alice, pk(1))
    assert env.events(env.registry, "Staked", receipt) == [
        {"account": alice, "pubkey": pk(1), "amount": STAKE, "pop": POP}]
    assert env.registry.functions.accountOf(pk(1)).call() == bob  # informational only
    assert env.registry.functions.pubkeyOf(alice).call() == pk(1)


def test_stake_needs_a_64_byte_pop(env: Env) -> None:
    for bad in (b"", b"\x01" * 63, b"\x01" * 65):
        with reverts("InvalidPop", len(bad)):
            env.tx(env.registry.functions.stake(pk(1), bad), env.clients[0], STAKE)


def test_restake_after_withdraw_same_pubkey_only(env: Env) -> None:
    alice = env.clients[0]
    env.stake(alice, pk(1))
    env.tx(env.registry.functions.unbond(), alice)
    env.withdraw(alice)
    with reverts("AccountBoundToOtherPubkey", alice, pk(1)):
        env.stake(alice, pk(2))
    receipt = env.stake(alice, pk(1))
    assert env.events(env.registry, "Staked", receipt)[0]["amount"] == STAKE
    assert env.registry.functions.stakeInfo(alice).call() == (STAKE, 0, 1)


def test_unbond(env: Env) -> None:
    alice = env.clients[0]
    with reverts("NotActive", alice):
        env.tx(env.registry.functions.unbond(), alice)
    env.stake(alice, pk(1))
    receipt = env.tx(env.registry.functions.unbond(), alice)
    ts = env.w3.eth.get_block(receipt["blockNumber"])["timestamp"]
    unlock = ts + PARAMS.unbond_period
    assert env.events(env.registry, "Unbonded", receipt) == [
        {"account": alice, "pubkey": pk(1), "unlockTime": unlock}
    ]
    assert env.registry.functions.stakeInfo(alice).call() == (STAKE, unlock, 2)
    with reverts("NotActive", alice):
        env.tx(env.registry.functions.unbond(), alice)


def test_withdraw_requires_unbond(env: Env) -> None:
    alice = env.clients[0]
    with reverts("NotUnbonding", alice):  # never staked
        env.tx(env.registry.functions.withdraw(*NO_PROOF), alice)
    env.stake(alice, pk(1))
    with reverts("NotUnbonding", alice):  # staked, not unbonding
        env.tx(env.registry.functions.withdraw(*NO_PROOF), alice)


def test_early_withdraw_reverts(env: Env) -> None:
    alice = env.clients[0]
    env.stake(alice, pk(1))
    env.tx(env.registry.functions.unbond(), alice)
    unlock = env.registry.functions.stakeInfo(alice).call()[1]
    with reverts("StillLocked"):
        env.tx(env.registry.functions.withdraw(*NO_PROOF), alice)
    env.advance(PARAMS.unbond_period - SLACK)
    assert env.now() < unlock
    with reverts("StillLocked"):
        env.tx(env.registry.functions.withdraw(*NO_PROOF), alice)
    assert env.registry.functions.stakeOf(alice).call() == STAKE


def test_withdraw_after_timelock_pays_stake(env: Env) -> None:
    alice = env.clients[0]
    env.stake(alice, pk(1))
    env.stake(env.clients[1], pk(2))
    env.tx(env.registry.functions.unbond(), alice)
    args = env.exit_args(alice)
    reg_before, alice_before = env.balance(env.registry), env.balance(alice)
    receipt = env.tx(env.registry.functions.withdraw(*args), alice)
    assert env.balance(alice) == alice_before + STAKE - l1.gas_cost(receipt)
    assert env.balance(env.registry) == reg_before - STAKE
    assert env.events(env.registry, "Withdrawn", receipt) == [
        {"account": alice, "pubkey": pk(1), "amount": STAKE}
    ]
    assert env.registry.functions.stakeInfo(alice).call() == (0, 0, 0)
    assert env.registry.functions.pubkeyOf(alice).call() == pk(1)  # binding stays
    with reverts("NotUnbonding", alice):
        env.tx(env.registry.functions.withdraw(*args), alice)


def test_reduce_stake_only_slashing_manager(env: Env) -> None:
    alice = env.clients[0]
    env.stake(alice, pk(1))
    for caller in (env.owner, alice, env.other):
        with reverts("NotSlashingManager", caller):
            env.tx(env.registry.functions.reduceStake(alice, 1), caller)
    assert env.registry.functions.stakeOf(alice).call() == STAKE


def test_set_slashing_manager(env: Env) -> None:
    r = env.registry.functions
    assert r.slashingManager().call() == env.slashing.address
    with reverts("OwnableUnauthorizedAccount", env.other):
        env.tx(r.setSlashingManager(env.other), env.other)
    with reverts("SlashingManagerAlreadySet"):
        env.tx(r.setSlashingManager(env.other), env.owner)

    fresh = deploy_contract(env.w3, "StakingRegistry", env.owner, STAKE, 10_000,
                            env.commitment.address)
    with reverts("ZeroAddress"):
        env.tx(fresh.functions.setSlashingManager("0x" + "00" * 20), env.owner)
    receipt = env.tx(fresh.functions.setSlashingManager(env.other), env.owner)
    assert env.events(fresh, "SlashingManagerSet", receipt) == [{"slashingManager": env.other}]
    # The configured manager can reduce, but never more than the stake, never zero.
    env.tx(fresh.functions.stake(pk(9), POP), env.clients[0], STAKE)
    with reverts("ZeroAmount"):
        env.tx(fresh.functions.reduceStake(env.clients[0], 0), env.other)
    with reverts("InsufficientStake", STAKE, STAKE + 1):
        env.tx(fresh.functions.reduceStake(env.clients[0], STAKE + 1), env.other)
    before = env.balance(env.other)
    receipt = env.tx(fresh.functions.reduceStake(env.clients[0], 123), env.other)
    assert env.balance(env.other) == before + 123 - l1.gas_cost(receipt)
    assert env.events(fresh, "StakeReduced", receipt) == [
        {"account": env.clients[0], "pubkey": pk(9), "amount": 123, "remaining": STAKE - 123}
    ]


def test_constructor_rejects_zero_stake(env: Env) -> None:
    with reverts("ZeroAmount"):
        deploy_contract(env.w3, "StakingRegistry", env.owner, 0, 10_000,
                        env.commitment.address)


def test_withdraw_is_not_reentrant(env: Env) -> None:
    attacker = deploy_contract(env.w3, "test/Reenterer", env.owner)
    reg = env.registry
    env.stake(env.clients[0], pk(1))  # someone else's stake that must stay put
    env.tx(
        attacker.functions.execute(reg.address, reg.encode_abi("stake", [pk(7), POP])),
        env.owner,
        STAKE,
    )
    env.tx(attacker.functions.execute(reg.address, reg.encode_abi("unbond", [])), env.owner)
    args = env.exit_args(attacker.address)
    env.tx(attacker.functions.setReenter(reg.address, reg.encode_abi("withdraw", args)),
           env.owner)
    before = env.balance(reg)
    env.tx(attacker.functions.execute(reg.address, reg.encode_abi("withdraw", args)), env.owner)
    a = attacker.functions
    assert a.reenterAttempted().call() and not a.reenterSucceeded().call()
    assert a.received().call() == STAKE
    assert env.balance(reg) == before - STAKE == STAKE


def test_withdraw_to_rejecting_contract_reverts(env: Env) -> None:
    attacker = deploy_contract(env.w3, "test/Reenterer", env.owner)
    reg = env.registry
    call = attacker.functions.execute
    env.tx(call(reg.address, reg.encode_abi("stake", [pk(7), POP])), env.owner, STAKE)
    env.tx(call(reg.address, reg.encode_abi("unbond", [])), env.owner)
    args = env.exit_args(attacker.address)
    env.tx(attacker.functions.setRejectPayments(True), env.owner)
    with reverts("TransferFailed", attacker.address, STAKE):
        env.tx(call(reg.address, reg.encode_abi("withdraw", args)), env.owner)
    assert reg.functions.stakeOf(attacker.address).call() == STAKE  # nothing lost
    assert Web3.to_checksum_address(reg.functions.accountOf(pk(7)).call()) == attacker.address
