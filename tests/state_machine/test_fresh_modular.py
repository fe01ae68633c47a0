"""``freshness.FreshPast`` (multi-modular, lazy) gives ``fresh_gram``'s and
``fresh_diagonal``'s integers exactly, and ``PastGram`` the verdicts of the old path."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from state_machine import fresh_vouching, freshness, tiles
from state_machine import verdicts as V

SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _gram(seed: int, k: int, m: int, d: int, big: bool, dependent: int, zeros: int) -> list:
    """Gram matrix of k rows and m past rows: some past rows combinations of earlier ones
    (skipped pivots), some rows zero; int16 range entries when ``big``."""
    rng = np.random.default_rng(seed)
    lim = 32767 if big else 4
    x = rng.integers(-lim, lim + 1, (k + m, d)).astype(object)
    for _ in range(min(dependent, m)):
        b = k + int(rng.integers(0, m))
        if b > k:
            coef = rng.integers(-2, 3, b - k).astype(object)
            x[b] = coef @ x[k:b]
    for _ in range(zeros if k + m else 0):
        x[int(rng.integers(0, k + m))] = 0
    return (x @ x.T).tolist()


@SETTINGS
@given(st.integers(0, 2**32 - 1), st.integers(0, 7), st.integers(0, 7), st.integers(1, 10),
       st.booleans(), st.integers(0, 3), st.integers(0, 2))
def test_fresh_past_equals_bareiss(seed, k, m, d, big, dependent, zeros):
    g = _gram(seed, k, m, d, big, dependent, zeros)
    want = freshness.fresh_gram(g, k)
    fp = freshness.FreshPast(g, k)
    lazy, rank, c = fp.view(range(k))
    assert ([[lazy[i][j] for j in range(k)] for i in range(k)], rank, c) == want
    assert (fp.diag, fp.rank, fp.scale) == fresh_vouching.fresh_diagonal(g, k)
    sub = [j for j in range(k) if (seed >> j) & 1]  # any subset of rows: the same entries
    lazy, rank, c = fp.view(sub)
    block = [[g[a][b] for b in [*sub, *range(k, len(g))]] for a in [*sub, *range(k, len(g))]]
    assert ([[lazy[i][j] for j in range(len(sub))] for i in range(len(sub))], rank, c) == \
        freshness.fresh_gram(block, len(sub))


def test_fresh_past_at_the_limits():
    """65 independent past rows of int16 extremes (PAST_UPDATES_MAX + Δ_prev), d = 2^25
    sized entries: the most primes, every entry exact."""
    rng = np.random.default_rng(7)
    k, m, d = 5, 65, 80
    x = rng.choice(np.array([-32768, 32767], dtype=object), (k + m, d))
    g = (x @ x.T * (1 << 18)).tolist()  # as if d were 2^25 (entries up to 2^55)
    want = freshness.fresh_gram(g, k)
    fp = freshness.FreshPast(g, k)
    lazy, rank, c = fp.view(range(k))
    assert ([[lazy[i][j] for j in range(k)] for i in range(k)], rank, c) == want
    assert rank == m


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32 - 1), st.integers(2, 9), st.integers(0, 6))
def test_past_gram_gives_the_old_flags_and_gate(seed, k, m):
    rng = np.random.default_rng(seed)
    d = 24
    past = rng.integers(-300, 300, (m + 1, d), dtype=np.int16)
    rows = rng.integers(-300, 300, (k, d), dtype=np.int16)
    if m:
        rows[0] = past[0] + rng.integers(-2, 3, d)  # a stale copy
    big, _ = tiles.gram_and_hashes(tiles.as_rows(np.vstack([rows, past[:m]])), past[m],
                                   hash_rows=False)
    pg = V.PastGram(big, k)
    idx = [i for i in range(k) if i % 3 != 1]
    diag, _, scale = fresh_vouching.fresh_diagonal(pg.block(idx), len(idx))
    assert pg.stale(idx) == fresh_vouching.stale(diag, scale, [big[i][i] for i in idx])
    want = freshness.fresh_gram(pg.block(idx), len(idx))
    got = pg.fresh(idx)
    assert got[1:] == want[1:]
    for i in range(len(idx)):
        assert freshness.is_fresh(got, i, big[idx[i]][idx[i]], d) == \
            freshness.is_fresh(want, i, big[idx[i]][idx[i]], d)


def test_fresh_past_falls_back_to_bareiss_beyond_the_prime_table(monkeypatch):
    g = _gram(3, 4, 5, 6, True, 1, 0)
    monkeypatch.setattr(freshness, "_primes", lambda bits: [8388593])
    fp = freshness.FreshPast(g, 4)
    lazy, rank, c = fp.view(range(4))
    assert ([[lazy[i][j] for j in range(4)] for i in range(4)], rank, c) == \
        freshness.fresh_gram(g, 4)
    assert (fp.diag, fp.rank, fp.scale) == fresh_vouching.fresh_diagonal(g, 4)
