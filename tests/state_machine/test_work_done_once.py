"""Work done once on the node: signatures (``apply_block(..., verified=...)``) and the
hashes of a v1 reveal.

The sequencer passes the hashes of the actions whose signatures admission verified, so the
STF does not verify them again. The cache may only skip work whose result is known: a
forged action is rejected whatever the cache holds, and roots are bit-identical with and
without it.
"""

from __future__ import annotations

from pathlib import Path

import msgpack
import numpy as np
import pytest
from stf_harness import CHAIN_ID, Client, Harness, count_verifications, default_params

from state_machine.actions import CommitUpdateBody, SignedAction, decode_signed, make_action
from state_machine.constants import PROTOCOL_V1
from state_machine.transition import GENESIS_PARENT, Block, execute_block, genesis_state

FIXTURES = [Path(__file__).resolve().parents[1] / "fixtures" / name
            for name in ("chain_v1.msgpack", "chain_v2.msgpack")]  # protocols 1 and 2
D = 64


@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda p: p.stem)
def test_recorded_chain_same_roots_with_and_without_the_cache(fixture: Path, monkeypatch):
    chain = msgpack.unpackb(fixture.read_bytes(), raw=False)
    calls = count_verifications(monkeypatch)
    protocol = chain.get("protocol_version", PROTOCOL_V1)  # chain_v1 predates versions
    state, parent = genesis_state(chain["chain_id"], protocol), GENESIS_PARENT
    skipped = 0
    for rec in chain["blocks"]:
        acts = [decode_signed(raw) for raw in rec["actions"]]
        block = Block(rec["height"], parent, rec["timestamp"], acts)
        plain = execute_block(state, block)
        # what admission would have verified: every signed action whose signature is valid
        verified = frozenset(sa.hash for sa in acts
                             if not sa.action.is_system and sa.signature_valid())
        calls.clear()
        cached = execute_block(state, block, rec["state_root"], rec["block_hash"],
                               verified=verified)
        assert not set(calls) & verified  # none of them verified again
        skipped += len(verified)
        assert (cached.state_root, cached.hash) == (plain.state_root, plain.hash)
        assert [r.to_record() for r in cached.receipts] == [r.to_record() for r in plain.receipts]
        state, parent = cached.state, cached.hash
    assert skipped > 50


def _started() -> tuple[Harness, list[Client]]:
    h = Harness()
    clients = [Client.make(f"v{i}") for i in range(8)]
    g = np.arange(D, dtype=np.int32)
    h.block(*[h.deposit(c) for c in clients],
            h.create_task(1, default_params(D, g, proposers=5, f=1)))
    h.block(h.genesis(clients[0], 1, g))
    h.block()
    return h, clients


def test_forged_action_is_rejected_whatever_the_cache_holds():
    h, clients = _started()
    ep = h.state.epochs[(1, 0)]
    a, b = [c for c in clients if c.pubkey in ep.proposers][:2]
    na, nb = (h.state.nonces.get(c.pubkey, 0) for c in (a, b))
    good_a = make_action(a.seed, "commit_update", CHAIN_ID, na,
                         CommitUpdateBody(1, 0, b"\x01" * 32), a.pubkey)
    good_b = make_action(b.seed, "commit_update", CHAIN_ID, nb,
                         CommitUpdateBody(1, 0, b"\x02" * 32), b.pubkey)
    forgeries = [
        SignedAction(good_a.action, bytes(64)),  # zero signature on a verified envelope
        SignedAction(good_a.action, good_b.signature),  # a valid signature, other message
        # b's envelope signed by a's key: a's genuine signature bytes, wrong signer
        SignedAction(good_b.action, make_action(a.seed, "commit_update", CHAIN_ID, nb,
                                                good_b.action.body, b.pubkey).signature),
    ]
    verified = frozenset({good_a.hash, good_b.hash})
    for forged in forgeries:
        assert forged.hash not in verified
        block = Block(h.state.height + 1, h.parent, h.state.timestamp, [forged])
        res = execute_block(h.state, block, verified=verified)
        assert (res.receipts[0].applied, res.receipts[0].reason) == (False, "bad_signature")
        # and without a cache (replay, verifiers)
        assert execute_block(h.state, block).receipts[0].reason == "bad_signature"
    block = Block(h.state.height + 1, h.parent, h.state.timestamp, [good_a, good_b])
    with_cache = execute_block(h.state, block, verified=verified)
    without = execute_block(h.state, block)
    assert all(r.applied for r in with_cache.receipts)
    assert (with_cache.state_root, with_cache.hash) == (without.state_root, without.hash)


def test_system_actions_are_always_checked():
    """A system action is never skipped, even if its hash is listed (its check is the
    zero-sender, empty-signature rule, not ed25519)."""
    h, _ = _started()
    good = h.deposit(Client.make("late"))
    bad = SignedAction(good.action, b"\x01" * 64)
    block = Block(h.state.height + 1, h.parent, h.state.timestamp, [bad])
    res = execute_block(h.state, block, verified=frozenset({bad.hash}))
    assert (res.receipts[0].applied, res.receipts[0].reason) == (False, "bad_signature")


def test_reveal_commitment_and_update_hash_in_one_pass():
    from state_machine.commitments import update_commitment
    from state_machine.crypto import keccak256
    from state_machine.transition import _commitment_and_hash

    rng = np.random.default_rng(5)
    for n in (0, 1, 135, 136, 137, 4096, 1 << 20):  # around keccak's 136-byte rate
        data, salt = rng.bytes(n), rng.bytes(32)
        assert _commitment_and_hash(data, salt) == (update_commitment(data, salt, None),
                                                    keccak256(data))  # protocol 1
