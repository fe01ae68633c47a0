"""Crash safety: a node process is SIGKILLed at random points while it acknowledges
actions, 20 times. After every restart each acknowledged action is in the database
(included in a block or still queued), and replaying the chain from genesis reproduces
every stored state root and block hash."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
from node_process import start_node_process
from sqlalchemy import select

from rollup.wire import unhex
from sequencer.replay import replay_chain
from sequencer.store import Store, actions
from state_machine.actions import AdvanceBody, make_action
from state_machine.crypto import public_key

from .helpers import CHAIN_ID, task_params

TOKEN = "crash-test-token"
CYCLES = 20


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(db_url: str, port: int, tmp: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "FLOCKCHAIN_ADMIN_TOKEN": TOKEN}  # never on argv
    return start_node_process(
        ["--db", db_url, "--chain-id", str(CHAIN_ID), "--block-time", "0.03",
         "--key", str(tmp / "seq.key"), "--snapshot-interval", "7", "--log-level", "warning"],
        port, tmp, env)


class Load:
    """Client threads that submit until told to stop; records only acked actions."""

    def __init__(self, url: str, rng: random.Random) -> None:
        self.url = url
        self.acked: list[bytes] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.rng = rng
        self.l1_block = 1000

    def _record(self, r: httpx.Response) -> None:
        if r.status_code == 202:
            with self.lock:
                self.acked.append(unhex(r.json()["action_hash"]))

    def deposits(self, cycle: int) -> None:
        with httpx.Client(base_url=self.url, timeout=5) as http:
            i = 0
            while not self.stop.is_set():
                i += 1
                seed = os.urandom(32)
                self.l1_block += 1
                body = {"l1_address": "0x" + os.urandom(20).hex(),
                        "pubkey": "0x" + public_key(seed).hex(), "amount": str(10**17),
                        "l1_block": self.l1_block, "log_index": 0,
                        "tx_hash": "0x" + "11" * 32}
                try:
                    r = http.post("/v1/admin/system", json={"type": "l1_deposit", "body": body},
                                  headers={"authorization": f"Bearer {TOKEN}"})
                except httpx.TransportError:
                    return
                self._record(r)

    def signed(self) -> None:
        with httpx.Client(base_url=self.url, timeout=5) as http:
            while not self.stop.is_set():
                seed = os.urandom(32)
                sa = make_action(seed, "advance", CHAIN_ID, 0, AdvanceBody(1, 0),
                                 public_key(seed))
                try:
                    r = http.post("/v1/actions", content=sa.encode(),
                                  headers={"content-type": "application/msgpack"})
                except httpx.TransportError:
                    return
                self._record(r)


def _stored(db_url: str) -> dict[bytes, str]:
    store = Store(db_url)
    try:
        with store.engine.connect() as conn:
            return {bytes(h): s for h, s in conn.execute(select(actions.c.hash, actions.c.status))}
    finally:
        store.close()


def test_sigkill_twenty_times(tmp_path: Path, db_url: str) -> None:
    """On SQLite and on PostgreSQL (the ``db_url`` fixture)."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    rng = random.Random(1234)
    load = Load(url, rng)
    t0 = time.monotonic()
    heights = []
    for cycle in range(CYCLES + 1):
        proc = _start(db_url, port, tmp_path)
        try:
            stored = _stored(db_url)
            missing = [h.hex() for h in load.acked if h not in stored]
            assert not missing, f"cycle {cycle}: acked actions lost: {missing[:3]}"
            assert set(stored.values()) <= {"queued", "included", "rejected"}
            store = Store(db_url)
            try:
                rep = replay_chain(store)
            finally:
                store.close()
            assert rep.ok, rep.to_json()
            heights.append(rep.head_height)
            if cycle == CYCLES:
                break
            if cycle == 0:
                genesis = np.zeros(8, dtype=np.int32)
                body = {"task_id": 1, "owner": "0x" + "22" * 20, "spec_hash": "0x" + "33" * 32,
                        "max_epochs": 2, "target_accuracy_bps": 9000,
                        "task_params": "0x" + task_params(8, genesis).encode().hex(),
                        "escrow": str(2 * 10**16), "l1_block": 999, "log_index": 0,
                        "tx_hash": "0x" + "44" * 32}
                r = httpx.post(f"{url}/v1/admin/system", json={"type": "l1_task_created",
                                                               "body": body},
                               headers={"authorization": f"Bearer {TOKEN}"})
                assert r.status_code == 202, r.text
                load._record(r)
                deadline = time.monotonic() + 10
                while httpx.get(f"{url}/v1/tasks/1").status_code != 200:
                    assert time.monotonic() < deadline
                    time.sleep(0.02)
            load.stop.clear()
            threads = [threading.Thread(target=load.deposits, args=(cycle,)),
                       threading.Thread(target=load.signed), threading.Thread(target=load.signed)]
            for t in threads:
                t.start()
            time.sleep(rng.uniform(0.05, 0.6))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            load.stop.set()
        for t in threads:
            t.join()
    elapsed = time.monotonic() - t0
    assert len(load.acked) > 100, len(load.acked)
    assert heights[-1] > 10
    # the CLI agrees
    out = subprocess.run([sys.executable, "-m", "rollup.cli", "replay", "--db", db_url],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert '"ok": true' in out.stdout
    print(f"crash test: {len(load.acked)} acked actions, height {heights[-1]}, {elapsed:.1f}s")
