"""Smoke test of ``bench/efficacy.py``'s core at a tiny size, without Flower.

No timing assertions: this checks the report's structure and that the STF verdicts do
what the benchmark claims for attacks that must be caught (sign flip, lazy).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_efficacy", ROOT / "bench" / "efficacy.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


efficacy = _load()


@pytest.fixture(scope="module")
def report() -> dict:
    cfg = efficacy.Config(
        clients=10, rounds=2, seeds=1, attacks=("sign_flip", "lazy"), flower=False
    )
    return efficacy.run(cfg, out_md=None, quiet=True)


def test_table_structure(report: dict) -> None:
    table = report["markdown"]
    lines = [ln for ln in table.splitlines() if ln.startswith("|")]
    header, rule, *rows = lines
    assert "FLockChain acc %" in header and "all-honest acc %" in header
    assert "Flower FedAvg acc %" in header and "Flower Krum acc %" in header
    columns = header.count("|")
    assert rule.count("|") == columns and all(r.count("|") == columns for r in rows)
    assert [r.split("|")[1].strip() for r in rows] == ["none (all honest)", "sign_flip", "lazy"]
    assert set(report["results"]) == {"honest", "sign_flip", "lazy"}
    for row in report["results"].values():
        assert 0.0 <= row["flockchain_acc"]["mean"] <= 100.0
        assert "fedavg_acc" not in row  # --no-flower: the Flower arms did not run


def test_sign_flip_and_lazy_are_flagged(report: dict) -> None:
    results = report["results"]
    assert results["sign_flip"]["attackers"] == 2 and results["sign_flip"]["f"] == 2
    assert results["sign_flip"]["attackers_flagged_by_round"][0] == 1.0
    assert results["sign_flip"]["attackers_flagged_mean"] >= efficacy.FLAG_MIN
    assert set(results["sign_flip"]["attacker_verdicts"]) <= {"OUTLIER", "ACCEPTED"}
    assert results["lazy"]["attackers_flagged_mean"] == 1.0
    assert results["lazy"]["attacker_verdicts"] == {"FREE_RIDER": 4}
    # training a model on digits in two rounds beats chance by far
    assert results["honest"]["flockchain_acc"]["mean"] > 50.0


def test_scenarios_and_specs() -> None:
    dup = efficacy.make_scenario(15, "duplicate", seed=0)
    assert dup.f == 4 and len(dup.pairs) == 2
    assert sorted(i for p in dup.pairs for i in p) == list(dup.attackers)
    assert efficacy.make_scenario(15, "alie", seed=0).f == 3
    name, params = efficacy.parse_attack("alie[noise_ratio=0.15;z=1]")
    assert (name, params) == ("alie", {"noise_ratio": 0.15, "z": 1.0})
    with pytest.raises(ValueError):
        efficacy.parse_attack("alie[typo=1]")
    with pytest.raises(ValueError):
        efficacy.Config(attacks=("absent",))
    with pytest.raises(ValueError):  # n >= 2f + 3 fails: 6 clients, f = 2
        efficacy.Config(clients=6, attacks=("sign_flip",))
    cfg, _ = efficacy.parse_args(["--quick", "--no-flower"])
    assert (cfg.clients, cfg.rounds, cfg.seeds, len(cfg.attacks), cfg.flower) == (
        10, 2, 1, 3, False,
    )  # fmt: skip
