"""Shared by the bridge end-to-end tests: one L1 per backend, started and stopped the same
way everywhere, and the reference verifier reading DA from an in-process sequencer."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from web3 import Web3

from bridge.verifier import Verifier
from devtools import l1 as dev_l1
from sequencer import Sequencer


@contextmanager
def l1_web3(backend: str) -> Iterator[Web3]:
    """``eth-tester`` (in process) or ``anvil`` (skips when the npm binary is missing)."""
    if backend == "eth-tester":
        yield dev_l1.embedded_web3()
        return
    if dev_l1.anvil_binary() is None:
        pytest.skip("anvil binary not installed (npm ci)")
    node = dev_l1.start_anvil()
    try:
        yield node.web3()
    finally:
        node.stop()


class LocalVerifier(Verifier):
    """The reference verifier, reading DA from the sequencer object instead of HTTP."""

    def __init__(self, seq: Sequencer, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.seq = seq

    def fetch_da(self, index: int, expected: bytes) -> bytes | None:
        return self.seq.da(index)
