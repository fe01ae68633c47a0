"""Task lifecycle: expiry of tasks that never start or stall (issue 11, F-10).

Why: a task whose genesis is never published, or that never finds enough eligible
clients, used to sit in ``awaiting_genesis`` / ``waiting_clients`` forever, and L1 pays a
refund only for a finished task: its escrow was locked for good. L1 cannot decide expiry
alone, because the rollup may already have paid rewards from the same escrow; so the rollup
does, and the existing refund proof path pays the owner.

Rule (``TASK_IDLE_BLOCKS``): a task that is still in an idle phase more than
``TASK_IDLE_BLOCKS`` blocks after it entered it is rejected at the next block start
(``expire_idle_task``), unless it can open its epoch in that same block (a task that can
run, runs). It is charged exactly what finished epochs cost (``epochs_run × fee``, as at
completion), so a task that never started refunds its whole escrow.

Gated: only tasks created by ``l1_task_created_v2`` carry an ``idle_deadline``; v1 tasks
(recorded chains) have none, never expire, and keep their roots.
"""

from __future__ import annotations

from state_machine.constants import TASK_IDLE_BLOCKS
from state_machine.phases import IDLE_PHASES
from state_machine.state import (
    DONE,
    TASK_REJECTED,
    State,
    Task,
)


def arm_idle_expiry(state: State, task: Task) -> None:
    """A task created by ``l1_task_created_v2`` gets an idle deadline (unless it was
    rejected at creation: done already, nothing to expire)."""
    if task.phase != DONE:
        task.idle_deadline = state.height + TASK_IDLE_BLOCKS
        state.touch_task(task.task_id)


def start_idle_clock(state: State, task: Task) -> None:
    """``task`` just entered an idle phase at ``state.height``: its expiry restarts (for
    tasks that have one)."""
    if task.idle_deadline is not None:
        task.idle_deadline = state.height + TASK_IDLE_BLOCKS
        state.touch_task(task.task_id)


def idle_expired(state: State, task: Task) -> bool:
    """``task`` has sat in an idle phase past its deadline."""
    return (task.idle_deadline is not None and task.phase in IDLE_PHASES
            and state.height > task.idle_deadline)


def expire_idle_task(state: State, task: Task) -> None:
    """Reject an idle task for good: charged only the epochs it ran, the rest refundable."""
    task.reject_reason = f"expired: {task.phase} for more than {TASK_IDLE_BLOCKS} blocks"
    task.status, task.phase, task.phase_deadline = TASK_REJECTED, DONE, 0
    task.charged = task.epochs_run * task.fee_per_epoch
    state.touch_task(task.task_id)


def idle_deadline(task: Task) -> int | None:
    """The height whose passing expires ``task`` (None if it cannot expire now)."""
    return task.idle_deadline if task.phase in IDLE_PHASES else None
