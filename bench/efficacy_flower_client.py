"""The main-venv side of ``bench/efficacy_flower.py``: Flower's strategies as arms.

Why a subprocess: flwr's pins conflict with the node's, so Flower lives in ``.venv-bench``
(``scripts/bench-venv.sh``) and answers aggregation requests over a pipe. The arm gives
Flower what a Flower server would hold after a round: each client's full parameters
(``global + delta``, float64) and its ``num-examples``; Flower's aggregate is rounded back
to the integer model grid, so the same accuracy code scores every arm.
"""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path
from typing import IO, Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SERVER = ROOT / "bench" / "efficacy_flower.py"
BENCH_PYTHON = ROOT / ".venv-bench" / "bin" / "python"
STRATEGIES = ("fedavg", "krum", "multikrum", "median", "trimmed_mean")


class FlowerUnavailable(RuntimeError):
    """``.venv-bench`` is missing: run ``scripts/bench-venv.sh``."""


def _npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


class FlowerServer:
    """One persistent ``efficacy_flower.py`` process; requests answered in order."""

    def __init__(self, python: Path = BENCH_PYTHON) -> None:
        if not python.exists():
            raise FlowerUnavailable(f"{python} missing: run scripts/bench-venv.sh")
        self.proc = subprocess.Popen(
            [str(python), str(SERVER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        self.version = str(self._call({"op": "hello"}, [])[0]["flwr_version"])

    def _call(self, header: dict[str, Any], blobs: list[bytes]) -> tuple[dict, list]:
        stdin, stdout = self.proc.stdin, self.proc.stdout
        assert stdin is not None and stdout is not None
        stdin.write(json.dumps({**header, "blobs": [len(b) for b in blobs]}).encode() + b"\n")
        for b in blobs:
            stdin.write(b)
        stdin.flush()
        reply = json.loads(stdout.readline() or b'{"ok": false, "error": "server exited"}')
        if not reply.get("ok"):
            raise RuntimeError(f"flower: {reply.get('error')}")
        return reply, [_read_npy(stdout, int(n)) for n in reply.get("blobs", [])]

    def aggregate(self, strategy: str, params: np.ndarray, num_examples: np.ndarray, f: int,
                  rnd: int) -> np.ndarray:  # fmt: skip
        """Flower's aggregate of the rows of ``params`` (float64 ``(n, d)``)."""
        req = {"op": "aggregate", "strategy": strategy, "f": f, "round": rnd}
        _, (out,) = self._call(req, [_npy(params.astype(np.float64)),
                                     _npy(num_examples.astype(np.int64))])  # fmt: skip
        return out

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self._call({"op": "quit"}, [])
            except (RuntimeError, BrokenPipeError, json.JSONDecodeError):
                pass
            self.proc.wait(timeout=10)


def _read_npy(stream: IO[bytes], n: int) -> np.ndarray:
    data = stream.read(n)
    if len(data) != n:
        raise RuntimeError("flower: truncated reply")
    return np.load(io.BytesIO(data), allow_pickle=False)


def flower_delta(server: FlowerServer, strategy: str, global_q: np.ndarray,
                 deltas: np.ndarray, num_examples: np.ndarray, f: int,
                 rnd: int) -> np.ndarray:  # fmt: skip
    """Flower's new global minus the old one, on the int16 delta grid (rounded half even)."""
    g = global_q.astype(np.float64)
    new = server.aggregate(strategy, g[None, :] + deltas.astype(np.float64), num_examples, f,
                           rnd)  # fmt: skip
    step = np.rint(new - g)
    return np.clip(step, -(2**15), 2**15 - 1).astype(np.int16)
