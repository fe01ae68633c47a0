"""kill -9 during chunked uploads: a node subprocess is SIGKILLed while a client streams
chunks into it. After every restart: each acked chunk is still held (the upload resumes
from it), each acked blob is served whole, and no file in the blob store is a half blob
(every stored blob hashes to its name)."""

from __future__ import annotations

import random
import signal
import subprocess
import threading
import time
from pathlib import Path

import httpx
import numpy as np
from node_process import start_node_process

from blobstore import FsBlobStore
from blobstore.uploads import declaration_message
from rollup.keys import Keypair
from state_machine.chunks import chunk_span, verify_blob
from state_machine.crypto import keccak256

from .conftest import free_port

CS = 256 * 1024
CYCLES = 8
KEY = Keypair.from_seed(b"\x0c" * 32)


def _start(tmp: Path, port: int) -> subprocess.Popen[bytes]:
    return start_node_process(
        ["--db", f"sqlite:///{tmp}/chain.db", "--chain-id", "7", "--block-time", "0.2",
         "--key", str(tmp / "seq.key"), "--blob-dir", str(tmp / "blobs"),
         "--log-level", "warning"], port, tmp)


class Uploader:
    """Uploads blobs one after another (resuming after each cut); records only acks."""

    def __init__(self, url: str, blobs: list[bytes]) -> None:
        self.url, self.blobs = url, blobs
        self.vbs = [verify_blob(b, CS) for b in blobs]
        self.acked_chunks: set[tuple[int, int]] = set()
        self.acked_blobs: set[int] = set()
        self.stop = threading.Event()

    def _decl(self, k: int) -> dict[str, object]:
        vb = self.vbs[k]
        sig = KEY.sign(declaration_message(vb.keccak, vb.size, CS, vb.root))
        return {"hash": vb.keccak.hex(), "size": vb.size, "chunk_size": CS,
                "chunk_hashes": [h.hex() for h in vb.chunk_hashes], "root": vb.root.hex(),
                "sender": KEY.pubkey.hex(), "signature": sig.hex()}

    def run(self) -> None:
        try:
            with httpx.Client(base_url=self.url, timeout=5) as http:
                for k in range(len(self.blobs)):
                    if k not in self.acked_blobs and not self._one(http, k):
                        return
        except httpx.TransportError:
            return

    def _one(self, http: httpx.Client, k: int) -> bool:
        vb, data = self.vbs[k], self.blobs[k]
        st = http.post("/v1/blobs/uploads", json=self._decl(k)).json()
        for i in st["missing"]:
            if self.stop.is_set():
                return False
            a, b = chunk_span(vb.size, CS, i)
            if http.put(f"/v1/blobs/{vb.keccak.hex()}/chunks/{i}",
                        content=data[a:b]).status_code == 200:
                self.acked_chunks.add((k, i))
        if http.post(f"/v1/blobs/{vb.keccak.hex()}/complete").status_code in (200, 201):
            self.acked_blobs.add(k)
        return True


def _check_after_restart(url: str, up: Uploader, blob_dir: Path) -> int:
    """Returns how many uploads the kill left unfinished with acked chunks."""
    partial = 0
    store = FsBlobStore(blob_dir)
    for key in store.keys():  # no half blob: every visible blob is exactly its content
        assert keccak256(store.path(key).read_bytes()) == key
    with httpx.Client(base_url=url, timeout=10) as http:
        for k in up.acked_blobs:
            vb = up.vbs[k]
            assert http.get(f"/v1/blobs/{vb.keccak.hex()}").content == up.blobs[k]
        for k in {k for k, _ in up.acked_chunks} - up.acked_blobs:
            vb = up.vbs[k]
            r = http.get(f"/v1/blobs/uploads/{vb.keccak.hex()}").json()
            if r["complete"]:  # completed, but the 201 was cut by the kill
                continue
            held = {i for kk, i in up.acked_chunks if kk == k}
            assert not held & set(r["missing"]), f"acked chunks lost: {held & set(r['missing'])}"
            assert http.get(f"/v1/blobs/{vb.keccak.hex()}/meta").status_code == 404
            partial += 1
    return partial


def test_sigkill_during_chunked_uploads(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    blobs = [rng.integers(0, 256, size=3 * CS + 1000 * k, dtype=np.uint8).tobytes()
             for k in range(24)]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    up = Uploader(url, blobs)
    pick = random.Random(9)
    cut_midway = 0
    for cycle in range(CYCLES + 1):
        proc = _start(tmp_path, port)
        try:
            cut_midway += _check_after_restart(url, up, tmp_path / "blobs")
            if cycle == CYCLES:
                up.stop.clear()
                up.run()  # no kill: everything finishes from where it stopped
                assert up.acked_blobs == set(range(len(blobs)))
                _check_after_restart(url, up, tmp_path / "blobs")
                break
            up.stop.clear()
            t = threading.Thread(target=up.run)
            target = len(up.acked_chunks) + pick.randint(1, 6)
            t.start()
            # kill right after a random number of chunk acks (not after a random delay: on
            # a fast machine whole uploads fit between two delays, so no kill lands mid-way)
            deadline = time.monotonic() + 30
            while (len(up.acked_chunks) < target and t.is_alive()
                   and time.monotonic() < deadline):
                time.sleep(0.0005)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            up.stop.set()
        t.join()
    assert cut_midway >= 2, "the kills never hit an upload in flight"
