"""Bring your own model: a module defined in examples/ trains through the client daemon,
and the architecture is bound to the task by hash."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from examples.byo_model import MODEL_NAME, WideDigitNet, loaders, run
from federated.byo import TorchTrainer
from federated.client import ClientAgent
from federated.models import module_arch, register_module


class OtherNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


def test_example_model_trains_over_the_chain(tmp_path) -> None:
    r = run(tmp_path, epochs=2)
    accs = r["accuracy_bps"]
    assert len(accs) == 2 and all(a is not None for a in accs)
    assert accs[-1] > accs[0] > 1_000  # better than chance (10 classes), and improving


def test_architecture_is_bound_by_hash() -> None:
    train, test = loaders(0, 7)
    mine = TorchTrainer(WideDigitNet(), train, test, model_name=MODEL_NAME)
    again = TorchTrainer(WideDigitNet(), train, test, model_name=MODEL_NAME)
    assert mine.spec_hash == again.spec_hash  # weights do not enter the hash
    other = TorchTrainer(OtherNet(), train, test, model_name="othernet")
    assert other.spec_hash != mine.spec_hash
    assert not other.matches(MODEL_NAME, mine.spec_hash)
    assert not mine.matches(MODEL_NAME, other.spec_hash)
    assert mine.matches(MODEL_NAME, mine.spec_hash)
    with pytest.raises(ValueError, match="another architecture"):  # a name cannot be reused
        register_module(MODEL_NAME, OtherNet)
    assert "Linear(in_features=64, out_features=48" in module_arch(WideDigitNet())


def test_client_needs_exactly_one_of_profile_or_model() -> None:
    with pytest.raises(ValueError):
        ClientAgent(client=None)  # type: ignore[arg-type]


def test_export_of_a_model_the_node_cannot_name(tmp_path) -> None:
    """With ``--module`` the CLI names the tensors itself (the node, which has no torch,
    knows only the built-in layouts) and still checks the bytes against the chain's hash."""
    from safetensors.torch import load_file

    from rollup.cli import main

    r = run(tmp_path, epochs=1, keep=True)
    try:
        out = tmp_path / "m.safetensors"
        base = ["model", "export", "--node", r["url"], "--task", "1", "--out", str(out)]
        assert main(base) == 1 and not out.exists()  # node: unknown_model
        assert main([*base, "--module", "tests.explorer.test_byo_model:OtherNet"]) == 1
        assert main([*base, "--module", "examples.byo_model:WideDigitNet"]) == 0
        net = WideDigitNet()
        net.load_state_dict(load_file(out))
    finally:
        r["node"].stop()
