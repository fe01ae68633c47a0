"""Fixed-point conversion and the byte layouts of models and updates (SPEC §4).

- global model: ``d`` int32, real value ``q / 2**S``; bytes = ``d`` little-endian int32.
- update: the proposer's *delta* from the global model, ``d`` int16 at the same scale;
  bytes = ``d`` little-endian int16.

Why the care: the STF scores updates with exact integer arithmetic, so the only
place floats meet the protocol is here, on the client. Conversions use
round-half-to-even (``np.rint``) and multiply by a power of two (exact in
float64), so a value already on the ``2**-S`` grid round-trips bit-exactly.
Values outside the integer range are *clipped* and counted rather than wrapped,
because a wrapped int16 flips the sign of a large coordinate and would turn an
honest update into an "adversarial direction" outlier.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

INT16_MIN, INT16_MAX = -(2**15), 2**15 - 1
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
MAX_SCALE_BITS = 30


def _check_scale(scale_bits: int) -> None:
    if not isinstance(scale_bits, int | np.integer) or not 0 <= scale_bits <= MAX_SCALE_BITS:
        raise ValueError(f"scale_bits must be an int in [0, {MAX_SCALE_BITS}], got {scale_bits!r}")


def flatten(model: nn.Module) -> np.ndarray:
    """All parameters in ``model.parameters()`` order as one float64 vector."""
    parts = [p.detach().cpu().reshape(-1).to(torch.float64).numpy() for p in model.parameters()]
    if not parts:
        return np.zeros(0, dtype=np.float64)
    return np.concatenate(parts)


def load_flat(model: nn.Module, vec: np.ndarray) -> None:
    """Write a flat vector (as produced by :func:`flatten`) into the model in place.

    Raises ``ValueError`` on a length mismatch: silently truncating would load a
    model with a different layout.
    """
    vec = np.asarray(vec, dtype=np.float64)
    params = list(model.parameters())
    total = sum(p.numel() for p in params)
    if vec.ndim != 1 or vec.shape[0] != total:
        raise ValueError(f"flat vector has shape {vec.shape}, model needs ({total},)")
    offset = 0
    with torch.no_grad():
        for p in params:
            n = p.numel()
            chunk = torch.from_numpy(vec[offset : offset + n].copy()).reshape(p.shape)
            p.copy_(chunk.to(p.dtype))
            offset += n


def _to_fixed(vec: np.ndarray, scale_bits: int, lo: int, hi: int) -> tuple[np.ndarray, int]:
    _check_scale(scale_bits)
    arr = np.asarray(vec, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"expected a 1-D vector, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("vector contains NaN or infinity")
    scaled = np.rint(np.ldexp(arr, scale_bits))  # exact scaling, then half-to-even
    clipped = int(np.count_nonzero((scaled < lo) | (scaled > hi)))
    return np.clip(scaled, lo, hi).astype(np.int64), clipped


def to_fixed_int32(vec: np.ndarray, scale_bits: int) -> tuple[np.ndarray, int]:
    """Quantize reals to int32 ``round_half_even(x * 2**S)``; returns ``(q, clipped_count)``."""
    q, clipped = _to_fixed(vec, scale_bits, INT32_MIN, INT32_MAX)
    return q.astype(np.int32), clipped


def quantize_delta(delta: np.ndarray, scale_bits: int) -> tuple[np.ndarray, int]:
    """Quantize a real-valued update delta to int16; returns ``(q, clipped_count)``."""
    q, clipped = _to_fixed(delta, scale_bits, INT16_MIN, INT16_MAX)
    return q.astype(np.int16), clipped


def from_fixed(q: np.ndarray, scale_bits: int) -> np.ndarray:
    """Real values ``q / 2**S`` as float64 (exact for any int32 input)."""
    _check_scale(scale_bits)
    arr = np.asarray(q)
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"fixed-point input must be an integer array, got {arr.dtype}")
    return np.ldexp(arr.astype(np.float64), -scale_bits)


def _as_int_range(q: np.ndarray, lo: int, hi: int, what: str) -> np.ndarray:
    arr = np.asarray(q)
    if arr.ndim != 1:
        raise ValueError(f"{what} must be a 1-D vector, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{what} must be an integer array, got {arr.dtype}")
    if arr.size and (int(arr.min()) < lo or int(arr.max()) > hi):
        raise ValueError(f"{what} has values outside [{lo}, {hi}]")
    return arr


def model_bytes(q: np.ndarray) -> bytes:
    """Wire form of a global model: ``d`` little-endian int32."""
    return _as_int_range(q, INT32_MIN, INT32_MAX, "model").astype("<i4").tobytes()


def parse_model_bytes(data: bytes, d: int) -> np.ndarray:
    """Inverse of :func:`model_bytes`; ``ValueError`` unless ``len(data) == 4*d``."""
    if d < 0 or len(data) != 4 * d:
        raise ValueError(f"model bytes have length {len(data)}, expected {4 * d} (d={d})")
    return np.frombuffer(data, dtype="<i4").astype(np.int32)


def update_bytes(q: np.ndarray) -> bytes:
    """Wire form of an update (``update_bytes`` in SPEC §2): ``d`` little-endian int16."""
    return _as_int_range(q, INT16_MIN, INT16_MAX, "update").astype("<i2").tobytes()


def parse_update_bytes(data: bytes, d: int) -> np.ndarray:
    """Inverse of :func:`update_bytes`; ``ValueError`` unless ``len(data) == 2*d``."""
    if d < 0 or len(data) != 2 * d:
        raise ValueError(f"update bytes have length {len(data)}, expected {2 * d} (d={d})")
    return np.frombuffer(data, dtype="<i2").astype(np.int16)
