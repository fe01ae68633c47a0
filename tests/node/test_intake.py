"""Batched admission (``Sequencer.submit_many``, ``sequencer.intake``): the same outcome,
action by action, as one ``submit_nowait`` per action, and one group commit per batch."""

from __future__ import annotations

import itertools
import json
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sequencer import Sequencer, SequencerConfig, Store, SubmitError
from sequencer.intake import Intake, settle
from sequencer.types import Ack, SequencerHooks
from state_machine.actions import AdvanceBody, CommitUpdateBody, make_action, system_action
from state_machine.reasons import Reason

from .helpers import CHAIN_ID, Member, deposit_body, members, task_body, task_params

SEQ_SEED = b"\x06" * 32


class CountingHooks(SequencerHooks):
    def __init__(self) -> None:
        self.groups: list[int] = []
        self.rejected: list[str] = []

    def acks_committed(self, n: int, seconds: float) -> None:
        self.groups.append(n)

    def action_rejected(self, reason: str) -> None:
        self.rejected.append(str(reason))


def open_seq(tmp_path: Path, name: str, hooks: SequencerHooks | None = None) -> Sequencer:
    conf = SequencerConfig(chain_id=CHAIN_ID, produce_blocks=False, max_action_bytes=4096)
    tick = itertools.count(1_700_000_000).__next__
    seq = Sequencer(Store(f"sqlite:///{tmp_path}/{name}.db"), SEQ_SEED, conf, clock=tick,
                    hooks=hooks).start()
    ms = members(6)
    for i, m in enumerate(ms):
        seq.submit_l1_event("l1_deposit", deposit_body(m, 10 + i))
    genesis = np.arange(8, dtype=np.int32)
    seq.submit_l1_event("l1_task_created", task_body(1, task_params(8, genesis), 100))
    seq.produce_block()
    return seq


def act(m: Member, nonce: int, body: Any = None, typ: str = "advance", chain: int = CHAIN_ID
        ) -> bytes:
    return make_action(m.seed, typ, chain, nonce, body or AdvanceBody(1, 0), m.pubkey).encode()


def cases() -> list[bytes]:
    """Good and bad submissions, including ones whose outcome depends on the ones before
    them in the same batch (consecutive nonces, a duplicate, a nonce conflict)."""
    a, b, c = members(3)
    first = act(a, 0)
    bad_sig = bytearray(act(b, 0))
    bad_sig[-1] ^= 1
    return [
        first,
        act(a, 1, CommitUpdateBody(1, 0, b"\x01" * 32), "commit_update"),  # nonce 1 after 0
        first,  # a duplicate within the batch
        act(a, 1),  # nonce 1 is taken by now
        bytes(bad_sig),
        act(b, 0, chain=99),
        b"\xc1garbage",
        b"\x92" + b"\x00" * 10,  # trailing bytes
        b"\x00" * 5000,  # over max_action_bytes
        act(b, 3),  # a future nonce
        act(c, 0, CommitUpdateBody(7, 0, b"\x01" * 32), "commit_update"),  # unknown task
        system_action("l1_deposit", CHAIN_ID, 9, deposit_body(members(9)[8], 500)).encode(),
        act(b, 0),
        act(c, 0),
    ]


def outcome(r: Future[Any] | BaseException) -> tuple[Any, ...]:
    if isinstance(r, Future):
        try:
            r = r.result(10)
        except SubmitError as exc:
            r = exc
    if isinstance(r, SubmitError):
        return ("refused", r.status, r.to_json())
    return ("ack", r.action_hash, r.received_height, r.signature, r.duplicate)


def test_submit_many_same_outcome_as_one_by_one(tmp_path: Path) -> None:
    one_hooks, many_hooks = CountingHooks(), CountingHooks()
    one, many = open_seq(tmp_path, "one", one_hooks), open_seq(tmp_path, "many", many_hooks)
    try:
        expected = []
        for raw in cases():
            try:
                expected.append(outcome(one.submit_nowait(raw)))
            except SubmitError as exc:
                expected.append(outcome(exc))
        got = [outcome(r) for r in many.submit_many(cases())]
        assert got == expected
        kinds = [e[0] for e in expected]
        assert kinds.count("ack") == 5 and kinds.count("refused") == 9  # the cases bite
        assert {e[2]["reason"] for e in expected if e[0] == "refused"} >= {
            "bad_nonce", "bad_signature", "bad_chain_id", "malformed", "too_large",
            "unknown_task", "system_action"}
        assert sorted(many_hooks.rejected) == sorted(one_hooks.rejected)  # counted alike
        # the batch's four new actions were committed together
        assert many_hooks.groups[-1] == 4
        assert many.store.count_actions() == one.store.count_actions()
        assert one.produce_block().receipts == many.produce_block().receipts
        assert one.state.state_root() == many.state.state_root()
    finally:
        one.close()
        many.close()


def test_intake_batches_and_keeps_reasons(tmp_path: Path) -> None:
    hooks = CountingHooks()
    seq = open_seq(tmp_path, "intake", hooks)
    ms = members(4)  # at most 5 advances per task may be queued (mempool_guard)
    try:
        futs = [seq.submit_batched(act(m, 0)) for m in ms]
        futs.append(seq.submit_batched(act(ms[0], 5)))
        acks = [f.result(10) for f in futs[:-1]]
        assert [a.duplicate for a in acks] == [False] * 4
        with pytest.raises(SubmitError) as ei:
            futs[-1].result(10)
        assert ei.value.reason == Reason.BAD_NONCE
        assert seq.mempool_size == 4
        assert seq.submit_batched(act(ms[0], 0)).result(10).duplicate is True
    finally:
        seq.close()
    with pytest.raises(SubmitError) as ei:  # closed: the direct path says why
        seq.submit_batched(act(ms[1], 1))
    assert ei.value.reason == Reason.SHUTTING_DOWN


def test_intake_fails_a_batch_on_a_bug_and_keeps_serving() -> None:
    calls: list[int] = []

    def submit_many(raws: Any, futures: Any) -> list[Any]:
        calls.append(len(raws))
        if raws[0] == b"boom":
            raise RuntimeError("bug")
        out: list[Any] = []
        for raw, f in zip(raws, futures, strict=True):
            if raw == b"no":
                out.append(SubmitError(Reason.MALFORMED, "x"))
            else:
                f.set_result(raw)
                out.append(f)
        return out

    intake = Intake(submit_many)
    intake.start()
    try:
        with pytest.raises(RuntimeError):
            intake.submit(b"boom").result(10)
        assert intake.submit(b"ok").result(10) == b"ok"
        with pytest.raises(SubmitError):
            intake.submit(b"no").result(10)
    finally:
        intake.stop()
    assert not intake.running
    with pytest.raises(SubmitError):
        intake.submit(b"late")


@pytest.mark.parametrize("duplicate", [False, True])
def test_ack_json_bytes_is_the_compact_json_of_to_json(duplicate: bool) -> None:
    ack = Ack(b"\xab" * 32, 2**40 + 7, b"\x01\xff" * 32, duplicate)
    assert ack.json_bytes() == json.dumps(ack.to_json(), separators=(",", ":")).encode()


def test_submit_batched_walks_the_shape_once(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import sequencer.submit as mod

    hooks = CountingHooks()
    seq = open_seq(tmp_path, "shape", hooks)
    walked: list[int] = []
    real = mod.check_msgpack_shape
    monkeypatch.setattr(mod, "check_msgpack_shape", lambda raw: (walked.append(1), real(raw)))
    try:
        a = members(1)[0]
        assert seq.submit_batched(act(a, 0)).result(10).duplicate is False
        assert len(walked) == 1  # here, not again on the intake thread
        assert seq.submit_batched(act(a, 1), shape_checked=True).result(10)
        assert len(walked) == 1  # the caller walked it
        with pytest.raises(SubmitError) as ei:  # refused at once, counted once
            seq.submit_batched(b"\x92\x00")
        assert (ei.value.reason, hooks.rejected[-1:]) == ("malformed", ["malformed"])
    finally:
        seq.close()


def test_tune_gc_freezes_startup_objects_and_raises_gen0() -> None:
    """In a fresh interpreter (it changes process-wide settings): what ``serve`` does."""
    import subprocess
    import sys

    code = ("import gc; from rollup.node import tune_gc, GC_GEN0_THRESHOLD as T; "
            "g = gc.get_threshold(); tune_gc(); "
            "assert gc.get_freeze_count() > 1000, gc.get_freeze_count(); "
            "assert gc.get_threshold() == (T, g[1], g[2]) and T > g[0], gc.get_threshold()")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       cwd=Path(__file__).resolve().parents[2], timeout=120)
    assert r.returncode == 0, r.stderr


def test_a_bug_in_one_action_does_not_fail_its_batch(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import sequencer.submit as mod

    seq = open_seq(tmp_path, "bug")
    a, b, c = members(3)
    real = mod.admission.static_checks

    def flaky(state: Any, sa: Any, view: Any = None) -> None:
        if sa.action.sender == b.pubkey:
            raise RuntimeError("bug")
        real(state, sa, view)

    monkeypatch.setattr(mod.admission, "static_checks", flaky)
    try:
        out = seq.submit_many([act(a, 0), act(b, 0), act(c, 0)])
        assert isinstance(out[1], RuntimeError)
        assert [out[i].result(10).duplicate for i in (0, 2)] == [False, False]
        assert seq.mempool_size == 2
    finally:
        seq.close()


def test_settle_ignores_a_second_completion_so_the_writer_keeps_going() -> None:
    """A batch that failed on a bug has failed its futures; the writer's later completion
    of an entry it had already been handed must neither raise nor change the outcome."""
    failed: Future = Future()
    settle(failed, exc=RuntimeError("bug"))
    settle(failed, "late ack")  # type: ignore[arg-type]  # the writer's completion
    assert isinstance(failed.exception(), RuntimeError)
    done: Future = Future()
    settle(done, "ack")  # type: ignore[arg-type]
    settle(done, exc=RuntimeError("late"))
    assert done.result() == "ack"


def test_ack_signature_is_signing_key_s(tmp_path: Path) -> None:
    """Acks are signed with ``nacl.bindings.crypto_sign`` and the sequencer's 64-byte
    secret key: the very signature ``SigningKey.sign`` makes, so every SDK check passes."""
    from nacl.signing import SigningKey

    from state_machine.crypto import ack_message, verify_ack

    seq = open_seq(tmp_path, "acksig")
    try:
        a = members(1)[0]
        ack = seq.submit_batched(act(a, 0)).result(10)
        msg = ack_message(ack.action_hash, ack.received_height)
        assert ack.signature == SigningKey(SEQ_SEED).sign(msg).signature
        assert verify_ack(seq.pubkey, ack.action_hash, ack.received_height, ack.signature)
    finally:
        seq.close()
