"""Smoke test for ``bench/krum.py``: its core functions at a tiny size, without Flower.

No timing assertions: this only guards the bench against rot (API drift in scoring,
aggregation, the STF or the test harness). The Flower half runs only where
``.venv-bench`` exists (``scripts/bench-venv.sh``).
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load_bench() -> ModuleType:
    """Import bench/krum.py by path (``bench`` is not a package; avoid name clashes)."""
    name = "flockchain_bench_krum"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / "krum.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


krum = _load_bench()
N, D = 7, 96  # f = default_f(7) = 1; n >= 2f + 3


def test_deltas_are_deterministic_int16() -> None:
    a = krum.make_deltas(N, D, krum.default_f(N), seed=3)
    b = krum.make_deltas(N, D, krum.default_f(N), seed=3)
    c = krum.make_deltas(N, D, krum.default_f(N), seed=4)
    assert a.deltas.dtype == np.int16 and a.deltas.shape == (N, D)
    assert np.array_equal(a.deltas, b.deltas) and a.byzantine == b.byzantine
    assert not np.array_equal(a.deltas, c.deltas)
    assert len(a.byzantine) == a.f == 1


def test_bench_size_without_flower() -> None:
    line = krum.bench_size(N, D, repeats=1, seed=5, flower=False)
    json.dumps(line)  # JSON-ready
    for key in (
        "ours_s",
        "gemm_s",
        "gemm_fraction",
        "epoch_close_s",
        "epoch_close_block_s",
        "score_updates_s",
        "aggregation_s",
        "peak_rss_mb",
    ):
        assert isinstance(line[key], float) and line[key] >= 0, key
    assert (line["n"], line["d"], line["f"]) == (N, D, 1)
    assert line["bit_identical_1_vs_2_threads"] is True
    assert line["epoch_outcome"] == "accepted"
    assert sum(line["epoch_verdicts"].values()) == N
    assert line["flower"] is None and line["same_choice_as_flower"] is None
    assert line["flower_unavailable_reason"]


def test_compare_with_flower_on_exact_distances() -> None:
    work = krum.make_deltas(N, D, 1, seed=6)
    dist = krum.exact_distances(work.deltas)
    ours = krum.scoring.krum_scores(work.deltas, 1)
    choice = krum.argmin(ours)
    fake = {
        "function": "f",
        "distance_function": "g",
        "seconds": 1.0,
        "runs": [1.0],
        "choice": choice,
        "dist": np.array(dist, dtype=np.float64),
    }
    cmp = krum.compare_with_flower(fake, dist, choice, 1)
    assert cmp["same_choice"] and cmp["scores_choice"] == choice
    assert cmp["distances_exact"] and cmp["distances_max_rel_err"] == 0.0


def test_main_prints_one_json_line_per_size(capsys: pytest.CaptureFixture[str]) -> None:
    assert krum.main(["--sizes", f"{N}x{D},{N}x32", "--repeats", "1", "--no-flower"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [json.loads(ln)["d"] for ln in lines] == [32, D]  # smallest first


@pytest.mark.skipif(
    not krum.BENCH_VENV_PYTHON.exists(), reason=".venv-bench missing (scripts/bench-venv.sh)"
)
def test_flower_half_when_bench_venv_exists() -> None:
    line = krum.bench_size(N, D, repeats=1, seed=5, flower=True, epoch=False)
    assert line["flower"] is not None, line.get("flower_unavailable_reason")
    assert set(line["flower_s"]) == {"aggregate_krum", "select_multikrum"}
    assert line["same_choice_as_flower"] is True


def test_flower_unavailable_is_reported_not_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    failing = tmp_path / "bench-venv.sh"
    failing.write_text("echo 'no flwr for you' >&2\nexit 3\n")
    monkeypatch.setattr(krum, "BENCH_VENV_PYTHON", tmp_path / "missing" / "python")
    monkeypatch.setattr(krum, "BENCH_VENV_SCRIPT", failing)
    line = krum.bench_size(N, D, repeats=1, seed=5, flower=True, epoch=False)
    assert line["flower"] is None and line["flower_s"] is None
    assert line["ratio_vs_flower"] is None and line["same_choice_as_flower"] is None
    assert "exited 3" in line["flower_unavailable_reason"]
    assert "no flwr for you" in line["flower_unavailable_reason"]
