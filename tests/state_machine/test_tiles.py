"""Bounded-memory epoch close (issue 14): column tiles give the same bits as one tile.

Every aggregation rule and judge_epoch's verdicts, aggregate and reward weights are
computed with random tile widths over an in-memory array and over one 1-D array per row
(the STF's memory-mapped blobs), and compared with the whole matrix as a single tile.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from state_machine import aggregation as A
from state_machine import tiles
from state_machine import verdicts as V
from state_machine.constants import AGGREGATORS
from state_machine.scoring import gram_matrix

BIG = 1 << 30  # one tile whatever d is: the untiled path


@st.composite
def epochs(draw, min_rows=1):
    n = draw(st.integers(min_rows, 9))
    d = draw(st.integers(1, 70))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    scale = draw(st.sampled_from([3, 300, 2**15]))
    rows = rng.integers(-scale, scale, (n, d)).astype(np.int16)
    if n > 1 and draw(st.booleans()):
        rows[1] = rows[0]  # a duplicate pair exercises the evidence step
    if draw(st.booleans()):
        rows[n - 1] = 0
    keys = [bytes(rng.integers(0, 256, 32).astype(np.uint8)) for _ in range(n)]
    return rows, keys, draw(st.integers(1, d + 3)), bytes(rng.integers(0, 256, 32).astype(np.uint8))


def stacked(rows):
    return tiles.StackedRows([np.array(r) for r in rows])


SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(epochs(), st.sampled_from(sorted(AGGREGATORS)), st.integers(0, 3))
def test_every_aggregator_tiled_equals_untiled(ep, rule, f):
    rows, keys, cols, seed = ep
    want = A.aggregate(rule, rows, f, keys, seed, cols=BIG)
    assert A.aggregate(rule, rows, f, keys, seed, cols=cols).tobytes() == want.tobytes()
    got = A.aggregate(rule, stacked(rows), f, keys, seed, cols=cols)
    assert got.tobytes() == want.tobytes()
    g = gram_matrix(rows)
    assert A.aggregate(rule, stacked(rows), f, keys, seed, g, cols).tobytes() == want.tobytes()
    assert A.admitted_rows(rule, stacked(rows), f, cols=cols) == A.admitted_rows(rule, rows, f)


def reference_centered_clip(deltas, keys, seed):
    """The pre-tiles whole-matrix centered clipping (int64 centre, clipped once at the end)."""
    import math

    from state_machine.constants import CC_BUCKET, CC_ITERATIONS

    order = A.bucket_order(keys, seed)
    buckets = np.stack([A.mean_round_half_even(deltas[order[i : i + CC_BUCKET]]).astype(np.int64)
                        for i in range(0, len(order), CC_BUCKET)])
    v = A.coordinate_median(buckets).astype(np.int64)
    m = buckets.shape[0]
    for _ in range(CC_ITERATIONS):
        diffs = buckets - v[None, :]
        tau = math.isqrt(sorted(A.norms_sq(diffs))[(m - 1) // 2])
        total = np.zeros_like(v)
        for row in diffs:
            total += A.clip_to_norm(row, tau)
        v = v + A._round_div(total, m)
    return np.clip(v, -(2**15), 2**15 - 1).astype(np.int16)


@SETTINGS
@given(epochs(), st.sampled_from([None, [-(2**15), 2**15 - 1, 0, 1, -1]]))
def test_centered_clip_keeps_its_centre_in_int16_losslessly(ep, extremes):
    rows, keys, cols, seed = ep
    if extremes is not None:  # saturated rows: the centre must still never leave int16
        rows = np.random.default_rng(cols).choice(np.array(extremes, dtype=np.int16),
                                                  rows.shape)
    want = reference_centered_clip(rows, keys, seed)
    assert A.centered_clip(stacked(rows), keys, seed, cols).tobytes() == want.tobytes()


@SETTINGS
@given(epochs(min_rows=3), st.sampled_from(sorted(AGGREGATORS)), st.integers(0, 3),
       st.integers(0, 2**20))
def test_judge_epoch_tiled_equals_untiled(ep, rule, f, bound):
    rows, keys, cols, seed = ep
    n, d = rows.shape
    f = min(f, (n - 3) // 2)
    params = V.SimParams(f=f, norm_bound=bound, aggregator=rule)
    prev = np.random.default_rng(cols).integers(-50, 50, d).astype(np.int16)
    hist = V.History(prev, seed=seed)
    want = V.judge_epoch(params, hist, keys, rows, cols=BIG)
    for src in (rows, stacked(rows)):
        got = V.judge_epoch(params, hist, keys, src, cols=cols)
        assert [v.to_record() for v in got.verdicts] == [v.to_record() for v in want.verdicts]
        assert got.reward_weights == want.reward_weights
        assert got.numbers == want.numbers
        if want.aggregate is None:
            assert got.aggregate is None
        else:
            assert got.aggregate.tobytes() == want.aggregate.tobytes()


@SETTINGS
@given(epochs(), st.integers(1, 80))
def test_tile_gram_and_hashes_are_exact(ep, cols):
    rows, _, _, _ = ep
    extra = rows[0][::-1].copy()
    g, h = tiles.gram_and_hashes(stacked(rows), extra, cols)
    assert g == gram_matrix(np.vstack([rows, extra[None, :]]))
    assert h == [V.delta_hash(r) for r in rows]


@SETTINGS
@given(st.integers(1, 50), st.integers(1, 60), st.integers(0, 2**32 - 1))
def test_apply_delta_tiled_equals_untiled(d, cols, seed):
    rng = np.random.default_rng(seed)
    g = rng.integers(-(2**31), 2**31 - 1, d).astype(np.int32)
    delta = rng.integers(-(2**15), 2**15 - 1, d).astype(np.int16)
    try:
        want = A.apply_delta(g, delta, cols=BIG)
    except A.AggregationError:
        with pytest.raises(A.AggregationError):
            A.apply_delta(g, delta, cols=cols)
        return
    assert A.apply_delta(g, delta, cols=cols).tobytes() == want.tobytes()


def test_sources_pick_and_spans():
    rows = np.arange(24, dtype=np.int16).reshape(4, 6)
    s = stacked(rows)
    assert s.shape == (4, 6)
    assert tiles.pick(s, [2, 0]).tile(1, 4).tolist() == rows[[2, 0], 1:4].tolist()
    assert tiles.pick(tiles.PickedRows(tiles.ArrayRows(rows), [3, 1]), [1]).tile(0, 6).tolist() \
        == [rows[1].tolist()]
    assert list(tiles.spans(7, 3)) == [(0, 3), (3, 6), (6, 7)]
    with pytest.raises(ValueError):
        list(tiles.spans(7, 0))
    with pytest.raises(ValueError):
        tiles.StackedRows([rows[0], rows[1][:3]])
    with pytest.raises(A.AggregationError):
        A.aggregate("mean", tiles.StackedRows([], 5), 0, [], b"")
