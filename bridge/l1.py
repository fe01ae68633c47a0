"""Sending L1 transactions: build, sign, submit, wait, and decode custom-error reverts.

Works on any Web3 (a real RPC endpoint, anvil, or the embedded py-evm chain). The
development backends themselves (``embedded_web3``, ``start_anvil``) and chain control
(``advance_time``, ``mine``, ``snapshot``, ``revert``) live in :mod:`devtools.l1`:
production code never starts a chain or moves its clock.
"""

from __future__ import annotations

import ast
import contextlib
import re
from typing import Any

from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.exceptions import (
    ContractCustomError,
    ContractLogicError,
    TimeExhausted,
    TransactionNotFound,
    Web3RPCError,
)
from web3.types import TxReceipt

from bridge.contracts import decode_error
from state_machine.types import Wei


def latest_timestamp(w3: Web3) -> int:
    return int(w3.eth.get_block("latest")["timestamp"])


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


def send_value(w3: Web3, sender: Sender, to: str, value: Wei | int) -> TxReceipt:
    """Plain ETH transfer (used to fund treasuries/contracts in tests and scripts)."""
    tx = {"to": Web3.to_checksum_address(to), "value": value}
    return submit(w3, sender, tx, what="transfer")


def gas_cost(receipt: TxReceipt) -> Wei:
    """Wei paid for gas by a transaction."""
    return Wei(int(receipt["gasUsed"]) * int(receipt["effectiveGasPrice"]))
