"""Time Flower's two Krum code paths on deltas saved by ``bench/krum.py``.

Runs INSIDE ``.venv-bench`` (see ``scripts/bench-venv.sh``), never in the main venv: flwr's
dependency pins conflict with ours. Both implementations are imported from the installed
flwr package; nothing of Flower's is copied here.

* ``aggregate_krum``: ``flwr.server.strategy.aggregate.aggregate_krum``, the function the
  legacy ``flwr.server.strategy.Krum`` strategy calls from ``aggregate_fit``. Its distances
  come from ``flwr.server.strategy.aggregate._compute_distances`` (an O(n^2) Python loop of
  ``np.linalg.norm(w_i - w_j) ** 2``).
* ``select_multikrum``: ``flwr.serverapp.strategy.multikrum.select_multikrum``, which the
  Message-API ``flwr.serverapp.strategy.Krum``/``MultiKrum`` strategies call (with
  ``num_nodes_to_select=1`` for Krum). Its distances come from
  ``flwr.serverapp.strategy.multikrum.compute_distances`` (one Gram GEMM,
  ``|x|^2 + |y|^2 - 2 x.y``).

Input (``--data DIR``): ``deltas.npy`` (int16, (n, d)). Each row becomes one client's
update as Flower expects it: a list of float64 ndarrays (here one array of length d).

Output: one JSON line on stdout with seconds per implementation (median and every run),
the chosen row index of each, and the file names (in DIR) of the squared-distance
matrices each implementation computed (captured by wrapping its distance function, which
adds only a function call), so the caller can compare them with the exact ones.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def _capture(module: Any, name: str, sink: dict[str, np.ndarray]) -> None:
    """Wrap ``module.name`` (a distance function) so its last result lands in ``sink``."""
    original = getattr(module, name)

    def wrapper(*args: Any, **kwargs: Any) -> np.ndarray:
        out = original(*args, **kwargs)
        sink["last"] = out
        return out

    setattr(module, name, wrapper)


def _time_runs(fn: Callable[[], Any], repeats: int) -> tuple[list[float], Any]:
    """Call ``fn`` ``repeats`` times; return the wall times and the last result."""
    runs: list[float] = []
    result: Any = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        runs.append(time.perf_counter() - t0)
    return runs, result


def bench_aggregate_krum(
    weights: list[list[np.ndarray]], f: int, repeats: int, out_dir: Path
) -> dict[str, Any]:
    """Legacy strategy path: ``aggregate_krum(results, num_malicious=f, to_keep=0)``."""
    from flwr.server.strategy import aggregate as agg

    sink: dict[str, np.ndarray] = {}
    _capture(agg, "_compute_distances", sink)
    results = [(w, 1) for w in weights]  # (NDArrays, num_examples)
    runs, chosen = _time_runs(lambda: agg.aggregate_krum(results, f, 0), repeats)
    choice = next(i for i, w in enumerate(weights) if w is chosen)
    dist_file = "dist_aggregate_krum.npy"
    np.save(out_dir / dist_file, np.asarray(sink["last"], dtype=np.float64))
    return {
        "function": "flwr.server.strategy.aggregate.aggregate_krum",
        "distance_function": "flwr.server.strategy.aggregate._compute_distances",
        "seconds": statistics.median(runs),
        "runs": runs,
        "choice": choice,
        "distances_file": dist_file,
    }


def bench_select_multikrum(
    weights: list[list[np.ndarray]], f: int, repeats: int, out_dir: Path
) -> dict[str, Any]:
    """Message-API path: ``select_multikrum(contents, f, num_nodes_to_select=1)``.

    Building the ``RecordDict``s (Flower's wire format: arrays serialised to bytes) is done
    once, outside the timed region, and reported as ``prepare_s``; the timed call includes
    Flower's own deserialisation (``ArrayRecord.to_numpy_ndarrays``), stacking and GEMM.
    """
    from flwr.app import ArrayRecord, RecordDict
    from flwr.serverapp.strategy import multikrum as mk

    t0 = time.perf_counter()
    contents = [RecordDict({"arrays": ArrayRecord(w)}) for w in weights]
    prepare_s = time.perf_counter() - t0
    sink: dict[str, np.ndarray] = {}
    _capture(mk, "compute_distances", sink)
    runs, selected = _time_runs(lambda: mk.select_multikrum(contents, f, 1), repeats)
    assert len(selected) == 1
    choice = next(i for i, c in enumerate(contents) if c is selected[0])
    dist_file = "dist_select_multikrum.npy"
    np.save(out_dir / dist_file, np.asarray(sink["last"], dtype=np.float64))
    return {
        "function": "flwr.serverapp.strategy.multikrum.select_multikrum",
        "distance_function": "flwr.serverapp.strategy.multikrum.compute_distances",
        "seconds": statistics.median(runs),
        "runs": runs,
        "prepare_s": prepare_s,
        "choice": choice,
        "distances_file": dist_file,
    }


def main(argv: list[str] | None = None) -> int:
    """Load ``DIR/deltas.npy``, time both Flower Krum paths, print one JSON line."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="directory with deltas.npy")
    ap.add_argument("--f", type=int, required=True, help="number of Byzantine clients")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)

    import flwr

    deltas = np.load(args.data / "deltas.npy")
    if deltas.dtype != np.int16 or deltas.ndim != 2:
        raise SystemExit("deltas.npy must be a 2-D int16 array")
    n, d = deltas.shape
    # One float64 ndarray per client, exactly the int16 values (as Flower receives them).
    weights = [[deltas[i].astype(np.float64)] for i in range(n)]
    del deltas
    impls = {
        "aggregate_krum": bench_aggregate_krum(weights, args.f, args.repeats, args.data),
        "select_multikrum": bench_select_multikrum(weights, args.f, args.repeats, args.data),
    }
    out = {
        "flwr_version": flwr.__version__,
        "numpy_version": np.__version__,
        "python": sys.version.split()[0],
        "n": n,
        "d": d,
        "f": args.f,
        "implementations": impls,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
