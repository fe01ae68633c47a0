"""Bring your own model: train and vote with any ``torch.nn.Module`` and data loader.

    from federated.byo import TorchTrainer
    from federated.client import ClientAgent

    trainer = TorchTrainer(MyNet(), train_loader, eval_loader, model_name="mynet")
    agent = ClientAgent.with_model(FlockClient(node_url, keypair), trainer)
    run_daemon(agent.step, name="byo", interval=0.5, stop=stop_event)  # rollup.daemon
    # it acts in every task whose spec_hash == trainer.spec_hash, skips the others

Why the hash: the chain moves the model as a flat int32 vector (SPEC §4), "parameter k in
``model.parameters()`` order". A task binds its architecture by ``spec_hash`` (sha256 over
the name, the module's layer description and the parameter shapes; see
:func:`federated.models.register_module`), so a client given a different module refuses
the task instead of loading the vector into the wrong shapes. The task owner computes the
same hash from the same module (``TorchTrainer(...).spec_hash`` or ``register_module``)
and puts it in ``createTask``.

The arithmetic is the protocol's: start from the de-quantised global model, train in
float, ship ``quantize(trained - global)`` as int16; votes are integer basis points.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from federated.models import module_arch, register_module
from federated.quant import flatten, from_fixed, load_flat, quantize_delta

log = logging.getLogger(__name__)

Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass
class TorchTrainer:
    """A user's module, its data, and how to train it locally.

    ``train_loader`` and ``eval_loader`` are any iterables of ``(inputs, labels)`` batches
    (e.g. ``torch.utils.data.DataLoader``); labels are class indices and the module returns
    logits. Without ``eval_loader`` the client cannot vote (it stays silent as a voter).
    """

    model: nn.Module
    train_loader: Iterable[Batch]
    eval_loader: Iterable[Batch] | None = None
    model_name: str | None = None
    local_epochs: int = 1
    lr: float = 0.05
    make_optimizer: Callable[[Any], torch.optim.Optimizer] | None = None
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = field(
        default_factory=nn.CrossEntropyLoss)
    seed: int = 0

    def __post_init__(self) -> None:
        self.model_name = self.model_name or type(self.model).__name__.lower()
        template = copy.deepcopy(self.model)
        self.spec_hash: bytes = register_module(self.model_name, lambda: copy.deepcopy(template),
                                                arch=module_arch(self.model))

    def matches(self, model_name: str, spec_hash: bytes) -> bool:
        ok = model_name == self.model_name and spec_hash == self.spec_hash
        if not ok:
            log.info("task model %s (%s) is not this client's %s (%s): skipped", model_name,
                     spec_hash.hex()[:12], self.model_name, self.spec_hash.hex()[:12])
        return ok

    def _optimizer(self) -> torch.optim.Optimizer:
        if self.make_optimizer is not None:
            return self.make_optimizer(self.model.parameters())
        return torch.optim.SGD(self.model.parameters(), lr=self.lr)

    def propose(self, global_q: np.ndarray, scale_bits: int) -> np.ndarray:
        """The int16 delta after ``local_epochs`` passes over ``train_loader``."""
        load_flat(self.model, from_fixed(np.asarray(global_q), scale_bits))
        start = flatten(self.model)
        opt = self._optimizer()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.model.train()
            for _ in range(self.local_epochs):
                for x, y in self.train_loader:
                    opt.zero_grad(set_to_none=True)
                    self.loss_fn(self.model(x), y).backward()
                    opt.step()
            self.model.eval()
        delta_q, clipped = quantize_delta(flatten(self.model) - start, scale_bits)
        if clipped:
            log.warning("%d coordinates clipped to int16: lower lr or scale_bits", clipped)
        return delta_q

    def accuracy_bps(self, q: np.ndarray, scale_bits: int) -> int:
        """``floor(10000 * correct / n)`` of the fixed-point model ``q`` on ``eval_loader``."""
        if self.eval_loader is None:
            raise ValueError("no eval_loader: this client cannot evaluate")
        net = copy.deepcopy(self.model)
        load_flat(net, from_fixed(np.asarray(q), scale_bits))
        net.eval()
        correct = total = 0
        with torch.no_grad():
            for x, y in self.eval_loader:
                correct += int((net(x).argmax(dim=1) == y).sum())
                total += len(y)
        if total == 0:
            raise ValueError("empty eval_loader")
        return correct * 10_000 // total

    def vote(self, candidate_q: np.ndarray, current_q: np.ndarray,
             scale_bits: int) -> tuple[int, int] | None:
        if self.eval_loader is None:
            return None
        return self.accuracy_bps(candidate_q, scale_bits), self.accuracy_bps(current_q,
                                                                             scale_bits)
