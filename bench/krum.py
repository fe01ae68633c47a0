"""Benchmark our exact Krum against Flower's Krum, a plain GEMM, and a whole epoch close.

Run from the repository root in the main venv::

    python bench/krum.py                 # both default sizes, one JSON line per size
    python bench/krum.py --sizes 16x16384 --repeats 5 --no-flower

Per size ``n x d`` (``f = (n - 3) // 4`` Byzantine rows, deterministic seeded int16 deltas)
it measures, taking the median of ``--repeats`` runs (default 5 for n*d >= 2^22, else 15;
Flower at most 3 there, one legacy run taking ~20 s):

* ``ours_s``: ``state_machine.scoring.krum_scores`` (exact integer Krum, default BLAS
  threads); ``ours_s_1_thread`` the same limited to one BLAS thread; ``score_updates_s``
  the full SPEC §5 scoring (Gram over n + 1 rows, every verdict); ``aggregation_s`` the
  SPEC §6 integer mean of the accepted rows plus ``apply_delta``.
* ``flower_s``: both Krum implementations of the installed flwr (see
  ``bench/flower_krum.py``), run in ``.venv-bench`` on the same data as float64 arrays.
  ``.venv-bench`` is created with ``scripts/bench-venv.sh`` when missing; if flwr cannot
  be installed or run, ``flower`` is ``null`` and ``flower_unavailable_reason`` says why.
* ``gemm_s``: a plain float64 ``X @ X.T`` with X of shape (n + 1, d), the BLAS floor for
  any Gram-based Krum; ``gemm_fraction = gemm_s / ours_s``; ``gemm_s_1_thread`` and
  ``gemm_fraction_1_thread`` with one BLAS thread (2-thread OpenBLAS GEMMs stall by up
  to 10x when another process holds one of two cores; 1-thread timings stay stable).
* ``epoch_close_s``: closing the reveal phase of a real epoch (built with the STF test
  harness, n proposers revealing these deltas): ``epochs.close_phase`` (scoring, verdicts,
  slashing, aggregation, finalisation) plus the state-root update, on a copy of the
  prepared state. ``epoch_close_block_s`` is the whole block that does it
  (``apply_block`` with an ``advance`` action, then the new state root).

and checks that our scores and Gram matrix are bit-identical with 1 and 2 BLAS threads
(``threadpoolctl``) and that Flower's Krum choice equals our argmin. ``peak_rss_mb`` is
this process's peak RSS so far (sizes run smallest first), ``ours_peak_alloc_mb`` the peak
numpy/Python allocation inside one ``krum_scores`` call (tracemalloc). ``load_avg_1m``
(before, after) flags a busy machine: timings on shared cores are noisy, so ``min_s``
(best run of each measurement) and ``ratio_vs_flower_min`` are reported next to the
medians.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from state_machine import scoring  # noqa: E402
from state_machine.aggregation import apply_delta, mean_round_half_even  # noqa: E402

BENCH_VENV_PYTHON = ROOT / ".venv-bench" / "bin" / "python"
BENCH_VENV_SCRIPT = ROOT / "scripts" / "bench-venv.sh"
FLOWER_SCRIPT = ROOT / "bench" / "flower_krum.py"
DEFAULT_SIZES = ((16, 2**14), (64, 2**20))
DEFAULT_SEED = 20_240_601
LARGE_REPEATS = 5  # default repeats when n * d >= 2^22
LARGE_FLOWER_REPEATS = 3  # at most this many there for Flower (legacy Krum: ~20 s a run)
SMALL_REPEATS = 15  # default repeats below that (timings of ~1 ms are noisy)
TASK_ID = 1

T = TypeVar("T")


@dataclass(frozen=True)
class Workload:
    """One benchmark size: ``n`` int16 deltas of length ``d``, ``f`` of them Byzantine."""

    n: int
    d: int
    f: int
    deltas: np.ndarray
    byzantine: tuple[int, ...]


def default_f(n: int) -> int:
    """Byzantine count used by the bench: about a quarter of n, always n >= 2f + 3."""
    return max(0, (n - 3) // 4)


def make_deltas(n: int, d: int, f: int, seed: int) -> Workload:
    """Deterministic int16 deltas: n - f honest rows around a shared direction, f attackers.

    Honest: ``base + N(0, 100^2)`` with ``base ~ N(0, 200^2)`` (pairwise cosine ~0.8, so no
    honest row is a duplicate). Attackers cycle through a sign-flipped scaled direction, a
    large uniform noise row and a scaled-up copy of the direction. Rows are shuffled so
    attackers are spread over the pubkey order. Generated row by row to bound memory.
    """
    scoring.check_krum_size(n, f)
    rng = np.random.default_rng(seed)
    base = rng.normal(0.0, 200.0, d)
    out = np.empty((n, d), dtype=np.int16)
    kinds = rng.permutation(n)  # row r is an attacker when kinds[r] < f
    for r in range(n):
        k = int(kinds[r])
        if k >= f:
            row = base + rng.normal(0.0, 100.0, d)
        elif k % 3 == 0:
            row = -3.0 * base + rng.normal(0.0, 100.0, d)
        elif k % 3 == 1:
            row = rng.uniform(-3000.0, 3000.0, d)
        else:
            row = 4.0 * base + rng.normal(0.0, 100.0, d)
        np.copyto(out[r], np.clip(np.rint(row), -(2**15), 2**15 - 1), casting="unsafe")
    byz = tuple(int(r) for r in np.flatnonzero(kinds < f))
    return Workload(n, d, f, out, byz)


def time_median(fn: Callable[[], T], repeats: int) -> tuple[float, list[float], T]:
    """Run ``fn`` ``repeats`` times; return (median seconds, all runs, last result)."""
    runs: list[float] = []
    result: T | None = None
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        result = fn()
        runs.append(time.perf_counter() - t0)
    assert result is not None
    return statistics.median(runs), runs, result


@dataclass
class Timings:
    """Median and minimum seconds of named measurements, ``repeats`` runs each.

    Medians are the reported figures; minimums (``min_s`` in the output) are the least
    contended estimate when other processes share the cores.
    """

    repeats: int
    median: dict[str, float] = field(default_factory=dict)
    minimum: dict[str, float] = field(default_factory=dict)

    def record(self, key: str, runs: Sequence[float]) -> float:
        """Store the median and minimum of ``runs`` under ``key``; return the median."""
        self.median[key] = statistics.median(runs)
        self.minimum[key] = min(runs)
        return self.median[key]

    def run(self, key: str, fn: Callable[[], T]) -> T:
        """Time ``fn`` ``repeats`` times under ``key``; return its last result."""
        _, runs, result = time_median(fn, self.repeats)
        self.record(key, runs)
        return result


def auto_repeats(n: int, d: int) -> int:
    """Default number of timed runs per measurement for an n x d workload."""
    return LARGE_REPEATS if n * d >= 2**22 else SMALL_REPEATS


def flower_repeats(n: int, d: int, repeats: int) -> int:
    """Timed runs for Flower: capped at large sizes, where one legacy run takes seconds."""
    return min(repeats, LARGE_FLOWER_REPEATS) if n * d >= 2**22 else repeats


def argmin(values: Sequence[int | float]) -> int:
    """Index of the smallest value, first one on ties (row order = pubkey order)."""
    return min(range(len(values)), key=lambda i: (values[i], i))


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def blas_info() -> dict[str, Any]:
    """The BLAS library numpy uses here and its default thread count."""
    blas = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    if not blas:
        return {}
    b = blas[0]
    return {
        "internal_api": b.get("internal_api"),
        "version": b.get("version"),
        "num_threads": b.get("num_threads"),
    }


# ----------------------------------------------------------------------------- ours


def exact_distances(deltas: np.ndarray) -> list[list[int]]:
    """Our exact squared distances D_ij as Python ints."""
    return scoring.distances(scoring.gram_matrix(deltas), deltas.shape[0])


def thread_check(deltas: np.ndarray, f: int) -> dict[str, Any]:
    """Scores and Gram matrix under 1 and 2 BLAS threads; plus the 1-thread timing input."""
    out: dict[str, Any] = {}
    for threads in (1, 2):
        with threadpool_limits(limits=threads, user_api="blas"):
            out[threads] = (scoring.krum_scores(deltas, f), scoring.gram_matrix(deltas))
    return {"bit_identical": out[1] == out[2], "scores_1": out[1][0]}


def ours_peak_alloc_mb(deltas: np.ndarray, f: int) -> float:
    """Peak traced allocation (numpy buffers included) of one ``krum_scores`` call, MiB."""
    tracemalloc.start()
    try:
        scoring.krum_scores(deltas, f)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak / 2**20


def time_gemm(deltas: np.ndarray, t: Timings) -> None:
    """Time a plain float64 ``X @ X.T``, X (n + 1, d) (conversion untimed), with the
    default BLAS threads (``gemm``) and with one thread (``gemm_1_thread``)."""
    n, d = deltas.shape
    x = np.empty((n + 1, d), dtype=np.float64)
    x[:n] = deltas
    x[n] = deltas[0]
    t.run("gemm", lambda: x @ x.T)
    with threadpool_limits(limits=1, user_api="blas"):
        t.run("gemm_1_thread", lambda: x @ x.T)


def time_aggregation(deltas: np.ndarray, accepted: Sequence[int], t: Timings) -> None:
    """Time the SPEC §6 aggregation of the accepted rows onto a zero model."""
    model = np.zeros(deltas.shape[1], dtype=np.int32)
    rows = list(accepted)
    t.run("aggregation", lambda: apply_delta(model, mean_round_half_even(deltas[rows])))


# ----------------------------------------------------------------------------- Flower


def _bench_venv_has_flwr() -> bool:
    """True when ``.venv-bench``'s python exists and imports flwr and numpy."""
    if not BENCH_VENV_PYTHON.exists():
        return False
    try:
        proc = subprocess.run(
            [str(BENCH_VENV_PYTHON), "-c", "import flwr, numpy"],
            capture_output=True,
            timeout=300,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


def ensure_bench_venv() -> str | None:
    """Make sure ``.venv-bench`` has flwr (running ``scripts/bench-venv.sh`` if not);
    return None, or why Flower is unavailable."""
    if _bench_venv_has_flwr():
        return None
    print("krum bench: no usable .venv-bench, running scripts/bench-venv.sh", file=sys.stderr)
    try:
        proc = subprocess.run(
            ["bash", str(BENCH_VENV_SCRIPT)], capture_output=True, text=True, timeout=1800
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"scripts/bench-venv.sh failed: {exc}"
    if proc.returncode != 0:
        tail = [
            ln
            for ln in (proc.stderr + proc.stdout).strip().splitlines()
            if not ln.startswith("WARNING")
        ][-3:]
        return f"scripts/bench-venv.sh exited {proc.returncode}: {' | '.join(tail)}"
    if not _bench_venv_has_flwr():
        return "scripts/bench-venv.sh succeeded but .venv-bench cannot import flwr"
    return None


def run_flower(work: Workload, repeats: int, data_dir: Path) -> dict[str, Any]:
    """Run ``bench/flower_krum.py`` in ``.venv-bench`` on ``work``; return its JSON plus the
    distance matrices it captured (``dist`` per implementation, float64 (n, n))."""
    np.save(data_dir / "deltas.npy", work.deltas)
    cmd = [
        str(BENCH_VENV_PYTHON),
        str(FLOWER_SCRIPT),
        "--data",
        str(data_dir),
        "--f",
        str(work.f),
        "--repeats",
        str(repeats),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, cwd=ROOT)
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-3:]
        raise RuntimeError(f"flower_krum.py exited {proc.returncode}: {' | '.join(tail)}")
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        raise RuntimeError("flower_krum.py printed no JSON")
    result: dict[str, Any] = json.loads(lines[-1])
    for impl in result["implementations"].values():
        impl["dist"] = np.load(data_dir / impl.pop("distances_file"))
    return result


def compare_with_flower(
    impl: dict[str, Any], ours_dist: list[list[int]], ours_choice: int, f: int
) -> dict[str, Any]:
    """How one Flower implementation's distances and choice relate to our exact ones.

    ``scores_choice`` re-derives Krum scores from Flower's own distance matrix with our
    ``krum_from_distances`` (same n - f - 2 rule), as a cross-check of ``choice``.
    """
    dist: np.ndarray = impl.pop("dist")
    exact = np.array(ours_dist, dtype=np.float64)  # < 2^53 here, so exactly representable
    err = np.abs(dist - exact)
    scale = max(float(np.max(np.abs(exact))), 1.0)
    fl_scores = scoring.krum_from_distances(dist.tolist(), f)
    return {
        "function": impl["function"],
        "distance_function": impl["distance_function"],
        "seconds": impl["seconds"],
        "runs": impl["runs"],
        **({"prepare_s": impl["prepare_s"]} if "prepare_s" in impl else {}),
        "choice": impl["choice"],
        "same_choice": impl["choice"] == ours_choice,
        "scores_choice": argmin(fl_scores),
        "distances_exact": bool(np.all(err == 0)),
        "distances_max_rel_err": float(np.max(err)) / scale,
    }


# ----------------------------------------------------------------------------- epoch close


@dataclass
class EpochCloseSetup:
    """A state whose epoch 0 has every update revealed, and the block that closes it."""

    state: Any  # state_machine.state.State
    advance: Any  # SignedAction: ``advance`` from a proposer
    parent: bytes
    pubkeys: list[bytes]  # proposers, ascending (= delta row order)


def prepare_epoch_close(deltas: np.ndarray, f: int) -> EpochCloseSetup:
    """Drive real blocks (STF test harness) up to the end of the reveal phase.

    n clients stake, one task with ``proposers_per_epoch = n``, no voters; row i of
    ``deltas`` is revealed by the i-th proposer in pubkey order.
    """
    tests_dir = str(ROOT / "tests")
    if tests_dir not in sys.path:
        sys.path.insert(0, tests_dir)
    from stf_harness import Client, Harness, default_params

    n, d = deltas.shape
    h = Harness()
    clients = [Client.make(f"krum-bench-{i}") for i in range(n)]
    genesis = np.zeros(d, dtype=np.int32)
    params = default_params(d, genesis, proposers=n, f=f, voters=0, window=50)
    params = replace(params, aggregator="multi_krum")  # v2: the close runs exact Krum
    h.block(*[h.deposit(c) for c in clients], h.create_task(TASK_ID, params, max_epochs=2))
    h.block(h.genesis(clients[0], TASK_ID, genesis))
    h.block()  # block start: the task has enough eligible clients, epoch 0 opens
    ep = h.state.epochs[(TASK_ID, 0)]
    by_pk = {c.pubkey: c for c in clients}
    proposers = [by_pk[pk] for pk in sorted(ep.proposers)]
    if len(proposers) != n:
        raise RuntimeError(f"expected {n} proposers, got {len(proposers)}")
    rows = {c.pubkey: deltas[i] for i, c in enumerate(proposers)}
    commits = [h.commit(c, TASK_ID, 0, rows[c.pubkey]) for c in proposers]
    _expect_ok(h.block(*commits, h.advance(proposers[0], TASK_ID, 0)))
    _expect_ok(h.block(*[h.reveal(c, TASK_ID, 0, rows[c.pubkey]) for c in proposers]))
    if len(h.state.epochs[(TASK_ID, 0)].updates) != n:
        raise RuntimeError("not every update was revealed")
    h.state.state_root()
    advance = h.advance(proposers[0], TASK_ID, 0)
    return EpochCloseSetup(h.state, advance, h.parent, [c.pubkey for c in proposers])


def _expect_ok(receipts: Sequence[Any]) -> None:
    bad = [r for r in receipts if not r.applied]
    if bad:
        raise RuntimeError(f"bench action rejected: {bad[0].to_record()}")


def close_reveal_phase(setup: EpochCloseSetup) -> tuple[Any, float]:
    """Copy the prepared state, then time ``close_phase`` + the new state root."""
    from state_machine.epochs import close_phase

    pre_root = setup.state.state_root()
    st = setup.state.copy()
    st.height += 1
    task = st.tasks[TASK_ID]
    t0 = time.perf_counter()
    close_phase(st, task, pre_root)
    st.state_root()
    return st, time.perf_counter() - t0


def close_block(setup: EpochCloseSetup) -> Any:
    """Apply the whole closing block (``advance``) and compute the new state root."""
    from state_machine.transition import Block, apply_block

    pre = setup.state
    block = Block(pre.height + 1, setup.parent, 1_700_000_000 + pre.height, [setup.advance])
    post, receipts = apply_block(pre, block)
    _expect_ok(receipts)
    post.state_root()
    return post


def bench_epoch_close(work: Workload, t: Timings) -> dict[str, Any]:
    """Time the close (``epoch_close``: direct; ``epoch_close_block``: the whole block);
    return a summary of the closed epoch."""
    setup = prepare_epoch_close(work.deltas, work.f)
    runs = [close_reveal_phase(setup) for _ in range(max(1, t.repeats))]
    t.record("epoch_close", [s for _, s in runs])
    post = runs[-1][0]
    t.run("epoch_close_block", lambda: close_block(setup))
    ep = post.epochs[(TASK_ID, 0)]
    verdicts: dict[str, int] = {}
    for v in ep.verdicts.values():
        verdicts[v] = verdicts.get(v, 0) + 1
    return {
        "epoch_outcome": ep.outcome,
        "epoch_verdicts": dict(sorted(verdicts.items())),
        # v2 epoch records keep each update's exact norm (the Gram diagonal), not Krum scores
        "epoch_norms_match": [s["norm_sq"] for s in ep.scores]
        == [int(r @ r) for r in work.deltas.astype(np.int64)],
    }


# ----------------------------------------------------------------------------- driver


def bench_size(
    n: int, d: int, repeats: int, seed: int, flower: bool, epoch: bool = True
) -> dict[str, Any]:
    """Every measurement for one size; returns the JSON-ready result line."""
    load_before = os.getloadavg()[0]
    work = make_deltas(n, d, default_f(n), seed)
    f = work.f
    t = Timings(repeats)
    ours = t.run("ours", lambda: scoring.krum_scores(work.deltas, f))
    with threadpool_limits(limits=1, user_api="blas"):
        t.run("ours_1_thread", lambda: scoring.krum_scores(work.deltas, f))
    pubkeys = [i.to_bytes(32, "big") for i in range(n)]
    prev = np.zeros(d, dtype=np.int16)
    scored = t.run("score_updates", lambda: scoring.score_updates(pubkeys, work.deltas, prev, f))
    time_aggregation(work.deltas, scored.accepted_indices(), t)
    threads = thread_check(work.deltas, f)
    ours_choice = argmin(ours)
    time_gemm(work.deltas, t)
    ec = bench_epoch_close(work, t) if epoch else None
    med = t.median
    line: dict[str, Any] = {
        "n": n,
        "d": d,
        "f": f,
        "seed": seed,
        "repeats": repeats,
        "ours_s": med["ours"],
        "ours_s_1_thread": med["ours_1_thread"],
        "score_updates_s": med["score_updates"],
        "aggregation_s": med["aggregation"],
        "flower_s": None,
        "ratio_vs_flower": None,
        "ratio_vs_flower_min": None,
        "gemm_s": med["gemm"],
        "gemm_s_1_thread": med["gemm_1_thread"],
        "gemm_fraction": med["gemm"] / med["ours"],
        "gemm_fraction_min": t.minimum["gemm"] / t.minimum["ours"],
        # 1 BLAS thread: immune to a busy second core stalling OpenBLAS's thread pair.
        "gemm_fraction_1_thread": med["gemm_1_thread"] / med["ours_1_thread"],
    }
    if ec is not None:
        line["epoch_close_s"] = med["epoch_close"]
        line["epoch_close_block_s"] = med["epoch_close_block"]
        line["epoch_outcome"] = ec["epoch_outcome"]
        line["epoch_verdicts"] = ec["epoch_verdicts"]
        line["epoch_scores_match_ours"] = ec["epoch_norms_match"]
    line["bit_identical_1_vs_2_threads"] = threads["bit_identical"] and threads["scores_1"] == ours
    line["ours_choice"] = ours_choice
    line["ours_choice_is_honest"] = ours_choice not in work.byzantine
    line["same_choice_as_flower"] = None
    line["flower"] = None
    line["min_s"] = dict(t.minimum)
    if flower:
        _add_flower(line, work, repeats, ours_choice)
    else:
        line["flower_unavailable_reason"] = "disabled (--no-flower)"
    line["ours_peak_alloc_mb"] = ours_peak_alloc_mb(work.deltas, f)
    line["peak_rss_mb"] = peak_rss_mb()
    line["blas"] = blas_info()
    line["load_avg_1m"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    return line


def _add_flower(line: dict[str, Any], work: Workload, repeats: int, ours_choice: int) -> None:
    """Fill the Flower fields of ``line`` (or ``flower: null`` and the reason)."""
    reason = ensure_bench_venv()
    if reason is not None:
        line["flower_unavailable_reason"] = reason
        return
    try:
        with tempfile.TemporaryDirectory(prefix="flockchain-krum-") as tmp:
            raw = run_flower(work, flower_repeats(work.n, work.d, repeats), Path(tmp))
    except (OSError, RuntimeError, subprocess.TimeoutExpired, ValueError, KeyError) as exc:
        line["flower_unavailable_reason"] = f"{type(exc).__name__}: {exc}"
        return
    ours_dist = exact_distances(work.deltas)
    impls = {
        name: compare_with_flower(impl, ours_dist, ours_choice, work.f)
        for name, impl in raw["implementations"].items()
    }
    line["flower_s"] = {k: v["seconds"] for k, v in impls.items()}
    line["ratio_vs_flower"] = {k: v["seconds"] / line["ours_s"] for k, v in impls.items()}
    # Best-of-runs ratio: on shared cores the minimum is the least contended estimate.
    ours_min = line["min_s"]["ours"]
    line["ratio_vs_flower_min"] = {k: min(v["runs"]) / ours_min for k, v in impls.items()}
    line["same_choice_as_flower"] = all(v["same_choice"] for v in impls.values())
    line["flower"] = {
        "flwr_version": raw["flwr_version"],
        "numpy_version": raw["numpy_version"],
        "peak_rss_mb": raw["peak_rss_mb"],
        "implementations": impls,
    }


def parse_sizes(text: str) -> list[tuple[int, int]]:
    """``"16x16384,64x1048576"`` -> [(16, 16384), (64, 1048576)]."""
    sizes = []
    for part in text.split(","):
        n, _, d = part.strip().lower().partition("x")
        sizes.append((int(n), int(d)))
    return sizes


def main(argv: list[str] | None = None) -> int:
    """Run every size (smallest first) and print one JSON line per size on stdout."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--sizes",
        type=parse_sizes,
        default=list(DEFAULT_SIZES),
        help="comma-separated NxD (default 16x16384,64x1048576)",
    )
    ap.add_argument(
        "--repeats",
        type=int,
        default=None,
        help=f"timed runs per measurement (default {LARGE_REPEATS} for n*d >= 2^22, "
        f"else {SMALL_REPEATS})",
    )
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("--no-flower", action="store_true", help="skip the Flower comparison")
    ap.add_argument("--no-epoch", action="store_true", help="skip the epoch-close timing")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    for n, d in sorted(args.sizes, key=lambda s: s[0] * s[1]):
        t_size = time.perf_counter()
        repeats = args.repeats or auto_repeats(n, d)
        line = bench_size(n, d, repeats, args.seed, not args.no_flower, not args.no_epoch)
        line["bench_wall_s"] = time.perf_counter() - t_size
        print(json.dumps(line), flush=True)
    print(
        f"krum bench: total {time.perf_counter() - t0:.1f}s on {os.cpu_count()} CPUs",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
