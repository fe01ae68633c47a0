"""A dropped transaction is replaced (same nonce, higher price) and mined exactly once."""

from __future__ import annotations

import os
import threading
import time

import pytest
from eth_account import Account

from bridge.l1 import send_value, submit
from devtools.l1 import anvil_binary, start_anvil

pytestmark = pytest.mark.anvil


def test_dropped_transaction_is_resent_with_the_same_nonce():
    if anvil_binary() is None:
        if os.environ.get("CI") == "true":
            pytest.fail("anvil binary missing in CI")
        pytest.skip("anvil not installed")
    with start_anvil() as anvil:
        w3 = anvil.web3()
        me = Account.from_key(os.urandom(32))
        send_value(w3, w3.eth.accounts[0], me.address, 10**18)
        to = Account.from_key(os.urandom(32)).address
        w3.provider.make_request("evm_setAutomine", [False])
        result: dict = {}

        def go() -> None:
            tx = {"to": to, "value": 12345, "gas": 21_000}
            result["receipt"] = submit(w3, me, tx, receipt_timeout=1.0, retries=3)

        t = threading.Thread(target=go)
        t.start()
        deadline = time.monotonic() + 10
        while not w3.provider.make_request("txpool_content", [])["result"]["pending"]:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        pending = w3.provider.make_request("txpool_content", [])["result"]["pending"]
        first = next(iter(next(iter(pending.values())).values()))["hash"]
        w3.provider.make_request("anvil_dropTransaction", [first])  # the network lost it
        time.sleep(1.5)  # the first wait times out; the replacement is sent
        w3.provider.make_request("evm_setAutomine", [True])
        w3.provider.make_request("evm_mine", [])
        t.join(20)
        receipt = result["receipt"]
        assert receipt["status"] == 1 and "0x" + bytes(receipt["transactionHash"]).hex() != first
        assert w3.eth.get_balance(to) == 12345  # executed exactly once
        assert w3.eth.get_transaction_count(me.address) == 1
