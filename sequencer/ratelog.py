"""Rate-limited logging: a fault that repeats (a full disk fails every write) logs its
first occurrence with a traceback, then at most one line per ``every_s`` seconds with the
number of occurrences it stood for, so the log cannot fill the disk it is complaining about
(a full disk once produced 3.3 MB of tracebacks in 17 s).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any


class RateLimitedLog:
    def __init__(self, logger: logging.Logger, every_s: float = 60.0) -> None:
        self.logger = logger
        self.every_s = every_s
        self._lock = threading.Lock()
        self._last = -float("inf")
        self._suppressed = 0

    def _due(self) -> int | None:
        with self._lock:
            now = time.monotonic()
            if now - self._last < self.every_s:
                self._suppressed += 1
                return None
            self._last, n, self._suppressed = now, self._suppressed, 0
            return n

    def exception(self, msg: str, *args: Any) -> None:
        n = self._due()
        if n is not None:
            self.logger.error(msg + (f" ({n} more since the last report)" if n else ""), *args,
                              exc_info=True)

    def error(self, msg: str, *args: Any) -> None:
        n = self._due()
        if n is not None:
            self.logger.error(msg + (f" ({n} more since the last report)" if n else ""), *args)
