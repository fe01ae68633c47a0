"""Issue 11, F-12: a client's signed action forced through L1 (``l1_forced_action``).

The attack: the sequencer drops a selected proposer's commit (or reveal) from its mempool,
the phase closes, and the honest client is slashed ``ABSENT``. Now the client posts the
same signed bytes to ``StakingRegistry.forceInclude``; the rollup applies them with the
mempool's checks. The wrapper never moves money and never blocks the L1 cursor: an
invalid inner action is recorded with its reason and changes nothing else."""

from __future__ import annotations

import numpy as np
from stf_harness import CHAIN_ID, Client, Harness, default_params

from state_machine.actions import (
    DepositBody,
    ForcedActionBody,
    SignedAction,
    system_action,
)
from state_machine.constants import STAKE_AMOUNT
from state_machine.verdicts import ABSENT

D = 64
N = 7


def started(window: int = 3):
    h = Harness()
    clients = [Client.make(f"forced{i}") for i in range(N)]
    g = np.zeros(D, dtype=np.int32)
    h.block(*[h.deposit(c) for c in clients],
            h.create_task(1, default_params(D, g, proposers=N, f=1, window=window), max_epochs=3))
    h.block(h.genesis(clients[0], 1, g))
    h.block()
    assert h.state.tasks[1].phase == "update_commit"
    return h, clients


def forced(h: Harness, inner: SignedAction | bytes) -> SignedAction:
    h.l1_block += 1
    raw = inner.encode() if isinstance(inner, SignedAction) else inner
    body = ForcedActionBody(1, raw, h.l1_block, 0, b"\x55" * 32)
    sa = system_action("l1_forced_action", CHAIN_ID, h.system_nonce, body)
    h.system_nonce += 1
    return sa


def deltas(seed: int = 0):
    rng = np.random.default_rng(seed)
    base = rng.normal(0, 300, D)
    return [(base + rng.normal(0, 300, D)).astype(np.int16) for _ in range(N)]


def run_epoch(h: Harness, clients, censored: int, force: bool) -> list:
    """Every proposer commits and reveals; the sequencer drops ``censored``'s commit;
    with ``force`` the client sends it through L1 instead. Returns the wrapper receipts."""
    ds = deltas()
    victim = clients[censored]
    commits = [h.commit(c, 1, 0, ds[i]) for i, c in enumerate(clients)]
    dropped = commits.pop(censored)  # acknowledged, never included
    out = []
    if force:
        out = h.block(*commits, forced(h, dropped))[-1:]
    else:
        h.block(*commits)
    h.until_phase_changes(1)
    sub = [(i, c) for i, c in enumerate(clients) if force or c is not victim]
    h.block(*[h.reveal(c, 1, 0, ds[i]) for i, c in sub])
    h.until_phase_changes(1)
    return out


def test_censored_commit_without_forcing_gets_the_honest_client_slashed():
    h, clients = started()
    run_epoch(h, clients, censored=2, force=False)
    ep = h.state.epochs[(1, 0)]
    assert ep.verdicts[clients[2].pubkey] == ABSENT
    assert h.state.accounts[clients[2].pubkey].cumulative_slashed > 0


def test_forced_commit_lands_and_the_client_is_not_slashed():
    h, clients = started()
    [r] = run_epoch(h, clients, censored=2, force=True)
    assert r.applied and r.detail == "" and r.events[:2] == ["forced_action_applied",
                                                           "update_committed"]
    victim = clients[2].pubkey
    ep = h.state.epochs[(1, 0)]
    assert ep.verdicts[victim] != ABSENT
    assert h.state.accounts[victim].cumulative_slashed == 0
    assert h.state.accounts[victim].stake == STAKE_AMOUNT


def _rejected(h: Harness, inner) -> str:
    before = h.state
    [r] = h.block(forced(h, inner))
    assert r.applied, r  # the wrapper consumed its L1 position ...
    assert h.state.l1_cursor == (h.l1_block, 0)
    # ... and nothing else: accounts, nonces (but the system sender's), tasks, epochs
    for pk, acc in before.accounts.items():
        assert h.state.accounts.peek(pk).to_record() == acc.to_record()
    for c in (Client.make(f"forced{i}") for i in range(N)):
        assert h.state.nonces.get(c.pubkey, 0) == before.nonces.get(c.pubkey, 0)
    assert h.state.tasks[1].detail() == before.tasks[1].detail()
    assert h.state.epochs[(1, 0)].record() == before.epochs[(1, 0)].record()
    assert r.events[0] == "forced_action_rejected"
    return r.detail


def test_invalid_forced_actions_are_recorded_and_change_nothing():
    h, clients = started(window=30)  # no deadline passes during the test
    c = clients[1]  # clients[0] published genesis: c's nonce is 0
    good = h.commit(c, 1, 0, deltas()[1])
    c.nonce = 0  # not included: the client's nonce is still 0
    assert _rejected(h, b"\x93junk").startswith("forced: malformed")
    wrong_nonce = h.signed(c, "commit_update", good.action.body)  # nonce 0 ... again
    c.nonce = 5
    late = h.signed(c, "commit_update", good.action.body)
    assert _rejected(h, late) == "forced: bad_nonce: expected nonce 0, got 5"
    forged = SignedAction(wrong_nonce.action, b"\x01" * 64)
    assert _rejected(h, forged) == "forced: bad_signature"
    c.nonce = 0
    vote = h.commit_vote(c, 1, 0, 9000, 8000)  # wrong phase for the inner action
    assert _rejected(h, vote).startswith("forced: wrong_window")
    deposit = system_action("l1_deposit", CHAIN_ID, 0, DepositBody(
        b"\x66" * 20, b"\x67" * 32, STAKE_AMOUNT, h.l1_block + 5, 0, b"\x00" * 32))
    assert _rejected(h, deposit) == "forced: forced_system_action: l1_deposit"
    nested = system_action("l1_forced_action", CHAIN_ID, 0, ForcedActionBody(
        9, good.encode(), h.l1_block + 5, 0, b"\x00" * 32))
    assert _rejected(h, nested) == "forced: forced_system_action: l1_forced_action"
    # the genuine action still applies afterwards, once
    c.nonce = 0
    [r] = h.block(forced(h, good))
    assert r.applied and r.events[0] == "forced_action_applied"
    assert _rejected(h, good) == "forced: bad_nonce: expected nonce 1, got 0"


def test_forced_log_obeys_l1_order():
    h, clients = started()
    good = h.commit(clients[0], 1, 0, deltas()[0])
    h.l1_block += 5
    assert h.block(h.deposit(Client.make("later")))[0].applied  # the cursor moves on
    body = ForcedActionBody(1, good.encode(), h.l1_block - 3, 0, b"\x55" * 32)  # older log
    [r] = h.block(system_action("l1_forced_action", CHAIN_ID, h.system_nonce, body))
    assert (r.applied, r.reason) == (False, "l1_out_of_order")
    assert clients[0].pubkey not in h.state.epochs[(1, 0)].update_commits


def test_a_forced_v2_reveal_names_its_blob_for_sequencer_and_verifier():
    from state_machine.actions import RevealUpdateV2Body
    from state_machine.forced import inner_v2_update

    h, clients = started()
    body = RevealUpdateV2Body(1, 0, b"\x0a" * 32, 2 * D, 64, b"\x0b" * 32, b"\x0c" * 32)
    reveal = h.signed(clients[1], "reveal_update_v2", body)
    assert inner_v2_update(forced(h, reveal).action.body) == (b"\x0a" * 32, 2 * D)
    assert inner_v2_update(forced(h, h.commit(clients[2], 1, 0, deltas()[2])).action.body) is None
    assert inner_v2_update(forced(h, b"junk").action.body) is None
