"""Flower's FedAvg and Krum as an aggregation server for ``bench/efficacy.py``.

Runs INSIDE ``.venv-bench`` (see ``scripts/bench-venv.sh``), never in the main venv: flwr's
dependency pins conflict with ours. Nothing of Flower's is copied here: each request builds
one reply :class:`flwr.app.Message` per client (an ``ArrayRecord`` with the client's model
parameters and a ``MetricRecord`` with its ``num-examples``) and hands them to the
installed strategy's own ``aggregate_train`` (the Message-API strategies of
``flwr.serverapp.strategy``):

* ``fedavg``: ``FedAvg()``: mean weighted by ``num-examples`` (Flower's default key);
* ``krum``: ``Krum(num_malicious_nodes=f)``: ``select_multikrum`` with one node selected,
  whose parameters are then returned unchanged (weight 1);
* ``multikrum``: ``MultiKrum(num_malicious_nodes=f, num_nodes_to_select=n - f)``;
* ``median``: ``FedMedian()`` (coordinate-wise median);
* ``trimmed_mean``: ``FedTrimmedAvg(beta=f / n)`` (f per side, as our ``trimmed_mean``).

Wire protocol (one persistent process, requests served in order until EOF or ``quit``).
A *frame* is one JSON line followed by the binary blobs its ``"blobs"`` list announces
(byte lengths), each blob being an ``.npy`` file image (``np.save`` into bytes):

* request ``{"op": "aggregate", "strategy": "fedavg"|"krum", "f": int, "round": int,
  "blobs": [a, b]}`` + ``weights`` (float64, (n, d): each client's full parameter vector)
  + ``num_examples`` (int64, (n,));
* reply ``{"ok": true, "selected": [row, ...], "blobs": [c]}`` + the aggregated parameter
  vector (float64, (d,)); ``selected`` lists the input rows equal to the result (Krum's
  choice; empty for FedAvg);
* ``{"op": "hello"}`` answers ``{"ok": true, "flwr_version": ..., "blobs": []}``;
  ``{"op": "quit"}`` ends the process; any failure answers ``{"ok": false, "error": ...}``.

Flower's log lines go to stderr (at WARNING level and above only); stdout carries nothing
but replies.
"""

from __future__ import annotations

import io
import json
import logging
import sys
import time
from typing import Any, BinaryIO

import numpy as np

# Keep stdout for replies only: anything printed by imported code goes to stderr.
_REPLIES: BinaryIO = sys.stdout.buffer
sys.stdout = sys.stderr

import flwr  # noqa: E402
from flwr.app import ArrayRecord, Message, Metadata, MetricRecord, RecordDict  # noqa: E402
from flwr.serverapp.strategy import (  # noqa: E402
    FedAvg,
    FedMedian,
    FedTrimmedAvg,
    Krum,
    MultiKrum,
)

WEIGHT_KEY = "num-examples"


def _quiet_flower() -> None:
    """Silence Flower's INFO lines ("aggregate_train: Received n results ...")."""
    for name in ("flwr", "flower"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _reply_message(client: int, params: np.ndarray, num_examples: int, rnd: int) -> Message:
    """The reply a Flower ClientApp would send after training: arrays + num-examples."""
    content = RecordDict(
        {
            "arrays": ArrayRecord([np.ascontiguousarray(params, dtype=np.float64)]),
            "metrics": MetricRecord({WEIGHT_KEY: int(num_examples)}),
        }
    )
    metadata = Metadata(
        run_id=0,
        message_id=f"reply-{rnd}-{client}",
        src_node_id=client + 1,
        dst_node_id=0,
        reply_to_message_id=f"train-{rnd}-{client}",
        group_id=str(rnd),
        created_at=time.time(),
        ttl=3600.0,
        message_type="train",
    )
    return Message(content=content, metadata=metadata)


def _strategy(name: str, n: int, f: int) -> FedAvg:
    """The Flower strategy object for ``name`` with our task's ``f`` of ``n``."""
    if name == "fedavg":
        return FedAvg()
    if name == "krum":
        return Krum(num_malicious_nodes=f)
    if name == "multikrum":
        return MultiKrum(num_malicious_nodes=f, num_nodes_to_select=n - f)
    if name == "median":
        return FedMedian()
    if name == "trimmed_mean":
        return FedTrimmedAvg(beta=f / n)
    raise ValueError(f"unknown strategy {name!r}")


STRATEGIES = ("fedavg", "krum", "multikrum", "median", "trimmed_mean")


def aggregate(
    strategy: str, weights: np.ndarray, num_examples: np.ndarray, f: int, rnd: int
) -> tuple[np.ndarray, list[int]]:
    """Run the named Flower strategy's ``aggregate_train`` on one round's client replies.

    Returns the aggregated flat parameter vector and the input rows equal to it.
    """
    if weights.ndim != 2 or num_examples.shape != (weights.shape[0],):
        raise ValueError(f"bad shapes: weights {weights.shape}, num_examples {num_examples.shape}")
    replies = [
        _reply_message(i, weights[i], int(num_examples[i]), rnd) for i in range(len(weights))
    ]
    strat = _strategy(strategy, len(replies), f)
    arrays, _metrics = strat.aggregate_train(rnd, replies)
    if arrays is None:
        raise RuntimeError("Flower returned no aggregate")
    out = np.concatenate([a.ravel() for a in arrays.to_numpy_ndarrays()]).astype(np.float64)
    selected: list[int] = []
    if strategy == "krum":
        selected = [int(i) for i in np.flatnonzero((weights == out[None, :]).all(axis=1))]
    return out, selected


def _npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def _read_exact(stream: BinaryIO, n: int) -> bytes:
    data = stream.read(n)
    if data is None or len(data) != n:
        raise EOFError("truncated frame")
    return data


def _send(header: dict[str, Any], blobs: list[bytes]) -> None:
    header = {**header, "blobs": [len(b) for b in blobs]}
    _REPLIES.write(json.dumps(header).encode() + b"\n")
    for b in blobs:
        _REPLIES.write(b)
    _REPLIES.flush()


def serve(stream: BinaryIO) -> None:
    """Answer frames from ``stream`` until EOF or ``quit``."""
    while True:
        line = stream.readline()
        if not line:
            return
        try:
            req = json.loads(line)
            blobs = [
                np.load(io.BytesIO(_read_exact(stream, int(n))), allow_pickle=False)
                for n in req.get("blobs", [])
            ]
        except EOFError:
            return
        except Exception as exc:  # a malformed frame: report and stop (stream is unsynced)
            _send({"ok": False, "error": f"bad frame: {exc!r}"}, [])
            return
        op = req.get("op")
        if op == "quit":
            return
        try:
            if op == "hello":
                _send({"ok": True, "flwr_version": flwr.__version__}, [])
            elif op == "aggregate":
                weights, counts = blobs
                out, selected = aggregate(
                    str(req["strategy"]), weights, counts, int(req["f"]), int(req["round"])
                )
                _send({"ok": True, "selected": selected}, [_npy_bytes(out)])
            else:
                raise ValueError(f"unknown op {op!r}")
        except Exception as exc:
            _send({"ok": False, "error": repr(exc)}, [])


def main() -> None:
    """Serve requests on stdin."""
    _quiet_flower()
    serve(sys.stdin.buffer)


if __name__ == "__main__":
    main()
