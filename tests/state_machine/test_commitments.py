"""Commitments bound to their sender (protocol 2, issue 10): copying a commitment from the
mempool can neither make the victim absent (front-running) nor get it slashed `duplicate`
(copying the reveal too). Protocol 1 chains keep the old rule, so each attack is also run
there to show what the binding changes.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stf_harness import CHAIN_ID, Client, Harness, default_params

from state_machine.actions import (
    CommitUpdateBody,
    CommitVoteBody,
    RevealUpdateV2Body,
    RevealVoteBody,
)
from state_machine.chunks import MIN_CHUNK_SIZE, verify_blob_root
from state_machine.commitments import (
    CommitBinding,
    update_commitment,
    update_commitment_v2,
    vote_commitment,
)
from state_machine.constants import CURRENT_PROTOCOL, PROTOCOL_V1
from state_machine.crypto import keccak256
from state_machine.transition import Block, apply_block, genesis_state
from state_machine.verdicts import ABSENT, DUPLICATE

D = 256
SALT = b"\x5a" * 32
A, B = b"\x01" * 32, b"\x02" * 32


def _all_commitments(bind: CommitBinding | None) -> list[bytes]:
    payload = np.arange(D, dtype="<i2").tobytes()
    return [update_commitment(payload, SALT, bind),
            update_commitment_v2(keccak256(payload), len(payload), MIN_CHUNK_SIZE,
                                 b"\x07" * 32, SALT, bind),
            vote_commitment(7000, 6500, SALT, bind)]


def test_a_bound_commitment_opens_only_for_its_sender_task_and_epoch():
    mine = _all_commitments(CommitBinding(A, 1, 0))
    for other in (CommitBinding(B, 1, 0), CommitBinding(A, 2, 0), CommitBinding(A, 1, 1)):
        assert all(x != y for x, y in zip(mine, _all_commitments(other), strict=True))
    assert all(x != y for x, y in zip(mine, _all_commitments(None), strict=True))
    assert mine == _all_commitments(CommitBinding(A, 1, 0))
    assert len(set(mine)) == 3  # the three kinds are domain-separated


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=32, max_size=32), st.binary(min_size=32, max_size=32),
       st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1), st.binary(max_size=64),
       st.binary(min_size=32, max_size=32))
def test_property_no_other_sender_opens_the_same_values(victim, copier, task, epoch, payload,
                                                        salt):
    """Whatever the values and salt, the commitment a copier would have to open (its own
    binding) differs from the victim's unless the copier is the victim."""
    mine = update_commitment(payload, salt, CommitBinding(victim, task, epoch))
    theirs = update_commitment(payload, salt, CommitBinding(copier, task, epoch))
    assert (mine == theirs) == (victim == copier)
    v_mine = vote_commitment(task % 10_001, epoch % 10_001, salt,
                             CommitBinding(victim, task, epoch))
    v_theirs = vote_commitment(task % 10_001, epoch % 10_001, salt,
                               CommitBinding(copier, task, epoch))
    assert (v_mine == v_theirs) == (victim == copier)


# ---------------------------------------------------------------- the STF


def _started(protocol: int, voters: int = 0) -> tuple[Harness, dict[bytes, Client]]:
    h = Harness(state=genesis_state(CHAIN_ID, protocol))
    clients = [Client.make(f"bind{i}") for i in range(12)]
    g = np.arange(D, dtype=np.int32)
    h.block(*[h.deposit(c) for c in clients],
            h.create_task(1, default_params(D, g, proposers=7, f=1, voters=voters), 2))
    h.block(h.genesis(clients[0], 1, g))
    h.block()
    return h, {c.pubkey: c for c in clients}


def _deltas(pubkeys: list[bytes]) -> dict[bytes, np.ndarray]:
    rng = np.random.default_rng(3)
    base = rng.normal(0, 300, D)
    return {pk: (base + rng.normal(0, 300, D)).astype(np.int16) for pk in pubkeys}


def _salt(c: Client) -> bytes:
    return keccak256(c.pubkey, b"salt", bytes([0]))


def _epoch(h: Harness):  # type: ignore[no-untyped-def]
    return h.state.epochs.peek((1, 0))


def _slashes(h: Harness) -> dict[bytes, str]:
    return {pk: reason for pk, _, reason in _epoch(h).slashes}


@pytest.mark.parametrize("protocol", [PROTOCOL_V1, CURRENT_PROTOCOL])
def test_front_running_a_commitment_no_longer_makes_the_victim_absent(protocol):
    """The copier's copy lands first, in the same block. Protocol 1 refuses the victim's
    commit (`duplicate_commitment`) and slashes it `absent_proposer`; protocol 2 accepts
    both, the copier cannot open the copy and is the one absent."""
    h, by = _started(protocol)
    props = list(_epoch(h).proposers)
    victim, copier, rest = by[props[0]], by[props[1]], [by[pk] for pk in props[2:]]
    deltas = _deltas(props)
    honest = h.commit(victim, 1, 0, deltas[victim.pubkey])
    copy = h.signed(copier, "commit_update", CommitUpdateBody(1, 0, honest.action.body.commitment))
    r = h.block(copy, honest, *[h.commit(c, 1, 0, deltas[c.pubkey]) for c in rest])
    assert r[0].applied
    assert r[1].applied == (protocol != PROTOCOL_V1), r[1]
    h.until_phase_changes(1)
    r = h.block(h.reveal(victim, 1, 0, deltas[victim.pubkey]),
                h.reveal(copier, 1, 0, deltas[victim.pubkey], salt=_salt(victim)),
                *[h.reveal(c, 1, 0, deltas[c.pubkey]) for c in rest])
    # protocol 1: the copier opens the copy with the victim's values; protocol 2: it cannot
    assert r[1].reason == ("ok" if protocol == PROTOCOL_V1 else "commitment_mismatch")
    h.until_phase_changes(1)
    verdicts, slashed = _epoch(h).verdicts, _slashes(h)
    if protocol == PROTOCOL_V1:  # the attack works on the old rule
        assert r[0].reason == "not_committed"
        assert verdicts[victim.pubkey] == ABSENT and slashed[victim.pubkey] == "absent_proposer"
    else:
        assert r[0].applied
        assert "does not open the sender's own commitment" in r[1].detail
        assert verdicts[victim.pubkey] != ABSENT and victim.pubkey not in slashed
        assert verdicts[copier.pubkey] == ABSENT and slashed[copier.pubkey] == "absent_proposer"


def test_copying_the_reveal_no_longer_frames_the_victim_as_duplicate():
    """The copier commits the victim's commitment (after it, so protocol 1 would have
    refused the copy) and replays the victim's reveal once it is public. The copy does not
    open the copier's commitment: the victim is judged alone (never `duplicate`), the copier
    is absent."""
    h, by = _started(CURRENT_PROTOCOL)
    props = list(_epoch(h).proposers)
    victim, copier, rest = by[props[0]], by[props[1]], [by[pk] for pk in props[2:]]
    deltas = _deltas(props)
    honest = h.commit(victim, 1, 0, deltas[victim.pubkey])
    copy = h.signed(copier, "commit_update", CommitUpdateBody(1, 0, honest.action.body.commitment))
    r = h.block(honest, copy, *[h.commit(c, 1, 0, deltas[c.pubkey]) for c in rest])
    assert all(x.applied for x in r), r
    h.until_phase_changes(1)
    r = h.block(h.reveal(victim, 1, 0, deltas[victim.pubkey]),
                *[h.reveal(c, 1, 0, deltas[c.pubkey]) for c in rest])
    assert all(x.applied for x in r), r
    (stolen,) = h.block(h.reveal(copier, 1, 0, deltas[victim.pubkey], salt=_salt(victim)))
    assert (stolen.applied, stolen.reason) == (False, "commitment_mismatch")
    assert "bound to sender" in stolen.detail
    h.until_phase_changes(1)
    verdicts, slashed = _epoch(h).verdicts, _slashes(h)
    assert verdicts[victim.pubkey] not in (ABSENT, DUPLICATE) and victim.pubkey not in slashed
    assert verdicts[copier.pubkey] == ABSENT and slashed[copier.pubkey] == "absent_proposer"
    assert "duplicate" not in slashed.values()


def test_a_copied_chunked_v2_commitment_cannot_be_revealed_by_the_copier():
    """Same for `reveal_update_v2`: the copier names the victim's stored blob, hash, root
    and salt, and still does not open its own commitment."""
    h, by = _started(CURRENT_PROTOCOL)
    props = list(_epoch(h).proposers)
    victim, copier = by[props[0]], by[props[1]]
    vb = verify_blob_root(_deltas(props)[victim.pubkey].astype("<i2").tobytes())
    com = update_commitment_v2(vb.key, vb.size, vb.chunk_size, vb.root, SALT,
                               h.binding(victim, 1, 0))
    h.block(h.signed(victim, "commit_update", CommitUpdateBody(1, 0, com)),
            h.signed(copier, "commit_update", CommitUpdateBody(1, 0, com)))
    h.until_phase_changes(1)
    body = RevealUpdateV2Body(1, 0, vb.key, vb.size, vb.chunk_size, vb.root, SALT)
    blobs = {vb.key: vb}
    for who, applied in ((copier, False), (victim, True)):
        sa = h.signed(who, "reveal_update_v2", body)
        _, (rc,) = apply_block(h.state, Block(h.state.height + 1, h.parent, h.state.timestamp,
                                              [sa], blobs))
        assert rc.applied == applied, rc
        assert applied or rc.reason == "commitment_mismatch"


@pytest.mark.parametrize("protocol", [PROTOCOL_V1, CURRENT_PROTOCOL])
def test_front_running_a_vote_commitment_no_longer_makes_the_voter_absent(protocol):
    h, by = _started(protocol, voters=3)
    props = list(_epoch(h).proposers)
    deltas = _deltas(props)
    h.block(*[h.commit(by[pk], 1, 0, deltas[pk]) for pk in props])
    h.until_phase_changes(1)
    h.block(*[h.reveal(by[pk], 1, 0, deltas[pk]) for pk in props])
    h.until_phase_changes(1)
    voters = list(_epoch(h).voters)
    victim, copier, other = by[voters[0]], by[voters[1]], by[voters[2]]
    honest = h.commit_vote(victim, 1, 0, 7000, 6500)
    copy = h.signed(copier, "commit_vote", CommitVoteBody(1, 0, honest.action.body.commitment))
    r = h.block(copy, honest, h.commit_vote(other, 1, 0, 7100, 6500))
    assert r[1].applied == (protocol != PROTOCOL_V1), r[1]
    h.until_phase_changes(1)
    vsalt = keccak256(victim.pubkey, b"vsalt", bytes([0]))
    r = h.block(h.reveal_vote(victim, 1, 0, 7000, 6500),
                h.signed(copier, "reveal_vote", RevealVoteBody(1, 0, 7000, 6500, vsalt)),
                h.reveal_vote(other, 1, 0, 7100, 6500))
    assert r[1].reason == ("ok" if protocol == PROTOCOL_V1 else "commitment_mismatch")
    h.until_phase_changes(1)
    slashed = _slashes(h)
    if protocol == PROTOCOL_V1:
        assert slashed[victim.pubkey] == "absent_voter"
    else:
        assert r[0].applied and victim.pubkey not in slashed
        assert slashed[copier.pubkey] == "absent_voter"
