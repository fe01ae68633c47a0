"""An epoch record (the ``/v1/tasks/{id}/epochs/{e}`` JSON) turned into table rows.

Why generic: the verdict logic is being reworked, so the record's fields may change. The
rows here never assume a column exists: every numeric key a score entry carries becomes a
column (the known ones first, in a meaningful order), every list of reasons is shown, and
top-level keys this module does not know are listed verbatim under "other fields".
"""

from __future__ import annotations

import math
from typing import Any

from rollup.explorer.fmt import as_int, is_number

# Score columns shown first, in this order, when present.
KNOWN_NUMBERS = ("krum_score", "norm_sq", "dot_prev", "dot_center", "center_norm_sq",
                 "contribution", "cos_center", "cos_prev")
# Keys of a score entry that are not shown as number columns.
NON_NUMBER_KEYS = frozenset({"pubkey", "verdict", "reasons", "in_multi_krum", "duplicate_of"})
# Top-level record keys rendered by dedicated sections of the epoch page.
KNOWN_RECORD_KEYS = frozenset({
    "task_id", "epoch", "open_height", "seed", "proposers", "voters", "global_before",
    "update_commits", "update_hashes", "vote_commits", "votes", "scores", "verdicts",
    "voter_verdicts", "candidate_hash", "global_after", "outcome", "outcome_reason",
    "aggregate", "accuracy_bps", "medians", "slashes", "rewards", "treasury", "phase_log",
    "phase",
})


def pairs(rows: Any) -> dict[str, Any]:
    """``[[key, value], ...]`` (or a dict) as a dict; anything else as empty."""
    if isinstance(rows, dict):
        return {str(k): v for k, v in rows.items()}
    out: dict[str, Any] = {}
    for r in rows or []:
        if isinstance(r, list | tuple) and len(r) >= 2:
            out[str(r[0])] = r[1] if len(r) == 2 else list(r[1:])
    return out


def money_by_key(rows: Any) -> dict[str, dict[str, Any]]:
    """Slashes ``[[pk, amount, reason], ...]`` or rewards ``[[pk, amount], ...]`` summed per
    pubkey, with the reasons collected."""
    out: dict[str, dict[str, Any]] = {}
    for r in rows or []:
        if isinstance(r, dict):
            pk, amt, why = r.get("pubkey"), r.get("amount"), r.get("reason")
        elif isinstance(r, list | tuple) and len(r) >= 2:
            pk, amt, why = r[0], r[1], (r[2] if len(r) > 2 else None)
        else:
            continue
        e = out.setdefault(str(pk), {"amount": 0, "reasons": []})
        e["amount"] += as_int(amt) or 0
        if why:
            e["reasons"].append(str(why))
    return out


def reported_test_accuracy(rec: dict[str, Any]) -> int | None:
    """A test-set accuracy (bps) if the record reports one under any ``test*accuracy*`` key."""
    for k, v in rec.items():
        if "test" in k and "acc" in k:
            return as_int(v)
    return None


def _cos(dot: Any, a: Any, b: Any) -> float | None:
    if not (is_number(dot) and is_number(a) and is_number(b)) or a <= 0 or b <= 0:
        return None
    return float(dot) / math.sqrt(float(a) * float(b))


def _score_rows(rec: dict[str, Any]) -> list[dict[str, Any]]:
    scores = rec.get("scores")
    verdicts = pairs(rec.get("verdicts"))
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for s in scores if isinstance(scores, list) else []:
        if not isinstance(s, dict) or "pubkey" not in s:
            continue
        pk = str(s["pubkey"])
        seen.add(pk)
        nums = {k: v for k, v in s.items() if k not in NON_NUMBER_KEYS and is_number(v)}
        cos_c = _cos(s.get("dot_center"), s.get("norm_sq"), s.get("center_norm_sq"))
        if cos_c is not None and "cos_center" not in nums:
            nums["cos_center"] = cos_c
        extra = {k: v for k, v in s.items()
                 if k not in NON_NUMBER_KEYS and k not in nums and k != "pubkey"}
        rows.append({
            "pubkey": pk, "verdict": str(s.get("verdict", verdicts.get(pk, "?"))),
            "reasons": [str(r) for r in s.get("reasons") or []],
            "numbers": nums, "extra": extra, "in_multi_krum": s.get("in_multi_krum"),
            "duplicate_of": [str(d) for d in s.get("duplicate_of") or []],
        })
    for pk, v in verdicts.items():  # verdicts without a score entry (e.g. absent)
        if pk not in seen:
            rows.append({"pubkey": pk, "verdict": str(v), "reasons": [], "numbers": {},
                         "extra": {}, "in_multi_krum": None, "duplicate_of": []})
    return rows


def number_columns(rows: list[dict[str, Any]]) -> list[str]:
    keys = {k for r in rows for k in r["numbers"]}
    return [k for k in KNOWN_NUMBERS if k in keys] + sorted(keys - set(KNOWN_NUMBERS))


def split_common(rows: list[dict[str, Any]], cols: list[str]) -> tuple[list[str], dict]:
    """Columns whose value differs between rows, and ``{column: value}`` for those every
    row shares (shown once above the table, e.g. the Multi-Krum centre's norm)."""
    if len(rows) < 2:
        return cols, {}
    common = {}
    for c in cols:
        vals = {repr(r["numbers"].get(c)) for r in rows}
        if len(vals) == 1 and c in rows[0]["numbers"]:
            common[c] = rows[0]["numbers"][c]
    return [c for c in cols if c not in common], common


def proposer_rows(rec: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per selected proposer: verdict, reasons, numbers, slash and reward."""
    slashes, rewards = money_by_key(rec.get("slashes")), money_by_key(rec.get("rewards"))
    rows = _score_rows(rec)
    have = {r["pubkey"] for r in rows}
    for pk in rec.get("proposers") or []:
        if str(pk) not in have:
            rows.append({"pubkey": str(pk), "verdict": "pending" if rec.get("outcome") ==
                         "pending" else "-", "reasons": [], "numbers": {}, "extra": {},
                         "in_multi_krum": None, "duplicate_of": []})
    for r in rows:
        sl = slashes.get(r["pubkey"], {"amount": 0, "reasons": []})
        r["slashed"], r["slash_reasons"] = sl["amount"], sl["reasons"]
        r["reward"] = rewards.get(r["pubkey"], {"amount": 0})["amount"]
    return rows


def voter_rows(rec: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per selected voter: its revealed vote, verdict, slash and reward."""
    votes: dict[str, list[Any]] = {}
    for v in rec.get("votes") or []:
        if isinstance(v, list | tuple) and v:
            votes[str(v[0])] = list(v[1:])
    verdicts = pairs(rec.get("voter_verdicts"))
    commits = pairs(rec.get("vote_commits"))
    slashes, rewards = money_by_key(rec.get("slashes")), money_by_key(rec.get("rewards"))
    rows = []
    for pk in [str(p) for p in rec.get("voters") or []]:
        vote = votes.get(pk)
        sl = slashes.get(pk, {"amount": 0, "reasons": []})
        rows.append({
            "pubkey": pk, "committed": pk in commits, "vote": vote,
            "acc_candidate": vote[0] if vote else None,
            "acc_current": vote[1] if vote and len(vote) > 1 else None,
            "verdict": str(verdicts.get(pk, "-")), "slashed": sl["amount"],
            "slash_reasons": sl["reasons"],
            "reward": rewards.get(pk, {"amount": 0})["amount"],
        })
    return rows


def other_slashes(rec: dict[str, Any]) -> list[dict[str, Any]]:
    """Slashes of keys that were neither selected proposer nor voter (shown separately)."""
    selected = {str(p) for p in (rec.get("proposers") or []) + (rec.get("voters") or [])}
    return [{"pubkey": pk, **v} for pk, v in money_by_key(rec.get("slashes")).items()
            if pk not in selected]


def other_fields(rec: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in rec.items() if k not in KNOWN_RECORD_KEYS}


def epoch_totals(rec: dict[str, Any]) -> dict[str, Any]:
    """Per-epoch figures for the task page's table and plots."""
    slashes, rewards = money_by_key(rec.get("slashes")), money_by_key(rec.get("rewards"))
    verdicts = pairs(rec.get("verdicts"))
    return {
        "epoch": rec.get("epoch"), "outcome": rec.get("outcome"),
        "outcome_reason": rec.get("outcome_reason"), "phase": rec.get("phase"),
        "accuracy_bps": as_int(rec.get("accuracy_bps")), "test_accuracy_bps":
        reported_test_accuracy(rec), "aggregate": as_int(rec.get("aggregate")),
        "slashed": sum(v["amount"] for v in slashes.values()), "n_slashes": len(slashes),
        "rewarded": sum(v["amount"] for v in rewards.values()),
        "flagged": sorted(v for v in map(str, verdicts.values()) if v != "ACCEPTED"),
        "proposers": len(rec.get("proposers") or []), "voters": len(rec.get("voters") or []),
    }
