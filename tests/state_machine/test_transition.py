"""The STF: rejections change nothing, replay is deterministic, order does not matter."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stf_harness import CHAIN_ID, Client, Harness, default_params

from state_machine.actions import (
    CommitUpdateBody,
    DepositBody,
    RevealUpdateBody,
    SignedAction,
    make_action,
    system_action,
)
from state_machine.constants import CURRENT_PROTOCOL, FEE_PER_EPOCH, PROTOCOL_V1, STAKE_AMOUNT
from state_machine.crypto import keccak256
from state_machine.state import TASK_COMPLETED, TASK_REJECTED, UPDATE_COMMIT
from state_machine.transition import Block, BlockError, apply_block, genesis_state

D = 256


def started(n_clients=10, voters=0, max_epochs=3, proposers=7, f=1, protocol=CURRENT_PROTOCOL):
    h = Harness(state=genesis_state(CHAIN_ID, protocol))
    clients = [Client.make(f"t{i}") for i in range(n_clients)]
    g = np.arange(D, dtype=np.int32)
    params = default_params(D, g, proposers=proposers, f=f, voters=voters)
    h.block(*[h.deposit(c) for c in clients], h.create_task(1, params, max_epochs=max_epochs))
    h.block(h.genesis(clients[0], 1, g))
    h.block()
    return h, {c.pubkey: c for c in clients}, clients


def deltas_for(pubkeys, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.normal(0, 300, D)
    return {pk: (base + rng.normal(0, 300, D)).astype(np.int16) for pk in pubkeys}


def assert_rejected_unchanged(h: Harness, sa: SignedAction, reason: str) -> None:
    """Applying a block with only ``sa`` gives the same root as an empty block."""
    empty, _ = apply_block(h.state, Block(h.state.height + 1, h.parent, h.state.timestamp, []))
    with_bad, receipts = apply_block(h.state, Block(h.state.height + 1, h.parent,
                                                    h.state.timestamp, [sa]))
    assert not receipts[0].applied
    assert receipts[0].reason == reason, receipts[0]
    assert with_bad.state_root() == empty.state_root()


def test_each_rejection_names_its_reason_and_changes_nothing():
    h, by_pk, clients = started()
    ep = h.state.epochs[(1, 0)]
    prop = by_pk[ep.proposers[0]]
    outsider = next(c for c in clients if c.pubkey not in ep.proposers)
    delta = np.ones(D, dtype=np.int16)
    mk = lambda c, body, typ="commit_update": make_action(  # noqa: E731
        c.seed, typ, CHAIN_ID, h.state.nonces.get(c.pubkey, 0), body, c.pubkey
    )
    good = mk(prop, CommitUpdateBody(1, 0, b"\x01" * 32))
    # bad signature
    bad_sig = SignedAction(good.action, bytes(64))
    assert_rejected_unchanged(h, bad_sig, "bad_signature")
    # wrong nonce
    wrong_nonce = make_action(
        prop.seed, "commit_update", CHAIN_ID, 5, CommitUpdateBody(1, 0, b"\x01" * 32), prop.pubkey
    )
    assert_rejected_unchanged(h, wrong_nonce, "bad_nonce")
    # wrong chain
    wrong_chain = make_action(
        prop.seed,
        "commit_update",
        CHAIN_ID + 1,
        0,
        CommitUpdateBody(1, 0, b"\x01" * 32),
        prop.pubkey,
    )
    assert_rejected_unchanged(h, wrong_chain, "bad_chain_id")
    # unknown task, wrong epoch, not selected, wrong window (reveal during commit)
    assert_rejected_unchanged(h, mk(prop, CommitUpdateBody(9, 0, b"\x01" * 32)), "unknown_task")
    assert_rejected_unchanged(h, mk(prop, CommitUpdateBody(1, 3, b"\x01" * 32)), "wrong_epoch")
    assert_rejected_unchanged(h, mk(outsider, CommitUpdateBody(1, 0, b"\x01" * 32)), "not_selected")
    salt = b"\x07" * 32
    reveal = mk(prop, RevealUpdateBody(1, 0, delta.astype("<i2").tobytes(), salt), "reveal_update")
    assert_rejected_unchanged(h, reveal, "wrong_window")
    # commit properly, then reveal with wrong length / wrong commitment
    h.block(h.commit(prop, 1, 0, delta, salt))
    h.until_phase_changes(1)
    assert h.state.tasks[1].phase == "update_reveal"
    short = mk(prop, RevealUpdateBody(1, 0, b"\x00" * (2 * D - 2), salt), "reveal_update")
    assert_rejected_unchanged(h, short, "wrong_length")
    other = mk(
        prop, RevealUpdateBody(1, 0, (delta * 2).astype("<i2").tobytes(), salt), "reveal_update"
    )
    assert_rejected_unchanged(h, other, "commitment_mismatch")
    ok = mk(prop, RevealUpdateBody(1, 0, delta.astype("<i2").tobytes(), salt), "reveal_update")
    _, receipts = apply_block(h.state, Block(h.state.height + 1, h.parent, h.state.timestamp, [ok]))
    assert receipts[0].applied


def test_duplicate_commitment_on_protocol_1_and_l1_order_rejected():
    """Protocol 1 refuses a second equal commitment (departure 3, kept so old chains
    replay); protocol 2 needs no such rule (``test_commitments.py``)."""
    h, by_pk, _ = started(protocol=PROTOCOL_V1)
    ep = h.state.epochs[(1, 0)]
    a, b = by_pk[ep.proposers[0]], by_pk[ep.proposers[1]]
    delta = np.ones(D, dtype=np.int16)
    salt = b"\x09" * 32
    h.block(h.commit(a, 1, 0, delta, salt))
    committed = h.state.epochs.peek((1, 0)).update_commits[a.pubkey]
    copy = h.signed(b, "commit_update", CommitUpdateBody(1, 0, committed))
    assert_rejected_unchanged(h, copy, "duplicate_commitment")
    stale = system_action(
        "l1_deposit",
        CHAIN_ID,
        h.system_nonce,
        DepositBody(b"\x05" * 20, b"\x06" * 32, STAKE_AMOUNT, 0, 0, bytes(32)),
    )
    assert_rejected_unchanged(h, stale, "l1_out_of_order")


def test_block_height_must_follow():
    h, _, _ = started()
    with pytest.raises(BlockError):
        apply_block(h.state, Block(h.state.height + 2, h.parent, h.state.timestamp, []))


def _drive(h: Harness, by_pk, deltas, order_seed: int | None):
    ep = h.state.epochs[(1, h.state.tasks[1].epoch)]
    pks = list(ep.proposers)
    if order_seed is not None:
        np.random.default_rng(order_seed).shuffle(pks)
    h.block(*[h.commit(by_pk[pk], 1, ep.epoch, deltas[pk]) for pk in pks])
    advancer = by_pk[ep.proposers[0]]  # same sender in every order: nonces are state too
    h.block(h.advance(advancer, 1, ep.epoch))
    h.block(*[h.reveal(by_pk[pk], 1, ep.epoch, deltas[pk]) for pk in pks])
    h.block(h.advance(advancer, 1, ep.epoch))
    return ep.epoch


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**31), st.integers(0, 2**31))
def test_permuting_reveal_order_changes_no_verdict_and_no_root(seed_a, seed_b):
    results = []
    for order in (seed_a, seed_b):
        h, by_pk, _ = started()
        deltas = deltas_for(h.state.epochs[(1, 0)].proposers, seed=1)
        first = h.state.epochs[(1, 0)].proposers[0]
        deltas[first] = np.zeros_like(deltas[first])  # one free-rider: verdicts differ
        e = _drive(h, by_pk, deltas, order)
        results.append((h.state.state_root(), h.state.epochs[(1, e)].verdicts))
    assert results[0] == results[1]
    assert "FREE_RIDER" in results[0][1].values()


def test_two_independent_states_reach_the_same_root():
    roots = []
    for _ in range(2):
        h, by_pk, _ = started()
        deltas = deltas_for(h.state.epochs[(1, 0)].proposers, seed=4)
        _drive(h, by_pk, deltas, None)
        roots.append((h.state.state_root(), h.parent))
    assert roots[0] == roots[1]


def test_apply_block_does_not_mutate_its_input():
    h, by_pk, _ = started()
    before = h.state.state_root()
    ep = h.state.epochs[(1, 0)]
    sa = h.commit(by_pk[ep.proposers[0]], 1, 0, np.ones(D, dtype=np.int16))
    new, _ = apply_block(h.state, Block(h.state.height + 1, h.parent, h.state.timestamp, [sa]))
    assert h.state.state_root() == before != new.state_root()


def test_committee_accepts_then_rejects_with_slashes_and_fees_conserved():
    h, by_pk, clients = started(n_clients=12, voters=3, max_epochs=2)
    # epoch 0: voters see an improvement -> accepted
    deltas = deltas_for(h.state.epochs[(1, 0)].proposers, seed=2)
    _drive(h, by_pk, deltas, None)
    ep = h.state.epochs[(1, 0)]
    assert h.state.tasks[1].phase == "vote_commit"
    votes = {pk: (8000, 7000) for pk in ep.voters}
    liar = ep.voters[0]
    votes[liar] = (6000, 7000)
    h.block(*[h.commit_vote(by_pk[pk], 1, 0, *v) for pk, v in votes.items()])
    h.block(h.advance(clients[0], 1, 0))
    h.block(*[h.reveal_vote(by_pk[pk], 1, 0, *v) for pk, v in votes.items()])
    h.block(h.advance(clients[0], 1, 0))
    ep = h.state.epochs[(1, 0)]  # states are values: re-read after every block
    assert ep.outcome == "accepted" and ep.accuracy_bps == 8000
    assert ep.voter_verdicts[liar] == "DISAGREE"
    assert h.state.accounts[liar].cumulative_slashed == 0  # v3: unpaid, not slashed
    assert liar not in ep.rewards
    assert h.state.tasks[1].accepted_epochs == 1
    # epoch 1: voters see a regression -> rejected; proposers unpaid, not slashed (v2)
    ep1 = h.state.epochs[(1, 1)]
    _drive(h, by_pk, deltas_for(ep1.proposers, seed=3), None)
    votes = {pk: (5000, 8000) for pk in ep1.voters}
    h.block(*[h.commit_vote(by_pk[pk], 1, 1, *v) for pk, v in votes.items()])
    h.block(h.advance(clients[0], 1, 1))
    h.block(*[h.reveal_vote(by_pk[pk], 1, 1, *v) for pk, v in votes.items()])
    h.block(h.advance(clients[0], 1, 1))
    ep1 = h.state.epochs[(1, 1)]
    assert ep1.outcome == "rejected"
    assert not {pk for pk, _, _ in ep1.slashes} & set(ep1.proposers)
    assert not set(ep1.rewards) & set(ep1.proposers)
    task = h.state.tasks[1]
    assert task.status == TASK_COMPLETED and task.charged == 2 * FEE_PER_EPOCH
    rewards = sum(a.cumulative_reward for a in h.state.accounts.values())
    assert rewards + task.treasury == task.charged  # every wei accounted for


def test_target_accuracy_completes_early_and_absent_voters_slashed():
    h, by_pk, clients = started(n_clients=12, voters=2, max_epochs=5)
    deltas = deltas_for(h.state.epochs[(1, 0)].proposers, seed=6)
    _drive(h, by_pk, deltas, None)
    ep = h.state.epochs[(1, 0)]
    voter, absent = ep.voters
    h.block(h.commit_vote(by_pk[voter], 1, 0, 10_000, 9000))
    h.until_phase_changes(1)
    h.block(h.reveal_vote(by_pk[voter], 1, 0, 10_000, 9000))
    h.block(h.advance(clients[0], 1, 0))
    task, ep = h.state.tasks[1], h.state.epochs[(1, 0)]
    assert ep.voter_verdicts[absent] == "ABSENT"
    assert task.status == TASK_COMPLETED and task.epochs_run == 1
    assert task.charged == FEE_PER_EPOCH


def test_invalid_task_params_make_a_refundable_rejected_task():
    h = Harness()
    g = np.zeros(8, dtype=np.int32)
    params = default_params(8, g, proposers=4, f=1)  # 4 < 2f + 3
    r = h.block(h.create_task(1, params))
    assert r[0].applied
    t = h.state.tasks[1]
    assert t.status == TASK_REJECTED and t.charged == 0 and "2f + 3" in t.reject_reason
    proof = h.state.task_proof(1)
    from state_machine.leaves import SUBROOT_TASKS, verify_state_proof

    assert verify_state_proof(proof["leaf"], proof["proof"], SUBROOT_TASKS, h.state.state_root())


def test_genesis_must_match_hash_and_unbonded_clients_are_not_selected():
    h = Harness()
    clients = [Client.make(f"g{i}") for i in range(6)]
    g = np.zeros(D, dtype=np.int32)
    h.block(
        *[h.deposit(c) for c in clients], h.create_task(1, default_params(D, g, proposers=5, f=1))
    )
    r = h.block(h.genesis(clients[0], 1, g + 1))
    assert r[0].reason == "hash_mismatch"
    # unbond one in the genesis block: 5 eligible remain, exactly 2f + 3
    from state_machine.actions import UnbondBody

    h.l1_block += 1
    c = clients[5]
    unbond = h._sys("l1_unbond", UnbondBody(c.address, c.pubkey, 123, h.l1_block, 0, bytes(32)))
    h.block(h.genesis(clients[0], 1, g), unbond)
    h.block()  # the epoch opens at the start of the next block
    t = h.state.tasks[1]
    assert t.phase == UPDATE_COMMIT
    assert c.pubkey not in h.state.epochs[(1, 0)].proposers


def test_account_proof_verifies_against_state_root():
    h, _, clients = started()
    from state_machine.leaves import SUBROOT_ACCOUNTS, verify_state_proof

    p = h.state.account_proof(clients[3].pubkey)
    assert verify_state_proof(p["leaf"], p["proof"], SUBROOT_ACCOUNTS, h.state.state_root())
    tampered = list(p["proof"])
    tampered[0] = keccak256(tampered[0])
    assert not verify_state_proof(p["leaf"], tampered, SUBROOT_ACCOUNTS, h.state.state_root())
