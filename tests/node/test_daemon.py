"""rollup.daemon: the loop the aggregator, client and verifier commands share."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest

from rollup.daemon import Guard, backoff_cap, run_daemon


class _Stop(threading.Event):
    """A stop event whose ``wait`` records the delay instead of sleeping."""

    def __init__(self, after_waits: int) -> None:
        super().__init__()
        self.waits: list[float] = []
        self.after = after_waits

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(float(timeout or 0))
        if len(self.waits) >= self.after:
            self.set()
        return self.is_set()


def _script(outcomes: list[bool]):
    """A step that fails or succeeds in the given order."""
    it = iter(outcomes)

    def step() -> None:
        if not next(it):
            raise ConnectionError("node down")

    return step


def test_steps_every_interval_until_stopped() -> None:
    stop = _Stop(after_waits=3)
    n = run_daemon(_script([True] * 3), name="t", interval=0.5, stop=stop)
    assert n == 3 and stop.waits == [0.5, 0.5, 0.5]


def test_failures_back_off_up_to_the_cap_and_success_resets() -> None:
    stop = _Stop(after_waits=7)
    outcomes = [False] * 5 + [True, False]
    n = run_daemon(_script(outcomes), name="t", interval=0.5, stop=stop)
    cap = backoff_cap(0.5)
    assert cap == 2.0
    assert stop.waits == [1.0, 2.0, cap, cap, cap, 0.5, 1.0]
    assert n == 1


def test_max_seconds_ends_the_loop_without_a_stop() -> None:
    stop = threading.Event()
    n = run_daemon(lambda: None, name="t", interval=0.01, stop=stop, max_seconds=0.05)
    assert n >= 2 and not stop.is_set()


def test_heartbeat_is_touched_after_failed_steps_too(tmp_path: Path) -> None:
    beat = tmp_path / "sub" / "beat"
    run_daemon(_script([False]), name="t", interval=0.1, stop=_Stop(1), heartbeat=beat)
    assert beat.exists()


def test_guard_logs_a_new_error_once_and_recovery(caplog: pytest.LogCaptureFixture) -> None:
    guard = Guard("duty", logging.getLogger("test.daemon"))
    step = _script([False, False, False, True])
    with caplog.at_level(logging.INFO, logger="test.daemon"):
        results = [guard(step) for _ in range(4)]
    assert results == [None] * 4
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["duty failed: ConnectionError: node down", "duty recovered"]
    assert not guard.failing
