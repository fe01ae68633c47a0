"""Value types of the sequencer: configuration, acks, block info, hooks, queue entries.

Why a module of their own: the sequencer facade, the group-commit writer, the block
producer and the HTTP layer all use them; none of them should have to import the others.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection

from sequencer.mempool_guard import Limits
from state_machine.actions import SignedAction
from state_machine.constants import CURRENT_PROTOCOL, MAX_ACTION_BYTES
from state_machine.transition import Receipt


@dataclass(frozen=True)
class SequencerConfig:
    """Tuning knobs; every field has a CLI/env/config-file counterpart in ``rollup.config``."""

    chain_id: int
    # protocol version of a chain this node creates; an existing database keeps its own
    protocol: int = CURRENT_PROTOCOL
    block_time: float = 1.0
    max_block_actions: int = 1024
    max_action_bytes: int = MAX_ACTION_BYTES
    snapshot_interval: int = 100
    snapshots_kept: int = 3  # unused: incremental snapshots are all kept (sequencer.history)
    group_commit_max: int = 2048
    # seconds the writer waits for more submissions before committing a small group
    group_commit_wait: float = 0.0
    produce_blocks: bool = True  # run the background block producer
    batch_state_cache: int = 64  # recent batch/historical states kept in memory
    limits: Limits = field(default_factory=Limits)  # admission quotas and rate limits


@dataclass(frozen=True)
class Ack:
    """The sequencer's receipt of an action (returned with HTTP 202)."""

    action_hash: bytes
    received_height: int
    signature: bytes
    duplicate: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "action_hash": "0x" + self.action_hash.hex(),
            "ack": "0x" + self.signature.hex(),
            "received_height": self.received_height,
            "duplicate": self.duplicate,
        }

    def json_bytes(self) -> bytes:
        """:meth:`to_json` as compact JSON (``separators=(",", ":")``), formatted directly:
        the body of every 202, built without a dict and an encoder per action."""
        return b'{"action_hash":"0x%s","ack":"0x%s","received_height":%d,"duplicate":%s}' % (
            self.action_hash.hex().encode(), self.signature.hex().encode(),
            self.received_height, b"true" if self.duplicate else b"false")


@dataclass(frozen=True)
class BlockInfo:
    height: int
    hash: bytes
    state_root: bytes
    timestamp: int
    receipts: list[Receipt]


class SequencerHooks:
    """Observation points (metrics). Default: no-op. ``rollup.metrics`` implements them."""

    def action_accepted(self, typ: str, size: int) -> None: ...
    def action_rejected(self, reason: str) -> None: ...
    def block_applied(self, height: int, seconds: float, n_actions: int,
                      receipts: list[Receipt]) -> None: ...
    def epoch_closed(self, seconds: float) -> None: ...
    def acks_committed(self, n: int, seconds: float) -> None: ...


@dataclass(eq=False)
class Entry:
    """An acknowledged (or being-acknowledged) action."""

    seq: int
    sa: SignedAction
    raw: bytes
    hash: bytes
    received_height: int
    ack: bytes
    # the caller's future when it has one (the intake's): not built twice per action
    future: Future[Ack] = field(default_factory=Future)
    # set only right after admission verified the ed25519 signature of these bytes (never
    # for entries re-read from the database): block production then skips the STF's check
    sig_verified: bool = False

    def to_ack(self, duplicate: bool = False) -> Ack:
        return Ack(self.hash, self.received_height, self.ack, duplicate)


@dataclass(eq=False)
class Job:
    fn: Callable[[Connection], Any]
    future: Future[Any] = field(default_factory=Future)



STOP = object()  # tells the writer thread to exit
