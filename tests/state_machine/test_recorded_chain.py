"""Chains recorded by earlier code replay to the same roots (``scripts/record_chain.py``).

Refactors of the STF, state layout or block execution must leave every root unchanged. A
deliberate protocol change is a fork: it is gated by the chain's protocol version
(``state_machine.constants.PROTOCOL_*``, fixed at genesis), the fixtures of older versions
stay byte-identical and keep replaying, and the new version gets a fixture of its own
(``chain_v1``: protocol 1, payload-only commitments; ``chain_v2``: protocol 2, commitments
bound to the sender, issue 10; ``chain_v3``: protocol 3, paced windows, issue 11 F-12;
``chain_v4``: protocol 4, chunk root only, issue 14: task 2's updates are v2 reveals named
by their chunk root, their bytes in the fixture's ``blobs``; ``chain_v5``: protocol 5, fresh
past, issue 10: a stale-copy free-rider, paid nothing, and every task's past updates).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import msgpack
import pytest

from state_machine.actions import decode_signed
from state_machine.chunks import content_root, verify_blob_root
from state_machine.constants import (
    CURRENT_PROTOCOL,
    PROTOCOL_BOUND_COMMITMENTS,
    PROTOCOL_CHUNK_ROOT_ONLY,
    PROTOCOL_FRESH_PAST,
    PROTOCOL_PACED_WINDOWS,
    PROTOCOL_V1,
)
from state_machine.state import State
from state_machine.transition import (
    GENESIS_PARENT,
    Block,
    apply_block,
    block_hash,
    block_header,
    genesis_state,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
FIXTURE = FIXTURES / "chain_v1.msgpack"
FIXTURE_V2 = FIXTURES / "chain_v2.msgpack"
FIXTURE_V3 = FIXTURES / "chain_v3.msgpack"
FIXTURE_V4 = FIXTURES / "chain_v4.msgpack"
FIXTURE_V5 = FIXTURES / "chain_v5.msgpack"
ALL = [FIXTURE, FIXTURE_V2, FIXTURE_V3, FIXTURE_V4, FIXTURE_V5]
IDS = ["v1", "v2", "v3", "v4", "v5"]
# the protocol 1 fixture is frozen: a protocol change records a new fixture instead
CHAIN_V1_SHA256 = "1cd758b708d07f63323edddd8cba4b40e32577632931846671e302fb08641af8"


def load(path: Path = FIXTURE) -> dict:
    return msgpack.unpackb(path.read_bytes(), raw=False)


def fixture_genesis(chain: dict) -> State:
    """The genesis of a recorded chain: its chain id and protocol version (a fixture without
    ``protocol_version`` was recorded before versions existed: protocol 1)."""
    return genesis_state(chain["chain_id"], chain.get("protocol_version", PROTOCOL_V1))


def replay(chain: dict, state: State) -> State:
    """Apply every recorded block; assert receipts, roots and hashes match the recording."""
    parent = GENESIS_PARENT
    # v2 update bytes, hashed here as a verifier does (root-addressed: key = chunk root)
    blobs = {vb.key: vb for vb in map(verify_blob_root, chain.get("blobs", []))}
    for rec in chain["blocks"]:
        block = Block(rec["height"], parent, rec["timestamp"],
                      [decode_signed(raw) for raw in rec["actions"]], blobs=blobs)
        state, receipts = apply_block(state, block)
        assert [r.applied for r in receipts] == rec["applied"], rec["height"]
        root = state.state_root()
        assert root == rec["state_root"], f"state root differs at height {rec['height']}"
        parent = block_hash(block_header(block, root, receipts))
        assert parent == rec["block_hash"], f"block hash differs at height {rec['height']}"
    return state


@pytest.mark.parametrize("path", ALL, ids=IDS)
def test_fixture_exercises_epochs_slashes_and_rejections(path):
    chain = load(path)
    applied = [ok for b in chain["blocks"] for ok in b["applied"]]
    assert len(chain["blocks"]) > 20 and False in applied and applied.count(True) > 50


def test_protocol_1_fixture_is_frozen():
    assert "protocol_version" not in load(FIXTURE)
    assert hashlib.sha256(FIXTURE.read_bytes()).hexdigest() == CHAIN_V1_SHA256
    assert load(FIXTURE_V2)["protocol_version"] == PROTOCOL_BOUND_COMMITMENTS
    assert load(FIXTURE_V3)["protocol_version"] == PROTOCOL_PACED_WINDOWS
    assert load(FIXTURE_V4)["protocol_version"] == PROTOCOL_CHUNK_ROOT_ONLY
    assert load(FIXTURE_V5)["protocol_version"] == PROTOCOL_FRESH_PAST == CURRENT_PROTOCOL


@pytest.mark.parametrize("path", ALL, ids=IDS)
def test_recorded_chain_replays_to_the_same_roots(path):
    chain = load(path)
    state = replay(chain, fixture_genesis(chain))
    slashed = sum(1 for a in state.accounts.values() if a.cumulative_slashed > 0)
    assert slashed >= 3


@pytest.mark.parametrize(("path", "wrong"), [(FIXTURE, CURRENT_PROTOCOL),
                                             (FIXTURE_V2, PROTOCOL_V1),
                                             (FIXTURE_V2, PROTOCOL_PACED_WINDOWS),
                                             (FIXTURE_V3, PROTOCOL_BOUND_COMMITMENTS),
                                             (FIXTURE_V3, PROTOCOL_CHUNK_ROOT_ONLY),
                                             (FIXTURE_V4, PROTOCOL_PACED_WINDOWS),
                                             (FIXTURE_V4, PROTOCOL_FRESH_PAST),
                                             (FIXTURE_V5, PROTOCOL_CHUNK_ROOT_ONLY)],
                         ids=["v1", "v2", "v2-as-v3", "v3-as-v2", "v3-as-v4", "v4-as-v3",
                              "v4-as-v5", "v5-as-v4"])
def test_a_chain_replayed_under_the_wrong_protocol_diverges(path, wrong):
    """The version is part of the chain's identity: replaying under the other rule set
    fails (the gate is what keeps the old chain replaying)."""
    chain = load(path)
    with pytest.raises(AssertionError):
        replay(chain, genesis_state(chain["chain_id"], wrong))


def test_v4_chain_names_updates_by_chunk_root_and_catches_a_blob_replay():
    """Protocol 4: every recorded update hash and Δ_prev is a chunk root (inline reveals of
    task 1 and blob reveals of task 2 alike), and the replay attacker of task 2, whose
    bytes arrive as a blob, is caught by that one hash."""
    chain = load(FIXTURE_V4)
    v2 = [sa for b in chain["blocks"] for sa in map(decode_signed, b["actions"])
          if sa.action.type == "reveal_update_v2"]
    assert v2 and all(sa.action.body.update_hash == sa.action.body.chunk_root for sa in v2)
    state = replay(chain, fixture_genesis(chain))
    roots = {content_root(b) for b in chain["blobs"]}
    task2 = [ep for (t, _), ep in state.epochs.items() if t == 2]
    assert {h for ep in task2 for h in ep.update_hashes.values()} <= roots
    assert any(reason == "replay" for ep in task2 for _, _, reason in ep.slashes)
    for t in state.tasks.values():
        assert t.prev_delta_hash == content_root(t.prev_delta.astype("<i2").tobytes())


def test_v5_chain_keeps_each_clients_last_reveal_as_the_public_past():
    """Protocol 5: every task records, by pubkey, each client's last reveal (epoch and
    hash) as the freshness gate's past, and holds its row; v1-v4 chains keep none."""
    chain = load(FIXTURE_V5)
    state = replay(chain, fixture_genesis(chain))
    for t in state.tasks.values():
        last: dict[bytes, tuple[int, bytes]] = {}
        for (tid, e), ep in sorted(state.epochs.items()):
            if tid == t.task_id:
                last.update({pk: (e, h) for pk, h in ep.update_hashes.items()})
        assert t.past_updates == [[pk, e, h] for pk, (e, h) in sorted(last.items())]
        assert set(t.past_rows) == {h for _, h in last.values()}
    old = replay(load(FIXTURE_V4), fixture_genesis(load(FIXTURE_V4)))
    assert all(t.past_updates is None for t in old.tasks.values())


def test_v5_chain_pays_its_stale_copy_nothing_and_the_gate_decides_it(monkeypatch):
    """In the v5 scenario's last epoch of task 2, proposer 2 reveals a 1 %-jittered copy of
    a victim's past update: with the public past passed it earns 0 while two honest
    proposers are paid; with the past withheld (the protocol 4 rule) it is paid and the
    recorded roots no longer replay, so the fixture pins the gate's wiring."""
    chain = load(FIXTURE_V5)
    state = replay(chain, fixture_genesis(chain))
    ep = state.epochs[(2, 2)]
    w = {s["pubkey"]: s["reward_weight"] for s in ep.scores}
    assert w[ep.proposers[2]] == 0 and w[ep.proposers[0]] > 0 and w[ep.proposers[5]] > 0
    from state_machine import epochs

    monkeypatch.setattr(epochs, "past_update_rows", lambda task: None)
    with pytest.raises(AssertionError, match="state root differs"):
        replay(chain, fixture_genesis(chain))
