"""Fixtures for the L1 contract tests: every test runs on the embedded py-evm chain and on
anvil (marked ``anvil``). One deployment per module and backend; each test runs between a
snapshot and a revert, so tests are independent and deploys are rare."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from devtools import l1 as dev_l1  # noqa: E402

from .helpers import IN_CI, Env  # noqa: E402

BACKENDS = ["eth-tester", pytest.param("anvil", marks=pytest.mark.anvil)]


@pytest.fixture(scope="session")
def anvil_node() -> Iterator[dev_l1.AnvilProcess]:
    if dev_l1.anvil_binary() is None:
        if IN_CI:
            pytest.fail("anvil binary missing in CI (run `make install`)")
        pytest.skip("anvil binary not installed (npm ci)")
    node = dev_l1.start_anvil()
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="module")
def w3(backend: str, request: pytest.FixtureRequest):
    if backend == "anvil":
        return request.getfixturevalue("anvil_node").web3()
    return dev_l1.embedded_web3()


@pytest.fixture(scope="module")
def env_module(w3, backend: str) -> Env:
    return Env(w3, backend)


@pytest.fixture
def env(env_module: Env) -> Iterator[Env]:
    snap = dev_l1.snapshot(env_module.w3)
    try:
        yield env_module
    finally:
        dev_l1.revert(env_module.w3, snap)
