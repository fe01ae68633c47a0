"""Every client behaviour: shape, dtype, determinism and its defining property."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from federated import attacks, attacks_adaptive, data, models, train
from federated.attacks import ATTACKS, Behaviour, ClientContext, alie_z

S = 12
MODEL = "softmax"
EPOCHS, LR = 2, 0.3


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64), b.astype(np.float64)
    return float(a @ b / np.sqrt((a @ a) * (b @ b)))


@pytest.fixture(scope="module")
def world() -> dict[str, object]:
    """Round 2 of a 6-client IID run: a trained global, a real Δ_prev, honest deltas."""
    split = data.digits_split()
    parts = data.partition_iid(6, seed=0)
    g0 = train.init_global(MODEL, 0, S)

    def honest_round(g: np.ndarray, rnd: int) -> list[np.ndarray]:
        return [
            train.local_update(
                MODEL, g, S, split.X_train[p], split.y_train[p], EPOCHS, LR, 32, seed=10 * rnd + i
            ).delta_q
            for i, p in enumerate(parts)
        ]

    prev = train.fedavg_delta(honest_round(g0, 0))
    g1 = train.apply_delta(g0, prev)
    honest = honest_round(g1, 1)
    return {"global": g1, "prev": prev, "honest": honest[1:], "parts": parts, "split": split}


def _ctx(world: dict[str, object], **kw: object) -> ClientContext:
    split: data.Split = world["split"]  # type: ignore[assignment]
    idx = world["parts"][0]  # type: ignore[index]
    base = ClientContext(
        model_name=MODEL,
        scale_bits=S,
        global_q=world["global"],  # type: ignore[arg-type]
        X=split.X_train[idx],
        y=split.y_train[idx],
        seed=10,  # = the seed client 0 used in round 1
        prev_delta_q=world["prev"],  # type: ignore[arg-type]
        epochs=EPOCHS,
        lr=LR,
        batch_size=32,
        n_clients=6,
        n_byzantine=1,
    )
    return replace(base, **kw)


def test_registry_names() -> None:
    expected = {
        "honest", "sign_flip", "gaussian_noise", "label_flip", "alie", "ipm", "lazy",
        "replay", "disguised_free_rider", "duplicate", "dishonest_voter", "absent",
        "min_max", "min_sum", "fang", "backdoor", "small_noise", "stale_copy", "frame_replay",
    }  # fmt: skip
    assert set(ATTACKS) - {a.name for a in attacks_adaptive.ADAPTIVE} == expected
    for name, b in ATTACKS.items():
        assert isinstance(b, Behaviour) and b.name == name
    with pytest.raises(KeyError, match="known"):
        attacks.get_behaviour("nope")


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_propose_shape_dtype_determinism(name: str, world: dict[str, object]) -> None:
    ctx = _ctx(world)
    b = ATTACKS[name]
    out1, out2 = b.propose(ctx), b.propose(ctx)
    if name == "absent":
        assert out1 is None and out2 is None
        return
    assert out1 is not None and out2 is not None
    assert out1.dtype == np.int16 and out1.shape == (models.num_params(MODEL),)
    assert np.array_equal(out1, out2)


@pytest.mark.parametrize("name", ["gaussian_noise", "disguised_free_rider", "duplicate", "honest"])
def test_seed_changes_randomized_attacks(name: str, world: dict[str, object]) -> None:
    a = ATTACKS[name].propose(_ctx(world, seed=1))
    b = ATTACKS[name].propose(_ctx(world, seed=2))
    assert a is not None and b is not None and not np.array_equal(a, b)


def test_honest_matches_local_update(world: dict[str, object]) -> None:
    ctx = _ctx(world)
    out = ATTACKS["honest"].propose(ctx)
    ref = train.local_update(MODEL, ctx.global_q, S, ctx.X, ctx.y, EPOCHS, LR, 32, seed=ctx.seed)
    assert out is not None and np.array_equal(out, ref.delta_q)


def test_sign_flip_is_negation(world: dict[str, object]) -> None:
    ctx = _ctx(world)
    honest = ATTACKS["honest"].propose(ctx)
    flipped = ATTACKS["sign_flip"].propose(ctx)
    assert honest is not None and flipped is not None
    assert np.array_equal(flipped.astype(np.int64), -honest.astype(np.int64))


def test_sign_flip_saturates_int16_min() -> None:
    assert attacks.to_int16(-np.array([-32768, 5])).tolist() == [32767, -5]


def test_lazy_is_zero(world: dict[str, object]) -> None:
    out = ATTACKS["lazy"].propose(_ctx(world))
    assert out is not None and not np.any(out)


def test_replay_equals_prev(world: dict[str, object]) -> None:
    out = ATTACKS["replay"].propose(_ctx(world))
    assert out is not None and np.array_equal(out, world["prev"])
    zero = ATTACKS["replay"].propose(_ctx(world, prev_delta_q=None))
    assert zero is not None and not np.any(zero)


def test_duplicate_pair_near_identical(world: dict[str, object]) -> None:
    params = {"pair_seed": 77.0}
    a = ATTACKS["duplicate"].propose(_ctx(world, seed=1, params=params))
    b = ATTACKS["duplicate"].propose(_ctx(world, seed=2, params=params))
    assert a is not None and b is not None
    assert not np.array_equal(a, b)
    assert _cos(a, b) > 0.999
    pa, pb = attacks.duplicate_pair(_ctx(world, seed=1, params=params), other_seed=2)
    assert np.array_equal(pa, a) and np.array_equal(pb, b)
    exact = {"pair_seed": 77.0, "noise_ratio": 0.0}
    c = ATTACKS["duplicate"].propose(_ctx(world, seed=1, params=exact))
    e = ATTACKS["duplicate"].propose(_ctx(world, seed=2, params=exact))
    assert c is not None and np.array_equal(c, e)


def test_ipm_negatively_correlated_with_honest_mean(world: dict[str, object]) -> None:
    honest = world["honest"]
    mean = np.mean(np.stack(honest), axis=0)  # type: ignore[arg-type]
    out = ATTACKS["ipm"].propose(_ctx(world, honest_deltas=honest))
    assert out is not None
    assert _cos(out, mean) < -0.99
    # ε scales it: -0.5 · mean by default
    assert np.max(np.abs(out - np.rint(-0.5 * mean))) <= 1
    # without shared estimates it uses bootstraps of its own data: still anti-aligned
    own = ATTACKS["ipm"].propose(_ctx(world))
    assert own is not None and _cos(own, mean) < -0.5


def test_alie_within_honest_spread(world: dict[str, object]) -> None:
    honest = np.stack(world["honest"]).astype(np.float64)  # type: ignore[arg-type]
    mean, std = honest.mean(axis=0), honest.std(axis=0)
    ctx = _ctx(world, honest_deltas=world["honest"], n_clients=10, n_byzantine=2)
    out = ATTACKS["alie"].propose(ctx)
    assert out is not None
    z = alie_z(10, 2)
    assert np.all(np.abs(out - (mean - z * std)) <= 0.5 + 1e-9)  # one rounding
    assert np.all(out >= honest.min(axis=0) - 1) and np.all(out <= honest.max(axis=0) + 1)
    # closer to the honest mean than any honest update: invisible to distance checks
    dist = np.linalg.norm(out - mean)
    assert dist < min(np.linalg.norm(h - mean) for h in honest)
    own = ATTACKS["alie"].propose(_ctx(world))  # bootstrap estimates
    assert own is not None and _cos(own, mean) > 0


def test_alie_z_formula() -> None:
    # s = floor(n/2 + 1) - f; z = Phi^-1((n - s) / n)
    assert alie_z(10, 2) == pytest.approx(0.2533, abs=1e-4)  # s=4, p=0.6
    assert alie_z(50, 12) == pytest.approx(0.5828, abs=1e-4)  # s=14, p=0.72
    assert alie_z(5, 0) == pytest.approx(-0.2533, abs=1e-4)  # s=3, p=0.4
    assert alie_z(3, 3) > 4  # clamped, finite


def test_gaussian_noise_statistics(world: dict[str, object]) -> None:
    out = ATTACKS["gaussian_noise"].propose(_ctx(world, params={"sigma": 0.01}))
    assert out is not None
    sigma_lsb = 0.01 * 2**S
    assert abs(float(np.std(out)) - sigma_lsb) < 0.15 * sigma_lsb
    assert abs(float(np.mean(out))) < 0.15 * sigma_lsb
    mean = np.mean(np.stack(world["honest"]), axis=0)  # type: ignore[arg-type]
    assert abs(_cos(out, mean)) < 0.2
    # default: 3 x RMS of its own honest delta
    dflt = ATTACKS["gaussian_noise"].propose(_ctx(world))
    honest = ATTACKS["honest"].propose(_ctx(world))
    assert dflt is not None and honest is not None
    ratio = np.sqrt(np.mean(dflt.astype(float) ** 2) / np.mean(honest.astype(float) ** 2))
    assert 2.5 < ratio < 3.5


def test_label_flip_hurts(world: dict[str, object]) -> None:
    ctx = _ctx(world)
    split: data.Split = world["split"]  # type: ignore[assignment]
    honest, flipped = ATTACKS["honest"].propose(ctx), ATTACKS["label_flip"].propose(ctx)
    assert honest is not None and flipped is not None
    assert not np.array_equal(honest, flipped)
    g = ctx.global_q

    def acc(dl: np.ndarray) -> int:
        return train.accuracy_bps(MODEL, train.apply_delta(g, dl), S, split.X_test, split.y_test)

    assert acc(flipped) < acc(honest) - 1000


def test_disguised_free_rider(world: dict[str, object]) -> None:
    prev = world["prev"]
    shared = ATTACKS["disguised_free_rider"].propose(_ctx(world, honest_deltas=world["honest"]))
    alone = ATTACKS["disguised_free_rider"].propose(_ctx(world))
    for out in (shared, alone):
        assert out is not None
        c = _cos(out, prev)  # type: ignore[arg-type]
        assert 0.5 < c < 0.99, c  # evades the replay check, still mostly Δ_prev
    # with shared estimates its spread around Δ_prev matches the honest spread
    honest = np.stack(world["honest"]).astype(np.float64)  # type: ignore[arg-type]
    spread = np.sqrt(np.mean(honest.std(axis=0) ** 2))
    got = np.sqrt(np.mean((shared.astype(np.float64) - prev) ** 2))  # type: ignore[union-attr]
    assert 0.8 * spread < got < 1.2 * spread


def test_votes() -> None:
    assert ATTACKS["honest"].vote(9100, 9000) == (9100, 9000)
    assert ATTACKS["sign_flip"].vote(9100, 9000) == (9100, 9000)  # honest as a voter
    cand, cur = ATTACKS["dishonest_voter"].vote(9100, 9000)  # type: ignore[misc]
    assert cand - cur == -(9100 - 9000)
    assert ATTACKS["dishonest_voter"].vote(0, 10_000) == (10_000, 0)
    assert ATTACKS["absent"].vote(9100, 9000) is None
    for bad in [(-1, 0), (0, 10_001), (0.5, 0)]:
        with pytest.raises(ValueError):
            ATTACKS["honest"].vote(*bad)  # type: ignore[arg-type]


def test_dishonest_voter_proposes_honestly(world: dict[str, object]) -> None:
    ctx = _ctx(world)
    a, b = ATTACKS["dishonest_voter"].propose(ctx), ATTACKS["honest"].propose(ctx)
    assert a is not None and b is not None and np.array_equal(a, b)


def test_context_validation(world: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="unknown attack params"):
        _ctx(world, params={"sigmaa": 1.0})
    with pytest.raises(ValueError):
        _ctx(world, prev_delta_q=np.zeros(3, dtype=np.int16))
    with pytest.raises(ValueError):
        _ctx(world, global_q=np.zeros(3, dtype=np.int32))
    with pytest.raises(ValueError):
        _ctx(world, honest_deltas=[np.zeros(3, dtype=np.int16)])
    with pytest.raises(ValueError):
        _ctx(world, seed=-1)


def test_subseed_independent_streams() -> None:
    assert attacks.subseed(1, 2) == attacks.subseed(1, 2)
    assert len({attacks.subseed(1, t) for t in range(50)}) == 50


# ---- v2 additions: norm bound clipping, scaling, literature attacks, free-riders


def _norm(v: np.ndarray) -> float:
    return float(np.sqrt((v.astype(np.float64) ** 2).sum()))


def test_honest_clips_to_the_task_norm_bound_and_scaled_attacks_exceed_it(world) -> None:
    free = ATTACKS["honest"].propose(_ctx(world))
    bound = int(_norm(free) / 2)
    clipped = ATTACKS["honest"].propose(_ctx(world, norm_bound=bound))
    assert int((clipped.astype(np.int64) ** 2).sum()) <= bound * bound
    assert _cos(clipped, free) > 0.999
    boosted = ATTACKS["sign_flip"].propose(_ctx(world, norm_bound=bound, params={"scale": 4}))
    assert _norm(boosted) > bound
    aware = ATTACKS["sign_flip"].propose(
        _ctx(world, norm_bound=bound, params={"scale": 4, "clip": 1})
    )
    assert int((aware.astype(np.int64) ** 2).sum()) <= bound * bound  # rule-aware: just within
    assert _cos(aware, free) < -0.99


def test_min_max_and_min_sum_stay_within_the_honest_spread(world) -> None:
    honest = world["honest"]
    est = np.stack(honest).astype(np.float64)
    d2 = ((est[:, None, :] - est[None, :, :]) ** 2).sum(-1)
    for name, agg in (("min_max", "max"), ("min_sum", "sum")):
        out = ATTACKS[name].propose(_ctx(world, honest_deltas=honest)).astype(np.float64)
        dist = ((est - out) ** 2).sum(-1)
        limit = d2.max() if agg == "max" else d2.sum(1).max()
        got = dist.max() if agg == "max" else dist.sum()
        assert got <= limit * 1.01, name  # rounding to int16 only
        assert _cos(out, est.mean(axis=0)) < 0.999  # it did move away from the mean


def test_fang_sits_past_the_honest_extreme_against_the_mean(world) -> None:
    honest = world["honest"]
    out = ATTACKS["fang"].propose(_ctx(world, honest_deltas=honest)).astype(np.float64)
    est = np.stack(honest).astype(np.float64)
    up = est.mean(axis=0) > 0
    assert (out[up] <= est.min(axis=0)[up] + 0.5).all()
    assert (out[~up] >= est.max(axis=0)[~up] - 0.5).all()


def test_backdoor_trigger_and_free_riders(world) -> None:
    X = world["split"].X_train[:4]
    t = attacks.triggered(X)
    assert (t[:, list(attacks.BACKDOOR_PIXELS)] == X.max()).all()
    bd = ATTACKS["backdoor"].propose(_ctx(world))
    honest = ATTACKS["honest"].propose(_ctx(world))
    assert not np.array_equal(bd, honest)
    small = ATTACKS["small_noise"].propose(_ctx(world, honest_deltas=world["honest"]))
    assert 0 < _norm(small) < 0.2 * _norm(honest)
    own = world["honest"][0]
    assert np.array_equal(ATTACKS["stale_copy"].propose(_ctx(world, own_prev_q=own)), own)
    victim = world["honest"][1]
    framed = ATTACKS["frame_replay"].propose(_ctx(world, public_updates=[victim]))
    assert np.array_equal(framed, victim)


@pytest.mark.parametrize("c", [0.1, 0.3])
def test_aligned_flip_is_vouched_by_prev_and_spends_the_rest_on_the_flip(world, c) -> None:
    """Rule-aware: cos with Δ_prev = c, the rest is the flipped honest delta, at the bound."""
    free = ATTACKS["honest"].propose(_ctx(world))
    bound = int(_norm(free) / 2)
    ctx = _ctx(world, norm_bound=bound, params={"cos": c})
    out = ATTACKS["aligned_flip"].propose(ctx)
    assert out is not None and int((out.astype(np.int64) ** 2).sum()) <= bound * bound
    assert _norm(out) > 0.99 * bound
    prev = np.asarray(world["prev"], dtype=np.float64)
    assert abs(_cos(out, prev) - c) < 0.01
    honest = ATTACKS["honest"].propose(replace(ctx, params={}))
    p_hat = prev / np.linalg.norm(prev)
    h = honest.astype(np.float64)
    ortho = h - (h @ p_hat) * p_hat
    assert _cos(out - (out.astype(np.float64) @ p_hat) * p_hat, ortho) < -0.99
    first = ATTACKS["aligned_flip"].propose(replace(ctx, prev_delta_q=None))
    assert _cos(first, honest) < -0.99  # no accepted step yet: the bound-sized flip
