"""Issue 11, F-15: proof of possession at ``stake()``.

The attack: a front-runner sees a victim's ``stake(pubkey, pop)`` in the mempool and stakes
the same pubkey first from its own address. L1 no longer lets that lock the key
(tests/contracts/test_staking.py); the rollup binds the key only to an address whose
``pop`` (the key's signature over that address) verifies, so the copied stake is rejected
and the victim's goes through."""

from __future__ import annotations

from state_machine.actions import DepositPopBody, pop_message, system_action
from state_machine.constants import STAKE_AMOUNT
from state_machine.crypto import sign
from tests.stf_harness import CHAIN_ID, Client, Harness


def _deposit(h: Harness, address: bytes, victim: Client, pop: bytes):
    h.l1_block += 1
    body = DepositPopBody(address, victim.pubkey, STAKE_AMOUNT, pop, h.l1_block, 0, b"\x11" * 32)
    return system_action("l1_deposit_pop", CHAIN_ID, h.system_nonce, body)


def test_front_runner_cannot_bind_a_victims_pubkey():
    h = Harness()
    victim = Client.make("victim")
    thief = b"\x66" * 20
    victim_pop = sign(victim.seed, pop_message(CHAIN_ID, victim.address))
    # the thief copies the pubkey and even the victim's pop, from its own address
    [r_thief] = h.block(_deposit(h, thief, victim, victim_pop))
    assert (r_thief.applied, r_thief.reason) == (False, "bad_pop")
    assert victim.pubkey not in h.state.accounts
    # a rejected system action consumes no system nonce
    [r_victim] = h.block(_deposit(h, victim.address, victim, victim_pop))
    assert r_victim.applied, r_victim
    assert h.state.accounts[victim.pubkey].l1_address == victim.address


def test_pop_is_bound_to_the_rollup_chain():
    h = Harness()
    victim = Client.make("victim")
    other_chain = sign(victim.seed, pop_message(CHAIN_ID + 1, victim.address))
    [r] = h.block(_deposit(h, victim.address, victim, other_chain))
    assert (r.applied, r.reason) == (False, "bad_pop")
    [r] = h.block(_deposit(h, victim.address, victim, b"\x00" * 64))
    assert (r.applied, r.reason) == (False, "bad_pop")
