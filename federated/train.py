"""Local training, evaluation and fixed-point model arithmetic for clients.

Why this shape: the protocol only ever sees integers (an int32 global model, int16
deltas; SPEC §4). A client therefore (1) loads the *exact* fixed-point global model,
(2) trains in float32, and (3) ships ``quantize(trained − global)``. Computing the
delta against the dequantized global (not against some float copy the client kept)
is what makes ``global + delta`` on chain equal to what the client trained, up to one
quantization step per coordinate.

Determinism: a run is a pure function of its arguments. Torch's global RNG is
forked and seeded inside each call (nothing leaks to the caller), batches are
shuffled with a seeded generator, and ``num_threads=1`` (the default) pins the
intra-op thread count for the duration of the call, since float reductions may be
ordered differently with more threads.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from federated import models
from federated.quant import (
    INT16_MAX,
    INT16_MIN,
    flatten,
    from_fixed,
    load_flat,
    quantize_delta,
    to_fixed_int32,
)
from state_machine import aggregation as stf_aggregation

OPTIMIZERS = ("sgd", "adam")


@dataclass(frozen=True)
class TrainResult:
    """Outcome of :func:`local_update`.

    ``loss`` is the mean training cross-entropy over the last epoch (a float for logs
    only; it never reaches the chain).
    """

    delta_q: np.ndarray  # int16, shape (d,)
    clipped: int
    loss: float


@contextlib.contextmanager
def _torch_threads(num_threads: int | None) -> Iterator[None]:
    if num_threads is None:
        yield
        return
    if num_threads < 1:
        raise ValueError("num_threads must be >= 1 or None")
    previous = torch.get_num_threads()
    torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _check_model_vector(model_name: str, q: np.ndarray, what: str) -> np.ndarray:
    arr = np.asarray(q)
    d = models.num_params(model_name)
    if arr.shape != (d,):
        raise ValueError(f"{what} has shape {arr.shape}, model {model_name!r} needs ({d},)")
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{what} must be an integer array, got {arr.dtype}")
    return arr


def load_fixed(model_name: str, global_q: np.ndarray, scale_bits: int) -> nn.Module:
    """A model holding the dequantized fixed-point parameters ``global_q / 2**S``."""
    q = _check_model_vector(model_name, global_q, "global model")
    model = models.build(model_name, seed=None)
    load_flat(model, from_fixed(q, scale_bits))
    return model


def _check_data(X: np.ndarray, y: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    X_arr = np.asarray(X, dtype=np.float32)
    y_arr = np.asarray(y)
    if X_arr.ndim != 2 or y_arr.shape != (X_arr.shape[0],):
        raise ValueError(f"X must be (n, features) and y (n,), got {X_arr.shape} / {y_arr.shape}")
    if X_arr.shape[0] == 0:
        raise ValueError("empty data set")
    # torch.tensor copies: callers' arrays may be read-only (the cached data set).
    return torch.tensor(X_arr), torch.tensor(y_arr.astype(np.int64))


def local_update(
    model_name: str,
    global_q: np.ndarray,
    scale_bits: int,
    X: np.ndarray,
    y: np.ndarray,
    epochs: int = 1,
    lr: float = 0.1,
    batch_size: int = 32,
    seed: int = 0,
    *,
    optimizer: str = "sgd",
    momentum: float = 0.0,
    num_threads: int | None = 1,
) -> TrainResult:
    """Train from the fixed-point global model on ``(X, y)``; return the int16 delta.

    Mini-batch SGD (or Adam) on cross-entropy, ``epochs`` passes over the data in an
    order drawn from ``seed``. The delta ``trained − global`` is quantized with
    round-half-to-even and clipped to int16; ``clipped`` counts clipped coordinates
    (a non-zero count means the learning rate is too large for the scale: each
    clipped coordinate moved by more than ``2**15 / 2**S``).
    """
    if epochs < 0 or batch_size < 1:
        raise ValueError("epochs must be >= 0 and batch_size >= 1")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; known: {OPTIMIZERS}")
    Xt, yt = _check_data(X, y)
    with _torch_threads(num_threads), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = load_fixed(model_name, global_q, scale_bits)
        start = flatten(model)
        model.train()
        opt: torch.optim.Optimizer
        if optimizer == "sgd":
            opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
        else:
            opt = torch.optim.Adam(model.parameters(), lr=lr)
        gen = torch.Generator().manual_seed(seed)
        loss_fn = nn.CrossEntropyLoss()
        n = Xt.shape[0]
        last_loss = float("nan")
        for _ in range(epochs):
            order = torch.randperm(n, generator=gen)
            total, count = 0.0, 0
            for lo in range(0, n, batch_size):
                idx = order[lo : lo + batch_size]
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(model(Xt[idx]), yt[idx])
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(idx)
                count += len(idx)
            last_loss = total / count
        model.eval()
        delta_q, clipped = quantize_delta(flatten(model) - start, scale_bits)
    return TrainResult(delta_q=delta_q, clipped=clipped, loss=last_loss)


def predict(
    model_name: str, q: np.ndarray, scale_bits: int, X: np.ndarray, *, num_threads: int | None = 1
) -> np.ndarray:
    """Predicted labels (int64) of the fixed-point model ``q`` on ``X``."""
    Xt = torch.tensor(np.asarray(X, dtype=np.float32))
    with _torch_threads(num_threads), torch.no_grad():
        model = load_fixed(model_name, q, scale_bits)
        return model(Xt).argmax(dim=1).numpy().astype(np.int64)


def accuracy_bps(
    model_name: str,
    q: np.ndarray,
    scale_bits: int,
    X: np.ndarray,
    y: np.ndarray,
    *,
    num_threads: int | None = 1,
) -> int:
    """Accuracy in integer basis points, ``floor(10000 · correct / n)`` (SPEC §7 votes)."""
    y_arr = np.asarray(y)
    if len(y_arr) == 0:
        raise ValueError("cannot compute accuracy on an empty set")
    pred = predict(model_name, q, scale_bits, X, num_threads=num_threads)
    correct = int(np.count_nonzero(pred == y_arr))
    return correct * 10_000 // len(y_arr)


def apply_delta(global_q: np.ndarray, delta_q: np.ndarray) -> np.ndarray:
    """``global + delta`` as int32; ``OverflowError`` instead of wrapping (SPEC §6)."""
    g = np.asarray(global_q)
    dlt = np.asarray(delta_q)
    if g.shape != dlt.shape or g.ndim != 1:
        raise ValueError(f"shape mismatch: global {g.shape} vs delta {dlt.shape}")
    if not (np.issubdtype(g.dtype, np.integer) and np.issubdtype(dlt.dtype, np.integer)):
        raise ValueError("global and delta must be integer arrays")
    try:
        return stf_aggregation.apply_delta(g, dlt)  # the STF's own arithmetic
    except stf_aggregation.AggregationError as exc:
        raise OverflowError("global + delta overflows int32") from exc


def init_global(model_name: str, seed: int, scale_bits: int) -> np.ndarray:
    """The genesis global model: :func:`models.build` with ``seed``, quantized to int32."""
    q, clipped = to_fixed_int32(flatten(models.build(model_name, seed)), scale_bits)
    if clipped:
        raise ValueError(f"{clipped} initial weights do not fit int32 at scale_bits={scale_bits}")
    return q


def fedavg_delta(deltas: Sequence[np.ndarray]) -> np.ndarray:
    """Equal-weight integer mean of int16 deltas, rounded half to even exactly (SPEC §6).

    Delegates to the STF's ``mean_round_half_even`` so simulations aggregate exactly as
    the chain does.
    """
    if len(deltas) == 0:
        raise ValueError("no deltas to average")
    rows = np.stack([np.asarray(dl) for dl in deltas])
    if not np.issubdtype(rows.dtype, np.integer) or (
        rows.size and (rows.min() < INT16_MIN or rows.max() > INT16_MAX)
    ):
        raise ValueError("deltas must be int16-range integers")
    return stf_aggregation.mean_round_half_even(rows.astype(np.int16))
