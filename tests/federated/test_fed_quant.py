"""Fixed-point conversion, byte layouts and the model registry (SPEC §3, §4)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from federated import models
from federated.quant import (
    INT16_MAX,
    INT16_MIN,
    INT32_MAX,
    INT32_MIN,
    flatten,
    from_fixed,
    load_flat,
    model_bytes,
    parse_model_bytes,
    parse_update_bytes,
    quantize_delta,
    to_fixed_int32,
    update_bytes,
)

scales = st.integers(min_value=0, max_value=30)
int32s = st.lists(st.integers(INT32_MIN, INT32_MAX), max_size=40)
int16s = st.lists(st.integers(INT16_MIN, INT16_MAX), max_size=40)


@settings(max_examples=200, deadline=None)
@given(ks=int32s, s=scales)
def test_int32_round_trip_exact_on_grid(ks: list[int], s: int) -> None:
    q = np.array(ks, dtype=np.int32)
    x = from_fixed(q, s)
    assert x.dtype == np.float64
    back, clipped = to_fixed_int32(x, s)
    assert clipped == 0
    assert back.dtype == np.int32
    assert np.array_equal(back, q)


@settings(max_examples=200, deadline=None)
@given(ks=int16s, s=scales)
def test_int16_delta_round_trip_exact_on_grid(ks: list[int], s: int) -> None:
    q = np.array(ks, dtype=np.int16)
    back, clipped = quantize_delta(from_fixed(q, s), s)
    assert clipped == 0 and back.dtype == np.int16
    assert np.array_equal(back, q)


@settings(max_examples=100, deadline=None)
@given(
    xs=st.lists(st.floats(-8.0, 8.0, allow_nan=False), min_size=1, max_size=30),
    s=st.integers(0, 12),
)
def test_quantization_error_at_most_half_lsb(xs: list[float], s: int) -> None:
    x = np.array(xs)
    q, clipped = quantize_delta(x, s)
    if clipped == 0:
        assert np.all(np.abs(from_fixed(q, s) - x) <= 2.0 ** -(s + 1))


def test_round_half_to_even() -> None:
    lsb = 2.0**-12
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 0.49, 0.51]) * lsb
    q, clipped = quantize_delta(x, 12)
    assert clipped == 0
    assert q.tolist() == [0, 2, 2, 0, -2, -2, 0, 1]
    q32, _ = to_fixed_int32(x, 12)
    assert q32.tolist() == [0, 2, 2, 0, -2, -2, 0, 1]


def test_clipping_counts_and_saturates() -> None:
    # int16 at S=12 holds [-8, 8 - 2^-12]
    x = np.array([0.0, 7.9996, 8.0, -8.0, -8.0002, 100.0, -1e9, 1.0])
    q, clipped = quantize_delta(x, 12)
    assert clipped == 4  # 8.0, -8.0002, 100, -1e9
    assert q.tolist() == [0, 32766, INT16_MAX, INT16_MIN, INT16_MIN, INT16_MAX, INT16_MIN, 4096]
    q32, clipped32 = to_fixed_int32(np.array([2.0**19, -(2.0**19), 2.0**19 - 2.0**-12]), 12)
    assert clipped32 == 1
    assert q32.tolist() == [INT32_MAX, INT32_MIN, INT32_MAX]


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_rejected(bad: float) -> None:
    with pytest.raises(ValueError):
        quantize_delta(np.array([0.0, bad]), 12)
    with pytest.raises(ValueError):
        to_fixed_int32(np.array([bad]), 12)


@pytest.mark.parametrize("s", [-1, 31, 12.0])
def test_bad_scale_rejected(s: object) -> None:
    with pytest.raises(ValueError):
        to_fixed_int32(np.zeros(2), s)  # type: ignore[arg-type]


def test_from_fixed_rejects_floats() -> None:
    with pytest.raises(ValueError):
        from_fixed(np.zeros(3), 12)


@settings(max_examples=100, deadline=None)
@given(ks=int32s)
def test_model_bytes_round_trip(ks: list[int]) -> None:
    q = np.array(ks, dtype=np.int32)
    b = model_bytes(q)
    assert len(b) == 4 * len(ks)
    out = parse_model_bytes(b, len(ks))
    assert out.dtype == np.int32 and np.array_equal(out, q)


@settings(max_examples=100, deadline=None)
@given(ks=int16s)
def test_update_bytes_round_trip(ks: list[int]) -> None:
    q = np.array(ks, dtype=np.int16)
    b = update_bytes(q)
    assert len(b) == 2 * len(ks)
    out = parse_update_bytes(b, len(ks))
    assert out.dtype == np.int16 and np.array_equal(out, q)


def test_byte_layout_is_little_endian() -> None:
    assert model_bytes(np.array([1, -1], dtype=np.int32)) == bytes.fromhex("01000000ffffffff")
    assert update_bytes(np.array([1, -2], dtype=np.int16)) == bytes.fromhex("0100feff")
    # big-endian input arrays are converted, not reinterpreted
    assert update_bytes(np.array([1, -2], dtype=">i2")) == bytes.fromhex("0100feff")
    # int64 arrays within range are accepted
    assert update_bytes(np.array([1, -2], dtype=np.int64)) == bytes.fromhex("0100feff")


@pytest.mark.parametrize("n", [0, 1, 3, 5, 7, 9])
def test_wrong_lengths_rejected(n: int) -> None:
    with pytest.raises(ValueError):
        parse_model_bytes(b"\x00" * n, 2)
    with pytest.raises(ValueError):
        parse_update_bytes(b"\x00" * n, 2)


def test_out_of_range_and_bad_dtype_rejected() -> None:
    with pytest.raises(ValueError):
        update_bytes(np.array([INT16_MAX + 1]))
    with pytest.raises(ValueError):
        model_bytes(np.array([INT32_MIN - 1]))
    with pytest.raises(ValueError):
        update_bytes(np.array([0.5]))
    with pytest.raises(ValueError):
        model_bytes(np.zeros((2, 2), dtype=np.int32))


def test_parsed_arrays_are_writable_copies() -> None:
    out = parse_update_bytes(update_bytes(np.array([1, 2], dtype=np.int16)), 2)
    out[0] = 5  # must not raise (frombuffer alone would be read-only)


# ---------------------------------------------------------------- models


def test_registry_sizes() -> None:
    assert {"softmax", "mlp", "cnn"} <= set(models.MODELS)
    assert models.num_params("softmax") == 64 * 10 + 10
    assert models.num_params("mlp") == 64 * 32 + 32 + 32 * 10 + 10
    assert models.num_params("cnn") == 8 * 9 + 8 + 128 * 10 + 10


def test_spec_hash_pinned_and_distinct() -> None:
    hashes = {name: models.spec_hash(name) for name in models.MODELS}
    assert all(isinstance(h, bytes) and len(h) == 32 for h in hashes.values())
    assert len(set(hashes.values())) == len(hashes)
    # Pinned: a change here means old tasks' model_spec no longer matches the code.
    assert hashes["softmax"].hex().startswith("265f7c450415925f")
    assert hashes["mlp"].hex().startswith("967f90f443660177")
    assert hashes["cnn"].hex().startswith("e61f7dae6765d745")


def test_unknown_model() -> None:
    with pytest.raises(KeyError, match="known"):
        models.build("resnet")


@pytest.mark.parametrize("name", ["softmax", "mlp", "cnn"])
def test_build_deterministic_and_flat_round_trip(name: str) -> None:
    a, b, c = models.build(name, 7), models.build(name, 7), models.build(name, 8)
    va, vb, vc = flatten(a), flatten(b), flatten(c)
    assert va.shape == (models.num_params(name),)
    assert np.array_equal(va, vb)
    assert not np.array_equal(va, vc)
    assert np.all(np.abs(va) <= 1.0)  # U(±1/sqrt(fan_in)), fan_in >= 9
    load_flat(c, va)
    assert np.array_equal(flatten(c), va)
    out = a(torch.zeros(5, 64))
    assert tuple(out.shape) == (5, 10)
    with pytest.raises(ValueError):
        load_flat(c, va[:-1])
