"""Verdicts v2: who is slashed, what enters the aggregate, who is paid (docs/protocol.md).

Why three separate decisions: distance from the crowd is not evidence once data is
non-IID (honest specialists *are* outliers), so the rule that protects the model may be
aggressive only because it costs nothing but one epoch's reward, while the rule that takes
stake must rest on evidence an honest client cannot produce and nobody can manufacture
against someone else:

1. :func:`find_evidence` (accountability): ``norm_bound`` (above the task's declared
   bound, which honest clients clip to), ``zero_update``, ``replay`` (bit-identical to a
   past public update or aggregate computed against another global model) and
   ``duplicate`` (near-identical updates from two keys in the same round: commit-reveal
   means nobody can copy an update that is not public yet).
2. :func:`admit` (robustness): the task's exact integer aggregator over every update that
   carries no evidence; Multi-Krum may leave some out (``EXCLUDED``, not slashed).
3. :func:`contribution_weights` (incentive): each admitted update is paid by its
   leave-one-out agreement with the others (each pair counted at most as cos 1/2, so
   colluders cannot pay each other more than agreeing clients) above the chance level,
   if its part beyond the public Δ_prev has a peer; zero, noise, small noise and Δ_prev
   + noise earn ~nothing (exact replays and same-round copies were slashed in step 1).

:func:`judge_epoch` is the one pure entry point; the STF (``epochs.process_reveal_close``)
and the simulations (``bench/efficacy.py``, ``federated/experiments.py``) call it. Every
number is an exact integer (the Gram kernel of ``scoring`` is exact); ties break by pubkey.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Protocol

import numpy as np

from state_machine import aggregation, fresh_vouching, freshness, pairs, tiles, vouching
from state_machine.constants import (
    DEFAULT_AGGREGATOR,
    DUPLICATE_REL_SQ,
    NOVELTY_COS,
    REWARD_SIGMAS,
)
from state_machine.crypto import keccak256
from state_machine.penalties import SlashReason
from state_machine.scoring import ScoringError

ACCEPTED = "ACCEPTED"  # in the aggregate, paid by contribution
EXCLUDED = "EXCLUDED"  # no evidence, left out of the aggregate: unpaid, not slashed
FREE_RIDER = "FREE_RIDER"  # zero_update or replay
DUPLICATE = "DUPLICATE"  # same-round copy
NORM_VIOLATION = "NORM_VIOLATION"  # norm_bound
ABSENT = "ABSENT"
UNSCORED = "UNSCORED"
# verdict of a slash reason; the order is the precedence when several fire
VERDICT_OF: dict[SlashReason, str] = {
    SlashReason.NORM_BOUND: NORM_VIOLATION,
    SlashReason.ZERO_UPDATE: FREE_RIDER,
    SlashReason.REPLAY: FREE_RIDER,
    SlashReason.DUPLICATE: DUPLICATE,
}
SLASHABLE_VERDICTS = frozenset(VERDICT_OF.values())


class JudgeParams(Protocol):
    """The task parameters the verdicts read (``tasks.TaskParams`` has them)."""

    f: int
    norm_bound: int
    aggregator: str


@dataclass(frozen=True)
class SimParams:
    """JudgeParams for simulations that have no full TaskParams."""

    f: int
    norm_bound: int = 0
    aggregator: str = DEFAULT_AGGREGATOR


@dataclass(frozen=True)
class History:
    """The public past a verdict may compare with (all of it is on chain).

    ``prev_delta``: the last accepted aggregate step (zeros before the first).
    ``replayable``: hashes of past public updates and aggregates computed against a global
    model other than the current one: a bit-identical resubmission is a replay.
    ``public``: every past public update hash (a superset): an update equal to one of
    these never makes its same-round twin slashable (it may be the victim's own).
    ``seed``: the epoch seed (bucketing of centered clipping).
    ``past_updates``: ``(m, d)`` int16 rows of public past updates (the last reveal of each
    client), an array or a ``tiles.Rows`` source read by column tiles (the STF from
    protocol 5: the reveals' own arrays, v2 ones memory-mapped blobs, so d = 2^28 stays
    bounded-memory); rewards are then paid only to updates whose part new relative to
    them and Δ_prev has a peer (``freshness``). ``None`` (protocols 1-4): the gate is
    skipped.
    ``suspects``: the record of ``recorded_vouched_mean`` (the only rule that reads it):
    pubkeys held out first (``recorded_vouching.next_record``; the STF does not keep it
    yet: at most ``f`` keys per task, replaced at each scored close).
    """

    prev_delta: np.ndarray
    replayable: frozenset[bytes] = frozenset()
    public: frozenset[bytes] = frozenset()
    seed: bytes = b"\x00" * 32
    past_updates: np.ndarray | tiles.Rows | None = None
    suspects: frozenset[bytes] = frozenset()


@dataclass
class ProposerVerdict:
    """One proposer's verdict and the exact integers behind it."""

    pubkey: bytes
    verdict: str = ACCEPTED
    reasons: list[str] = field(default_factory=list)
    slash: SlashReason | None = None
    norm_sq: int = 0
    duplicate_of: list[bytes] = field(default_factory=list)
    reward_weight: int = 0

    def to_record(self) -> dict[str, Any]:
        return {
            "pubkey": self.pubkey,
            "verdict": self.verdict,
            "reasons": list(self.reasons),
            "slash": self.slash.value if self.slash else None,
            "norm_sq": self.norm_sq,
            "duplicate_of": list(self.duplicate_of),
            "reward_weight": self.reward_weight,
        }


@dataclass
class Judgement:
    """judge_epoch's result: verdicts in pubkey order, the aggregate, reward weights."""

    verdicts: list[ProposerVerdict]
    aggregate: np.ndarray | None
    reward_weights: list[tuple[bytes, int]]
    numbers: dict[str, int]

    def by_pubkey(self) -> dict[bytes, ProposerVerdict]:
        return {v.pubkey: v for v in self.verdicts}


def delta_hash(delta: np.ndarray) -> bytes:
    """keccak256 of the little-endian int16 bytes: the STF's ``update_hashes`` value."""
    return keccak256(np.ascontiguousarray(delta, dtype="<i2").tobytes())


# ------------------------------------------------------------------ 1. evidence


def norm_violations(norms: Sequence[int], norm_bound: int) -> list[bool]:
    """|d_i|^2 > B^2 (only when the task declares a bound B > 0)."""
    return [norm_bound > 0 and n > norm_bound * norm_bound for n in norms]


def zero_updates(norms: Sequence[int]) -> list[bool]:
    """An all-zero update (|d_i|^2 = 0) carries no work."""
    return [n == 0 for n in norms]


def replays(hashes: Sequence[bytes], history: History) -> list[bool]:
    """Bit-identical to a past public update or aggregate made against another global."""
    return [h in history.replayable for h in hashes]


def near_duplicate(dist_sq: int, norm_a: int, norm_b: int) -> bool:
    """|a - b|^2 <= min(|a|^2, |b|^2) * p / q with both non-zero (DUPLICATE_REL_SQ)."""
    p, q = DUPLICATE_REL_SQ
    return min(norm_a, norm_b) > 0 and q * dist_sq <= p * min(norm_a, norm_b)


def duplicate_pairs(
    gram: Sequence[Sequence[int]], hashes: Sequence[bytes], history: History
) -> tuple[list[list[int]], list[bool]]:
    """Same-round near-copies: (partners per row, whether the row is only *exempt*).

    A pair where either update equals a past public update is no evidence against
    anyone (the victim of a replay may have re-derived its own past update): both rows
    are marked exempt (left out of the aggregate, unpaid) instead of slashable.
    """
    n = len(hashes)
    partners: list[list[int]] = [[] for _ in range(n)]
    exempt = [False] * n
    for i, j in near_duplicate_pairs(gram, n):
        if hashes[i] in history.public or hashes[j] in history.public:
            exempt[i] = exempt[j] = True
        else:
            partners[i].append(j)
            partners[j].append(i)
    return partners, exempt


def near_duplicate_pairs(gram: Sequence[Sequence[int]], n: int) -> list[tuple[int, int]]:
    """Every pair ``i < j < n`` with :func:`near_duplicate`, in ``(i, j)`` order:
    ``pairs.near_duplicates`` (exact int64 arithmetic) when the entries fit int64, else
    pair by pair with Python integers."""
    g = pairs.as_int64(gram)
    if g is None or g.shape[0] < n:
        return [(i, j) for i in range(n) for j in range(i + 1, n)
                if near_duplicate(gram[i][i] + gram[j][j] - 2 * gram[i][j], gram[i][i],
                                  gram[j][j])]
    return pairs.near_duplicates(g, n)


def find_evidence(
    params: JudgeParams,
    history: History,
    keys: Sequence[bytes],
    hashes: Sequence[bytes],
    gram: Sequence[Sequence[int]],
) -> list[ProposerVerdict]:
    """Step 1: a verdict per row; the first fired reason (in VERDICT_OF order) is slashed,
    every fired one is listed."""
    n = len(keys)
    norms = [gram[i][i] for i in range(n)]
    fired: dict[SlashReason, list[bool]] = {
        SlashReason.NORM_BOUND: norm_violations(norms, params.norm_bound),
        SlashReason.ZERO_UPDATE: zero_updates(norms),
        SlashReason.REPLAY: replays(hashes, history),
    }
    partners, exempt = duplicate_pairs(gram, hashes, history)
    fired[SlashReason.DUPLICATE] = [bool(p) for p in partners]
    out = []
    for i in range(n):
        v = ProposerVerdict(pubkey=keys[i], norm_sq=norms[i])
        v.duplicate_of = [keys[j] for j in partners[i]]
        for reason in VERDICT_OF:  # precedence order
            if fired[reason][i]:
                v.reasons.append(reason.value)
                if v.slash is None:
                    v.slash, v.verdict = reason, VERDICT_OF[reason]
        if exempt[i]:
            v.reasons.append("copy_of_public_update")
            if v.slash is None:
                v.verdict = EXCLUDED
        out.append(v)
    return out


# ------------------------------------------------------------------ 2. aggregate


@dataclass(frozen=True)
class PastGram:
    """The public past as the one Gram pass of :func:`judge_epoch` saw it: ``big`` is the
    exact Gram matrix of [the epoch's ``n`` rows in pubkey order; the past updates; Δ_prev].

    Why: the stale test of ``fresh_vouched_mean`` (step 2) and the freshness gate of the
    rewards (step 3) both need the rows' parts new relative to the past; both read them
    off this one matrix instead of each making another pass over ``n + m`` rows of d."""

    big: list[list[int]]
    n: int

    def block(self, idx: Sequence[int]) -> list[list[int]]:
        """The Gram matrix of [rows ``idx``; past; Δ_prev]."""
        keep = [*idx, *range(self.n, len(self.big))]
        return [[self.big[a][b] for b in keep] for a in keep]

    @cached_property
    def _fresh(self) -> freshness.FreshPast:
        """Every row's fresh parts, from one elimination of the past (the stale test's
        rows and the gate's are both rows of ``big``: an entry depends only on its pair
        and the past block)."""
        return freshness.FreshPast(self.big, self.n)

    def stale(self, idx: Sequence[int]) -> list[bool]:
        """``fresh_vouching.stale`` flags of rows ``idx`` (the diagonal of
        ``fresh_vouching.fresh_diagonal``, the same integers)."""
        fp = self._fresh
        return fresh_vouching.stale([fp.diag[i] for i in idx], fp.scale,
                                    [self.big[i][i] for i in idx])

    def fresh(self, idx: Sequence[int]) -> freshness.Fresh:
        """Rows ``idx``' fresh Gram, the past's rank and the scale (``freshness.fresh_gram``'s
        integers; entries computed when first read)."""
        return self._fresh.view(idx)


def admit(
    params: JudgeParams,
    history: History,
    verdicts: list[ProposerVerdict],
    deltas: np.ndarray | tiles.Rows,
    gram: Sequence[Sequence[int]] | None = None,
    cols: int | None = None,
    prev: aggregation.Anchor | None = None,
    past: PastGram | None = None,
) -> tuple[list[int], np.ndarray | None]:
    """Step 2: rows that enter the aggregate, and the aggregate (None if none is left).

    Candidates are the rows still ``ACCEPTED`` after step 1; rows the aggregator leaves
    out become ``EXCLUDED`` (reason ``not_admitted``): no stake moves. The rule's ``f``
    is the task's minus the rows slashed: each is a Byzantine key already accounted for.
    ``gram`` (the rows' exact Gram matrix, when known) spares the rules a Gram pass;
    ``prev`` (every row's inner product with ``history.prev_delta`` and its squared norm)
    is the public anchor of the vouched rules (computed here when not given);
    ``fresh_vouched_mean`` also reads the public past (``past``, else
    ``history.past_updates`` through one more pass).
    """
    cand = [i for i, v in enumerate(verdicts) if v.verdict == ACCEPTED]
    if not cand:
        return [], None
    # every slashed row is a Byzantine key spent: the rule trims only the rest of f
    f = max(0, params.f - sum(v.slash is not None for v in verdicts))
    rows = tiles.pick(deltas, cand)
    sub = [[gram[i][j] for j in cand] for i in cand] if gram is not None else None
    keys = [verdicts[i].pubkey for i in cand]
    anchor = None
    if params.aggregator in aggregation.ANCHORED:
        if prev is None:
            full, _ = tiles.gram_and_hashes(tiles.as_rows(deltas), history.prev_delta, cols,
                                            hash_rows=False)
            prev = ([row[-1] for row in full[:-1]], full[-1][-1])
        anchor = ([prev[0][i] for i in cand], prev[1])
    stale = None
    if params.aggregator in aggregation.FRESH_VOUCHED:
        if past is None:
            past = past_gram(history, tiles.as_rows(deltas), cols)
        stale = past.stale(cand) if past is not None else None
    recorded = [k in history.suspects for k in keys]
    local = aggregation.admitted_rows(params.aggregator, rows, f, sub, cols, anchor,
                                      stale=stale, recorded=recorded)
    inside = [cand[j] for j in local]
    for i in sorted(set(cand) - set(inside)):
        verdicts[i].verdict = EXCLUDED
        verdicts[i].reasons.append("not_admitted")
    if params.aggregator in aggregation.FRESH_VOUCHED:  # selected above: no second past pass
        return inside, aggregation.mean_round_half_even(tiles.pick(rows, local), cols)
    agg = aggregation.aggregate(params.aggregator, rows, f, keys, history.seed, sub, cols, anchor)
    return inside, agg


def past_gram(history: History, rows: tiles.Rows, cols: int | None) -> PastGram | None:
    """:class:`PastGram` of ``rows`` from one pass over [rows; past; Δ_prev] (None without
    ``history.past_updates``)."""
    past = history.past_updates
    if past is None or past.shape[0] == 0:
        return None
    both = tiles.ConcatRows([rows, tiles.as_rows(past)])
    big, _ = tiles.gram_and_hashes(both, history.prev_delta, cols, hash_rows=False)
    return PastGram(big, rows.shape[0])


# ------------------------------------------------------------------ 3. rewards


def residual_gram(gram: Sequence[Sequence[int]], rows: Sequence[int]) -> list[list[int]]:
    """P * <r_i, r_j> over ``rows``, r = the part orthogonal to p (the last row of ``gram``).

    P = |p|^2; when P = 0 (no previous step yet) r = d: the plain inner products.
    """
    p = len(gram) - 1
    big_p = gram[p][p]
    if big_p == 0:
        return [[gram[i][j] for j in rows] for i in rows]
    return [[big_p * gram[i][j] - gram[i][p] * gram[j][p] for j in rows] for i in rows]


def has_novel_peer(res: Sequence[Sequence[int]], i: int) -> bool:
    """Some other row's new part points the same way: cos(r_i, r_j) >= NOVELTY_COS.

    Δ_prev plus noise (the disguised free-rider) has only noise as its new part, which
    agrees with nobody's; an honest client's new part agrees with a client holding
    similar data (docs/protocol.md has the measured distributions).
    """
    p, q = NOVELTY_COS
    for j in range(len(res)):
        if j != i and res[i][j] > 0 and q * q * res[i][j] ** 2 >= p * p * res[i][i] * res[j][j]:
            return True
    return False


def pair_credit(g_ij: int, g_ii: int, g_jj: int) -> int:
    """<d_i, d_j> counted at most as if cos = PAIR_COS_CAP: near-copies (colluders paying
    each other) get no more credit than two clients that merely agree (the same cap as
    the vouched aggregators' agreement, ``vouching.capped_agreement``)."""
    return vouching.capped_agreement(g_ij, g_ii, g_jj)


def contribution_weights(
    gram: Sequence[Sequence[int]], admitted: Sequence[int], dim: int,
    fresh: freshness.Fresh | None = None,
) -> list[int]:
    """Step 3: the reward weight of every admitted row (``gram`` over [d_0..d_n-1, Δ_prev]).

    ``w_i = max(0, A_i - REWARD_SIGMAS |d_i| |S_i| / sqrt(d))`` where A_i is the sum over
    the *other* admitted updates of :func:`pair_credit` (<d_i, d_j>, capped at cos 1/2) and
    S_i the sum of those others; and 0 unless the part of d_i orthogonal to Δ_prev has a
    peer (:func:`has_novel_peer`). Leave-one-out: one's own size buys nothing; the cap:
    colluders sending similar vectors cannot pay each other more than agreeing clients;
    the chance term: zero, noise and small noise (|cos| ~ 1/sqrt(d) with anything) stay
    under it; the gate: Δ_prev + noise is not paid for Δ_prev. Exact replays and
    same-round copies were slashed in step 1. Integers; isqrt only. ``fresh`` (the
    admitted rows' Gram of their parts new relative to the public past): also 0 unless
    that part is more than 5 % of the update and has a peer beyond chance
    (``freshness.is_fresh``), so a jittered copy of a public past update is not paid.

    Measured (docs/protocol.md): paying only the part orthogonal to Δ_prev left every
    honest client unpaid at α = 0.1, and dropping each row's f largest terms instead of
    the cap left 84 % of honest proposals unpaid there (a specialist's f largest terms are
    its class-mates).
    """
    k = len(admitted)
    g = pairs.as_int64(gram)
    if g is None:  # the definition: pair by pair, Python integers
        m = [[gram[i][j] for j in admitted] for i in admitted]
        res = residual_gram(gram, admitted)
        agree = [sum(pair_credit(m[i][j], m[i][i], m[j][j]) for j in range(k) if j != i)
                 for i in range(k)]
        sums, diag = [sum(row) for row in m], [m[i][i] for i in range(k)]
        novel = [has_novel_peer(res, i) for i in range(k)]
    else:  # the same integers (pairs: exact row sums, screens decide no result)
        idx = np.asarray(admitted, dtype=np.intp)
        sub = g[np.ix_(idx, idx)]
        capped = pairs.capped_matrix(sub)  # pair_credit of every pair
        np.fill_diagonal(capped, 0)
        agree, sums = pairs.row_sums(capped), pairs.row_sums(sub)
        diag = np.diagonal(sub).tolist()
        novel = pairs.novel_peers(g, admitted)
    total = sum(sums)
    out = []
    for i in range(k):
        s_sq = total - 2 * sums[i] + diag[i]
        chance = math.isqrt(REWARD_SIGMAS * REWARD_SIGMAS * diag[i] * max(s_sq, 0) // dim)
        paid = novel[i] and (fresh is None or freshness.is_fresh(fresh, i, diag[i], dim))
        out.append(max(0, agree[i] - chance) if paid else 0)
    return out


def judge_epoch(
    params: JudgeParams, history: History, pubkeys: Sequence[bytes],
    deltas: np.ndarray | tiles.Rows, cols: int | None = None,
    row_hashes: Sequence[bytes] | None = None,
) -> Judgement:
    """The three steps on one epoch's revealed updates (any row order; output by pubkey).

    ``deltas``: an ``(n, d)`` int16 array or a ``tiles.Rows`` source read by column tiles
    of ``cols`` columns (default ``tiles.columns(n)``). Bounded memory: one pass for the
    Gram matrix (with the public past's rows, if any) and the row hashes, then the
    aggregation rule's passes; the result is the
    same for any ``cols``. ``row_hashes`` (one per pubkey, in ``pubkeys`` order): the
    updates' content hashes the STF recorded at reveal (``update_hashes``), so the rows are
    not hashed again (protocol 4's hash is a chunk root, not a row keccak)."""
    n = len(pubkeys)
    if isinstance(deltas, np.ndarray) and deltas.ndim != 2:
        raise ScoringError("pubkeys must be unique, one per row")
    if len(set(pubkeys)) != n or deltas.shape[0] != n:
        raise ScoringError("pubkeys must be unique, one per row")
    d = deltas.shape[1]
    if history.prev_delta.shape != (d,):
        raise ScoringError("prev_delta shape mismatch")
    order = sorted(range(n), key=lambda i: pubkeys[i])
    keys = [pubkeys[i] for i in order]
    rows = tiles.pick(deltas, order)
    past = history.past_updates
    m = 0 if past is None else past.shape[0]
    if m and past.shape[1] != d:
        raise ScoringError("past_updates shape mismatch")
    # one pass over the tiles: the exact Gram matrix of [rows; public past; Δ_prev] and the
    # row hashes; every later step reads it (PastGram) instead of passing over the rows again
    src = tiles.ConcatRows([rows, tiles.as_rows(past)]) if m else rows
    big, hashes = tiles.gram_and_hashes(src, history.prev_delta, cols,
                                        hash_rows=row_hashes is None, hashed=n)
    if row_hashes is not None:
        hashes = [row_hashes[i] for i in order]
    keep = [*range(n), n + m]  # [rows; Δ_prev]
    full = [[big[a][b] for b in keep] for a in keep] if m else big
    pg = PastGram(big, n) if m else None
    gram = [row[:n] for row in full[:n]]
    verdicts = find_evidence(params, history, keys, hashes, gram)
    anchor = ([full[i][n] for i in range(n)], full[n][n])
    inside, agg = admit(params, history, verdicts, rows, gram, cols, anchor, pg)
    weights: list[tuple[bytes, int]] = []
    if agg is not None:
        fresh = pg.fresh(inside) if pg is not None and inside else None
        w_all = contribution_weights(full, inside, max(d, 1), fresh)
        for i, w in zip(inside, w_all, strict=True):
            verdicts[i].reward_weight = w
            weights.append((keys[i], w))
    numbers = {"admitted": len(inside), "norm_bound": params.norm_bound, "revealed": n}
    return Judgement(verdicts, agg, weights, numbers)
