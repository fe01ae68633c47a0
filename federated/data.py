"""The digits data set, its fixed split, client partitions and voter test sets.

Why digits: sklearn ships it (1,797 8×8 images, nothing is downloaded), it trains in
milliseconds on a CPU, and it is hard enough that attacks visibly hurt accuracy.

Everything is a pure function of integer seeds, so independent client processes
that are told the same :class:`DataSpec` string agree on who holds which sample
without talking to each other, and an experiment can be replayed exactly.

Conventions
-----------
- Features are the raw pixel intensities (0..16) divided by 16, as float32 in [0, 1].
  Dividing by a constant (instead of fitting a scaler) keeps preprocessing
  independent of the split, so no client needs statistics of other clients' data.
- The train/test split is stratified by class and fixed by ``split_seed`` (default 0);
  25 % of each class goes to the test set (450 test / 1,347 train samples).
- Partitions are lists of sorted index arrays into the *training* set; voter test
  sets are index arrays into the *test* set. Indices are 0-based.

DataSpec grammar (for command lines)
------------------------------------
::

    spec     := dataset ":" scheme { ":" key "=" value }
    dataset  := "digits"
    scheme   := "train" | "test" | "iid" | "dirichlet" | "voter"

    digits:train[:split=S]                      the whole training set
    digits:test[:split=S]                       the whole test set
    digits:iid:client=I:of=N[:seed=K][:split=S]
    digits:dirichlet:alpha=A:client=I:of=N[:seed=K][:min_size=M][:split=S]
    digits:voter:voter=I:of=N[:seed=K][:split=S]

Keys may come in any order but each at most once; ``I`` is 0-based and ``< N``;
``seed`` (partition seed) and ``split`` (split seed) default to 0, ``min_size`` to 10;
``alpha`` is a positive finite float. Unknown schemes or keys, missing or repeated
keys and malformed numbers raise :class:`DataSpecError` (a ``ValueError``).
``str(DataSpec.parse(s))`` is the canonical form (fixed key order, defaults explicit).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

import numpy as np
from sklearn import datasets as _sk_datasets

TEST_FRACTION = 0.25
PIXEL_MAX = 16.0
NUM_CLASSES = 10
DEFAULT_MIN_SIZE = 10
_DIRICHLET_MAX_TRIES = 1000


@dataclass(frozen=True)
class Split:
    """A fixed train/test split (arrays are read-only: they are cached and shared)."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray


def _readonly(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


@cache
def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """All 1,797 samples: ``X`` float32 ``(n, 64)`` in [0, 1], ``y`` int64 labels 0..9."""
    bunch = _sk_datasets.load_digits()
    X = (np.asarray(bunch.data, dtype=np.float64) / PIXEL_MAX).astype(np.float32)
    y = np.asarray(bunch.target, dtype=np.int64)
    return _readonly(X), _readonly(y)


@cache
def digits_split(split_seed: int = 0) -> Split:
    """Stratified 75/25 train/test split, a pure function of ``split_seed``."""
    X, y = load_digits()
    rng = np.random.Generator(np.random.PCG64(split_seed))
    test_parts, train_parts = [], []
    for c in range(NUM_CLASSES):
        idx = rng.permutation(np.flatnonzero(y == c))
        n_test = round(len(idx) * TEST_FRACTION)
        test_parts.append(idx[:n_test])
        train_parts.append(idx[n_test:])
    train_idx = np.sort(np.concatenate(train_parts))
    test_idx = np.sort(np.concatenate(test_parts))
    return Split(
        X_train=_readonly(X[train_idx]),
        y_train=_readonly(y[train_idx]),
        X_test=_readonly(X[test_idx]),
        y_test=_readonly(y[test_idx]),
    )


def _check_count(n: int, available: int, what: str) -> None:
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"number of {what} must be a positive int, got {n!r}")
    if n > available:
        raise ValueError(f"{n} {what} but only {available} samples")


def partition_iid(n_clients: int, seed: int, *, split_seed: int = 0) -> list[np.ndarray]:
    """Shuffle the training set and cut it into ``n_clients`` near-equal disjoint shards."""
    n = len(digits_split(split_seed).y_train)
    _check_count(n_clients, n, "clients")
    perm = np.random.Generator(np.random.PCG64(seed)).permutation(n)
    return [np.sort(part) for part in np.array_split(perm, n_clients)]


def partition_dirichlet(
    n_clients: int,
    alpha: float,
    seed: int,
    min_size: int = DEFAULT_MIN_SIZE,
    *,
    split_seed: int = 0,
) -> list[np.ndarray]:
    """Label-skewed (non-IID) disjoint partition of the training set.

    For every class, client proportions are drawn from ``Dirichlet(alpha · 1)`` and the
    class's shuffled samples are cut accordingly (Hsu et al. 2019). Small ``alpha``
    gives each client few classes. The draw is repeated (same RNG stream, so still
    deterministic) until every client holds at least ``min_size`` samples; a client
    with almost no data cannot train and would look like a free-rider.
    """
    split = digits_split(split_seed)
    y = split.y_train
    n = len(y)
    _check_count(n_clients, n, "clients")
    if not (math.isfinite(alpha) and alpha > 0):
        raise ValueError(f"alpha must be a positive finite number, got {alpha!r}")
    if min_size < 0 or n_clients * min_size > n:
        raise ValueError(f"min_size={min_size} impossible for {n_clients} clients and {n} samples")
    rng = np.random.Generator(np.random.PCG64(seed))
    by_class = [np.flatnonzero(y == c) for c in range(NUM_CLASSES)]
    for _ in range(_DIRICHLET_MAX_TRIES):
        shards: list[list[np.ndarray]] = [[] for _ in range(n_clients)]
        for idx in by_class:
            idx = rng.permutation(idx)
            props = rng.dirichlet(np.full(n_clients, alpha))
            cuts = (np.cumsum(props)[:-1] * len(idx)).astype(np.int64)
            for k, part in enumerate(np.split(idx, cuts)):
                shards[k].append(part)
        parts = [np.sort(np.concatenate(s)) for s in shards]
        if min(len(p) for p in parts) >= min_size:
            return parts
    raise ValueError(
        f"no Dirichlet(alpha={alpha}) partition with min_size={min_size} for "
        f"{n_clients} clients after {_DIRICHLET_MAX_TRIES} draws; raise alpha or lower min_size"
    )


def voter_test_sets(n_voters: int, seed: int, *, split_seed: int = 0) -> list[np.ndarray]:
    """Disjoint near-equal random subsets of the *test* set, one per voter.

    Disjoint so that voters are independent witnesses (SPEC §7: each evaluates on its
    own test set); held out so that no proposer has trained on them.
    """
    n = len(digits_split(split_seed).y_test)
    _check_count(n_voters, n, "voters")
    perm = np.random.Generator(np.random.PCG64(seed)).permutation(n)
    return [np.sort(part) for part in np.array_split(perm, n_voters)]


class DataSpecError(ValueError):
    """A malformed data-spec string (see the module docstring for the grammar)."""


_SCHEMES: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    # scheme: (required keys, optional keys)
    "train": (frozenset(), frozenset({"split"})),
    "test": (frozenset(), frozenset({"split"})),
    "iid": (frozenset({"client", "of"}), frozenset({"seed", "split"})),
    "dirichlet": (
        frozenset({"alpha", "client", "of"}),
        frozenset({"seed", "min_size", "split"}),
    ),
    "voter": (frozenset({"voter", "of"}), frozenset({"seed", "split"})),
}
_INT_KEYS = ("client", "voter", "of", "seed", "min_size", "split")


def _parse_int(key: str, text: str) -> int:
    if not text.isascii() or not text.isdigit():
        raise DataSpecError(f"{key}={text!r}: expected a non-negative decimal integer")
    return int(text)


def _parse_alpha(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise DataSpecError(f"alpha={text!r}: not a number") from None
    if not (math.isfinite(value) and value > 0):
        raise DataSpecError(f"alpha={text!r}: must be positive and finite")
    return value


@dataclass(frozen=True)
class DataSpec:
    """Which samples a participant holds, parsed from e.g. ``digits:iid:client=3:of=10``."""

    scheme: str
    index: int | None = None  # client (iid/dirichlet) or voter (voter) index
    of: int | None = None
    seed: int = 0
    alpha: float | None = None
    min_size: int = DEFAULT_MIN_SIZE
    split: int = 0
    dataset: str = "digits"

    @classmethod
    def parse(cls, text: str) -> DataSpec:
        """Parse the grammar in the module docstring; raises :class:`DataSpecError`."""
        if not isinstance(text, str):
            raise DataSpecError(f"data spec must be a string, got {type(text).__name__}")
        fields = text.strip().split(":")
        if len(fields) < 2 or not all(fields):
            raise DataSpecError(f"{text!r}: expected 'dataset:scheme[:key=value...]'")
        dataset, scheme, *pairs = fields
        if dataset != "digits":
            raise DataSpecError(f"unknown dataset {dataset!r}; known: ['digits']")
        if scheme not in _SCHEMES:
            raise DataSpecError(f"unknown scheme {scheme!r}; known: {sorted(_SCHEMES)}")
        required, optional = _SCHEMES[scheme]
        raw: dict[str, str] = {}
        for pair in pairs:
            key, sep, value = pair.partition("=")
            if not sep or not key or not value:
                raise DataSpecError(f"{pair!r}: expected key=value")
            if key not in required | optional:
                allowed = sorted(required | optional)
                raise DataSpecError(
                    f"unknown key {key!r} for scheme {scheme!r}; allowed: {allowed}"
                )
            if key in raw:
                raise DataSpecError(f"key {key!r} given twice")
            raw[key] = value
        missing = sorted(required - raw.keys())
        if missing:
            raise DataSpecError(f"scheme {scheme!r} needs {missing}")
        ints = {k: _parse_int(k, v) for k, v in raw.items() if k in _INT_KEYS}
        alpha = _parse_alpha(raw["alpha"]) if "alpha" in raw else None
        index = ints.get("client", ints.get("voter"))
        of = ints.get("of")
        if of is not None:
            if of < 1:
                raise DataSpecError("of must be at least 1")
            if index is None or index >= of:
                raise DataSpecError(f"index {index} out of range for of={of} (0-based)")
        return cls(
            scheme=scheme,
            index=index,
            of=of,
            seed=ints.get("seed", 0),
            alpha=alpha,
            min_size=ints.get("min_size", DEFAULT_MIN_SIZE),
            split=ints.get("split", 0),
        )

    def __str__(self) -> str:
        parts = [self.dataset, self.scheme]
        if self.scheme == "dirichlet":
            parts.append(f"alpha={self.alpha!r}")
        if self.scheme in ("iid", "dirichlet"):
            parts.append(f"client={self.index}")
        if self.scheme == "voter":
            parts.append(f"voter={self.index}")
        if self.scheme in ("iid", "dirichlet", "voter"):
            parts += [f"of={self.of}", f"seed={self.seed}"]
        if self.scheme == "dirichlet":
            parts.append(f"min_size={self.min_size}")
        parts.append(f"split={self.split}")
        return ":".join(parts)

    def indices(self) -> np.ndarray:
        """Indices into the train set (train/iid/dirichlet) or the test set (test/voter)."""
        split = digits_split(self.split)
        if self.scheme == "train":
            return np.arange(len(split.y_train))
        if self.scheme == "test":
            return np.arange(len(split.y_test))
        assert self.index is not None and self.of is not None
        if self.scheme == "iid":
            return partition_iid(self.of, self.seed, split_seed=self.split)[self.index]
        if self.scheme == "dirichlet":
            assert self.alpha is not None
            parts = partition_dirichlet(
                self.of, self.alpha, self.seed, self.min_size, split_seed=self.split
            )
            return parts[self.index]
        return voter_test_sets(self.of, self.seed, split_seed=self.split)[self.index]

    @property
    def uses_test_set(self) -> bool:
        """True for ``test`` and ``voter`` specs (evaluation data, never trained on)."""
        return self.scheme in ("test", "voter")

    def load(self) -> tuple[np.ndarray, np.ndarray]:
        """The participant's ``(X, y)`` arrays (fresh copies, safe to modify)."""
        split = digits_split(self.split)
        if self.uses_test_set:
            X, y = split.X_test, split.y_test
        else:
            X, y = split.X_train, split.y_train
        idx = self.indices()
        return X[idx].copy(), y[idx].copy()
