"""Bring your own torch model: a network defined here (outside ``federated/``) trained by
FLockChain clients that are given only the module and a ``DataLoader``.

    PYTHONPATH=. python examples/byo_model.py          # then open the printed explorer URL

What happens: a node starts in this process (SQLite in a temporary directory); the L1
side (stake deposits, ``createTask``) is injected the way the bridge does it, with the
task's ``spec_hash`` computed from *this* module's architecture; seven clients run
``ClientAgent.with_model(...)`` over their own non-IID ``DataLoader``; blocks are produced
here so the run takes seconds. At the end the model is exported as safetensors and
reloaded into a fresh ``WideDigitNet``.

The client API in three lines (see ``federated/byo.py``):

    trainer = TorchTrainer(WideDigitNet(), train_loader, eval_loader, model_name="widedigits")
    agent = ClientAgent.with_model(FlockClient(node_url, keypair), trainer)
    run_daemon(agent.step, name="byo", interval=0.5, stop=threading.Event())
    # (rollup.daemon) acts only in tasks whose spec_hash == trainer.spec_hash
"""

from __future__ import annotations

import hashlib
import itertools
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from federated.byo import TorchTrainer
from federated.client import ClientAgent
from federated.data import DataSpec, digits_split
from federated.quant import flatten, to_fixed_int32
from rollup.client import FlockClient, Keypair, NodeClient
from rollup.config import NodeConfig
from rollup.node import NodeHandle, start_node
from state_machine.actions import DepositBody, TaskCreatedBody
from state_machine.constants import FEE_PER_EPOCH, STAKE_AMOUNT
from state_machine.crypto import keccak256
from state_machine.tasks import TaskParams

MODEL_NAME = "widedigits"
SCALE_BITS = 12
N_CLIENTS = 7


class WideDigitNet(nn.Module):
    """8x8 digits -> 10 classes through two hidden layers (not in the model registry)."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(64, 48), nn.Tanh(), nn.Linear(48, 24), nn.Tanh())
        self.head = nn.Linear(24, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def loaders(i: int, n: int) -> tuple[DataLoader, DataLoader]:
    """Client ``i``'s non-IID training shard and a voter test shard, as DataLoaders."""
    def dl(spec: str, shuffle: bool) -> DataLoader:
        X, y = DataSpec.parse(spec).load()
        ds = TensorDataset(torch.tensor(np.asarray(X, np.float32)),
                           torch.tensor(np.asarray(y, np.int64)))
        return DataLoader(ds, batch_size=32, shuffle=shuffle,
                          generator=torch.Generator().manual_seed(i))
    return (dl(f"digits:dirichlet:alpha=0.5:client={i}:of={n}:seed=1", True),
            dl(f"digits:voter:voter={i % 2}:of=2:seed=1", False))


def _key(tag: str) -> Keypair:
    return Keypair.from_seed(hashlib.sha256(f"byo-example/{tag}".encode()).digest())


def _genesis() -> np.ndarray:
    torch.manual_seed(0)
    q, _ = to_fixed_int32(flatten(WideDigitNet()), SCALE_BITS)
    return q


def _create_task(node: NodeHandle, spec_hash: bytes, d: int, epochs: int,
                 keys: list[Keypair]) -> None:
    """What the bridge injects after ``StakingRegistry.stake`` and ``createTask`` on L1."""
    seq = node.sequencer
    for i, k in enumerate(keys):
        addr = hashlib.sha256(k.pubkey).digest()[:20]
        seq.submit_l1_event("l1_deposit", DepositBody(addr, k.pubkey, STAKE_AMOUNT, 10 + i, 0,
                                                      b"\x11" * 32))
    genesis = _genesis()
    params = TaskParams(model=MODEL_NAME, num_params=d, proposers_per_epoch=5, f=1,
                        genesis_model_hash=keccak256(genesis.astype("<i4").tobytes()),
                        voters_per_epoch=2, scale_bits=SCALE_BITS, commit_window=2,
                        reveal_window=2, vote_commit_window=2, vote_reveal_window=2)
    seq.submit_l1_event("l1_task_created", TaskCreatedBody(
        1, b"\x22" * 20, spec_hash, epochs, 9_900, params.encode(), epochs * FEE_PER_EPOCH,
        100, 0, b"\x44" * 32))
    seq.produce_block()
    FlockClient(NodeClient(node.url), keys[0]).publish_genesis(1, genesis)
    seq.produce_block()


def run(workdir: Path, epochs: int = 3, keep: bool = False) -> dict[str, Any]:
    """Run the example; returns the per-epoch committee accuracies and the node handle
    (stopped unless ``keep``)."""
    # blocks are stepped by hand below, one chain second apart: protocol 3 phase windows
    # also wait on block time (docs/protocol.md "Paced phase windows")
    tick = itertools.count(int(time.time())).__next__
    node = start_node(NodeConfig(db_url=f"sqlite:///{workdir}/byo.db", chain_id=7, port=0,
                                 sequencer_key_file=workdir / "seq.key", log_level="warning"),
                      clock=tick, produce_blocks=False)
    keys = [_key(f"client{i}") for i in range(N_CLIENTS)]
    agents = []
    for i, k in enumerate(keys):
        train, test = loaders(i, N_CLIENTS)
        trainer = TorchTrainer(WideDigitNet(), train, test, model_name=MODEL_NAME,
                               local_epochs=5, lr=0.3, seed=i)
        agents.append(ClientAgent.with_model(FlockClient(NodeClient(node.url), k), trainer))
    d = sum(p.numel() for p in WideDigitNet().parameters())
    _create_task(node, agents[0].trainer.spec_hash, d, epochs, keys)
    seq = node.sequencer
    for _ in range(60 * epochs):
        if seq.state.tasks[1].status != 0:
            break
        for a in agents:
            a.step()
        seq.produce_block()
    accs = [seq.state.epochs[(1, e)].accuracy_bps for e in range(seq.state.tasks[1].epochs_run)]
    out = {"url": node.url, "accuracy_bps": accs, "node": node,
           "spec_hash": "0x" + agents[0].trainer.spec_hash.hex()}
    if not keep:
        node.stop()
    return out


def main() -> None:
    from safetensors.torch import load_file

    from rollup.cli import main as cli

    with tempfile.TemporaryDirectory() as tmp:
        r = run(Path(tmp), keep=True)
        print(f"spec hash {r['spec_hash']}; committee accuracy per epoch (bps): "
              f"{r['accuracy_bps']}")
        out = Path(tmp) / "widedigits.safetensors"
        cli(["model", "export", "--node", r["url"], "--task", "1", "--out", str(out),
             "--module", "examples.byo_model:WideDigitNet"])  # the node cannot name them
        net = WideDigitNet()
        net.load_state_dict(load_file(out))
        split = digits_split()
        pred = net(torch.tensor(np.asarray(split.X_test, np.float32))).argmax(1).numpy()
        print(f"exported model: test accuracy {100 * float((pred == split.y_test).mean()):.2f}%;"
              f" explorer was at {r['url']}/explorer/")
        r["node"].stop()


if __name__ == "__main__":
    main()
