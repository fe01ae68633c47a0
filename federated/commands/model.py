"""``flockchain model export``: download a task's accepted model as safetensors, checked.

Why check on the client: the node converts its int32 model to floats, but a task owner
should not have to trust that conversion. The command re-quantises the downloaded floats
(``round(x * 2**S)``, exact for the values the chain can hold) and requires their
keccak256 to equal the model hash in the task (or epoch) record it reads itself.
"""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("model", help="task models: export the accepted global model")
    msub = p.add_subparsers(dest="model_command", metavar="SUBCOMMAND", required=True)
    e = msub.add_parser("export", help="write the accepted global model as safetensors",
                        description="Float tensors named and shaped as the task's torch "
                        "model; metadata carries the model hash and the state root.")
    e.add_argument("--node", default="http://127.0.0.1:8700", help="node URL")
    e.add_argument("--task", type=int, required=True, help="task id")
    e.add_argument("--epoch", type=int, default=None,
                   help="the model epoch E ended with (default: the current global model)")
    e.add_argument("--out", required=True, help="output file (.safetensors)")
    e.add_argument("--module", metavar="PKG.MOD:ATTR", default=None,
                   help="your torch.nn.Module class (bring your own model): build the file "
                   "here from the model bytes, for a model the node cannot name")
    e.set_defaults(func=run_export)


def expected_hash(node: object, task: int, epoch: int | None) -> str:
    """The model hash the chain's own record names (``global_hash`` or ``global_after``)."""
    if epoch is None:
        return node.task(task)["global_hash"]  # type: ignore[attr-defined]
    return node.epoch(task, epoch)["global_after"]  # type: ignore[attr-defined]


def requantised_hash(path: str) -> tuple[str, dict[str, str]]:
    """The model hash of the file's tensors re-quantised to the chain's int32 layout: their
    keccak256, or their chunk root when the file claims one (protocol 4 names models by
    chunk root, ``state_machine.chunks.content_root``)."""
    import numpy as np
    from safetensors import safe_open

    from federated.quant import model_bytes, to_fixed_int32
    from state_machine.chunks import content_root
    from state_machine.crypto import keccak256

    with safe_open(path, framework="pt") as f:
        meta = f.metadata() or {}
        tensors = [f.get_tensor(k) for k in _param_order(meta, list(f.keys()))]
    flat = np.concatenate([t.reshape(-1).double().numpy() for t in tensors])
    q, _ = to_fixed_int32(flat, int(meta["scale_bits"]))
    raw = model_bytes(q)
    root = "0x" + content_root(raw).hex()
    return (root if meta.get("global_hash") == root else "0x" + keccak256(raw).hex()), meta


def _param_order(meta: dict[str, str], keys: list[str]) -> list[str]:
    """The tensors in ``named_parameters()`` order of the task's model (safetensors files
    store keys sorted, not in model order)."""
    from federated.models import build

    names = [n for n, _ in build(meta["model"], seed=None).named_parameters()]
    if sorted(names) != sorted(keys):
        raise ValueError(f"tensors {sorted(keys)} do not match model {meta['model']!r}")
    return names


FORMAT = "flockchain-model/v1"  # same metadata as GET /v1/tasks/{id}/model


def named_tensors(model_name: str, q: Any, scale_bits: int) -> dict[str, Any]:
    """``{parameter name: float32 tensor}`` of the flat int32 model ``q``, de-quantised."""
    import torch

    from federated import models
    from federated.quant import from_fixed

    flat, out, off = from_fixed(q, scale_bits), {}, 0
    for name, p in models.build(model_name, seed=None).named_parameters():
        out[name] = torch.from_numpy(flat[off:off + p.numel()].astype("float32")).reshape(
            p.shape)
        off += p.numel()
    if off != len(flat):
        raise ValueError(f"the model has {len(flat)} values, {model_name} needs {off}")
    return out


def build_locally(node: object, task_id: int, epoch: int | None, module: str) -> bytes:
    """The safetensors bytes built here: ``module`` names the tensors, the model bytes come
    from the node (checked against their keccak256), the proof from ``/v1/tasks/T/proof``.
    Refuses a module whose architecture hash is not the task's ``spec_hash``."""
    import importlib
    import json

    from safetensors.torch import save

    from federated.models import module_spec_hash, register_module
    from federated.quant import parse_model_bytes
    from rollup.wire import unhex

    mod, _, attr = module.partition(":")
    factory = getattr(importlib.import_module(mod), attr)
    task = node.task(task_id)  # type: ignore[attr-defined]
    p = task["params"]
    if module_spec_hash(p["model"], factory) != unhex(task["spec_hash"], 32):
        raise ValueError(f"{module} is not the task's architecture (spec_hash differs)")
    register_module(p["model"], factory)
    want = expected_hash(node, task_id, epoch)
    q = parse_model_bytes(node.blob(unhex(want, 32)), p["num_params"])  # type: ignore[attr-defined]
    proof = node.task_proof(task_id)  # type: ignore[attr-defined]
    meta = {"format": FORMAT, "task_id": str(task_id),
            "epoch": str(task["epochs_run"] - 1 if epoch is None else epoch),
            "model": p["model"], "spec_hash": task["spec_hash"], "global_hash": want,
            "scale_bits": str(p["scale_bits"]), "num_params": str(len(q)),
            "state_root": proof["state_root"], "height": str(proof["height"]),
            "batch_index": "" if proof["batch_index"] is None else str(proof["batch_index"]),
            "accuracy_bps": "" if task["accuracy_bps"] is None else str(task["accuracy_bps"]),
            "proof": json.dumps(dict(proof.items()), separators=(",", ":"))}
    return save(named_tensors(p["model"], q, p["scale_bits"]), metadata=meta)


def _fetch(node: object, args: argparse.Namespace) -> bytes:
    """The file's bytes: from the node's export route, or built here with ``--module``."""
    from rollup.client import NodeError

    if args.module:
        return build_locally(node, args.task, args.epoch, args.module)
    params = {"format": "safetensors"}
    if args.epoch is not None:
        params["epoch"] = str(args.epoch)
    r = node.http.get(f"/v1/tasks/{args.task}/model", params=params)  # type: ignore[attr-defined]
    if r.status_code != 200:
        body = r.json()
        hint = " (pass --module for your own model)" if body.get("reason") == \
            "unknown_model" else ""
        raise NodeError(r.status_code, body.get("reason", "?"), body.get("detail", "") + hint)
    return r.content


def run_export(args: argparse.Namespace) -> int:
    import sys
    from pathlib import Path

    from rollup.client import NodeClient, NodeError

    node = NodeClient(args.node)
    try:
        data = _fetch(node, args)
        want = expected_hash(node, args.task, args.epoch)
    except (NodeError, OSError, ValueError, ImportError, AttributeError) as exc:
        print(f"cannot export: {exc}", file=sys.stderr)
        return 1
    out = Path(args.out)
    out.write_bytes(data)
    got, meta = requantised_hash(str(out))
    if got != want or meta.get("global_hash") != want:
        out.unlink()
        print(f"model hash mismatch: chain says {want}, file gives {got}", file=sys.stderr)
        return 1
    print(f"wrote {out}: task {args.task} epoch {meta['epoch']} ({meta['model']}, "
          f"{meta['num_params']} params); model hash {want} verified; state root "
          f"{meta['state_root']} at height {meta['height']}"
          + (f" (batch {meta['batch_index']})" if meta.get("batch_index") else ""))
    return 0
