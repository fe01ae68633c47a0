"""Issue 11, F-10: tasks that never start (or stall) expire instead of locking their escrow.

Named step ``lifecycle.expire_idle_task`` and the rule around it, driven through real
blocks; ``skip`` stands for ``n`` empty blocks (an empty block does nothing to an idle
task but advance the height) so the tests need not build 86,400 of them."""

from __future__ import annotations

import numpy as np
from stf_harness import CHAIN_ID, Client, Harness, default_params

from state_machine.actions import SignedAction, system_action
from state_machine.constants import FEE_PER_EPOCH, TASK_IDLE_BLOCKS
from state_machine.epochs import next_deadline
from state_machine.lifecycle import expire_idle_task, idle_expired
from state_machine.state import TASK_REJECTED, TASK_RUNNING, State

D = 32
N = 5


def skip(h: Harness, n: int) -> None:
    """``n`` empty blocks' worth of height (no deadline of these tasks passes)."""
    st: State = h.state.copy()
    st.height += n
    st.state_root()
    st.seal()
    h.state = st


def v2(sa: SignedAction) -> SignedAction:
    a = sa.action
    return system_action("l1_task_created_v2", CHAIN_ID, a.nonce, a.body)


def setup(clients: int = N, genesis: bool = False, v1: bool = False, max_epochs: int = 3):
    h = Harness()
    cs = [Client.make(f"life{i}") for i in range(clients)]
    g = np.zeros(D, dtype=np.int32)
    deposits = [h.deposit(c) for c in cs]
    created = h.create_task(1, default_params(D, g, proposers=N, f=1, window=3),
                            max_epochs=max_epochs)
    assert all(r.applied for r in h.block(*deposits, created if v1 else v2(created)))
    if genesis:
        assert h.block(h.genesis(cs[0], 1, g))[0].applied
    return h, cs, g


def test_task_without_genesis_expires_and_its_whole_escrow_is_refundable():
    h, _, _ = setup()
    t = h.state.tasks[1]
    assert t.idle_deadline == 1 + TASK_IDLE_BLOCKS and next_deadline(h.state) == t.idle_deadline
    skip(h, TASK_IDLE_BLOCKS - 1)
    h.block()  # at the deadline: still waiting
    assert h.state.height == t.idle_deadline and h.state.tasks[1].status == TASK_RUNNING
    h.block()  # first block past it
    t = h.state.tasks[1]
    assert (t.status, t.phase, t.charged, t.treasury) == (TASK_REJECTED, "done", 0, 0)
    assert t.reject_reason == f"expired: awaiting_genesis for more than {TASK_IDLE_BLOCKS} blocks"
    assert h.state.task_proof(1)["fields"]["status"] == "rejected"
    assert next_deadline(h.state) is None


def test_genesis_restarts_the_clock_and_too_few_clients_expire_the_task():
    h, cs, g = setup(clients=N - 1)  # one client short of an epoch
    skip(h, 100)
    assert h.block(h.genesis(cs[0], 1, g))[0].applied
    t = h.state.tasks[1]
    assert t.phase == "waiting_clients" and t.idle_deadline == h.state.height + TASK_IDLE_BLOCKS
    skip(h, TASK_IDLE_BLOCKS)
    h.block()
    t = h.state.tasks[1]
    assert t.status == TASK_REJECTED and t.charged == 0
    assert t.reject_reason.startswith("expired: waiting_clients")
    # an expired task takes no genesis, commit or advance any more
    r = h.block(h.genesis(cs[0], 1, g))[0]
    assert (r.applied, r.reason) == (False, "wrong_window")


def test_a_task_that_can_open_opens_instead_of_expiring():
    h, _, _ = setup(clients=N - 1, genesis=True)
    skip(h, TASK_IDLE_BLOCKS - 1)
    late = Client.make("late")
    h.block(h.deposit(late))  # the missing client arrives in the last block of the wait
    assert h.state.height == h.state.tasks[1].idle_deadline
    h.block()  # past the deadline, but the task can run: it runs
    t = h.state.tasks[1]
    assert (t.status, t.phase) == (TASK_RUNNING, "update_commit")


def test_a_stalled_task_is_charged_only_the_epochs_it_ran():
    h, cs, _ = setup(genesis=True)
    h.block()
    assert h.state.tasks[1].phase == "update_commit"
    # one client leaves; the epoch runs out with nobody acting (discarded, all absent)
    h.block(h._sys("l1_unbond", _unbond(h, cs[-1])))
    for _ in range(30):
        if h.state.tasks[1].epochs_run:
            break
        h.block()
    t = h.state.tasks[1]
    assert (t.epochs_run, t.phase) == (1, "waiting_clients")  # too few clients left
    assert t.idle_deadline == h.state.height + TASK_IDLE_BLOCKS  # the clock restarted
    skip(h, TASK_IDLE_BLOCKS)
    h.block()
    t = h.state.tasks[1]
    assert t.status == TASK_REJECTED and t.charged == FEE_PER_EPOCH  # 1 of 3 epochs
    assert t.escrow - t.charged == 2 * FEE_PER_EPOCH  # refundable on L1


def _unbond(h: Harness, c: Client):
    from state_machine.actions import UnbondBody

    h.l1_block += 1
    return UnbondBody(c.address, c.pubkey, 10**9, h.l1_block, 0, b"\x12" * 32)


def test_expire_step_on_its_own():
    h, _, _ = setup(clients=N - 1, genesis=True)
    skip(h, TASK_IDLE_BLOCKS + 1)
    pre = h.state
    post = pre.copy()
    task = post.tasks[1]
    assert idle_expired(post, task)
    expire_idle_task(post, task)
    assert pre.tasks[1].status == TASK_RUNNING  # the pre-state is untouched
    assert post.tasks[1].status == TASK_REJECTED
    assert post.state_root() != pre.state_root()


def test_v1_tasks_never_expire():
    h, _, _ = setup(v1=True)
    t = h.state.tasks[1]
    assert t.idle_deadline is None and "idle_deadline" not in t.detail()
    assert next_deadline(h.state) is None
    skip(h, 10 * TASK_IDLE_BLOCKS)
    h.block()
    assert h.state.tasks[1].status == TASK_RUNNING

