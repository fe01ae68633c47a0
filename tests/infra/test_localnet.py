"""The local network end to end: every service as its own process, two epochs, L1 finality.

``scripts/localnet start`` brings up anvil, a fresh PostgreSQL database, the node,
aggregator, verifier and four staked clients, and creates a two-epoch task. The test waits
for both epochs, for batches covering them on L1 and for the verifier to have re-executed
them, restarts the aggregator and the verifier (which must resume from its PostgreSQL
checkpoints) and runs a second, one-epoch task through the restarted services, moves
anvil's clock past the (short) challenge period, claims rewards and the first task's
refund with ``flockchain claim``, then ``scripts/localnet stop`` must leave no process
behind.

Skipped only when anvil or PostgreSQL is missing and ``CI`` is not ``"true"`` (on CI a
missing prerequisite is a failure, not a silent skip).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devtools.localnet import (
    DEFAULT_PG_URL,
    Localnet,
    pid_alive,
    prerequisites,
    proc_start_time,
)

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "localnet"

# Test networks live here (not in pytest's rotating tmp dirs) so that one left behind by a
# killed test run can still be found and stopped by the next run.
NETS = Path(tempfile.gettempdir()) / "flockchain-localnet-tests"

pytestmark = [pytest.mark.slow, pytest.mark.anvil, pytest.mark.postgres,
              pytest.mark.timeout(420)]


def _localnet(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHON": sys.executable})


def cli_argv(*args: str) -> dict[str, Any]:
    r = subprocess.run([sys.executable, "-m", "rollup.cli", *args], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def _wait(what: str, fn: Any, timeout: float, net: Localnet) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = fn()
        except (httpx.HTTPError, KeyError, ValueError):
            value = None
        if value:
            return value
        dead = [s.name for s in net.services if not s.alive()]
        if time.monotonic() > deadline or dead:
            logs = "\n".join(f"--- {s.name}\n{Path(s.log).read_text()[-1500:]}"
                             for s in net.services)
            pytest.fail(f"timed out waiting for {what} (dead: {dead})\n{logs}")
        time.sleep(0.5)


def reap_abandoned() -> list[str]:
    """Stop networks whose test process is gone (SIGKILLed run, CI timeout): by the PIDs
    their state file records, start times checked, and drop their databases."""
    reaped = []
    for d in NETS.glob("*") if NETS.is_dir() else []:
        try:
            owner = json.loads((d / "owner.json").read_text())
        except (OSError, ValueError):
            owner = {"pid": -1, "start_time": None}
        if owner["pid"] > 0 and pid_alive(owner["pid"], owner["start_time"]):
            continue  # another test run, still going
        with contextlib.suppress(Exception):
            Localnet(d / "net").stop(timeout=5, drop_db=True)
        shutil.rmtree(d, ignore_errors=True)
        reaped.append(d.name)
    return reaped


@contextlib.contextmanager
def _sigterm_runs_finally() -> Iterator[None]:
    """A SIGTERM (``timeout``, a CI cancel) unwinds the test so ``stop`` still runs."""
    def raise_interrupt(*_: Any) -> None:
        raise KeyboardInterrupt("SIGTERM")

    previous = signal.signal(signal.SIGTERM, raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _processes_mentioning(text: str) -> list[int]:
    out = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit() or int(p.name) == os.getpid():
            continue
        try:
            cmd = (p / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmd and pid_alive(int(p.name)):
            out.append(int(p.name))
    return out


def test_localnet_two_epochs_to_l1_finality(record_property: Any) -> None:
    missing = prerequisites(DEFAULT_PG_URL)
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail("local network prerequisites missing on CI: " + "; ".join(missing))
        pytest.skip("missing: " + "; ".join(missing))
    reaped = reap_abandoned()
    home = NETS / f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    home.mkdir(parents=True)
    (home / "owner.json").write_text(json.dumps(
        {"pid": os.getpid(), "start_time": proc_start_time(os.getpid())}))
    with _sigterm_runs_finally():
        _run_network(home / "net", record_property, reaped)
    shutil.rmtree(home, ignore_errors=True)  # kept (with its logs) when the test failed


def _run_network(net_dir: Path, record_property: Any, reaped: list[str]) -> None:
    db_name = f"flockchain_localnet_test_{os.getpid()}"
    challenge_period = 30
    t0 = time.monotonic()
    r = _localnet("start", "--dir", str(net_dir), "--anvil-port", "0", "--node-port", "0",
                  "--verifier-port", "0", "--db-name", db_name, "--clients", "4",
                  "--epochs", "2", "--challenge-period", str(challenge_period),
                  "--batch-every", "1", "--window", "40", "--block-time", "0.25")
    net = Localnet(net_dir)
    pids = [s.pid for s in net.services]
    try:
        assert r.returncode == 0, r.stderr[-4000:]
        startup_s = time.monotonic() - t0
        assert {s.name for s in net.services} == {
            "anvil", "node", "aggregator", "verifier", "client0", "client1", "client2",
            "client3"}
        assert all(s.alive() for s in net.services)
        node, verifier = net.state["node"], net.state["verifier"]
        task_id = net.state["task"]["task_id"]
        assert net.state["task"]["genesis_published"]
        assert net.state["node_db"].startswith("postgresql+psycopg://")

        # two epochs on L2
        task = _wait("two epochs", lambda: (lambda t: t if t["status"] != "running" else None)(
            httpx.get(f"{node}/v1/tasks/{task_id}", timeout=5).json()), 150, net)
        epochs_s = time.monotonic() - t0 - startup_s
        assert task["status"] == "completed" and task["epochs_run"] == 2, task
        outcomes = [httpx.get(f"{node}/v1/tasks/{task_id}/epochs/{e}", timeout=5).json()
                    for e in range(2)]
        assert all(o["outcome"] != "pending" for o in outcomes)
        height = httpx.get(f"{node}/v1/healthz", timeout=5).json()["height"]

        # batches covering both epochs on L1, re-executed by the verifier
        batches = _wait("batches on L1", lambda: (lambda b: b if b["posted"] and
                                                  b["last_height"] >= height else None)(
            net.l1_batches()), 60, net)
        health = _wait("the verifier", lambda: (lambda h: h if h["verified_height"] >= height
                                                 else None)(
            httpx.get(f"{verifier}/healthz", timeout=5).json()), 60, net)
        assert health["ok"] and health["challenges"] == [] and health["db"]
        metrics = httpx.get(f"{verifier}/metrics", timeout=5).text
        assert "flockchain_verifier_batches_verified" in metrics

        # restarts: the aggregator rescans L1 and skips what L2 has, the verifier resumes
        # from its PostgreSQL checkpoints; a second task then runs through both
        for service in ("aggregator", "verifier"):
            r = _localnet("restart", "--dir", str(net_dir), service, timeout=60)
            assert r.returncode == 0, r.stderr
        net = Localnet(net_dir)
        pids += [s.pid for s in net.services if s.pid not in pids]
        verifier = net.state["verifier"]
        resumed = _wait("the verifier to resume", lambda: httpx.get(
            f"{verifier}/healthz", timeout=5).json()["resumed_from"] is not None, 60, net)
        assert resumed
        task2 = cli_argv("task", "create", "--l1", net.state["l1"], "--deployment",
                     net.state["deployment"], "--key-file",
                     str(net_dir / "keys" / "task_owner.l1"), "--epochs", "1",
                     "--node", node, "--wait", "60")
        assert task2["genesis_published"] and task2["task_id"] == task_id + 1
        done2 = _wait("the second task", lambda: (lambda t: t if t["status"] != "running"
                                                  else None)(httpx.get(
            f"{node}/v1/tasks/{task2['task_id']}", timeout=5).json()), 90, net)
        assert done2["epochs_run"] == 1
        height = httpx.get(f"{node}/v1/healthz", timeout=5).json()["height"]
        batches = _wait("batches on L1", lambda: (lambda b: b if b["last_height"] >= height
                                                  else None)(net.l1_batches()), 60, net)
        health = _wait("the verifier", lambda: (lambda h: h if h["verified_height"] >= height
                                                 else None)(
            httpx.get(f"{verifier}/healthz", timeout=5).json()), 60, net)
        assert health["challenges"] == []

        # finality: anvil's clock past the challenge period
        r = _localnet("finalize", "--dir", str(net_dir))
        assert r.returncode == 0, r.stderr
        final = json.loads(r.stdout)
        assert final["latest_final"] is not None
        assert final["latest_final"] >= batches["posted"] - 1

        # settlement through the CLI: a reward and the task refund
        common = ["--node", node, "--l1", net.state["l1"], "--deployment",
                  net.state["deployment"]]
        claims = []
        for c in net.state["clients"]:
            out = cli_argv("claim", *common, "--key-file", c["key"], "--l1-key-file",
                       str(net_dir / "keys" / f"{c['name']}.l1"))
            claims.append(out)
        paid = [c for c in claims if c["status"] == "claimed"]
        assert paid and all(c["paid"] > 0 for c in paid), claims
        refund = cli_argv("claim", *common, "--refund", str(task_id), "--l1-key-file",
                      str(net_dir / "keys" / "task_owner.l1"))
        assert refund["status"] == "refunded", refund

        status = _localnet("status", "--dir", str(net_dir))
        assert status.returncode == 0
        assert json.loads(status.stdout)["l2"]["tasks"][0]["status"] == "completed"
        measured = {"startup_s": round(startup_s, 1), "epochs_s": round(epochs_s, 1),
                    "epochs": task["epochs_run"] + done2["epochs_run"],
                    "outcomes": [o["outcome"] for o in outcomes],
                    "l2_height": height, "batches_posted": final["posted"],
                    "latest_final_batch": final["latest_final"],
                    "verified_batches": health["verified_batches"],
                    "rewards_claimed": len(paid), "total_s": round(time.monotonic() - t0, 1),
                    "abandoned_networks_reaped": len(reaped)}
        for k, v in measured.items():
            record_property(k, v)
        print("localnet:", json.dumps(measured))
    finally:
        stop = _localnet("stop", "--dir", str(net_dir), "--drop-db", timeout=60)
    assert stop.returncode == 0, stop.stdout + stop.stderr
    assert set(json.loads(stop.stdout)["stopped"].values()) <= {"terminated", "killed"}
    left = [p for p in pids if pid_alive(p)]
    assert not left, f"processes left: {left}"
    assert not _processes_mentioning(str(net_dir)), "a service outlived stop"
    import psycopg

    with psycopg.connect(DEFAULT_PG_URL, connect_timeout=5) as conn:
        left_dbs = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s",
                                (db_name + "%",)).fetchall()
    assert not left_dbs, f"--drop-db left {left_dbs}"
