"""Model export: the safetensors file loads into the task's torch model and reproduces the
test accuracy the demo reports for the same on-chain model."""

from __future__ import annotations

import httpx
import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from federated.commands.model import requantised_hash
from federated.data import digits_split
from federated.models import build
from federated.train import accuracy_bps
from rollup.cli import main

from .chain import MODEL, SCALE_BITS, TASK_ID, Chain


def _model_q(chain: Chain, h: bytes) -> np.ndarray:
    raw = chain.node.sequencer.store.blob(h)
    return np.frombuffer(raw, dtype="<i4").astype(np.int32)


def _float_accuracy_bps(path: str) -> int:
    net = build(MODEL, seed=None)
    net.load_state_dict(load_file(path))  # strict: names and shapes must match
    split = digits_split()
    with torch.no_grad():
        pred = net(torch.tensor(np.asarray(split.X_test, dtype=np.float32))).argmax(1)
    return int((pred.numpy() == split.y_test).sum()) * 10_000 // len(split.y_test)


@pytest.mark.parametrize("epoch", [None, 1])
def test_export_loads_and_reproduces_test_accuracy(chain: Chain, tmp_path, epoch) -> None:
    st = chain.node.sequencer.state
    h = st.tasks[TASK_ID].global_hash if epoch is None else \
        st.epochs[(TASK_ID, epoch)].global_after
    out = tmp_path / "model.safetensors"
    argv = ["model", "export", "--node", chain.url, "--task", str(TASK_ID), "--out", str(out)]
    assert main(argv + ([] if epoch is None else ["--epoch", str(epoch)])) == 0
    split = digits_split()
    reported = accuracy_bps(MODEL, _model_q(chain, h), SCALE_BITS, split.X_test, split.y_test)
    assert reported > 5_000  # a trained model, not chance
    assert _float_accuracy_bps(str(out)) == reported
    got, meta = requantised_hash(str(out))
    assert got == meta["global_hash"] == "0x" + h.hex()
    assert meta["model"] == MODEL and meta["state_root"].startswith("0x")
    if epoch is None:  # the current model is proven in a batch the node has cut
        assert meta["batch_index"] != ""
        last_accepted = max(e for (t, e), ep in st.epochs.items()
                            if t == TASK_ID and ep.outcome == "accepted")
        assert meta["epoch"] == str(last_accepted)
    else:
        assert meta["epoch"] == str(epoch)


def test_export_refusals(chain: Chain, tmp_path) -> None:
    r = httpx.get(f"{chain.url}/v1/tasks/99/model")
    assert r.status_code == 404 and r.json()["reason"] == "unknown_task"
    r = httpx.get(f"{chain.url}/v1/tasks/{TASK_ID}/model", params={"format": "onnx"})
    assert r.status_code == 400 and r.json()["reason"] == "unsupported_format"
    r = httpx.get(f"{chain.url}/v1/tasks/{TASK_ID}/model", params={"epoch": 42})
    assert r.status_code == 404 and r.json()["reason"] == "unknown_epoch"
    out = tmp_path / "x.safetensors"
    assert main(["model", "export", "--node", chain.url, "--task", "99", "--out",
                 str(out)]) == 1
    assert not out.exists()


def test_node_layouts_match_the_torch_models() -> None:
    """The node names tensors from a torch-free table; it must be the models' own layout."""
    from federated.models import MODELS
    from rollup.explorer.layouts import LAYOUTS

    for name in ("softmax", "mlp", "cnn"):
        assert name in MODELS
        net = build(name, seed=None)
        assert LAYOUTS[name] == tuple((n, tuple(p.shape)) for n, p in net.named_parameters())
