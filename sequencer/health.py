"""Whether the node's writes are succeeding (``/v1/healthz`` reports it).

Why: a node whose disk is full still answered ``ok`` while every write failed. The writer
thread records the outcome of each transaction here; the node is *degraded* while the
latest write failed, and *read-only* when it could not write at start-up (it then serves
reads and refuses submissions with 503 ``read_only`` instead of not starting at all).
"""

from __future__ import annotations

import threading
import time


class WriteHealth:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.last_ok: float | None = None
        self.last_failed: float | None = None
        self.last_error: str | None = None
        self.failures = 0
        self.read_only = False

    def ok(self) -> None:
        with self._lock:
            self.last_ok = time.time()

    def failed(self, exc: BaseException) -> None:
        with self._lock:
            self.last_failed = time.time()
            self.last_error = f"{type(exc).__name__}: {str(exc)[:200]}"
            self.failures += 1

    @property
    def degraded(self) -> bool:
        """The latest write failed (or none could be made: read-only)."""
        with self._lock:
            if self.read_only:
                return True
            return self.last_failed is not None and (self.last_ok is None
                                                     or self.last_failed >= self.last_ok)

    @property
    def status(self) -> str:
        if self.read_only:
            return "read_only"
        return "degraded" if self.degraded else "ok"
