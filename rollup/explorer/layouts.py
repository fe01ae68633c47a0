"""Parameter names and shapes of the registered architectures, without torch.

Why a copy: the node must not import torch or ``federated`` (``.importlinter``: contracts
"layers" and "no-torch"), yet the model export names its tensors like the task's torch
model. ``tests/explorer/test_model_export.py`` checks this table against
``federated.models`` (``named_parameters()`` order = the flat vector's order, SPEC §4), so
the two cannot drift apart silently. A model not listed here (bring-your-own) is exported
by ``flockchain model export --module``, which names the tensors with the user's module.
"""

from __future__ import annotations

Layout = tuple[tuple[str, tuple[int, ...]], ...]

LAYOUTS: dict[str, Layout] = {
    "softmax": (("0.weight", (10, 64)), ("0.bias", (10,))),
    "mlp": (("0.weight", (32, 64)), ("0.bias", (32,)), ("2.weight", (10, 32)),
            ("2.bias", (10,))),
    "cnn": (("1.weight", (8, 1, 3, 3)), ("1.bias", (8,)), ("5.weight", (10, 128)),
            ("5.bias", (10,))),
}


def size(layout: Layout) -> int:
    total = 0
    for _, shape in layout:
        n = 1
        for s in shape:
            n *= s
        total += n
    return total
