"""Paced phase windows (protocol 3; issue 11, F-12 residual): a window lasts a minimum of
block-timestamp time as well as its number of blocks.

Why: windows count L2 blocks and the sequencer paces L2 blocks, so a sequencer producing
blocks faster than it advertises ran a reveal window out (and got a censored client
slashed ``ABSENT``) long before the lag rule obliged it to carry the client's forced
action. From protocol 3 a block's timestamp may not go below its parent's (the last one is
committed in the meta root), and a phase opened at timestamp ``t`` with a window of ``W``
blocks closes only in a block with height ``> deadline`` *and* timestamp
``>= t + window_floor_s(W)``. Producing blocks quickly no longer advances the clock; stamping
them in the future does, and that is what the verifier refuses: a batch with a block
timestamp ahead of the L1 block that proposed it is challenged (``timestamp_ahead_of_l1``,
``bridge.inclusion``), so the floor is L1 time the sequencer cannot compress.

Protocol 1 and 2 chains ignore timestamps (they were "recorded, never read"): nothing here
touches their state, so recorded chains keep their roots.
"""

from __future__ import annotations

from state_machine.constants import PROTOCOL_PACED_WINDOWS, WINDOW_FLOOR_MS_PER_BLOCK
from state_machine.records import Task
from state_machine.state import State


def paced(state: State) -> bool:
    """Whether the chain's rule set reads block timestamps (protocol 3 on)."""
    return state.protocol >= PROTOCOL_PACED_WINDOWS


def window_floor_s(window: int) -> int:
    """The least block-timestamp time, in whole seconds, a window of ``window`` blocks lasts:
    ``ceil(window * WINDOW_FLOOR_MS_PER_BLOCK / 1000)`` (integers only)."""
    return (window * WINDOW_FLOOR_MS_PER_BLOCK + 999) // 1000


def min_window_blocks(floor_s: int) -> int:
    """The least window whose floor is at least ``floor_s`` seconds (inverse of
    :func:`window_floor_s`)."""
    if floor_s <= 0:
        return 0
    return (floor_s - 1) * 1000 // WINDOW_FLOOR_MS_PER_BLOCK + 1  # floor rounds up: ceil


def timestamp_error(state: State, timestamp: int) -> str:
    """'' if a block with ``timestamp`` may follow ``state``, else why not (protocol 3: the
    clock never runs backwards, or a window's floor could be met, then un-met)."""
    if not paced(state):
        return ""
    if timestamp < 0:
        return f"negative timestamp {timestamp}"
    if timestamp < state.timestamp:
        return f"timestamp {timestamp} below the parent's {state.timestamp}"
    return ""


def stamp(state: State, timestamp: int) -> None:
    """Record the block's timestamp (protocol 3; checked by :func:`timestamp_error`)."""
    if paced(state):
        state.timestamp = timestamp


def open_window(state: State, task: Task, window: int) -> None:
    """A deadline phase starts in this block: protocol 3 also fixes its time floor."""
    if paced(state):
        task.phase_not_before = state.timestamp + window_floor_s(window)


def deadline_passed(state: State, task: Task, height: int | None = None) -> bool:
    """The task's current phase is over at ``height`` (default: the state's): its height
    deadline has passed and, protocol 3, so has its time floor by the latest block
    timestamp (a phase opened on a protocol 1 or 2 chain has none). The mempool asks with
    the next height and the head's timestamp: the next block's is no lower, so what passes
    there passes in the block."""
    if (state.height if height is None else height) <= task.phase_deadline:
        return False
    return task.phase_not_before is None or state.timestamp >= task.phase_not_before
