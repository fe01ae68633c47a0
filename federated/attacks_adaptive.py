"""Rule-aware attackers against the vouched aggregators (``state_machine.vouching``).

Why a module of its own: ``federated/attacks.py`` is the registry of the attacks from the
literature; these are written against one rule of this protocol, by someone who read it.
Importing this module registers them in ``attacks.ATTACKS`` (``bench/efficacy_arms.py``
does).

``aligned_flip`` (knob ``cos``, default 0.1): the vouched rules keep a row whose agreement
with the public Δ_prev and with its peers is positive, so the attacker spends a share
``cos`` of its norm along Δ_prev (to be vouched for) and the rest on its own sign-flipped
honest delta made orthogonal to Δ_prev (the harm), at the full norm bound. With no
accepted step yet it is the bound-sized sign flip.
"""

from __future__ import annotations

import numpy as np

from federated import attacks
from federated.attacks import ClientContext

COS_DEFAULT = 0.1


def aligned_flip(ctx: ClientContext) -> np.ndarray:
    """``B (c p̂ + √(1 − c²) û)``, ``û`` the flipped honest delta orthogonal to Δ_prev."""
    harm = -attacks.honest_delta(ctx).astype(np.float64)
    p = ctx.prev_delta.astype(np.float64)
    c = min(max(ctx.param("cos", COS_DEFAULT), 0.0), 1.0)
    bound = float(ctx.norm_bound) if ctx.norm_bound > 0 else float(np.linalg.norm(harm))
    if p.any():
        p_hat = p / np.linalg.norm(p)
        ortho = harm - (harm @ p_hat) * p_hat
        u = ortho / max(float(np.linalg.norm(ortho)), 1e-12)
        x = bound * (c * p_hat + np.sqrt(1.0 - c * c) * u)
    else:
        x = harm * (bound / max(float(np.linalg.norm(harm)), 1e-12))
    return attacks.clip_update(attacks.to_int16(x), ctx.norm_bound)


ADAPTIVE = (attacks.Attack("aligned_flip", "bound-sized flip vouched by Δ_prev", aligned_flip),)
for _a in ADAPTIVE:
    attacks.ATTACKS.setdefault(_a.name, _a)
