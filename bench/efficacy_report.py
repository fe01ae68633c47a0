"""Summary and markdown of ``bench/efficacy.py`` (one row per (α, n, f, attack))."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

import efficacy_arms as arms

HONEST = arms.HONEST


def cell_key(alpha: float, n: int, frac: float) -> str:
    return f"alpha={alpha:g} n={n} f={frac:.0%}"


def _mean(xs: Sequence[float]) -> float:
    return statistics.fmean(xs) if xs else float("nan")


def _acc(per_seed: Sequence[dict], attack: str, arm: str) -> float | None:
    vals = [s[attack][arm]["acc"] for s in per_seed if arm in s[attack]]
    return _mean(vals) if vals else None


def _honest_slashes(per_seed: Sequence[dict], attack: str, arm: str) -> list[list[int]]:
    """``[seed, round, client]`` of every honest proposal slashed in ``arm``."""
    out = []
    for seed, s in enumerate(per_seed):
        if arm not in s[attack]:
            continue
        for rnd, rec in enumerate(s[attack][arm]["records"]):
            out += [[seed, rnd, c] for c in rec["honest_slashed"]]
    return out


def _attack_row(per_seed: Sequence[dict], attack: str, cfg: Any) -> dict[str, Any]:
    recs = [r for s in per_seed for r in s[attack]["v2"]["records"]]
    f = per_seed[0][attack]["f"]
    props = max(f * len(recs), 1)
    name, _ = arms.parse_attack(attack)
    row: dict[str, Any] = {
        "f": f,
        "slashed": sum(r["att_slashed"] for r in recs) / props,
        "excluded": sum(r["att_excluded"] for r in recs) / props,
        "accepted": sum(r["att_accepted"] for r in recs) / props,
        "reward_share": _mean([r["att_weight_share"] for r in recs]),
        "oracle_acc": _acc(per_seed, attack, "oracle"),
        "free_rider": name in arms.FREE_RIDERS or name == "lazy",
    }
    hw = _mean([r["honest_weight_mean"] for r in recs])
    row["reward_vs_honest"] = _mean([r["att_weight_mean"] for r in recs]) / hw if hw else 0.0
    # from round 2 on: a stale copy / frame replay has nothing to copy in round 1 and trains
    later = [r for s in per_seed for r in s[attack]["v2"]["records"][1:]]
    hw2 = _mean([r["honest_weight_mean"] for r in later])
    row["reward_vs_honest_r2"] = (_mean([r["att_weight_mean"] for r in later]) / hw2
                                  if hw2 else 0.0)  # fmt: skip
    row["first_round_slashed"] = _mean([s[attack]["v2"]["records"][0]["att_slashed"] / f
                                         for s in per_seed])  # fmt: skip
    if name == "backdoor":
        row["backdoor"] = _mean([s[attack]["v2"]["backdoor"] for s in per_seed])
        row["backdoor_oracle"] = _mean([s[attack]["oracle"]["backdoor"] for s in per_seed])
    return row


def summarize(cfg: Any, per_seed: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per attack (and ``honest``): accuracies per arm, verdict shares, honest slashes."""
    out: dict[str, Any] = {}
    base = _acc(per_seed, HONEST, "v2")
    margins = [r["margin"] for s in per_seed for r in s[HONEST]["v2"]["records"]]
    for attack in (HONEST, *cfg.attacks):
        row: dict[str, Any] = {"v2_acc": _acc(per_seed, attack, "v2"), "honest_acc": base}
        if attack != HONEST:
            row.update(_attack_row(per_seed, attack, cfg))
        row["honest_slashed"] = _honest_slashes(per_seed, attack, "v2")
        row["honest_unpaid"] = sum(
            r["honest_unpaid"] for s in per_seed for r in s[attack]["v2"]["records"]
        )
        n_att = 0 if attack == HONEST else per_seed[0][attack]["f"]
        row["honest_proposals"] = sum(
            (s["n"] - n_att) * len(s[attack]["v2"]["records"]) for s in per_seed
        )
        if "v1" in per_seed[0][attack]:
            row["v1_acc"] = _acc(per_seed, attack, "v1")
            row["v1_honest_slashed"] = len(_honest_slashes(per_seed, attack, "v1"))
        for key in per_seed[0][attack]:
            if key.startswith(("v2:", "flower:")):
                row[f"{key}_acc"] = _acc(per_seed, attack, key)
            if key.startswith("v2:"):
                row[f"{key}_honest_slashed"] = len(_honest_slashes(per_seed, attack, key))
        out[attack] = row
    out[HONEST]["min_pair_rel_sq"] = min(m["pair"] for m in margins)
    own = [m["own"] for m in margins if math.isfinite(m["own"])]
    out[HONEST]["min_own_rel_sq"] = min(own) if own else None
    out[HONEST]["norm_bounds"] = [s["norm_bound"] for s in per_seed]
    return out


def _pct(x: float | None) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.1f}"


def _share(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.0f} %"


def render_markdown(cfg: Any, summary: dict[str, Any], runtime: float) -> str:
    """One table per grid cell, plus the comparison of aggregators when run."""
    st = cfg.setting
    lines = [
        "# Verdict efficacy (v2 verdicts, `state_machine.verdicts.judge_epoch`)",
        "",
        f"digits, model `{st.model}`, S={st.scale_bits}, {st.local_epochs} local epochs SGD "
        f"lr={st.lr}, {cfg.rounds} rounds, {cfg.seeds} seeds, aggregator `{cfg.aggregator}`, "
        f"norm bound {st.norm_factor}× median round-1 honest norm; {runtime:.0f} s.",
        "",
    ]
    for key, rows in summary.items():
        h = rows[HONEST]
        lines += [
            f"## {key}",
            "",
            f"All-honest: acc {_pct(h['v2_acc'])} %, honest slashed {len(h['honest_slashed'])}"
            f" of {h['honest_proposals']} (v1 rules: {h.get('v1_honest_slashed', '—')}), "
            f"honest proposals unpaid (weight 0) {h['honest_unpaid']}; closest honest pair "
            f"|a−b|²/|a|² = {h['min_pair_rel_sq']:.3f}, closest consecutive updates of one "
            f"client {h['min_own_rel_sq'] or float('nan'):.3f} (duplicate rule: ≤ 0.0025).",
            "",
            "| attack | f | acc % | all-honest | oracle | Δ oracle | slashed | excluded "
            "| accepted | reward share | reward / honest | honest slashed | v1 acc | "
            "v1 honest slashed | backdoor |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for attack, r in rows.items():
            if attack == HONEST:
                continue
            delta = (r["v2_acc"] - r["oracle_acc"]) if r.get("oracle_acc") is not None else None
            bd = (f"{r['backdoor']:.0f} % (oracle {r['backdoor_oracle']:.0f} %)"
                  if "backdoor" in r else "—")  # fmt: skip
            lines.append(
                f"| {attack} | {r['f']} | {_pct(r['v2_acc'])} | {_pct(r['honest_acc'])} "
                f"| {_pct(r['oracle_acc'])} | {'—' if delta is None else f'{delta:+.1f}'} "
                f"| {_share(r['slashed'])} | {_share(r['excluded'])} | {_share(r['accepted'])} "
                f"| {_share(r['reward_share'])} | {r['reward_vs_honest']:.2f} "
                f"({r.get('reward_vs_honest_r2', float('nan')):.2f}) "
                f"| {len(r['honest_slashed'])}/{r['honest_proposals']} | {_pct(r.get('v1_acc'))} "
                f"| {r.get('v1_honest_slashed', '—')} | {bd} |"
            )
        lines.append("")
        lines += _compare_table(rows)
    lines += [
        "Columns: final test accuracy (%), mean over seeds. *oracle*: mean of exactly the "
        "honest deltas. *slashed / excluded / accepted*: share of attacker proposals (all "
        "rounds, seeds). *reward share*: attackers' share of the reward weights per round. "
        "*reward / honest*: an attacker's mean reward weight over an honest client's "
        "(in brackets: from round 2 on, when a copier has a past update to copy). "
        "*honest slashed*: honest proposals slashed (v2). *v1*: the previous rules "
        "(SPEC §5 scoring) on the same partitions. *backdoor*: triggered test digits "
        "classified as the target.",
        "",
    ]
    return "\n".join(lines)


def _compare_table(rows: dict[str, Any]) -> list[str]:
    """Final accuracy per arm: ours (``v2``, the task rule; ``v2:<rule>``), the oracle and
    Flower's strategies (``flower:<name>``) on the same partitions and attackers."""
    arms_ = sorted({k[:-4] for r in rows.values() for k in r
                    if k.startswith(("v2:", "flower:")) and k.endswith("_acc")})  # fmt: skip
    if not arms_:
        return []
    cols = ["v2", *arms_, "oracle", "honest slashed (v2, " + ", ".join(
        a for a in arms_ if a.startswith("v2:")) + ")"]
    out = ["| attack | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for attack, r in rows.items():
        vals = [r.get("v2_acc"), *(r.get(f"{a}_acc") for a in arms_), r.get("oracle_acc")]
        slashed = [len(r.get("honest_slashed", [])), *(
            r.get(f"{a}_honest_slashed", "—") for a in arms_ if a.startswith("v2:"))]
        out.append(f"| {attack} | " + " | ".join(_pct(v) for v in vals) + " | "
                   + " / ".join(str(x) for x in slashed) + " |")
    return [*out, ""]
