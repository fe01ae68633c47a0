"""Digits split, client partitions, voter test sets and the DataSpec grammar."""

from __future__ import annotations

import numpy as np
import pytest

from federated import data
from federated.data import DataSpec, DataSpecError


def _check_partition(parts: list[np.ndarray], n: int) -> None:
    allidx = np.concatenate(parts)
    assert len(allidx) == n, "must cover every sample exactly once"
    assert np.array_equal(np.sort(allidx), np.arange(n))
    for p in parts:
        assert p.dtype.kind == "i" and np.all(np.diff(p) > 0)  # sorted, unique


def test_load_digits() -> None:
    X, y = data.load_digits()
    assert X.shape == (1797, 64) and X.dtype == np.float32
    assert y.shape == (1797,) and set(np.unique(y)) == set(range(10))
    assert X.min() == 0.0 and X.max() == 1.0
    assert not X.flags.writeable  # cached: protected against mutation


def test_split_fixed_stratified_deterministic() -> None:
    s = data.digits_split(0)
    assert s.X_train.shape == (1347, 64) and s.X_test.shape == (450, 64)
    counts = np.bincount(s.y_test, minlength=10)
    assert counts.min() >= 43 and counts.max() <= 46  # ~25 % of each class
    s2 = data.digits_split(0)
    assert np.array_equal(s.X_test, s2.X_test)
    s3 = data.digits_split(1)
    assert not np.array_equal(s.y_test, s3.y_test)
    # disjoint: no test row also appears in train (digits has no exact duplicates
    # across the split at seed 0, so compare rows as bytes)
    train_rows = {r.tobytes() for r in s.X_train}
    assert sum(r.tobytes() in train_rows for r in s.X_test) == 0


@pytest.mark.parametrize("n_clients", [1, 5, 10, 37])
def test_partition_iid(n_clients: int) -> None:
    n = len(data.digits_split().y_train)
    parts = data.partition_iid(n_clients, seed=3)
    assert len(parts) == n_clients
    _check_partition(parts, n)
    sizes = [len(p) for p in parts]
    assert max(sizes) - min(sizes) <= 1
    again = data.partition_iid(n_clients, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again, strict=True))
    if n_clients > 1:
        other = data.partition_iid(n_clients, seed=4)
        assert not all(np.array_equal(a, b) for a, b in zip(parts, other, strict=True))


def _max_class_share(parts: list[np.ndarray]) -> float:
    y = data.digits_split().y_train
    return float(np.mean([np.bincount(y[p], minlength=10).max() / len(p) for p in parts]))


@pytest.mark.parametrize(("alpha", "min_size"), [(0.1, 10), (0.5, 10), (1.0, 30), (100.0, 50)])
def test_partition_dirichlet(alpha: float, min_size: int) -> None:
    n = len(data.digits_split().y_train)
    parts = data.partition_dirichlet(10, alpha, seed=1, min_size=min_size)
    assert len(parts) == 10
    _check_partition(parts, n)
    assert min(len(p) for p in parts) >= min_size
    again = data.partition_dirichlet(10, alpha, seed=1, min_size=min_size)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again, strict=True))
    other = data.partition_dirichlet(10, alpha, seed=2, min_size=min_size)
    assert not all(np.array_equal(a, b) for a, b in zip(parts, other, strict=True))


def test_dirichlet_skew() -> None:
    iid = _max_class_share(data.partition_iid(10, seed=1))
    skewed = _max_class_share(data.partition_dirichlet(10, 0.1, seed=1))
    mild = _max_class_share(data.partition_dirichlet(10, 100.0, seed=1))
    assert iid < 0.2 and mild < 0.2
    assert skewed > 0.45  # small alpha: each client dominated by a few classes


def test_dirichlet_errors() -> None:
    with pytest.raises(ValueError):
        data.partition_dirichlet(10, 0.0, seed=1)
    with pytest.raises(ValueError):
        data.partition_dirichlet(10, float("nan"), seed=1)
    with pytest.raises(ValueError):
        data.partition_dirichlet(10, 0.5, seed=1, min_size=200)  # 10*200 > 1347
    with pytest.raises(ValueError, match="raise alpha"):
        data.partition_dirichlet(100, 0.01, seed=1, min_size=13)
    with pytest.raises(ValueError):
        data.partition_iid(0, seed=1)
    with pytest.raises(ValueError):
        data.partition_iid(10_000, seed=1)


def test_voter_test_sets() -> None:
    n = len(data.digits_split().y_test)
    sets = data.voter_test_sets(5, seed=2)
    _check_partition(sets, n)
    assert [len(s) for s in sets] == [90] * 5
    assert all(np.array_equal(a, b) for a, b in zip(sets, data.voter_test_sets(5, 2), strict=True))


# ---------------------------------------------------------------- DataSpec


def test_dataspec_iid_and_dirichlet() -> None:
    spec = DataSpec.parse("digits:iid:client=3:of=10:seed=1")
    assert (spec.scheme, spec.index, spec.of, spec.seed) == ("iid", 3, 10, 1)
    X, y = spec.load()
    idx = data.partition_iid(10, 1)[3]
    assert np.array_equal(y, data.digits_split().y_train[idx]) and X.shape == (len(idx), 64)
    X[0, 0] = 5.0  # a copy, safe to modify

    d = DataSpec.parse("digits:dirichlet:alpha=0.5:client=3:of=10:seed=1")
    assert d.alpha == 0.5 and d.min_size == 10
    assert np.array_equal(d.indices(), data.partition_dirichlet(10, 0.5, 1, 10)[3])


@pytest.mark.parametrize(
    "text",
    [
        "digits:train",
        "digits:test:split=2",
        "digits:iid:of=10:client=3",
        "digits:dirichlet:client=0:of=4:alpha=1e-1:min_size=5:seed=9:split=1",
        "digits:voter:voter=1:of=5:seed=7",
    ],
)
def test_dataspec_canonical_round_trip(text: str) -> None:
    spec = DataSpec.parse(text)
    canon = str(spec)
    assert DataSpec.parse(canon) == spec
    assert str(DataSpec.parse(canon)) == canon


def test_dataspec_train_test_voter_load() -> None:
    split = data.digits_split()
    assert DataSpec.parse("digits:train").load()[0].shape == split.X_train.shape
    _, yt = DataSpec.parse("digits:test").load()
    assert np.array_equal(yt, split.y_test)
    v = DataSpec.parse("digits:voter:voter=2:of=5:seed=1")
    assert v.uses_test_set
    assert np.array_equal(v.load()[1], split.y_test[data.voter_test_sets(5, 1)[2]])


@pytest.mark.parametrize(
    "text",
    [
        "",
        "digits",
        "digits:",
        "mnist:iid:client=0:of=2",
        "digits:foo",
        "digits:iid",
        "digits:iid:client=0",
        "digits:iid:client=2:of=2",
        "digits:iid:client=0:of=0",
        "digits:iid:client=0:of=2:client=1",
        "digits:iid:client=x:of=2",
        "digits:iid:client=-1:of=2",
        "digits:iid:client=+1:of=2",
        "digits:iid:client=0:of=2:",
        "digits:iid:client0:of=2",
        "digits:iid:client=:of=2",
        "digits:iid:alpha=0.5:client=0:of=2",
        "digits:iid:client=0:of=2:colour=red",
        "digits:dirichlet:client=0:of=2",
        "digits:dirichlet:alpha=0:client=0:of=2",
        "digits:dirichlet:alpha=-1:client=0:of=2",
        "digits:dirichlet:alpha=nan:client=0:of=2",
        "digits:dirichlet:alpha=inf:client=0:of=2",
        "digits:dirichlet:alpha=abc:client=0:of=2",
        "digits:voter:client=0:of=2",
        "digits:train:client=0",
        "digits:train:seed=1",
    ],
)
def test_dataspec_errors(text: str) -> None:
    with pytest.raises(DataSpecError):
        DataSpec.parse(text)


def test_dataspec_error_is_value_error() -> None:
    assert issubclass(DataSpecError, ValueError)
    with pytest.raises(DataSpecError, match="unknown scheme"):
        DataSpec.parse("digits:foo")
