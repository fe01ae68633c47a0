"""Local training, evaluation, fixed-point model arithmetic and honest FedAvg."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from federated import data, models, train
from federated.quant import INT16_MAX, INT16_MIN, INT32_MAX, parse_update_bytes, update_bytes

S = 12


@pytest.fixture(scope="module")
def client0() -> tuple[np.ndarray, np.ndarray]:
    return data.DataSpec.parse("digits:iid:client=0:of=5:seed=0").load()


@pytest.mark.parametrize("name", ["softmax", "mlp", "cnn"])
def test_local_update_deterministic(name: str, client0: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = client0
    g = train.init_global(name, 1, S)
    assert g.dtype == np.int32 and g.shape == (models.num_params(name),)
    assert np.array_equal(g, train.init_global(name, 1, S))
    r1 = train.local_update(name, g, S, X, y, epochs=1, lr=0.1, batch_size=32, seed=5)
    r2 = train.local_update(name, g, S, X, y, epochs=1, lr=0.1, batch_size=32, seed=5)
    r3 = train.local_update(name, g, S, X, y, epochs=1, lr=0.1, batch_size=32, seed=6)
    assert r1.delta_q.dtype == np.int16 and r1.delta_q.shape == g.shape
    assert np.array_equal(r1.delta_q, r2.delta_q) and r1.loss == r2.loss
    assert not np.array_equal(r1.delta_q, r3.delta_q)
    assert r1.clipped == 0 and np.isfinite(r1.loss)
    assert np.any(r1.delta_q != 0)


def test_local_update_leaves_global_rng_and_threads_alone(
    client0: tuple[np.ndarray, np.ndarray],
) -> None:
    X, y = client0
    g = train.init_global("softmax", 0, S)
    threads = torch.get_num_threads()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    train.local_update("softmax", g, S, X, y, 1, 0.1, 32, seed=0)
    assert torch.equal(torch.rand(3), expected)
    assert torch.get_num_threads() == threads


def test_adam_option(client0: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = client0
    g = train.init_global("softmax", 0, S)
    r = train.local_update("softmax", g, S, X, y, 1, 0.01, 32, seed=0, optimizer="adam")
    assert np.any(r.delta_q != 0)
    with pytest.raises(ValueError):
        train.local_update("softmax", g, S, X, y, 1, 0.01, 32, seed=0, optimizer="lbfgs")


def test_large_lr_reports_clipping(client0: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = client0
    g = train.init_global("softmax", 0, S)
    r = train.local_update("softmax", g, S, X, y, epochs=2, lr=500.0, batch_size=32, seed=0)
    assert r.clipped > 0
    assert r.delta_q.min() >= INT16_MIN and r.delta_q.max() <= INT16_MAX
    assert np.count_nonzero(np.abs(r.delta_q.astype(np.int64)) >= INT16_MAX) >= r.clipped


def test_delta_is_exactly_trained_minus_global(client0: tuple[np.ndarray, np.ndarray]) -> None:
    """global + delta reproduces the trained model to within half an LSB."""
    X, y = client0
    g = train.init_global("mlp", 3, S)
    r = train.local_update("mlp", g, S, X, y, 1, 0.1, 32, seed=0)
    new = train.apply_delta(g, r.delta_q)
    assert np.array_equal(new.astype(np.int64) - g, r.delta_q.astype(np.int64))
    # wire round trip
    d = models.num_params("mlp")
    assert np.array_equal(parse_update_bytes(update_bytes(r.delta_q), d), r.delta_q)


def test_bad_inputs(client0: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = client0
    g = train.init_global("softmax", 0, S)
    with pytest.raises(ValueError):
        train.local_update("softmax", g[:-1], S, X, y)
    with pytest.raises(ValueError):
        train.local_update("softmax", g.astype(np.float64), S, X, y)
    with pytest.raises(ValueError):
        train.local_update("softmax", g, S, X[:0], y[:0])
    with pytest.raises(ValueError):
        train.local_update("softmax", g, S, X, y[:-1])
    with pytest.raises(ValueError):
        train.accuracy_bps("softmax", g, S, X[:0], y[:0])


def test_accuracy_bps_is_integer_in_range(client0: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = client0
    g = train.init_global("softmax", 0, S)
    acc = train.accuracy_bps("softmax", g, S, X, y)
    assert isinstance(acc, int) and 0 <= acc <= 10_000
    pred = train.predict("softmax", g, S, X)
    assert acc == int(np.sum(pred == y)) * 10_000 // len(y)
    # a model that always predicts the majority label of y: accuracy is its share
    q = np.zeros_like(g)
    q[-10 + int(np.bincount(y).argmax())] = 1 << S  # bias of that class = 1.0
    share = int(np.bincount(y).max()) * 10_000 // len(y)
    assert train.accuracy_bps("softmax", q, S, X, y) == share


def test_apply_delta_overflow_and_shapes() -> None:
    g = np.array([INT32_MAX - 1, 0, -5], dtype=np.int32)
    assert train.apply_delta(g, np.array([1, -3, 5], dtype=np.int16)).tolist() == [INT32_MAX, -3, 0]
    with pytest.raises(OverflowError):
        train.apply_delta(g, np.array([2, 0, 0], dtype=np.int16))
    with pytest.raises(ValueError):
        train.apply_delta(g, np.array([1, 0], dtype=np.int16))
    with pytest.raises(ValueError):
        train.apply_delta(g, np.array([1.0, 0.0, 0.0]))


def test_fedavg_rounding_cases() -> None:
    def avg(*cols: list[int]) -> list[int]:
        return train.fedavg_delta([np.array(c, dtype=np.int16) for c in cols]).tolist()

    assert avg([1], [2]) == [2]  # 1.5 -> 2
    assert avg([1], [0]) == [0]  # 0.5 -> 0
    assert avg([-1], [0]) == [0]  # -0.5 -> 0
    assert avg([-3], [0]) == [-2]  # -1.5 -> -2
    assert avg([3], [2]) == [2]  # 2.5 -> 2
    assert avg([1], [1], [0]) == [1]  # 2/3 -> 1
    assert avg([INT16_MAX], [INT16_MAX]) == [INT16_MAX]
    assert avg([INT16_MIN], [INT16_MIN], [INT16_MIN]) == [INT16_MIN]
    with pytest.raises(ValueError):
        train.fedavg_delta([])


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.lists(st.integers(INT16_MIN, INT16_MAX), min_size=4, max_size=4), min_size=1, max_size=9
    )
)
def test_fedavg_matches_exact_rational_reference(rows: list[list[int]]) -> None:
    got = train.fedavg_delta([np.array(r, dtype=np.int16) for r in rows])
    want = [round(Fraction(sum(col), len(rows))) for col in zip(*rows, strict=True)]  # half-even
    assert got.dtype == np.int16 and got.tolist() == want


def test_three_rounds_honest_fedavg_softmax_iid() -> None:
    """Sanity of the whole client pipeline at S=12: FedAvg learns digits."""
    split = data.digits_split()
    parts = data.partition_iid(5, seed=0)
    g = train.init_global("softmax", 0, S)
    start = train.accuracy_bps("softmax", g, S, split.X_test, split.y_test)
    for rnd in range(3):
        deltas = []
        for i, idx in enumerate(parts):
            r = train.local_update(
                "softmax", g, S, split.X_train[idx], split.y_train[idx],
                epochs=3, lr=0.5, batch_size=32, seed=100 * rnd + i,
            )  # fmt: skip
            assert r.clipped == 0
            deltas.append(r.delta_q)
        g = train.apply_delta(g, train.fedavg_delta(deltas))
    acc = train.accuracy_bps("softmax", g, S, split.X_test, split.y_test)
    assert start < 3000
    assert acc > 8500, acc


def test_experiments_smoke() -> None:
    """The figures script runs (tiny settings) and returns well-formed rows."""
    from federated import experiments

    accs = experiments.fedavg("softmax", data.partition_iid(2, seed=0), rounds=1, local_epochs=1)
    assert len(accs) == 1 and 0 <= accs[0] <= 10_000
    rows = experiments.signals("softmax", n_clients=5, warmup_rounds=1, local_epochs=1, f=1)
    by_name = {r[0]: r for r in rows}
    assert by_name["replay"][3] == pytest.approx(1.0)  # cos(δ, Δ_prev)
    assert by_name["lazy"][2] == 0.0  # ‖δ‖² / median
    assert by_name["duplicate"][4] > 0.99  # max cos with another reveal


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.lists(st.integers(INT16_MIN, INT16_MAX), min_size=3, max_size=3), min_size=1, max_size=7
    )
)
def test_fedavg_agrees_with_stf_aggregation(rows: list[list[int]]) -> None:
    """Client-side simulations must aggregate exactly like the STF (SPEC §6)."""
    agg = pytest.importorskip("state_machine.aggregation")
    m = np.array(rows, dtype=np.int16)
    assert np.array_equal(train.fedavg_delta(list(m)), agg.mean_round_half_even(m))
