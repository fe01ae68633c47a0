"""Attack scenarios on synthetic deltas, driven through real blocks of the STF.

Honest deltas share a direction plus independent noise (pairwise cos ~ 0.5); each attack
is injected by a selected proposer. Exactly the attackers must be flagged, each with the
verdict SPEC §5 prescribes, and no honest client.
"""

from __future__ import annotations

import numpy as np
import pytest
from stf_harness import Client, Harness, default_params

D = 4096
N_PROPOSERS = 9
F = 2


def setup_task(n_clients: int = 12, voters: int = 0, max_epochs: int = 3):
    h = Harness()
    clients = [Client.make(f"scn{i}") for i in range(n_clients)]
    g = np.zeros(D, dtype=np.int32)
    params = default_params(D, g, proposers=N_PROPOSERS, f=F, voters=voters)
    h.block(*[h.deposit(c) for c in clients], h.create_task(1, params, max_epochs=max_epochs))
    h.block(h.genesis(clients[0], 1, g))
    h.block()  # epoch 0 opens at block start
    return h, {c.pubkey: c for c in clients}


def honest_deltas(rng, pubkeys, base):
    return {
        pk: np.clip(base + rng.normal(0, 400, D), -32768, 32767).astype(np.int16) for pk in pubkeys
    }


def run_epoch(h: Harness, by_pk, task_id: int, deltas: dict) -> dict:
    epoch = h.state.tasks[task_id].epoch
    submitters = [pk for pk in deltas if deltas[pk] is not None]
    r = h.block(*[h.commit(by_pk[pk], task_id, epoch, deltas[pk]) for pk in submitters])
    assert all(x.applied for x in r), [x.reason for x in r]
    advancer = by_pk[submitters[0]]
    if not h.block(h.advance(advancer, task_id, epoch))[0].applied:
        h.until_phase_changes(task_id)
    r = h.block(*[h.reveal(by_pk[pk], task_id, epoch, deltas[pk]) for pk in submitters])
    assert all(x.applied for x in r), [x.reason for x in r]
    if not h.block(h.advance(advancer, task_id, epoch))[0].applied:
        h.until_phase_changes(task_id)
    return h.state.epochs[(task_id, epoch)].verdicts


def _attack(name, rng, honest, pk_honest, prev):
    if name == "sign_flip":
        return (-honest[pk_honest].astype(np.int32)).clip(-32768, 32767).astype(np.int16)
    if name == "gaussian_noise":
        return rng.normal(0, 4000, D).clip(-32768, 32767).astype(np.int16)
    if name == "zero":
        return np.zeros(D, dtype=np.int16)
    if name == "replay":
        return prev.copy()
    raise AssertionError(name)


EXPECTED = {
    "sign_flip": "OUTLIER",
    "gaussian_noise": "EXCLUDED",  # Krum outlier, no negative direction: dropped, not slashed
    "zero": "FREE_RIDER",
    "replay": "FREE_RIDER",
}


@pytest.mark.parametrize("attack", sorted(EXPECTED))
def test_single_attack_is_flagged_and_nobody_else(attack):
    rng = np.random.default_rng(hash(attack) % 2**32)
    h, by_pk = setup_task()
    base = rng.normal(0, 400, D)
    if attack == "replay":  # needs a previous accepted aggregate
        ep0 = h.state.epochs[(1, 0)]
        verdicts = run_epoch(h, by_pk, 1, honest_deltas(rng, ep0.proposers, base))
        assert set(verdicts.values()) == {"ACCEPTED"}
    ep = h.state.epochs[(1, h.state.tasks[1].epoch)]
    deltas = honest_deltas(rng, ep.proposers, base)
    attacker = ep.proposers[0]
    prev = h.state.tasks[1].prev_delta
    deltas[attacker] = _attack(attack, rng, deltas, ep.proposers[1], prev)
    verdicts = run_epoch(h, by_pk, 1, deltas)
    assert verdicts[attacker] == EXPECTED[attack]
    assert all(v == "ACCEPTED" for pk, v in verdicts.items() if pk != attacker), verdicts
    slashed = {pk for pk, _, _ in h.state.epochs[(1, ep.epoch)].slashes}
    assert slashed == ({attacker} if EXPECTED[attack] != "EXCLUDED" else set())


def test_duplicate_pair_both_flagged():
    rng = np.random.default_rng(11)
    h, by_pk = setup_task()
    ep = h.state.epochs[(1, 0)]
    deltas = honest_deltas(rng, ep.proposers, rng.normal(0, 400, D))
    a, b = ep.proposers[2], ep.proposers[5]
    deltas[b] = (
        (deltas[a].astype(np.int32) + rng.integers(-3, 4, D)).clip(-32768, 32767).astype(np.int16)
    )
    verdicts = run_epoch(h, by_pk, 1, deltas)
    assert verdicts[a] == verdicts[b] == "DUPLICATE"
    assert all(v == "ACCEPTED" for pk, v in verdicts.items() if pk not in (a, b))


def test_combined_attackers_and_absent_honest_majority():
    rng = np.random.default_rng(5)
    h, by_pk = setup_task(n_clients=14)
    ep = h.state.epochs[(1, 0)]
    base = rng.normal(0, 400, D)
    deltas = honest_deltas(rng, ep.proposers, base)
    flip, noise, lazy = ep.proposers[0], ep.proposers[3], ep.proposers[6]
    deltas[flip] = _attack("sign_flip", rng, deltas, ep.proposers[1], None)
    deltas[noise] = _attack("gaussian_noise", rng, deltas, None, None)
    deltas[lazy] = _attack("zero", rng, deltas, None, None)
    verdicts = run_epoch(h, by_pk, 1, deltas)
    assert verdicts[flip] == "OUTLIER" and verdicts[noise] == "EXCLUDED"
    assert verdicts[lazy] == "FREE_RIDER"
    honest = set(ep.proposers) - {flip, noise, lazy}
    assert {pk for pk, _, _ in h.state.epochs[(1, 0)].slashes} == {flip, lazy}
    assert all(verdicts[pk] == "ACCEPTED" for pk in honest)
    # the new global is the exact mean of the honest deltas only
    from state_machine.aggregation import mean_round_half_even

    want = mean_round_half_even(np.stack([deltas[pk] for pk in sorted(honest)]))
    assert np.array_equal(h.state.tasks[1].global_model, want.astype(np.int32))


def test_honest_majority_no_flags_and_absent_is_slashed_lightly():
    rng = np.random.default_rng(9)
    h, by_pk = setup_task()
    ep = h.state.epochs[(1, 0)]
    deltas = honest_deltas(rng, ep.proposers, rng.normal(0, 400, D))
    absent = ep.proposers[4]
    deltas[absent] = None
    verdicts = run_epoch(h, by_pk, 1, deltas)
    assert verdicts[absent] == "ABSENT"
    assert all(v == "ACCEPTED" for pk, v in verdicts.items() if pk != absent)
    acc = h.state.accounts[absent]
    assert acc.cumulative_slashed == 10**17 // 100  # ABSENT_SLASH_BPS = 1 %
