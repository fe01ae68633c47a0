"""Recorded vouched aggregation: a client caught opposing the crowd stays out while it is
held, so that buying agreement with the public anchor later does not bring it back
(issue 10, the rule-aware flip).

Why (measured with ``bench/efficacy.py``, α = 0.1, the rule-aware ``aligned_flip``): in
the task's first scored epoch there is no Δ_prev, the flippers are plain bound-sized sign
flips, and ``fresh_vouched_mean`` leaves them out (all three in two of three seeds, one in
the third). The next epoch each spends a share ``c`` of its norm along the now public
Δ_prev, the anchor vouches for it as ``k`` peers (its vouch score ranks among the top
half), it is kept, the step is bent (cos of Δ_prev with the honest mean 0.88 → 0.14) and
the bent anchor keeps the flippers in from then on. Nothing in that epoch's rows tells
them from honest specialists (their scores without the anchor, and with it, sit inside
the honest range); what does is public and one epoch old: the step the crowd took
opposed what they sent.

Rule ``recorded_vouched_mean`` (``History.suspects``, *the record*: pubkeys; the STF
does not keep it yet, see :func:`next_record`):

1. *Stale rows out*, free of the ``f`` budget, exactly as ``fresh_vouched_mean``.
2. *Recorded rows are held out first*, lowest vouch score first (``vouching`` order, ties
   by pubkey), within ``f``; they do not vouch for the others.
3. ``vouched_mean`` among the remaining fresh rows with what is left of ``f``.
4. The exact integer mean of the rest.

The record after a scored epoch (:func:`next_record`): the rows the epoch left out that
were held (step 2) or whose update opposes the step the epoch took — the sum ``S`` of the
rows it kept — at cos <= −1/4 (``ENTRY_COS``). Measured at α = 0.1 (the excluded rows'
cos with the step): flippers in their first epoch −0.25 to −0.40, honest rows left out
by vouching −0.22 at the lowest (no honest row entered the record in any run, α 0.1 and
0.5); the margin is thin and is the rule's assumption.

Bounds. At most ``f`` rows are out per epoch besides stale rows, whatever the record
(steps 2 and 3 share one budget): the record changes *which* rows fill the budget, never
how many, so with no record the rule is ``fresh_vouched_mean`` exactly. Left-out rows are
``EXCLUDED`` (unpaid that epoch), never slashed. A record ends when its client is kept
(the budget is spent on lower-scored recorded rows) or stops proposing.

Framing (why an attacker cannot cheaply hold an honest client out, and what it can do).
To enter the record, the honest client's own update must be (1) left out by the vouching
of step 3 — among the ``f`` lowest vouch scores and not vouched for at all (score <= 0) —
*and* (2) opposed at cos <= −1/4 by the sum of the rows the epoch kept, which holds at
least ``k − 2f`` honest rows and every kept attacker row counted once at most at the norm
bound. Pushing the whole kept step against one honest client takes kept attacker rows
that oppose it (a visible, bound-limited IPM-like attack on that client, which is harm
the attacker could do anyway), in the same epoch in which the client is left out. Once
recorded it is held while it stays on the record; the loss is that client's rewards and
its data's share of the step, at most ``f`` clients at any time. It is not zero: a
release that the held client could earn in-round would also free the rule-aware flipper
(whose in-round numbers are honest-looking by construction), so none is given; a task
that fears framing more than flipping keeps ``fresh_vouched_mean``.

Every decision is an integer comparison on the Gram matrix (isqrt only), so the
selection and the record are the same for any tile width and any row order up to the
pubkey tie-break.
"""

from __future__ import annotations

from collections.abc import Sequence

from state_machine import vouching

Gram = Sequence[Sequence[int]]

# an excluded row enters the record at cos <= -1/4 with the step taken (honest rows left
# out: -0.22 at the lowest, flippers -0.25 to -0.40 in their first epoch; module docstring)
ENTRY_COS = (1, 4)


def opposes(dot: int, n_sq: int, step_sq: int) -> bool:
    """cos(d, S) <= -p/q (``ENTRY_COS``), exactly: ``dot = <d, S>``, ``n_sq = |d|²``,
    ``step_sq = |S|²``."""
    p, q = ENTRY_COS
    return dot < 0 and q * q * dot * dot >= p * p * n_sq * step_sq


def next_record(keys: Sequence[bytes], gram: Gram, kept: Sequence[int],
                excluded: Sequence[bool], record: frozenset[bytes]) -> frozenset[bytes]:
    """The record after a scored epoch, from the epoch's Gram matrix (rows in ``keys``
    order): the rows left out (``excluded``: ``not_admitted``) that were on ``record``
    (held) or that oppose the kept rows' sum ``S`` at cos <= -1/4. ``<d_i, S> = Σ_{j∈kept}
    g_ij`` and ``|S|² = Σ_{j,l∈kept} g_jl``: no pass over the rows beyond the Gram's."""
    step_sq = sum(gram[j][m] for j in kept for m in kept)
    out = []
    for i, key in enumerate(keys):
        if not excluded[i]:
            continue
        dot = sum(gram[i][j] for j in kept)
        if key in record or (step_sq > 0 and opposes(dot, gram[i][i], step_sq)):
            out.append(key)
    return frozenset(out)


def select(gram: Gram, prev_dots: Sequence[int], prev_sq: int, f: int,
           is_stale: Sequence[bool] | None, recorded: Sequence[bool]) -> list[int]:
    """Rows kept by ``recorded_vouched_mean``, ascending (module docstring, steps 1-3);
    ``is_stale`` None: no past kept (step 1 skipped); if every row is stale step 1 is
    skipped too; never every row out."""
    k = len(gram)
    live = [i for i in range(k) if is_stale is None or not is_stale[i]]
    if not live:
        live = list(range(k))
    sub = [[gram[i][j] for j in live] for i in live]
    dots = [prev_dots[i] for i in live]
    budget = min(max(f, 0), len(live) - 1)
    held: list[int] = []
    if budget > 0 and any(recorded[i] for i in live):
        x = vouching.vouch_numerators(sub, dots, prev_sq)
        held = [j for j in vouching.vouch_order(sub, x) if recorded[live[j]]][:budget]
    rest = [j for j in range(len(live)) if j not in held]
    kept = vouching.vouched_rows([[sub[a][b] for b in rest] for a in rest],
                                 [dots[a] for a in rest], prev_sq, budget - len(held))
    return [live[rest[j]] for j in kept]
