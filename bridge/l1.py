"""L1 connections for development and tests: an embedded chain and a local anvil node.

Both backends expose the same helpers (``advance_time``, ``mine``, ``snapshot``, ``revert``,
``send``), so code and tests run unchanged on either:

- ``embedded_web3()``: py-evm inside this process (eth-tester); no external binary, funded
  unlocked accounts, each block one second after the previous one.
- ``start_anvil()``: the ``anvil`` binary from npm (``node_modules/@foundry-rs``) on
  127.0.0.1, a real JSON-RPC endpoint other processes (the node, the verifier) can share.
"""

from __future__ import annotations

import ast
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

from eth_account.signers.local import LocalAccount
from web3 import EthereumTesterProvider, Web3
from web3.exceptions import (
    ContractCustomError,
    ContractLogicError,
    TimeExhausted,
    TransactionNotFound,
    Web3RPCError,
)
from web3.types import TxReceipt

from bridge.contracts import decode_error

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


def latest_timestamp(w3: Web3) -> int:
    return int(w3.eth.get_block("latest")["timestamp"])


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


# ---------------------------------------------------------------------------------------
# Transactions


class TxFailed(RuntimeError):
    """A transaction reverted; ``error`` is the decoded custom error name (if any)."""

    def __init__(self, message: str, error: str | None = None, args: tuple[Any, ...] = ()):
        super().__init__(message)
        self.error = error
        self.error_args = args


Sender = str | LocalAccount


def _revert_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [ContractCustomError, ContractLogicError, Web3RPCError]
    with contextlib.suppress(ImportError):
        from eth_tester.exceptions import TransactionFailed

        errors.append(TransactionFailed)
    return tuple(errors)


REVERT_ERRORS = _revert_errors()


def sender_address(sender: Sender) -> str:
    """The address of an unlocked-account string or a LocalAccount."""
    return sender.address if isinstance(sender, LocalAccount) else Web3.to_checksum_address(sender)


def _data_of(exc: BaseException) -> str | None:
    data = getattr(exc, "data", None)
    if isinstance(data, str) and data.startswith("0x"):
        return data
    if isinstance(data, dict):
        inner = data.get("data")
        if isinstance(inner, str) and inner.startswith("0x"):
            return inner
    for arg in getattr(exc, "args", ()):
        if isinstance(arg, bytes | bytearray) and len(arg) >= 4:
            return "0x" + bytes(arg).hex()  # eth-tester: raw revert output
        if isinstance(arg, dict):
            inner = arg.get("data")
            if isinstance(inner, str) and inner.startswith("0x"):
                return inner
        if isinstance(arg, str):
            m = _BYTES_REPR.search(arg)  # eth-tester: "execution reverted: b'...'"
            if m:
                with contextlib.suppress(ValueError, SyntaxError):
                    raw = ast.literal_eval(m.group(0))
                    if isinstance(raw, bytes) and len(raw) >= 4:
                        return "0x" + raw.hex()
            m = re.search(r"0x[0-9a-fA-F]{8,}", arg)
            if m:
                return m.group(0)
    return None


_BYTES_REPR = re.compile(r"b'(?:[^'\\]|\\.)*'" + r'|b"(?:[^"\\]|\\.)*"')


def revert_data(exc: BaseException) -> str | None:
    """The hex revert data carried by a web3 / eth-tester exception (or its causes), if any."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        data = _data_of(cur)
        if data:
            return data
        cur = cur.__cause__ or cur.__context__
    return None


def decode_revert(exc: BaseException) -> tuple[str, tuple[Any, ...]] | None:
    """``(ErrorName, args)`` of a custom-error revert raised by web3, else ``None``."""
    data = revert_data(exc)
    return decode_error(data) if data else None


def _as_tx_failed(exc: BaseException, what: str) -> TxFailed:
    decoded = decode_revert(exc)
    if decoded is None:
        return TxFailed(f"{what} reverted: {exc}")
    return TxFailed(f"{what} reverted with {decoded[0]}{decoded[1]}", *decoded)


def submit(
    w3: Web3,
    sender: Sender,
    tx: dict[str, Any],
    *,
    what: str = "transaction",
    receipt_timeout: float = 120.0,
    retries: int = 3,
) -> TxReceipt:
    """Send the prepared transaction ``tx`` from ``sender`` (an unlocked address, or a
    ``LocalAccount`` that signs locally; missing nonce, chain id, gas and price are filled in)
    and wait for the receipt. Raises ``TxFailed`` (with the decoded custom error) on revert.

    Dropped or stuck transactions: when no receipt arrives within ``receipt_timeout``, a
    locally signed transaction is re-sent with the *same nonce* and a 25 % higher gas price
    (a replacement), up to ``retries`` times; whichever of the sent hashes gets mined wins,
    so a retry can never execute the call twice.
    """
    frm = sender_address(sender)
    tx = {**tx, "from": frm}
    sent: list[Any] = []
    for attempt in range(retries + 1):
        try:
            if isinstance(sender, LocalAccount):
                tx.setdefault("nonce", w3.eth.get_transaction_count(frm, "pending"))
                tx.setdefault("chainId", w3.eth.chain_id)
                if "gas" not in tx:
                    tx["gas"] = w3.eth.estimate_gas(tx)  # type: ignore[arg-type]
                if "gasPrice" not in tx and "maxFeePerGas" not in tx:
                    tx["gasPrice"] = w3.eth.gas_price
                raw = sender.sign_transaction(tx).raw_transaction
                sent.append(w3.eth.send_raw_transaction(raw))
            else:
                sent.append(w3.eth.send_transaction(tx))  # type: ignore[arg-type]
        except REVERT_ERRORS as exc:
            mined = _any_receipt(w3, sent)  # "nonce too low": an earlier attempt was mined
            if mined is not None:
                return _checked(mined, what)
            raise _as_tx_failed(exc, what) from exc
        try:
            receipt = w3.eth.wait_for_transaction_receipt(sent[-1], timeout=receipt_timeout)
            return _checked(receipt, what)
        except TimeExhausted:
            mined = _any_receipt(w3, sent)
            if mined is not None:
                return _checked(mined, what)
            if not isinstance(sender, LocalAccount) or attempt == retries:
                raise
            tx["gasPrice"] = int(tx.get("gasPrice", w3.eth.gas_price)) * 5 // 4 + 1
    raise AssertionError("unreachable")


def _any_receipt(w3: Web3, hashes: list[Any]) -> TxReceipt | None:
    for h in hashes:
        try:
            return w3.eth.get_transaction_receipt(h)
        except TransactionNotFound:
            continue
    return None


def _checked(receipt: TxReceipt, what: str) -> TxReceipt:
    if receipt["status"] != 1:
        raise TxFailed(f"{what} {bytes(receipt['transactionHash']).hex()} failed in block "
                       f"{receipt['blockNumber']}")
    return receipt


def build(call: Any, sender: Sender, *, value: int = 0, gas: int | None = None) -> dict[str, Any]:
    """The transaction dict for ``call`` (a bound contract function or constructor); raises
    ``TxFailed`` if it would revert (gas estimation executes it)."""
    params: dict[str, Any] = {"from": sender_address(sender), "value": value}
    if gas is not None:
        params["gas"] = gas
    try:
        return dict(call.build_transaction(params))
    except REVERT_ERRORS as exc:
        raise _as_tx_failed(exc, "transaction") from exc


def send(
    w3: Web3, call: Any, sender: Sender, *, value: int = 0, gas: int | None = None
) -> TxReceipt:
    """Send ``call`` (a bound contract function, e.g. ``c.functions.stake(pk)``) from
    ``sender`` and wait for the receipt; ``TxFailed`` on revert (see ``submit``)."""
    return submit(w3, sender, build(call, sender, value=value, gas=gas))


def send_value(w3: Web3, sender: Sender, to: str, value: int) -> TxReceipt:
    """Plain ETH transfer (used to fund treasuries/contracts in tests and scripts)."""
    tx = {"to": Web3.to_checksum_address(to), "value": value}
    return submit(w3, sender, tx, what="transfer")


def gas_cost(receipt: TxReceipt) -> int:
    """Wei paid for gas by a transaction."""
    return int(receipt["gasUsed"]) * int(receipt["effectiveGasPrice"])
