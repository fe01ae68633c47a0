"""Account statuses, task statuses and task phases (the values the state records).

Why a module of their own: ``state`` and its derived ``indexes`` both need them, and
``indexes`` must not import ``state`` (no cycles between sibling modules).
"""

from __future__ import annotations

# account status
ACTIVE = 0
UNBONDING = 1
EJECTED = 2

# task status (as in the task leaf)
TASK_RUNNING = 0
TASK_COMPLETED = 1
TASK_REJECTED = 2

# task phases
AWAITING_GENESIS = "awaiting_genesis"
WAITING_CLIENTS = "waiting_clients"
UPDATE_COMMIT = "update_commit"
UPDATE_REVEAL = "update_reveal"
VOTE_COMMIT = "vote_commit"
VOTE_REVEAL = "vote_reveal"
DONE = "done"
DEADLINE_PHASES = frozenset({UPDATE_COMMIT, UPDATE_REVEAL, VOTE_COMMIT, VOTE_REVEAL})
# phases a task may idle in before its first epoch (it opens or, if armed, expires)
IDLE_PHASES = frozenset({AWAITING_GENESIS, WAITING_CLIENTS})
