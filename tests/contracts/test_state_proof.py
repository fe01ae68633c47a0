"""StateProof (Solidity) agrees with state_machine.leaves on leaves, roots and proofs."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.deploy import deploy_contract
from state_machine.leaves import (
    account_leaf,
    compose_state_root,
    state_proof,
    task_leaf,
    verify_state_proof,
)
from state_machine.merkle import MerkleTree

from .helpers import Env

WORD = st.binary(min_size=32, max_size=32)
ADDR = st.binary(min_size=20, max_size=20)
UINT = st.integers(min_value=0, max_value=2**256 - 1)


@pytest.fixture(scope="module")
def harness(env_module: Env):
    return deploy_contract(env_module.w3, "test/StateProofHarness", env_module.owner)


def _checksum(b: bytes) -> str:
    from web3 import Web3

    return Web3.to_checksum_address(b)


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(ADDR, WORD, UINT, UINT, UINT)
def test_account_leaf_matches(harness, a, p, s, cs, cr) -> None:
    assert harness.functions.accountLeaf(_checksum(a), p, s, cs, cr).call() == account_leaf(
        a, p, s, cs, cr
    )


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(UINT, ADDR, UINT, UINT, UINT, UINT, WORD)
def test_task_leaf_matches(harness, i, o, e, c, t, s, d) -> None:
    assert harness.functions.taskLeaf(i, _checksum(o), e, c, t, s, d).call() == task_leaf(
        i, o, e, c, t, s, d
    )


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    n=st.integers(min_value=1, max_value=40),
    which=st.integers(min_value=0, max_value=3),
    seed=st.integers(min_value=0, max_value=2**32),
    mutate=st.sampled_from(["none", "leaf", "sibling", "subroot", "truncate", "extend"]),
)
def test_verify_matches_python(harness, n, which, seed, mutate) -> None:
    rng = random.Random(seed)
    leaves = [rng.randbytes(32) for _ in range(n)]
    tree = MerkleTree(leaves)
    subroots = [rng.randbytes(32) for _ in range(4)]
    subroots[which] = tree.root()
    root = compose_state_root(subroots)
    index = rng.randrange(n)
    leaf = leaves[index]
    proof = state_proof(subroots, which, tree.proof(index))
    if mutate == "leaf":
        leaf = rng.randbytes(32)
    elif mutate == "sibling":
        k = rng.randrange(len(proof))
        proof[k] = rng.randbytes(32)
    elif mutate == "subroot":
        root = rng.randbytes(32)
    elif mutate == "truncate":
        proof = proof[: rng.randrange(len(proof))]
    elif mutate == "extend":
        proof = [rng.randbytes(32), *proof]
    expected = verify_state_proof(leaf, proof, which, root)
    if mutate == "none":
        assert expected
    assert harness.functions.verify(root, which, leaf, proof).call() == expected


def test_verify_rejects_unknown_subtree(harness) -> None:
    tree = MerkleTree([b"\x01" * 32])
    subroots = [b"\x02" * 32, b"\x03" * 32, b"\x04" * 32, tree.root()]
    proof = state_proof(subroots, 3, tree.proof(0))
    root = compose_state_root(subroots)
    assert harness.functions.verify(root, 3, b"\x01" * 32, proof).call()
    assert not harness.functions.verify(root, 4, b"\x01" * 32, proof).call()
