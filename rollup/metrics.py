"""Prometheus metrics (text exposition format 0.0.4), dependency-free.

Why hand-rolled: five metric families do not justify a dependency, and the sequencer's
hooks (``SequencerHooks``) map onto them one to one.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable

from sequencer.sequencer import SequencerHooks
from state_machine.transition import Receipt

_SECONDS_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                    30.0, 60.0)


def _esc(v: str) -> str:
    return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class _Histogram:
    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.sum = 0.0
        self.n = 0

    def observe(self, v: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, v)] += 1
        self.sum += v
        self.n += 1

    def render(self, name: str) -> list[str]:
        out, acc = [], 0
        for b, c in zip(self.buckets, self.counts, strict=False):
            acc += c
            out.append(f'{name}_bucket{{le="{b}"}} {acc}')
        out.append(f'{name}_bucket{{le="+Inf"}} {self.n}')
        out.append(f"{name}_sum {self.sum}")
        out.append(f"{name}_count {self.n}")
        return out


class Metrics(SequencerHooks):
    """Counters the node exports at ``GET /v1/metrics``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.accepted: dict[str, int] = {}
        self.rejected: dict[str, int] = {}
        self.included: dict[str, int] = {}  # in-block receipts by reason ("ok" = applied)
        self.ingest_bytes = 0
        self.http_body_bytes = 0
        self.block_apply = _Histogram(_SECONDS_BUCKETS)
        self.epoch_close = _Histogram(_SECONDS_BUCKETS)
        self.height = 0
        self.ack_commits = 0
        self.ack_commit_actions = 0
        self.ack_commit = _Histogram(_SECONDS_BUCKETS)
        self.gauges: dict[str, Callable[[], float]] = {}

    # ---- SequencerHooks ----
    def action_accepted(self, typ: str, size: int) -> None:
        with self._lock:
            self.accepted[typ] = self.accepted.get(typ, 0) + 1
            self.ingest_bytes += size

    def action_rejected(self, reason: str) -> None:
        with self._lock:
            self.rejected[reason] = self.rejected.get(reason, 0) + 1

    def block_applied(self, height: int, seconds: float, n_actions: int,
                      receipts: list[Receipt]) -> None:
        with self._lock:
            self.height = height
            self.block_apply.observe(seconds)
            for r in receipts:
                self.included[r.reason] = self.included.get(r.reason, 0) + 1

    def epoch_closed(self, seconds: float) -> None:
        with self._lock:
            self.epoch_close.observe(seconds)

    def acks_committed(self, n: int, seconds: float) -> None:
        with self._lock:
            self.ack_commits += 1
            self.ack_commit_actions += n
            self.ack_commit.observe(seconds)

    # ---- HTTP ----
    def body_received(self, n: int) -> None:
        with self._lock:
            self.http_body_bytes += n

    def render(self) -> str:
        with self._lock:
            lines = [
                "# HELP flockchain_actions_accepted_total Actions acknowledged, by type.",
                "# TYPE flockchain_actions_accepted_total counter",
            ]
            lines += [f'flockchain_actions_accepted_total{{type="{_esc(k)}"}} {v}'
                      for k, v in sorted(self.accepted.items())]
            lines += [
                "# HELP flockchain_actions_rejected_total Submissions refused, by reason.",
                "# TYPE flockchain_actions_rejected_total counter",
            ]
            lines += [f'flockchain_actions_rejected_total{{reason="{_esc(k)}"}} {v}'
                      for k, v in sorted(self.rejected.items())]
            lines += [
                "# HELP flockchain_receipts_total Included actions by receipt reason (ok=applied).",
                "# TYPE flockchain_receipts_total counter",
            ]
            lines += [f'flockchain_receipts_total{{reason="{_esc(k)}"}} {v}'
                      for k, v in sorted(self.included.items())]
            lines += [
                "# HELP flockchain_block_height Height of the latest block.",
                "# TYPE flockchain_block_height gauge",
                f"flockchain_block_height {self.height}",
                "# HELP flockchain_ingest_bytes_total Bytes of acknowledged actions.",
                "# TYPE flockchain_ingest_bytes_total counter",
                f"flockchain_ingest_bytes_total {self.ingest_bytes}",
                "# HELP flockchain_http_action_body_bytes_total Bytes of POST /v1/actions bodies.",
                "# TYPE flockchain_http_action_body_bytes_total counter",
                f"flockchain_http_action_body_bytes_total {self.http_body_bytes}",
                "# HELP flockchain_ack_commits_total Group commits of acknowledged actions.",
                "# TYPE flockchain_ack_commits_total counter",
                f"flockchain_ack_commits_total {self.ack_commits}",
                "# HELP flockchain_ack_commit_actions_total Actions made durable by group commits.",
                "# TYPE flockchain_ack_commit_actions_total counter",
                f"flockchain_ack_commit_actions_total {self.ack_commit_actions}",
                "# HELP flockchain_ack_commit_seconds Duration of one group commit.",
                "# TYPE flockchain_ack_commit_seconds histogram",
                *self.ack_commit.render("flockchain_ack_commit_seconds"),
                "# HELP flockchain_block_apply_seconds Time to apply a block (STF + root).",
                "# TYPE flockchain_block_apply_seconds histogram",
                *self.block_apply.render("flockchain_block_apply_seconds"),
                "# HELP flockchain_epoch_close_seconds Time of blocks that closed an epoch.",
                "# TYPE flockchain_epoch_close_seconds histogram",
                *self.epoch_close.render("flockchain_epoch_close_seconds"),
            ]
            for name, fn in sorted(self.gauges.items()):
                lines += [f"# TYPE {name} gauge", f"{name} {fn()}"]
        return "\n".join(lines) + "\n"
