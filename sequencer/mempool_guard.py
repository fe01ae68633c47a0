"""Mempool quotas, rate limits and the replay guard: what makes spam cost the spammer.

Why a node-side replay guard instead of a protocol change: the STF does not consume a
nonce when it rejects an action, so the very same signed bytes become valid again at the
same nonce. Changing that would change every receipt and the recorded chain. Instead the
node remembers, per sender, the hashes rejected *at the sender's current nonce* (they are
the only ones the nonce check would let through again) and refuses them
(``already_rejected``). The set is rebuilt from the store on recovery (rejected rows whose
nonce is still the sender's nonce), and a sender's entry is dropped as soon as its nonce
moves on, so it stays as small as the rejections that could be replayed. Sound: an action
the STF rejected at nonce ``n`` meets the same state checks only if the state changed; a
client that still wants it re-signs it (a new hash), which :class:`rollup.client.FlockClient`
does after a ``bad_nonce`` anyway.

Why rate limits by stake: a key with no active stake can never be selected, so the only
actions it can make the node store are ``advance`` and ``publish_genesis`` (admission refuses
the rest). Those share one global token bucket (``unstaked_per_hour``, burst
``unstaked_burst``) and a per-sender one, which bounds what all unstaked keys together can
add to storage per hour (docs/protocol.md, "What an unstaked key can make the node store").
Staked keys are bounded by per-sender queue quotas.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sqlalchemy import select

from sequencer import admission
from sequencer.errors import SubmitError
from sequencer.store import Store, actions
from state_machine.actions import SignedAction
from state_machine.reasons import Reason
from state_machine.rules import is_eligible
from state_machine.state import State


@dataclass(frozen=True)
class Limits:
    """Admission quotas; ``enabled=False`` (benchmarks only) turns quotas and rate limits
    off, never the soundness checks."""

    enabled: bool = True
    mempool_max: int = 200_000  # queued actions, all senders
    mempool_max_bytes: int = 4 * 1024**3  # queued action bytes, all senders
    sender_pending_max: int = 256  # queued actions of one sender
    unstaked_per_hour: int = 720  # advance/publish_genesis from keys with no stake, all
    unstaked_burst: int = 30
    unstaked_sender_per_hour: int = 60  # ... from one such key
    unstaked_sender_burst: int = 3
    # queued ``advance`` per task: more cannot be useful before the queue drains (one
    # advance closes one phase; an epoch has four phases plus its opening)
    advances_per_task: int = 5


class TokenBucket:
    """``rate`` tokens per second up to ``burst``; ``take`` is O(1)."""

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic
                 ) -> None:
        self.rate, self.burst, self._clock = rate, burst, clock
        self.tokens, self.t = burst, clock()

    def take(self, n: float = 1.0) -> bool:
        now = self._clock()
        self.tokens = min(self.burst, self.tokens + (now - self.t) * self.rate)
        self.t = now
        if self.tokens >= n:
            self.tokens -= n
            return True
        return False

    def full(self) -> bool:
        now = self._clock()
        return self.tokens + (now - self.t) * self.rate >= self.burst


class RateLimits:
    """Token buckets for unstaked senders: one global, one per sender (pruned when full,
    so memory is bounded by the senders active in the last ``burst / rate`` seconds)."""

    def __init__(self, limits: Limits, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self._clock = clock
        self._lock = threading.Lock()
        self._global = TokenBucket(limits.unstaked_per_hour / 3600, limits.unstaked_burst, clock)
        self._senders: dict[bytes, TokenBucket] = {}

    def unstaked(self, sender: bytes) -> None:
        """Charge one unstaked action to ``sender`` and the global budget, or refuse."""
        if not self.limits.enabled:
            return
        lim = self.limits
        with self._lock:
            b = self._senders.get(sender)
            if b is None:
                if len(self._senders) > 100_000:
                    self._prune()
                b = self._senders[sender] = TokenBucket(
                    lim.unstaked_sender_per_hour / 3600, lim.unstaked_sender_burst, self._clock)
            if not b.take():
                raise SubmitError(Reason.RATE_LIMITED, "too many actions from this unstaked key")
            if not self._global.take():
                b.tokens += 1  # refund: the sender did not get through
                raise SubmitError(Reason.RATE_LIMITED, "unstaked keys' hourly budget is spent; "
                                  "retry later")

    def _prune(self) -> None:
        for k in [k for k, b in self._senders.items() if b.full()]:
            del self._senders[k]


def check_quotas(limits: Limits, mempool_len: int, mempool_bytes: int, sender_pending: int,
                 size: int, queued_advances: int | None = None) -> None:
    """Queue quotas (under the sequencer's lock): 429 ``mempool_full`` when exceeded."""
    if not limits.enabled:
        return
    if queued_advances is not None and queued_advances >= limits.advances_per_task:
        raise SubmitError(Reason.MEMPOOL_FULL, f"{queued_advances} advances for this task are "
                          "already queued")
    if sender_pending >= limits.sender_pending_max:
        raise SubmitError(Reason.MEMPOOL_FULL, f"{sender_pending} actions of this sender are "
                          "queued; wait for inclusion")
    if mempool_len >= limits.mempool_max or mempool_bytes + size > limits.mempool_max_bytes:
        raise SubmitError(Reason.MEMPOOL_FULL, "the mempool is full; retry later")


class ReplayGuard:
    """Hashes the STF rejected at each sender's current nonce (see the module docstring).
    Not thread-safe: used under the sequencer's lock."""

    def __init__(self) -> None:
        self._by_sender: dict[bytes, tuple[int, set[bytes]]] = {}

    def __len__(self) -> int:
        return sum(len(s) for _, s in self._by_sender.values())

    def add(self, sender: bytes, nonce: int, action_hash: bytes, state_nonce: int) -> None:
        """Remember a rejection if its nonce is still the sender's nonce."""
        if nonce != state_nonce:
            return
        cur = self._by_sender.get(sender)
        if cur is None or cur[0] != nonce:
            cur = (nonce, set())
            self._by_sender[sender] = cur
        cur[1].add(action_hash)

    def settle(self, senders: Iterable[bytes], nonces: dict[bytes, int]) -> None:
        """Forget senders whose nonce moved past their remembered rejections."""
        for s in senders:
            cur = self._by_sender.get(s)
            if cur is not None and nonces.get(s, 0) != cur[0]:
                del self._by_sender[s]

    def rejected(self, sender: bytes, nonce: int, action_hash: bytes) -> bool:
        cur = self._by_sender.get(sender)
        return cur is not None and cur[0] == nonce and action_hash in cur[1]

    def check(self, sender: bytes, nonce: int, action_hash: bytes) -> None:
        if self.rejected(sender, nonce, action_hash):
            raise SubmitError(Reason.ALREADY_REJECTED, "these signed bytes were included and "
                              "rejected; sign a new action")


class AdmissionGate:
    """Everything the sequencer asks before storing a user action, in order, under its
    lock: replay guard, the window (``admission.window_checks``), who may send it
    (``admission.role_checks``), queue quotas, and the unstaked rate limit. One object so the
    sequencer's submit path stays one call."""

    def __init__(self, limits: Limits, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self.rates = RateLimits(limits, clock)
        self.replays = ReplayGuard()
        self.mempool_bytes = 0

    def admit(self, state: State, sa: SignedAction, action_hash: bytes, size: int,
              view: admission.PendingView, sender_pending: int, mempool_len: int,
              max_inclusion_height: int) -> None:
        """Raise SubmitError unless ``sa`` (nonce already checked) may be stored."""
        a = sa.action
        self.replays.check(a.sender, a.nonce, action_hash)
        admission.window_checks(state, sa, view, max_inclusion_height)
        admission.role_checks(state, sa, view)
        advances = view.advances.get(a.body.task_id, 0) if a.type == "advance" else None  # type: ignore[attr-defined]
        check_quotas(self.limits, mempool_len, self.mempool_bytes, sender_pending, size,
                     advances)
        if not is_eligible(state, a.sender) and view.deposits.get(a.sender, 0) == 0:
            self.rates.unstaked(a.sender)  # last: charge only what is otherwise admissible

    def block_applied(self, actions: Iterable[tuple[SignedAction, bytes, bool]],
                      new_state: State) -> None:
        """Record the rejections of a block (``(action, hash, applied)``) that could be
        replayed, and forget senders whose nonce moved on."""
        senders = set()
        for sa, h, applied in actions:
            a = sa.action
            senders.add(a.sender)
            if not applied and not a.is_system:
                self.replays.add(a.sender, a.nonce, h, new_state.nonces.get(a.sender, 0))
        self.replays.settle(senders, new_state.nonces)

    def recover(self, rows: Iterable[tuple[bytes, int, bytes]], state: State) -> None:
        """Rebuild the replay guard from stored rejected rows ``(sender, nonce, hash)``."""
        for sender, nonce, h in rows:
            self.replays.add(sender, nonce, h, state.nonces.get(sender, 0))


def rejected_rows(store: Store) -> list[tuple[bytes, int, bytes]]:
    """``(sender, nonce, hash)`` of every stored action the STF rejected (for
    :meth:`AdmissionGate.recover`; the status index makes this a range scan)."""
    q = select(actions.c.sender, actions.c.nonce, actions.c.hash).where(
        actions.c.status == "rejected")
    with store.engine.connect() as conn:
        return [(bytes(s), int(n), bytes(h)) for s, n, h in conn.execute(q)]
