"""Start ``flockchain node`` as a subprocess and wait until it answers ``/v1/healthz``.

Why shared: the SIGKILL tests (actions in ``tests/node/test_crash.py``, chunked uploads in
``tests/blobs/test_blob_crash.py``) restart a real node process many times; both need the
same start-and-wait with the node's log in the failure message.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx


def start_node_process(args: list[str], port: int, tmp: Path,
                       env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """``python -m rollup.cli node --port PORT *args``; stderr appended to ``tmp/node.log``."""
    cmd = [sys.executable, "-m", "rollup.cli", "node", "--port", str(port), *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(tmp / "node.log", "ab"),
                            env=env)
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"node did not start: {(tmp / 'node.log').read_text()[-2000:]}")
        time.sleep(0.02)
