"""Attack scenarios on synthetic deltas, driven through real blocks of the STF (v2 verdicts).

Honest deltas share a direction plus independent noise (pairwise cos ~ 0.5) and respect
the task's norm bound; each attack is injected by a selected proposer. Exactly the
attackers that carry evidence (norm above the bound, zero, replay, same-round copy) are
slashed, with the verdict docs/protocol.md prescribes; attacks without evidence (a sign
flip or noise within the bound) are not slashed, and no honest client ever is.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from stf_harness import Client, Harness, default_params

from state_machine.aggregation import aggregate

D = 4096
N_PROPOSERS = 9
F = 2
NORM_BOUND = 60_000  # honest norms here are ~36,000 (sqrt(4096 * 2 * 400^2))


def setup_task(n_clients: int = 12, voters: int = 0, max_epochs: int = 3):
    h = Harness()
    clients = [Client.make(f"scn{i}") for i in range(n_clients)]
    g = np.zeros(D, dtype=np.int32)
    params = replace(
        default_params(D, g, proposers=N_PROPOSERS, f=F, voters=voters), norm_bound=NORM_BOUND
    )
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
    if name == "sign_flip_x4":
        return (-4 * honest[pk_honest].astype(np.int32)).clip(-32768, 32767).astype(np.int16)
    if name == "sign_flip":  # within the bound: no evidence
        return (-honest[pk_honest].astype(np.int32)).clip(-32768, 32767).astype(np.int16)
    if name == "gaussian_noise":  # at the honest norm: no evidence
        return rng.normal(0, 565, D).clip(-32768, 32767).astype(np.int16)
    if name == "big_noise":
        return rng.normal(0, 4000, D).clip(-32768, 32767).astype(np.int16)
    if name == "zero":
        return np.zeros(D, dtype=np.int16)
    if name == "replay":
        return prev.copy()
    raise AssertionError(name)


EXPECTED = {
    "sign_flip_x4": "NORM_VIOLATION",
    "big_noise": "NORM_VIOLATION",
    "sign_flip": None,  # ACCEPTED or EXCLUDED by the aggregator; never slashed
    "gaussian_noise": None,
    "zero": "FREE_RIDER",
    "replay": "FREE_RIDER",
}


@pytest.mark.parametrize("attack", sorted(EXPECTED))
def test_single_attack_is_flagged_and_nobody_else(attack):
    rng = np.random.default_rng(sum(map(ord, attack)))
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
    if EXPECTED[attack]:
        assert verdicts[attacker] == EXPECTED[attack]
    else:
        assert verdicts[attacker] in ("ACCEPTED", "EXCLUDED")
    assert all(v == "ACCEPTED" for pk, v in verdicts.items() if pk != attacker), verdicts
    slashed = {pk for pk, _, _ in h.state.epochs[(1, ep.epoch)].slashes}
    assert slashed == ({attacker} if EXPECTED[attack] else set())


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


def test_replaying_a_victims_past_update_slashes_only_the_replayer():
    rng = np.random.default_rng(13)
    h, by_pk = setup_task(n_clients=9)  # every client proposes in every epoch
    ep0 = h.state.epochs[(1, 0)]
    base = rng.normal(0, 400, D)
    first = honest_deltas(rng, ep0.proposers, base)
    run_epoch(h, by_pk, 1, first)
    ep1 = h.state.epochs[(1, 1)]
    victim, framer = ep1.proposers[1], ep1.proposers[4]
    deltas = honest_deltas(rng, ep1.proposers, base)
    deltas[victim] = first[victim].copy()  # same bytes against a new global: replay too
    deltas[framer] = first[victim].copy()
    verdicts = run_epoch(h, by_pk, 1, deltas)
    assert verdicts[framer] == "FREE_RIDER"  # replay of a past public update
    assert verdicts[victim] != "DUPLICATE"
    slashed = {pk for pk, _, _ in h.state.epochs[(1, 1)].slashes}
    assert framer in slashed and victim in slashed  # bytes, not authorship, are evidence
    # a jittered copy of the victim's past update next to a fresh victim update: no slash
    h2, by_pk2 = setup_task(n_clients=9)
    e0 = h2.state.epochs[(1, 0)]
    first = honest_deltas(rng, e0.proposers, base)
    run_epoch(h2, by_pk2, 1, first)
    e1 = h2.state.epochs[(1, 1)]
    deltas = honest_deltas(rng, e1.proposers, base)
    jitter = rng.integers(-2, 3, D)
    deltas[framer] = (first[victim].astype(np.int32) + jitter).astype(np.int16)
    verdicts = run_epoch(h2, by_pk2, 1, deltas)
    assert verdicts[victim] == "ACCEPTED"
    assert not h2.state.epochs[(1, 1)].slashes


def test_combined_attackers_and_absent_honest_majority():
    rng = np.random.default_rng(5)
    h, by_pk = setup_task(n_clients=14)
    ep = h.state.epochs[(1, 0)]
    base = rng.normal(0, 400, D)
    deltas = honest_deltas(rng, ep.proposers, base)
    flip, noise, lazy = ep.proposers[0], ep.proposers[3], ep.proposers[6]
    deltas[flip] = _attack("sign_flip_x4", rng, deltas, ep.proposers[1], None)
    deltas[noise] = _attack("gaussian_noise", rng, deltas, None, None)
    deltas[lazy] = _attack("zero", rng, deltas, None, None)
    verdicts = run_epoch(h, by_pk, 1, deltas)
    assert verdicts[flip] == "NORM_VIOLATION" and verdicts[lazy] == "FREE_RIDER"
    assert verdicts[noise] in ("ACCEPTED", "EXCLUDED")
    honest = set(ep.proposers) - {flip, noise, lazy}
    assert {pk for pk, _, _ in h.state.epochs[(1, 0)].slashes} == {flip, lazy}
    assert all(verdicts[pk] == "ACCEPTED" for pk in honest)
    # the new global is the task's aggregator over exactly the updates without evidence
    params = h.state.tasks[1].params
    keys = sorted(honest | {noise})
    f_left = F - 2  # two attackers were slashed: the rule trims only the rest of f
    want = aggregate(
        params.aggregator, np.stack([deltas[pk] for pk in keys]), f_left, keys, ep.seed
    )
    assert np.array_equal(h.state.tasks[1].global_model, want.astype(np.int32))
    # the noise earns far less than an honest client (contribution ~ 0)
    rewards = h.state.epochs[(1, 0)].rewards
    honest_avg = sum(rewards.get(pk, 0) for pk in honest) / len(honest)
    assert rewards.get(noise, 0) < 0.05 * honest_avg
    assert lazy not in rewards and flip not in rewards


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
