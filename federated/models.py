"""Model registry: the architectures a task's ``model_spec`` can name (SPEC §3).

Why a registry and not pickled modules: a task on chain fixes only ``(name, hash,
num_params)``. Every client must rebuild *the same* parameter layout from the name
alone, because the global model travels as a flat vector of ``d`` int32 values
(SPEC §4) whose meaning is "parameter ``k`` in ``model.parameters()`` order". The
hash (:func:`spec_hash`) lets a client refuse a task whose layout it does not know,
instead of silently loading a vector into the wrong shapes.

All models take a flat ``(batch, 64)`` float input (8×8 digit images scaled to
[0, 1]) and return ``(batch, 10)`` logits, so training and evaluation code never
branches on the architecture.

Initialization is done with NumPy's PCG64 rather than torch's global RNG so that
the genesis model depends only on ``(name, seed)``, not on torch's RNG state or
its default-initializer implementation in a given release.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import numpy as np
import torch
from torch import nn

INPUT_DIM = 64
NUM_CLASSES = 10
_HASH_DOMAIN = "flockchain/model-spec/v1"


@dataclass(frozen=True)
class ModelSpec:
    """A named architecture.

    ``arch`` is a human-readable, *hashed* description: changing the architecture
    must change it, so that :func:`spec_hash` changes and old tasks are not
    silently reinterpreted.
    """

    name: str
    arch: str
    factory: Callable[[], nn.Module]
    input_dim: int = INPUT_DIM
    num_classes: int = NUM_CLASSES


def _softmax() -> nn.Module:
    return nn.Sequential(nn.Linear(INPUT_DIM, NUM_CLASSES))


def _mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(INPUT_DIM, 32), nn.ReLU(), nn.Linear(32, NUM_CLASSES))


def _cnn() -> nn.Module:
    return nn.Sequential(
        nn.Unflatten(1, (1, 8, 8)),
        nn.Conv2d(1, 8, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(8 * 4 * 4, NUM_CLASSES),
    )


MODELS: dict[str, ModelSpec] = {
    "softmax": ModelSpec("softmax", "linear(64->10)", _softmax),
    "mlp": ModelSpec("mlp", "linear(64->32);relu;linear(32->10)", _mlp),
    "cnn": ModelSpec(
        "cnn",
        "unflatten(1x8x8);conv2d(1->8,k3,p1);relu;maxpool(2);flatten;linear(128->10)",
        _cnn,
    ),
}


def get_spec(name: str) -> ModelSpec:
    """The registered spec for ``name``; a clear ``KeyError`` lists what exists."""
    try:
        return MODELS[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; known: {sorted(MODELS)}") from None


@cache
def param_shapes(name: str) -> tuple[tuple[int, ...], ...]:
    """Shapes of the parameters in flattening order (``model.parameters()`` order)."""
    model = get_spec(name).factory()
    return tuple(tuple(p.shape) for p in model.parameters())


def num_params(name: str) -> int:
    """``d``: the length of the flat parameter vector (SPEC §3 ``num_params``)."""
    return int(sum(int(np.prod(s)) for s in param_shapes(name)))


def _hash(name: str, arch: str, shapes: tuple[tuple[int, ...], ...]) -> bytes:
    text = f"{_HASH_DOMAIN}|{name}|{arch}|{';'.join('x'.join(str(n) for n in s) for s in shapes)}"
    return hashlib.sha256(text.encode()).digest()


@cache
def spec_hash(name: str) -> bytes:
    """32-byte sha256 over the domain, name, architecture string and parameter shapes.

    Stable across processes and machines (no object ids, no torch version in it).
    """
    return _hash(name, get_spec(name).arch, param_shapes(name))


def _fan_in(weight: torch.Tensor) -> int:
    return int(np.prod(weight.shape[1:]))


def build(name: str, seed: int | None = 0) -> nn.Module:
    """A fresh float32 model; with an integer ``seed`` its weights depend only on it.

    Weights and biases of every Linear/Conv2d layer are drawn
    ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``, the same law as PyTorch's default
    initializer, but from a seeded PCG64 stream. ``seed=None`` skips the
    re-initialization (useful when the parameters are loaded right after).
    """
    model = get_spec(name).factory()
    if seed is not None:
        if seed < 0:
            raise ValueError("seed must be non-negative")
        rng = np.random.Generator(np.random.PCG64(seed))
        with torch.no_grad():
            for module in model.modules():
                if isinstance(module, nn.Linear | nn.Conv2d):
                    bound = 1.0 / np.sqrt(_fan_in(module.weight))
                    for p in (module.weight, module.bias):
                        if p is None:
                            continue
                        vals = rng.uniform(-bound, bound, size=tuple(p.shape))
                        p.copy_(torch.from_numpy(vals.astype(np.float32)))
    model.eval()
    return model


# ---------------------------------------------------------------------- bring your own model


def module_arch(module: nn.Module) -> str:
    """A canonical description of a module's architecture: torch's ``repr`` (every layer
    with its hyper-parameters, in order) on one line. Two modules with the same layers
    give the same text in any process; weights never enter it."""
    return " ".join(repr(module).split())


def module_spec_hash(name: str, factory: Callable[[], nn.Module],
                     arch: str | None = None) -> bytes:
    """The :func:`spec_hash` ``factory`` would have under ``name`` (registers nothing)."""
    module = factory()
    shapes = tuple(tuple(p.shape) for p in module.parameters())
    return _hash(name, arch if arch is not None else module_arch(module), shapes)


def register_module(name: str, factory: Callable[[], nn.Module], *, arch: str | None = None,
                    input_dim: int = INPUT_DIM, num_classes: int = NUM_CLASSES) -> bytes:
    """Register a user-defined architecture under ``name``; returns its :func:`spec_hash`.

    Why by hash: a task fixes ``(name, spec_hash)`` on L1. Registering lets every client
    (and the node's model export) rebuild the parameter layout from the name, and the hash
    (over ``arch`` and the parameter shapes) lets a client refuse a task whose layout
    differs from the module it was given. Re-registering a name with a different
    architecture raises ``ValueError`` instead of silently reinterpreting old tasks.
    """
    arch = arch if arch is not None else module_arch(factory())
    h = module_spec_hash(name, factory, arch)
    if name in MODELS:
        if spec_hash(name) != h:
            raise ValueError(f"model {name!r} is already registered with another architecture")
        return h
    if module_spec_hash(name, factory, arch) != h:
        raise ValueError("the factory must build the same architecture every time")
    MODELS[name] = ModelSpec(name, arch, factory, input_dim, num_classes)
    param_shapes.cache_clear()  # a name may have been looked up (and failed) before
    spec_hash.cache_clear()
    return h
