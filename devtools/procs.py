"""Processes of the local network: start times, liveness, ports, logs, termination.

Why start times: ``localnet stop`` may run long after ``start`` (another shell, a killed
test run), so a PID alone might by then name someone else's process; a PID is signalled
only while its start time in ``/proc`` still matches the one recorded at launch.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

# Environment a child must not inherit: it would override what the local network chose
# (e.g. FLOCKCHAIN_CLIENT_SEED would give every client the same key).
_KEEP_ENV = ("FLOCKCHAIN_ANVIL", "FLOCKCHAIN_ARTIFACTS_DIR")


class LocalnetError(RuntimeError):
    """The local network could not be started, or its folder is not usable."""


def proc_start_time(pid: int) -> int | None:
    """The process's start time (clock ticks since boot) from /proc; None if unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def _proc_state(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def pid_alive(pid: int, start_time: int | None = None) -> bool:
    """Running (not a zombie) and, if ``start_time`` is known, still the same process."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)  # reap it if it is our own exited child
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False  # someone else's process: never ours
    if _proc_state(pid) in ("Z", "X"):
        return False
    if start_time is not None:
        now = proc_start_time(pid)
        if now is not None and now != start_time:
            return False  # the PID was recycled
    return True


@dataclass
class Service:
    name: str
    pid: int
    start_time: int | None
    argv: list[str]
    log: str
    secret_env: list[str] = field(default_factory=list)  # read from keys/ at (re)start

    def alive(self) -> bool:
        return pid_alive(self.pid, self.start_time)


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("FLOCKCHAIN_") or k in _KEEP_ENV}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def cli_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "rollup.cli", *args]


def port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def pick_port(port: int, what: str, flag: str) -> int:
    if port == 0:
        from devtools.l1 import free_port

        return free_port()
    if not port_free(port):
        raise LocalnetError(f"port {port} for {what} is busy (use {flag} 0 for a free one)")
    return port


def tail(path: str | Path, lines: int = 30) -> str:
    try:
        return "".join(Path(path).read_text(errors="replace").splitlines(True)[-lines:])
    except OSError:
        return ""


def terminate(services: list[Service], timeout: float) -> dict[str, str]:
    """SIGTERM every live service (in the given order), SIGKILL what is left after
    ``timeout``; returns ``{service: outcome}``."""
    outcome: dict[str, str] = {}
    live = []
    for s in services:
        if s.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(s.pid, signal.SIGTERM)
            live.append(s)
        else:
            outcome[s.name] = "not running"
    deadline = time.monotonic() + timeout
    while any(s.alive() for s in live) and time.monotonic() < deadline:
        time.sleep(0.1)
    for s in live:
        if s.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(s.pid, signal.SIGKILL)
            outcome[s.name] = "killed"
        else:
            outcome[s.name] = "terminated"
    kill_deadline = time.monotonic() + 5
    while any(s.alive() for s in live) and time.monotonic() < kill_deadline:
        time.sleep(0.05)
    for s in live:
        if s.alive():
            outcome[s.name] = "still running"
    return outcome


def write_secret(path: Path, text: str) -> None:
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text + "\n")
