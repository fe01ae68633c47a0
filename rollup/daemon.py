"""The loop every long-running command runs: ``aggregator``, ``client``, ``verifier``.

Why one loop: each command used to write its own ``while not stop`` (and ``Aggregator``,
``Verifier`` and ``ClientAgent`` each carried a fourth, unused one), and they had drifted:
one logged every failure with a traceback, one only new messages, none backed off while
the node or L1 was down, and only some touched the heartbeat file. Here, once:

- ``interval`` seconds between steps; ``stop`` (an ``Event``, set by SIGTERM/SIGINT via
  :func:`stop_on_signals`) ends the loop between steps, ``max_seconds`` after that long;
- a failing step is logged by a :class:`Guard` (a new error once, repeats only as a
  count) and the next wait doubles per consecutive failure, up to :func:`backoff_cap`;
  the first success logs "recovered" and resets the wait;
- the heartbeat file (container health checks) is touched after every step, failed or
  not: it says the loop is alive, ``/healthz`` says whether it is making progress.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger("flockchain.daemon")


class Guard:
    """Run one duty; log a new error once (traceback at DEBUG), repeats only as a count."""

    def __init__(self, name: str, logger: logging.Logger | None = None) -> None:
        self.name = name
        self.log = logger or log
        self.last: str | None = None
        self.repeats = 0

    @property
    def failing(self) -> bool:
        """Whether the last call failed."""
        return self.last is not None

    def __call__(self, fn: Callable[[], Any]) -> Any:
        """``fn()``, or ``None`` when it raised (see :attr:`failing`)."""
        try:
            out = fn()
        except Exception as exc:
            self._failed(f"{type(exc).__name__}: {exc}")
            return None
        if self.last is not None:
            self.log.info("%s recovered", self.name)
            self.last = None
        return out

    def _failed(self, msg: str) -> None:
        if msg != self.last:
            self.log.warning("%s failed: %s", self.name, msg,
                             exc_info=self.log.isEnabledFor(logging.DEBUG))
            self.last, self.repeats = msg, 0
            return
        self.repeats += 1
        if self.repeats in (10, 100) or self.repeats % 1000 == 0:
            self.log.warning("%s still failing (%d times): %s", self.name, self.repeats, msg)


def stop_on_signals(stop: threading.Event | None = None) -> threading.Event:
    """An event that SIGTERM and SIGINT set (call from the main thread)."""
    event = stop if stop is not None else threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: event.set())
    return event


def touch(path: str | Path) -> None:
    """Heartbeat for container health checks: the file's mtime is the last loop."""
    p = Path(path)
    try:
        p.touch()
    except FileNotFoundError:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.touch()


def backoff_cap(interval: float) -> float:
    """The longest wait after repeated failures: four intervals, at most 10 s (never less
    than one interval), so a daemon notices a restarted node within seconds."""
    return max(interval, min(10.0, 4 * interval))


def run_daemon(step: Callable[[], Any], *, name: str, interval: float,
               stop: threading.Event, logger: logging.Logger | None = None,
               max_seconds: float | None = None, heartbeat: str | Path | None = None) -> int:
    """Call ``step`` every ``interval`` seconds until ``stop`` is set or ``max_seconds``
    have passed; returns how many steps succeeded. See the module docstring."""
    guard = Guard(name, logger)
    start = time.monotonic()
    succeeded = 0
    delay = interval
    while not stop.is_set():
        guard(step)
        if guard.failing:
            delay = min(delay * 2, backoff_cap(interval))
        else:
            succeeded += 1
            delay = interval
        if heartbeat:
            touch(heartbeat)
        if max_seconds is not None and time.monotonic() - start > max_seconds:
            break
        stop.wait(delay)
    return succeeded
