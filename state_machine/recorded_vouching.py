"""Recorded vouched aggregation: a client caught opposing the crowd in the task's first
scored epoch (no public anchor yet) stays out while it is held, so that buying agreement
with the anchor later does not bring it back (issue 10, the rule-aware flip).

Why (measured with ``bench/efficacy.py``, α = 0.1, the rule-aware ``aligned_flip``): in
the task's first scored epoch there is no Δ_prev, the flippers are plain bound-sized sign
flips, and ``fresh_vouched_mean`` leaves them out (all three in two of three seeds, one in
the third). The next epoch each spends a share ``c`` of its norm along the now public
Δ_prev, the anchor vouches for it as ``k`` peers (its score ranks in the top half), it is
kept, the step is bent (cos of Δ_prev with the honest mean 0.88 → 0.14) and the bent
anchor keeps the flippers in from then on. Nothing in that epoch's rows tells them from
honest specialists (their scores with the anchor, and without it, sit inside the honest
range); what does is public and one epoch old: the first step the crowd took opposed
what they sent, when there was no anchor to buy.

Rule ``recorded_vouched_mean`` (``History.suspects``, *the record*: pubkeys; the STF
does not keep it yet, see :func:`next_record`):

1. *Stale rows out*, free of the ``f`` budget, exactly as ``fresh_vouched_mean``.
2. *Recorded rows are held out first*, lowest vouch score first (``vouching`` order, ties
   by pubkey), within ``f``; they do not vouch for the others.
3. ``vouched_mean`` among the remaining fresh rows with what is left of ``f``.
4. The exact integer mean of the rest.

The record (:func:`next_record`, at each scored close): the rows the epoch left out that
were held; and, only in an epoch without Δ_prev (the task's first scored epoch), the rows
it left out whose update opposes the step it took — the sum ``S`` of the kept rows — at
cos <= −1/4 (``ENTRY_COS``) *and* opposes some other row at cos <= −1/3 (``PEER_COS``).
Measured at α = 0.1 (first-epoch left-out rows, 3 seeds, six attacks): flippers' cos with
``S`` −0.20, −0.2475 and −0.33 to −0.40, honest rows down to −0.247 (label flip) and
−0.216 (next to a flipper): no margin on ``S`` alone; the honest rows near the line have
no peer below −0.22 unless a flipper opposes them (−0.65), flippers −0.44 to −0.71, and
no honest row meets both. The lines are the rule's assumption. So the record is
fixed after the first scored epoch (at most ``f`` keys: nothing is stale without a past)
and only shrinks: a client leaves it when it is kept or stops proposing.

Bounds. At most ``f`` rows are out per epoch besides stale rows, whatever the record
(steps 2 and 3 share one budget): the record changes *which* rows fill the budget, never
how many; with an empty record the rule is ``fresh_vouched_mean`` exactly. Left-out rows
are ``EXCLUDED`` (unpaid that epoch), never slashed.

Framing (why an attacker cannot get an honest client held, except in one epoch, and what
that costs). Entry is possible in one epoch only, the first, where nobody can have
prepared an anchor. There the honest client's own update must be (1) left out by plain
vouching — among the ``f`` lowest scores and not vouched for at all (score <= 0) — *and*
(2) opposed at cos <= −1/4 by the sum of the kept rows, which holds at least ``k − 2f``
honest rows and each kept attacker row once, at most at the norm bound. Both at once
take kept attacker rows aimed against that client (an IPM-like attack on it, visible in
that epoch). After it, no attacker can add anyone to the record, however it steers the
later steps (letting later epochs add rows held an honest client for the rest of the task
under IPM in one seed, −3.7 points; docs/protocol.md). The cost of a wrong entry: that
client's rewards and its data's share of the step, for the task, at most ``f`` clients.
An attacker that behaves in the first epoch is never recorded, and then meets
``fresh_vouched_mean``: the record is a lock on attackers that show themselves before an
anchor exists, not a detector.

Every decision is an integer comparison on the Gram matrix (isqrt only), so the
selection and the record are the same for any tile width and any row order up to the
pubkey tie-break.
"""

from __future__ import annotations

from collections.abc import Sequence

from state_machine import vouching

Gram = Sequence[Sequence[int]]

# a row left out of the first scored epoch enters the record at cos <= -1/4 with the step
# taken (honest rows left out: -0.216 at the lowest; flippers -0.20 to -0.40; docstring)
ENTRY_COS = (1, 4)


# ... and has a peer it opposes at cos <= -1/3 (first-epoch flippers: -0.44 to -0.71; honest
# rows left out near the line above: -0.22; honest pairs without attack: 1st pct -0.32)
PEER_COS = (1, 3)


def opposes(dot: int, n_sq: int, m_sq: int, cos: tuple[int, int] = ENTRY_COS) -> bool:
    """cos(a, b) <= -p/q, exactly: ``dot = <a, b>``, ``n_sq = |a|²``, ``m_sq = |b|²``
    (``cos``: ``ENTRY_COS`` unless given)."""
    p, q = cos
    return dot < 0 and q * q * dot * dot >= p * p * n_sq * m_sq


def opposed_peer(gram: Gram, i: int) -> bool:
    """Row ``i`` opposes some other row at cos <= -1/3 (``PEER_COS``)."""
    return any(opposes(gram[i][j], gram[i][i], gram[j][j], PEER_COS)
               for j in range(len(gram)) if j != i)


def next_record(keys: Sequence[bytes], gram: Gram, kept: Sequence[int],
                excluded: Sequence[bool], record: frozenset[bytes],
                anchored: bool = False) -> frozenset[bytes]:
    """The record after a scored epoch, from the epoch's Gram matrix (rows in ``keys``
    order): the rows left out (``excluded``: ``not_admitted``) that were on ``record``
    (held), and, when the epoch had no Δ_prev (``anchored`` False: the task's first scored
    epoch), those that oppose the kept rows' sum ``S`` at cos <= -1/4 and some other row
    at cos <= -1/3. ``<d_i, S> =
    Σ_{j∈kept} g_ij`` and ``|S|² = Σ_{j,l∈kept} g_jl``: no pass beyond the Gram's.

    What the STF would keep: per task, this set (at most ``f`` pubkeys; replaced at each
    scored close from ``judge_epoch``'s Gram matrix and verdicts, ``anchored`` = whether
    ``prev_delta`` was non-zero), passed as ``History.suspects``."""
    step_sq = sum(gram[j][m] for j in kept for m in kept)
    out = []
    for i, key in enumerate(keys):
        if not excluded[i]:
            continue
        dot = sum(gram[i][j] for j in kept)
        if key in record or (not anchored and step_sq > 0 and opposes(dot, gram[i][i], step_sq)
                             and opposed_peer(gram, i)):
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
