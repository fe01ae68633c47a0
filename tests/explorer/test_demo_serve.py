"""``flockchain demo --serve`` leaves a node up whose explorer shows the demo's task, every
epoch and every verdict with its reason; ``flockchain node --db`` then serves that chain.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import httpx
import pytest

pytestmark = pytest.mark.slow
ENV = {**os.environ, "PYTHONHASHSEED": "0"}


def _wait_line(proc: subprocess.Popen, pattern: str, timeout: float) -> re.Match:
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                break
            continue
        seen.append(line)
        m = re.search(pattern, line)
        if m:
            return m
    raise AssertionError(f"no line matching {pattern!r}; output:\n{''.join(seen[-30:])}")


def _check_explorer(url: str) -> None:
    task = httpx.get(f"{url}/v1/tasks/1").json()
    n = task["epochs_run"]
    assert n >= 1
    page = httpx.get(f"{url}/explorer/tasks/1").text
    assert page.count('class="epoch-row"') == n
    assert 'id="chart-accuracy"' in page and f'data-points="{n}"' in page
    flagged = 0
    for e in range(n):
        rec = httpx.get(f"{url}/v1/tasks/1/epochs/{e}").json()
        html = httpx.get(f"{url}/explorer/tasks/1/epochs/{e}").text
        for s in rec["scores"]:
            assert f'data-pubkey="{s["pubkey"]}" data-verdict="{s["verdict"]}"' in html
            for reason in s["reasons"]:
                assert f"<code>{reason}</code>" in html
                flagged += 1
    assert flagged > 0  # the demo's attackers were caught, and the page says why


def test_demo_serve_then_node_serves_the_same_chain(tmp_path) -> None:
    db = f"sqlite:///{tmp_path}/demo.db"
    demo = subprocess.Popen(
        [sys.executable, "-m", "rollup.cli", "demo", "--quick", "--epochs", "2", "--quiet",
         "--serve", "--db", db], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env=ENV)
    try:
        url = _wait_line(demo, r"explorer: (http://\S+)/explorer/", 400).group(1)
        _check_explorer(url)
    finally:
        demo.send_signal(signal.SIGTERM)
        assert demo.wait(60) == 0
    node = subprocess.Popen(
        [sys.executable, "-m", "rollup.cli", "node", "--db", db, "--port", "0",
         "--key", str(tmp_path / "node.key"), "--log-level", "warning"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV)
    try:
        line = _wait_line(node, r"\{.*listening.*\}", 60).group(0)
        url = json.loads(line)["url"]
        deadline = time.monotonic() + 30
        while True:
            try:
                health = httpx.get(f"{url}/v1/healthz").json()
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline
                time.sleep(0.2)
        assert health["chain_id"] == 31_337
        _check_explorer(url)
    finally:
        node.send_signal(signal.SIGTERM)
        node.wait(30)
