"""Development L1 backends and chain control: an embedded chain and a local anvil node.

Both backends expose the same helpers (``advance_time``, ``mine``, ``snapshot``, ``revert``,
plus ``bridge.l1.send``), so code and tests run unchanged on either:

- ``embedded_web3()``: py-evm inside this process (eth-tester); no external binary, funded
  unlocked accounts, each block one second after the previous one.
- ``start_anvil()``: the ``anvil`` binary from npm (``node_modules/@foundry-rs``) on
  127.0.0.1, a real JSON-RPC endpoint other processes (the node, the verifier) can share.

Moved out of ``bridge/l1.py`` (issue 9): production code never starts a chain or moves its
clock, and ``.importlinter`` keeps it from importing this module.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from web3 import EthereumTesterProvider, Web3

from bridge.l1 import latest_timestamp

REPO_ROOT = Path(__file__).resolve().parent.parent
ANVIL_ENV = "FLOCKCHAIN_ANVIL"
ANVIL_RELATIVE = Path("node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil")
ANVIL_HARDFORK = "prague"

# ---------------------------------------------------------------------------------------
# Backends


def embedded_web3(num_accounts: int = 10) -> Web3:
    """A Web3 over an in-process py-evm chain with ``num_accounts`` funded, unlocked accounts
    (1,000,000 ETH each)."""
    from eth_tester import EthereumTester, PyEVMBackend

    state = PyEVMBackend.generate_genesis_state(num_accounts=num_accounts)
    tester = EthereumTester(backend=PyEVMBackend(genesis_state=state))
    return Web3(EthereumTesterProvider(tester))


def is_embedded(w3: Web3) -> bool:
    return isinstance(w3.provider, EthereumTesterProvider)


def anvil_binary() -> Path | None:
    """The anvil executable: ``$FLOCKCHAIN_ANVIL``, the npm package's binary, or ``PATH``."""
    env = os.environ.get(ANVIL_ENV)
    if env:
        return Path(env) if Path(env).is_file() else None
    candidates = [REPO_ROOT / ANVIL_RELATIVE]
    candidates += sorted((REPO_ROOT / "node_modules/@foundry-rs").glob("anvil-*/bin/anvil"))
    for c in candidates:
        if c.is_file() and os.access(c, os.X_OK):
            return c
    found = shutil.which("anvil")
    return Path(found) if found else None


class AnvilError(RuntimeError):
    pass


@dataclass
class AnvilProcess:
    """A running anvil node; stop it with ``stop()`` or use it as a context manager."""

    proc: subprocess.Popen[str]
    port: int
    host: str = "127.0.0.1"
    _log: deque[str] = field(default_factory=lambda: deque(maxlen=200))

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def web3(self, timeout: float = 30.0) -> Web3:
        return Web3(Web3.HTTPProvider(self.url, request_kwargs={"timeout": timeout}))

    def log_tail(self) -> str:
        return "".join(self._log)

    def running(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 5.0) -> None:
        """Terminate this anvil (by its own PID only) and wait for it."""
        if self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=timeout)

    def __enter__(self) -> AnvilProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


_LISTENING = re.compile(r"Listening on ([0-9.]+):(\d+)")


def start_anvil(
    port: int | None = None,
    *,
    accounts: int = 10,
    balance_ether: int = 10_000,
    chain_id: int | None = None,
    binary: str | os.PathLike[str] | None = None,
    extra_args: tuple[str, ...] = (),
    ready_timeout: float = 30.0,
) -> AnvilProcess:
    """Start anvil on 127.0.0.1 (``port=None``: a free port chosen by the OS) and wait until
    it answers JSON-RPC. Raises ``AnvilError`` if the binary is missing or it does not start."""
    exe = Path(binary) if binary else anvil_binary()
    if exe is None or not exe.is_file():
        raise AnvilError("anvil binary not found; run `make install` (npm ci)")
    args = [
        str(exe),
        "--host",
        "127.0.0.1",
        "--port",
        str(port if port is not None else 0),
        "--accounts",
        str(accounts),
        "--balance",
        str(balance_ether),
        "--hardfork",
        ANVIL_HARDFORK,
        *(["--chain-id", str(chain_id)] if chain_id is not None else []),
        *extra_args,
    ]
    proc = subprocess.Popen(
        args,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        bufsize=1,
    )
    log: deque[str] = deque(maxlen=200)
    found: dict[str, Any] = {}
    ready = threading.Event()

    def pump() -> None:  # keep draining stdout so anvil never blocks on a full pipe
        assert proc.stdout is not None
        for line in proc.stdout:
            log.append(line)
            if not ready.is_set():
                m = _LISTENING.search(line)
                if m:
                    found["host"], found["port"] = m.group(1), int(m.group(2))
                    ready.set()
        ready.set()

    threading.Thread(target=pump, name=f"anvil-{proc.pid}-stdout", daemon=True).start()
    node = None
    if ready.wait(ready_timeout) and "port" in found:
        node = AnvilProcess(proc=proc, port=found["port"], _log=log)
    if node is None:
        _kill(proc)
        raise AnvilError("anvil did not start:\n" + "".join(log))
    deadline = time.monotonic() + ready_timeout
    w3 = node.web3(timeout=2.0)
    while time.monotonic() < deadline:
        if not node.running():
            break
        with contextlib.suppress(Exception):
            if w3.eth.block_number >= 0:
                return node
        time.sleep(0.05)
    node.stop()
    raise AnvilError("anvil did not answer JSON-RPC:\n" + node.log_tail())


def _kill(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------------------
# Chain control (same API on both backends)


def _rpc(w3: Web3, method: str, params: list[Any]) -> Any:
    resp = w3.provider.make_request(method, params)  # type: ignore[arg-type]
    if "error" in resp:
        raise AnvilError(f"{method} failed: {resp['error']}")
    return resp.get("result")


def mine(w3: Web3, blocks: int = 1) -> None:
    """Mine ``blocks`` empty blocks."""
    if is_embedded(w3):
        w3.provider.ethereum_tester.mine_blocks(blocks)  # type: ignore[attr-defined]
    else:
        for _ in range(blocks):
            _rpc(w3, "evm_mine", [])


def advance_time(w3: Web3, seconds: int) -> int:
    """Move chain time forward by at least ``seconds`` and mine a block there.

    Afterwards the latest block's timestamp is >= the previous latest + ``seconds`` and every
    later transaction executes at a timestamp beyond it. Returns the new latest timestamp.
    """
    if seconds < 0:
        raise ValueError("time only moves forward")
    if is_embedded(w3):
        tester = w3.provider.ethereum_tester  # type: ignore[attr-defined]
        target = latest_timestamp(w3) + seconds
        pending = int(tester.get_block_by_number("pending")["timestamp"])
        if target > pending:
            tester.time_travel(target)
        tester.mine_blocks(1)
    else:
        _rpc(w3, "evm_increaseTime", [int(seconds)])
        _rpc(w3, "evm_mine", [])
    return latest_timestamp(w3)


def snapshot(w3: Web3) -> Any:
    """Snapshot the chain state; pass the result to ``revert``."""
    if is_embedded(w3):
        return w3.provider.ethereum_tester.take_snapshot()  # type: ignore[attr-defined]
    return _rpc(w3, "evm_snapshot", [])


def revert(w3: Web3, snap: Any) -> None:
    """Return to ``snap``. On anvil a snapshot is consumed by reverting to it."""
    if is_embedded(w3):
        w3.provider.ethereum_tester.revert_to_snapshot(snap)  # type: ignore[attr-defined]
    elif not _rpc(w3, "evm_revert", [snap]):
        raise AnvilError(f"evm_revert({snap}) refused")
