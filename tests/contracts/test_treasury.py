"""SlashTreasury and RewardTreasury: open deposits, owner-only, reentrancy-safe withdrawals."""

from __future__ import annotations

import pytest

from bridge import l1
from bridge.deploy import deploy_contract

from .helpers import ETHER, Env, reverts

ZERO = "0x" + "00" * 20


@pytest.fixture(params=["slash_treasury", "reward_treasury"])
def treasury(env: Env, request: pytest.FixtureRequest):
    return getattr(env, request.param)


def test_receive_and_owner_withdraw(env: Env, treasury) -> None:
    receipt = l1.send_value(env.w3, env.other, treasury.address, ETHER)
    assert env.events(treasury, "Received", receipt) == [{"from": env.other, "amount": ETHER}]
    before = env.balance(env.relayer)
    receipt = env.tx(treasury.functions.withdraw(env.relayer, ETHER // 4), env.owner)
    assert env.balance(env.relayer) == before + ETHER // 4
    assert env.balance(treasury) == ETHER - ETHER // 4
    assert env.events(treasury, "Withdrawn", receipt) == [{"to": env.relayer, "amount": ETHER // 4}]


def test_non_owner_withdraw(env: Env, treasury) -> None:
    l1.send_value(env.w3, env.other, treasury.address, ETHER)
    for who in (env.other, env.sequencer, env.relayer):
        with reverts("OwnableUnauthorizedAccount", who):
            env.tx(treasury.functions.withdraw(who, 1), who)
    assert env.balance(treasury) == ETHER


def test_withdraw_checks(env: Env, treasury) -> None:
    l1.send_value(env.w3, env.other, treasury.address, 100)
    with reverts("InsufficientBalance", 100, 101):
        env.tx(treasury.functions.withdraw(env.owner, 101), env.owner)
    with reverts("ZeroAddress"):
        env.tx(treasury.functions.withdraw(ZERO, 1), env.owner)


def test_withdraw_not_reentrant(env: Env, treasury) -> None:
    l1.send_value(env.w3, env.other, treasury.address, 1_000)
    attacker = deploy_contract(env.w3, "test/Reenterer", env.owner)
    env.tx(treasury.functions.transferOwnership(attacker.address), env.owner)
    data = treasury.encode_abi("withdraw", [attacker.address, 100])
    env.tx(attacker.functions.setReenter(treasury.address, data), env.owner)
    env.tx(attacker.functions.execute(treasury.address, data), env.owner)
    a = attacker.functions
    assert a.reenterAttempted().call() and not a.reenterSucceeded().call()
    assert l1.decode_error(a.reenterReturn().call()) == ("ReentrancyGuardReentrantCall", ())
    assert a.received().call() == 100
    assert env.balance(treasury) == 900


def test_withdraw_to_rejecting_receiver(env: Env, treasury) -> None:
    l1.send_value(env.w3, env.other, treasury.address, 1_000)
    sink = deploy_contract(env.w3, "test/Reenterer", env.owner)
    env.tx(sink.functions.setRejectPayments(True), env.owner)
    with reverts("TransferFailed", sink.address, 10):
        env.tx(treasury.functions.withdraw(sink.address, 10), env.owner)
    assert env.balance(treasury) == 1_000
