"""Derived indexes of the state: what block start and ``can_open`` look up instead of
scanning every task ever created and every account (issue 14).

* ``_active_tasks`` / ``_waiting_tasks`` (frozensets of task ids, replaced on change so
  copies share them): tasks in a phase with a deadline; tasks waiting for clients or
  awaiting genesis (both can open or expire, ``lifecycle``).
* ``_eligible`` (copy-on-write map pubkey -> eligible at the last flush) and
  ``_eligible_count``: accounts that can be selected.

They are no part of any root and not snapshotted (rebuilt by :func:`rebuild` when a snapshot
is restored). ``State._flush`` brings them up to date from the dirty sets, which every
mutation must fill for the root to be right anyway; between flushes (inside a block) the
eligible count is corrected by the accounts changed since, and the task lists fall back to
a scan while tasks are dirty (never at block start, which follows a flush). The recorded
chain replays to the same roots (``tests/state_machine/test_indexes.py`` also checks every
index against the scan it replaces, block by block).
"""

from __future__ import annotations

from typing import Any

from state_machine.constants import MIN_STAKE
from state_machine.cow import CowMap
from state_machine.phases import ACTIVE, DEADLINE_PHASES, IDLE_PHASES


def account_eligible(acc: Any) -> bool:
    """Can be selected when an epoch opens: active, stake at least MIN_STAKE."""
    return acc is not None and acc.status == ACTIVE and acc.stake >= MIN_STAKE


def index_accounts(state: Any, accs: list[Any]) -> None:
    """Flush: record the eligibility of the changed accounts ``accs``."""
    flags = state._eligible
    for a in accs:
        now = account_eligible(a)
        if flags.peek(a.pubkey, False) != now:
            flags[a.pubkey] = now
            state._eligible_count += 1 if now else -1


def index_tasks(state: Any, ts: list[Any]) -> None:
    """Flush: record the phases of the changed tasks ``ts``."""
    ids = {t.task_id for t in ts}
    active = {t.task_id for t in ts if t.phase in DEADLINE_PHASES}
    waiting = {t.task_id for t in ts if t.phase in IDLE_PHASES}
    if ids & state._active_tasks != active:
        state._active_tasks = frozenset((state._active_tasks - ids) | active)
    if ids & state._waiting_tasks != waiting:
        state._waiting_tasks = frozenset((state._waiting_tasks - ids) | waiting)


def eligible_count(state: Any) -> int:
    """Accounts that can be selected: the count at the last flush, corrected by the
    accounts changed since (this block's, so far; a rolled-back action's are undone)."""
    n, flags = state._eligible_count, state._eligible
    for pk in state.dirty_accounts:
        n += account_eligible(state.accounts.peek(pk)) - flags.peek(pk, False)
    return int(n)


def tasks_with_deadlines(state: Any) -> list[int]:
    """Ids of the tasks in a phase with a deadline, waiting for clients or awaiting genesis,
    ascending (what block start must look at)."""
    if state.dirty_tasks:
        return sorted(t.task_id for t in state.tasks.values()
                      if t.phase in DEADLINE_PHASES or t.phase in IDLE_PHASES)
    return sorted(state._active_tasks | state._waiting_tasks)


def rebuild(state: Any) -> None:
    """Derive every index from the entries (a restored snapshot): O(state)."""
    state._eligible, state._eligible_count = CowMap(), 0
    state._active_tasks = state._waiting_tasks = frozenset()
    index_accounts(state, list(state.accounts.values()))
    index_tasks(state, list(state.tasks.values()))
