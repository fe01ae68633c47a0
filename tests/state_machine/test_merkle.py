"""Merkle trees: proofs verify, tampering fails, incremental updates equal rebuilds."""

import os

from hypothesis import given, settings
from hypothesis import strategies as st

from state_machine.leaves import (
    SUBROOT_ACCOUNTS,
    SUBROOT_TASKS,
    compose_state_root,
    state_proof,
    verify_state_proof,
)
from state_machine.merkle import MerkleTree, process_proof, verify_proof

leaves = st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=40)


@settings(max_examples=60)
@given(leaves, st.data())
def test_every_proof_verifies_and_tampering_fails(ls, data):
    t = MerkleTree(ls)
    i = data.draw(st.integers(0, len(ls) - 1))
    proof = t.proof(i)
    assert verify_proof(ls[i], proof, t.root())
    bad_leaf = bytes([ls[i][0] ^ 1]) + ls[i][1:]
    assert not verify_proof(bad_leaf, proof, t.root())
    if proof:
        j = data.draw(st.integers(0, len(proof) - 1))
        tampered = list(proof)
        tampered[j] = bytes([proof[j][0] ^ 0x80]) + proof[j][1:]
        assert process_proof(ls[i], tampered) != t.root()


@settings(max_examples=60)
@given(leaves, st.data())
def test_incremental_update_equals_rebuild(ls, data):
    t = MerkleTree(ls)
    i = data.draw(st.integers(0, len(ls) - 1))
    new = data.draw(st.binary(min_size=32, max_size=32))
    t.update(i, new)
    ls2 = list(ls)
    ls2[i] = new
    assert t.root() == MerkleTree(ls2).root()


def test_empty_and_single_leaf():
    assert MerkleTree().root() == b"\x00" * 32
    leaf = os.urandom(32)
    t = MerkleTree([leaf])
    assert t.root() == leaf and t.proof(0) == []


def test_state_proof_roundtrip_and_wrong_subtree():
    t = MerkleTree([os.urandom(32) for _ in range(5)])
    subroots = [t.root(), os.urandom(32), os.urandom(32), os.urandom(32)]
    root = compose_state_root(subroots)
    proof = state_proof(subroots, SUBROOT_ACCOUNTS, t.proof(3))
    assert verify_state_proof(t.leaf(3), proof, SUBROOT_ACCOUNTS, root)
    assert not verify_state_proof(t.leaf(3), proof, SUBROOT_TASKS, root)
    assert not verify_state_proof(t.leaf(2), proof, SUBROOT_ACCOUNTS, root)


@settings(max_examples=40)
@given(st.lists(st.binary(min_size=32, max_size=32), min_size=0, max_size=600), st.data())
def test_copies_are_independent_and_match_rebuilds(ls, data):
    """Copy-on-write chunks: writes to a copy never show in the original (and back)."""
    a = MerkleTree(ls)
    b = a.copy()
    extra = data.draw(st.lists(st.binary(min_size=32, max_size=32), max_size=300))
    for leaf in extra:
        b.append(leaf)
    if ls:
        i = data.draw(st.integers(0, len(ls) - 1))
        a.update(i, b"\x07" * 32)
        ls_a = list(ls)
        ls_a[i] = b"\x07" * 32
    else:
        ls_a = []
    assert a.root() == MerkleTree(ls_a).root()
    assert b.root() == MerkleTree(list(ls) + extra).root()
    assert b.leaves() == list(ls) + extra


def test_pickle_round_trip_keeps_root_and_proofs():
    import pickle

    ls = [i.to_bytes(32, "big") for i in range(300)]
    t = MerkleTree(ls)
    u = pickle.loads(pickle.dumps(t))
    assert u.root() == t.root() and u.proof(257) == t.proof(257)
    u.append(b"\x01" * 32)
    assert u.root() == MerkleTree([*ls, b"\x01" * 32]).root()


@settings(max_examples=60)
@given(st.lists(st.binary(min_size=32, max_size=32), max_size=300), st.data())
def test_update_many_equals_one_by_one(ls, data):
    """Batched leaf writes (appends and updates, one rehash per node) give the same tree."""
    a, b = MerkleTree(ls), MerkleTree(ls)
    ups = data.draw(st.lists(st.tuples(st.integers(0, max(len(ls) - 1, 0)),
                                       st.binary(min_size=32, max_size=32)), max_size=20))
    ups = sorted({i: v for i, v in ups if i < len(ls)}.items())
    new = data.draw(st.lists(st.binary(min_size=32, max_size=32), max_size=40))
    batch = ups + [(len(ls) + k, v) for k, v in enumerate(new)]
    a.update_many(batch)
    for i, v in ups:
        b.update(i, v)
    for v in new:
        b.append(v)
    assert a.root() == b.root() and a.leaves() == b.leaves()
    if len(a):
        i = data.draw(st.integers(0, len(a) - 1))
        assert a.proof(i) == b.proof(i)
