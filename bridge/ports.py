"""What the bridge needs from an L2 node, as small protocols.

Why protocols: the bridge services run inside the node process (embedded demo), in the
aggregator daemon against a remote node, and in tests against fakes. Each side
implements these few methods; the services never import the sequencer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from state_machine.actions import Body


@dataclass(frozen=True)
class BatchHeader:
    """What StateCommitment.proposeBatch records (SPEC §10)."""

    index: int
    first_height: int
    last_height: int
    last_block_hash: bytes
    state_root: bytes
    da_hash: bytes


class SystemSink(Protocol):
    def l1_cursor(self) -> tuple[int, int] | None:
        """Highest (l1_block, log_index) already injected, queued or included."""

    def submit_system(self, typ: str, body: Body) -> bytes:
        """Queue a system action durably (the sequencer assigns the system nonce)."""


class BatchSource(Protocol):
    def unposted_batches(self) -> list[BatchHeader]:
        """Batches cut but not yet confirmed on L1, in index order."""

    def cut_batch(self) -> BatchHeader | None:
        """Close a batch over every unbatched block (None when there is none)."""

    def mark_posted(self, index: int, tx_hash: bytes) -> None: ...


class ProofSource(Protocol):
    def account_proofs(self, batch_index: int) -> list[dict[str, Any]]:
        """Every account's leaf fields and state proof at the batch's last state."""

    def task_proof(self, batch_index: int, task_id: int) -> dict[str, Any]: ...
