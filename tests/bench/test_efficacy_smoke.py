"""Smoke test of ``bench/efficacy.py`` at a tiny size (one cell, one seed, two rounds).

No timing assertions: this checks the report's structure and that the STF's v2 verdicts do
what the benchmark claims for attacks that carry evidence (boosted sign flip, zero update,
exact framing replay) and that no honest proposal is slashed.
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


ATTACKS = ("sign_flip[scale=4]", "lazy", "frame_replay")


@pytest.fixture(scope="module")
def report() -> dict:
    cfg = efficacy.Config(
        alphas=(0.5,), clients=(10,), fractions=(0.2,), seeds=1, rounds=2, attacks=ATTACKS,
        v1=("honest",),
    )  # fmt: skip
    return efficacy.run(cfg, out_md=None, quiet=True)


def test_table_structure(report: dict) -> None:
    table = report["markdown"]
    lines = [ln for ln in table.splitlines() if ln.startswith("|")]
    header, rule, *rows = lines
    assert "acc %" in header and "oracle" in header and "honest slashed" in header
    columns = header.count("|")
    assert rule.count("|") == columns and all(r.count("|") == columns for r in rows)
    assert [r.split("|")[1].strip() for r in rows] == list(ATTACKS)
    (cell,) = report["results"].values()
    assert set(cell) == {"honest", *ATTACKS}
    for row in cell.values():
        assert 0.0 <= row["v2_acc"] <= 100.0
    assert "v1_acc" in cell["honest"] and "v1_acc" not in cell["lazy"]


def test_evidence_attacks_are_slashed_and_no_honest_proposal(report: dict) -> None:
    (cell,) = report["results"].values()
    assert cell["sign_flip[scale=4]"]["f"] == 2
    assert cell["sign_flip[scale=4]"]["slashed"] == 1.0  # above the norm bound
    assert cell["lazy"]["slashed"] == 1.0 and cell["lazy"]["reward_share"] == 0.0
    assert cell["frame_replay"]["slashed"] == 0.5  # round 1 has no public past: trains
    for row in cell.values():
        assert row["honest_slashed"] == []
    # training a model on digits in two rounds beats chance by far
    assert cell["honest"]["v2_acc"] > 50.0


def test_scenarios_and_specs() -> None:
    dup = efficacy.arms.make_scenario(15, "duplicate", seed=0)
    assert dup.f == 4 and len(dup.pairs) == 2
    assert sorted(i for p in dup.pairs for i in p) == list(dup.attackers)
    assert efficacy.arms.make_scenario(15, "alie", seed=0).f == 3
    name, params = efficacy.arms.parse_attack("alie[noise_ratio=0.15;z=1]")
    assert (name, params) == ("alie", {"noise_ratio": 0.15, "z": 1.0})
    with pytest.raises(ValueError):
        efficacy.arms.parse_attack("alie[typo=1]")
    with pytest.raises(ValueError):
        efficacy.Config(attacks=("absent",))
    with pytest.raises(ValueError):  # n >= 2f + 3 fails: 6 clients, f = 2
        efficacy.Config(clients=(6,), attacks=("sign_flip",))
    cfg, _ = efficacy.parse_args(["--quick"])
    assert (cfg.alphas, cfg.clients, cfg.fractions, cfg.seeds, cfg.rounds) == (
        (0.1, 0.5), (15,), (0.2,), 3, 8,
    )  # fmt: skip
    full, _ = efficacy.parse_args([])
    assert (full.alphas, full.clients, full.fractions, full.seeds) == (
        (0.1, 0.5, 10.0), (15, 20, 30), (0.2, 0.3), 10,
    )  # fmt: skip


class _MeanServer:
    """Stands in for Flower's FedAvg (unweighted): the arm's plumbing, not Flower."""

    def aggregate(self, strategy, params, num_examples, f, rnd):
        assert strategy == "fedavg" and params.shape[0] == num_examples.shape[0]
        return params.mean(axis=0)


def test_flower_arm_plumbing_and_table(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Flower arm applies the server's parameter aggregate back on the integer grid and
    shows up in the comparison table beside v2 and the oracle."""
    monkeypatch.setattr(efficacy.flower_client, "FlowerServer", _MeanServer)
    monkeypatch.setattr(_MeanServer, "version", "fake", raising=False)
    monkeypatch.setattr(_MeanServer, "close", lambda self: None, raising=False)
    cfg = efficacy.Config(alphas=(0.5,), clients=(10,), fractions=(0.2,), seeds=1, rounds=2,
                          attacks=("sign_flip",), v1=(), flower=("fedavg",))  # fmt: skip
    out = efficacy.run(cfg, out_md=None, quiet=True)
    (cell,) = out["results"].values()
    assert 0.0 < cell["sign_flip"]["flower:fedavg_acc"] <= 100.0
    assert "| attack | v2 | flower:fedavg | oracle |" in out["markdown"]
    with pytest.raises(ValueError):
        efficacy.Config(flower=("fedprox",))


@pytest.mark.skipif(not efficacy.flower_client.BENCH_PYTHON.exists(),
                    reason=".venv-bench missing (scripts/bench-venv.sh)")  # fmt: skip
def test_real_flower_fedavg_equals_weighted_mean() -> None:
    import numpy as np

    server = efficacy.flower_client.FlowerServer()
    try:
        rows = np.array([[0.0, 3.0], [4.0, 7.0]])
        out = server.aggregate("fedavg", rows, np.array([1, 3]), 0, 1)
        assert np.allclose(out, [3.0, 6.0])
        assert np.allclose(server.aggregate("median", rows, np.array([1, 1]), 0, 1), [2.0, 5.0])
    finally:
        server.close()
