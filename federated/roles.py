"""What a client computes in each role, independent of how it talks to the node.

Why separate from the network loop: the client daemon, the demo and the efficacy bench
must make the *same* update and the *same* vote for the same inputs; only transport and
timing differ.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from federated.attacks import ClientContext, get_behaviour
from federated.data import DataSpec
from federated.train import accuracy_bps


@dataclass
class ClientProfile:
    """A client's behaviour and data: what `flockchain client --data SPEC` describes."""

    name: str
    behaviour: str
    train: DataSpec
    test: DataSpec
    seed: int = 0
    local_epochs: int = 2
    lr: float = 0.1
    batch_size: int = 32
    params: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        get_behaviour(self.behaviour)  # fail early on an unknown behaviour


def make_update(
    profile: ClientProfile,
    model_name: str,
    scale_bits: int,
    global_q: np.ndarray,
    prev_delta_q: np.ndarray | None,
    epoch: int,
    n_proposers: int,
    f: int,
    norm_bound: int = 0,
) -> np.ndarray | None:
    """The int16 delta this client reveals for ``epoch`` (None: it stays silent); honest
    training is clipped to the task's ``norm_bound``."""
    X, y = profile.train.load()
    ctx = ClientContext(
        model_name=model_name,
        scale_bits=scale_bits,
        global_q=global_q,
        X=X,
        y=y,
        seed=profile.seed * 1000 + epoch,
        prev_delta_q=prev_delta_q,
        epochs=profile.local_epochs,
        lr=profile.lr,
        batch_size=profile.batch_size,
        n_clients=n_proposers,
        n_byzantine=f,
        params=dict(profile.params),
        norm_bound=norm_bound,
    )
    return get_behaviour(profile.behaviour).propose(ctx)


def make_vote(
    profile: ClientProfile,
    model_name: str,
    scale_bits: int,
    candidate_q: np.ndarray,
    current_q: np.ndarray,
) -> tuple[int, int] | None:
    """(acc_candidate_bps, acc_current_bps) after the behaviour's twist (None: no vote)."""
    X, y = profile.test.load()
    cand = accuracy_bps(model_name, candidate_q, scale_bits, X, y)
    cur = accuracy_bps(model_name, current_q, scale_bits, X, y)
    return get_behaviour(profile.behaviour).vote(cand, cur)
