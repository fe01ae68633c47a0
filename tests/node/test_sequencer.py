"""Sequencer + store: determinism across databases, duplicates, nonces, recovery, batches."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from sqlalchemy import update

from sequencer import Sequencer, SequencerConfig, Store, SubmitError, verify_ack
from sequencer.da import decode_da, replay_da
from sequencer.history import History
from sequencer.replay import replay_chain
from sequencer.store import blocks
from state_machine.actions import (
    AdvanceBody,
    CommitUpdateBody,
    PublishGenesisBody,
    RevealUpdateBody,
    make_action,
)
from state_machine.chunks import content_root
from state_machine.commitments import CommitBinding, update_commitment
from state_machine.crypto import keccak256
from state_machine.transition import genesis_state

from .helpers import CHAIN_ID, Member, deposit_body, honest_deltas, members, task_body, task_params

SEQ_SEED = b"\x05" * 32


def open_seq(url: str, **cfg: object) -> Sequencer:
    conf = SequencerConfig(chain_id=CHAIN_ID, produce_blocks=False, **cfg)  # type: ignore[arg-type]
    tick = itertools.count(1_700_000_000).__next__  # one second a block
    return Sequencer(Store(url), SEQ_SEED, conf, clock=tick).start()


def signed(m: Member, typ: str, body: object, nonce: int) -> bytes:
    return make_action(m.seed, typ, CHAIN_ID, nonce, body, m.pubkey).encode()  # type: ignore[arg-type]


def drive_epoch(seq: Sequencer, d: int = 64) -> list[tuple[int, bytes, bytes]]:
    """A deterministic chain: 6 deposits, a task, genesis, commits, reveals, scoring."""
    ms = members(6)
    for i, m in enumerate(ms):
        seq.submit_l1_event("l1_deposit", deposit_body(m, 10 + i))
    genesis = np.arange(d, dtype=np.int32)
    params = task_params(d, genesis, proposers=5, f=1, window=4)
    seq.submit_l1_event("l1_task_created", task_body(1, params, 100, max_epochs=1))
    seq.produce_block()
    seq.submit(signed(ms[0], "publish_genesis",
                      PublishGenesisBody(1, genesis.astype("<i4").tobytes()), 0))
    seq.produce_block()  # genesis applied
    seq.produce_block()  # epoch opens at block start
    ep = seq.state.epochs[(1, 0)]
    props = [m for m in ms if m.pubkey in ep.proposers]
    deltas = dict(zip([m.pubkey for m in props], honest_deltas(len(props), d), strict=True))
    nonces = {m.pubkey: seq.pending_nonce(m.pubkey) for m in ms}
    salt = b"\x07" * 32
    for m in props:
        ub = deltas[m.pubkey].astype("<i2").tobytes()
        seq.submit(signed(m, "commit_update",
                          CommitUpdateBody(1, 0, update_commitment(ub, salt, CommitBinding(
                              m.pubkey, 1, 0))), nonces[m.pubkey]))
        nonces[m.pubkey] += 1
    seq.produce_block()
    seq.submit(signed(props[0], "advance", AdvanceBody(1, 0), nonces[props[0].pubkey]))
    nonces[props[0].pubkey] += 1
    seq.produce_block()
    assert seq.state.tasks[1].phase == "update_reveal"
    for m in props:
        ub = deltas[m.pubkey].astype("<i2").tobytes()
        seq.submit(signed(m, "reveal_update", RevealUpdateBody(1, 0, ub, salt), nonces[m.pubkey]))
        nonces[m.pubkey] += 1
    seq.produce_block()
    for _ in range(5):  # let the reveal deadline pass: scoring + finalize at block start
        seq.produce_block()
    out = []
    for b in seq.store.iter_blocks(1):
        out.append((b.height, b.hash, b.state_root))
    return out


def test_same_chain_same_hashes_on_sqlite_and_postgres(sqlite_url: str, pg_url: str) -> None:
    chains = []
    for url in (sqlite_url, pg_url):
        seq = open_seq(url, snapshot_interval=3)
        try:
            chains.append(drive_epoch(seq))
            task = seq.state.tasks[1]
            assert task.phase == "done"
            ep = seq.state.epochs[(1, 0)]
            assert ep.outcome == "accepted"
            assert set(ep.verdicts.values()) == {"ACCEPTED"}
            # the accepted global model and the revealed updates are served as blobs
            assert content_root(seq.store.blob(task.global_hash)) == task.global_hash
            for h in ep.update_hashes.values():  # protocol 4: named by their chunk root
                assert content_root(seq.store.blob(h)) == h
        finally:
            seq.close()
    assert len(chains[0]) > 8
    assert chains[0] == chains[1]


def test_duplicates_and_nonce_conflicts(db_url: str) -> None:
    seq = open_seq(db_url)
    try:
        m = members(1)[0]
        a1 = signed(m, "advance", AdvanceBody(1, 0), 0)
        seq.submit_l1_event("l1_task_created", task_body(1, task_params(
            4, np.zeros(4, np.int32)), 5))
        ack = seq.submit(a1)
        assert verify_ack(seq.pubkey, ack.action_hash, ack.received_height, ack.signature)
        again = seq.submit(a1)
        assert again.duplicate and again.signature == ack.signature
        with pytest.raises(SubmitError) as e:  # same nonce, different action
            seq.submit(signed(m, "advance", AdvanceBody(1, 1), 0))
        assert (e.value.status, e.value.reason) == (409, "bad_nonce")
        assert seq.pending_nonce(m.pubkey) == 1
        seq.produce_block()
        st = seq.action_status(ack.action_hash)
        assert st is not None and st["status"] == "rejected"
        assert st["reason"] == "nothing_to_advance"
        # the rejected action did not consume the nonce, but its bytes are never acked
        # again (replay guard): the sender signs a new action for the same nonce
        assert seq.pending_nonce(m.pubkey) == 0
        with pytest.raises(SubmitError) as e:
            seq.submit(a1)
        assert (e.value.status, e.value.reason) == (409, "already_rejected")
        assert seq.action_status(ack.action_hash)["status"] == "rejected"  # type: ignore[index]
        # an applied action is a duplicate forever
        d = members(2)[1]
        dep = seq.submit_l1_event("l1_deposit", deposit_body(d, 20))
        seq.produce_block()
        assert seq.action_status(dep.action_hash)["status"] == "included"  # type: ignore[index]
        from state_machine.actions import system_action

        sa = system_action("l1_deposit", CHAIN_ID, 1, deposit_body(d, 20))
        assert sa.hash == dep.action_hash
        assert seq.submit_system(sa).duplicate
    finally:
        seq.close()


def test_recovery_from_snapshot_and_requeue(db_url: str) -> None:
    seq = open_seq(db_url, snapshot_interval=2)
    ms = members(3)
    for i, m in enumerate(ms[:2]):
        seq.submit_l1_event("l1_deposit", deposit_body(m, 10 + i))
        seq.produce_block()
    seq.produce_block()
    height, root, head = seq.height, seq.state.state_root(), seq.head_hash
    # acknowledged but never included
    queued = seq.submit_l1_event("l1_deposit", deposit_body(ms[2], 50))
    seq.close()

    seq = open_seq(db_url, snapshot_interval=2)
    try:
        assert (seq.height, seq.state.state_root(), seq.head_hash) == (height, root, head)
        assert seq.mempool_size == 1
        assert seq.action_status(queued.action_hash)["status"] == "queued"  # type: ignore[index]
        info = seq.produce_block()
        assert [r.action_hash for r in info.receipts] == [queued.action_hash]
        assert ms[2].pubkey in seq.state.accounts
    finally:
        seq.close()
    store = Store(db_url)
    try:
        # snapshots (incremental, arrays by reference) restore to the stored root
        h, sroot, _ = store.latest_snapshot()  # type: ignore[misc]
        st = History(store, CHAIN_ID, 2, 1).load(h)
        assert st is not None and st.state_root() == sroot == store.block(h).state_root  # type: ignore[union-attr]
        assert replay_chain(store).ok
    finally:
        store.close()


def test_batches_and_da(db_url: str) -> None:
    seq = open_seq(db_url)
    try:
        assert seq.make_batch() is None
        ms = members(3)
        for i, m in enumerate(ms):
            seq.submit_l1_event("l1_deposit", deposit_body(m, 10 + i))
            seq.produce_block()
        b0 = seq.make_batch()
        assert b0 is not None and (b0.idx, b0.first_height, b0.last_height) == (0, 1, 3)
        assert b0.state_root == seq.state.state_root() and b0.last_block_hash == seq.head_hash
        da = seq.da(0)
        assert da is not None and keccak256(da) == b0.da_hash
        out = replay_da(genesis_state(CHAIN_ID), decode_da(da))
        assert out.state_root == b0.state_root and out.last_block_hash == b0.last_block_hash
        seq.mark_posted(0, b"\xaa" * 32)
        assert seq.batch(0).l1_status == "posted"  # type: ignore[union-attr]
        with pytest.raises(KeyError):
            seq.mark_posted(5, None)
        seq.produce_block()
        b1 = seq.make_batch()
        assert b1 is not None and (b1.idx, b1.first_height, b1.last_height) == (1, 4, 4)
        # proofs against an older batch's state
        st0 = seq.batch_state(0)
        assert st0.state_root() == b0.state_root
        assert seq.state_at(2).height == 2
    finally:
        seq.close()


def test_replay_reports_first_mismatch(sqlite_url: str) -> None:
    seq = open_seq(sqlite_url)
    ms = members(4)
    for i, m in enumerate(ms):
        seq.submit_l1_event("l1_deposit", deposit_body(m, 10 + i))
        seq.produce_block()
    seq.close()
    store = Store(sqlite_url)
    try:
        assert replay_chain(store).ok
        with store.begin() as conn:
            conn.execute(update(blocks).where(blocks.c.height == 3).values(state_root=b"\x01" * 32))
        rep = replay_chain(store)
        assert not rep.ok and rep.first_mismatch_height == 3
        assert rep.expected_root == b"\x01" * 32 and rep.got_root != rep.expected_root
    finally:
        store.close()


def test_system_actions_checked(sqlite_url: str) -> None:
    seq = open_seq(sqlite_url)
    try:
        m = members(1)[0]
        seq.submit_l1_event("l1_deposit", deposit_body(m, 10))
        with pytest.raises(SubmitError) as e:  # same or earlier L1 position: already seen
            seq.submit_l1_event("l1_deposit", deposit_body(m, 10))
        assert e.value.reason == "l1_out_of_order"
        assert seq.pending_l1_cursor() == (10, 0)
        from state_machine.actions import system_action

        sa = system_action("l1_deposit", CHAIN_ID, 0, deposit_body(members(2)[1], 11))
        with pytest.raises(SubmitError) as e:  # system actions never via the public path
            seq.submit(sa.encode())
        assert (e.value.status, e.value.reason) == (401, "system_action")
    finally:
        seq.close()


def test_snapshot_at_every_height_restores_without_replay(sqlite_url: str) -> None:
    """Incremental snapshots (arrays by blob hash) at every block, reveal phase included,
    restore to each block's root; a batch end gets a snapshot of its own."""
    seq = open_seq(sqlite_url, snapshot_interval=1)
    try:
        chain = drive_epoch(seq)
        batch = seq.make_batch()
        assert batch is not None
    finally:
        seq.close()
    store = Store(sqlite_url)
    try:
        hist = History(store, CHAIN_ID, 1, 1)
        for height, _, root in chain:
            st = hist.load(height)
            assert st is not None and st.state_root() == root, height
        datas = [store.snapshot_at(h)[1] for h, _, _ in chain]  # type: ignore[index]
        assert max(len(d) for d in datas[1:]) < 64 * 1024  # diffs
        ep = seq.state.epochs[(1, 0)]
        for uh in ep.update_hashes.values():  # update bytes are referenced, never inside
            ub = store.blob(uh)
            assert ub is not None and not any(ub in d for d in datas)
    finally:
        store.close()
    seq = open_seq(sqlite_url, snapshot_interval=1)
    try:
        assert seq.state.state_root() == chain[-1][2]
        assert seq.batch_state(0).state_root() == batch.state_root
        assert seq.state_at(chain[5][0]).state_root() == chain[5][2]
    finally:
        seq.close()


def test_snapshot_of_a_rolled_back_block_never_becomes_a_base(sqlite_url: str) -> None:
    seq = open_seq(sqlite_url, snapshot_interval=1)
    ms = members(3)
    try:
        seq.submit_l1_event("l1_deposit", deposit_body(ms[0], 10))
        seq.produce_block()
        seq.submit_l1_event("l1_deposit", deposit_body(ms[1], 11))
        real = seq._history.on_block

        def fail_after_snapshot(conn, state):  # type: ignore[no-untyped-def]
            real(conn, state)
            raise RuntimeError("disk full")

        seq._history.on_block = fail_after_snapshot  # type: ignore[method-assign]
        with pytest.raises(RuntimeError):
            seq.produce_block()
        seq._history.on_block = real  # type: ignore[method-assign]
        seq.submit_l1_event("l1_deposit", deposit_body(ms[2], 12))
        seq.produce_block()
        seq.produce_block()
        roots = {b.height: b.state_root for b in seq.store.iter_blocks(1)}
    finally:
        seq.close()
    store = Store(sqlite_url)
    try:
        hist = History(store, CHAIN_ID, 1, 1)
        for h, root in roots.items():
            st = hist.load(h)
            assert st is not None and st.state_root() == root
    finally:
        store.close()


def test_a_database_keeps_the_protocol_it_was_created_with(tmp_path) -> None:
    """A chain's protocol version is fixed when its database is created: a restart with
    another configured version keeps the stored one (recovery replays to the same root),
    and a database from before versions existed (no ``protocol`` entry) runs protocol 1."""
    from sequencer.schema import meta
    from state_machine.constants import CURRENT_PROTOCOL, PROTOCOL_V1

    def chain(url: str, protocol: int) -> bytes:
        seq = open_seq(url, protocol=protocol)
        try:
            for i, m in enumerate(members(2)):
                seq.submit_l1_event("l1_deposit", deposit_body(m, 10 + i))
                seq.produce_block()
            assert seq.protocol == seq.state.protocol == protocol
            return seq.state.state_root()
        finally:
            seq.close()

    def reopened(url: str, configured: int) -> tuple[int, bytes]:
        seq = open_seq(url, protocol=configured)
        try:
            assert seq.height == 2
            return seq.protocol, seq.state.state_root()
        finally:
            seq.close()

    new, old = f"sqlite:///{tmp_path}/new.db", f"sqlite:///{tmp_path}/old.db"
    root_new, root_old = chain(new, CURRENT_PROTOCOL), chain(old, PROTOCOL_V1)
    assert root_new != root_old  # the version is committed in the meta root from 2 on
    assert reopened(new, PROTOCOL_V1) == (CURRENT_PROTOCOL, root_new)
    store = Store(old)
    with store.begin() as conn:  # as written by code older than the field
        conn.execute(meta.delete().where(meta.c.key == "protocol"))
    store.close()
    assert reopened(old, CURRENT_PROTOCOL) == (PROTOCOL_V1, root_old)
    store = Store(old)
    try:
        assert replay_chain(store).ok
    finally:
        store.close()


def test_production_verifies_each_signature_once(sqlite_url: str, monkeypatch) -> None:
    """Admission verifies a user action's signature; block production does not repeat it,
    replay (no cache) does and reaches the same roots; an action re-read from the database
    after a restart is verified again by the STF (the cache never outlives the process)."""
    from stf_harness import count_verifications

    calls = count_verifications(monkeypatch)
    seq = open_seq(sqlite_url, snapshot_interval=3)
    try:
        chain = drive_epoch(seq)
        assert calls == []  # admission used its own check; the STF skipped the repeat
        m, genesis = members(6)[0], np.zeros(64, dtype=np.int32)
        seq.submit_l1_event("l1_task_created", task_body(2, task_params(64, genesis), 200))
        seq.produce_block()
        body = PublishGenesisBody(2, genesis.astype("<i4").tobytes())
        queued = seq.submit(signed(m, "publish_genesis", body, seq.pending_nonce(m.pubkey)))
    finally:
        seq.close()
    seq = open_seq(sqlite_url, snapshot_interval=3)
    try:
        seq.produce_block()
        assert calls == [queued.action_hash]  # recovered from the database: verified
    finally:
        seq.close()
    store = Store(sqlite_url)
    try:
        calls.clear()
        rep = replay_chain(store)
        assert rep.ok and len(calls) > 10  # replay verified every signature, same roots
        stored = [(b.height, b.hash, b.state_root) for b in store.iter_blocks(1)]
        assert stored[:len(chain)] == chain
    finally:
        store.close()
