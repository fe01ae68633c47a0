"""Commitments of the commit-reveal phases: what a proposer or voter commits to.

Why a module of its own: the formulas are protocol (SPEC §2, departure 3 in
``docs/protocol.md``) shared by the STF, the SDK and every client; protocol 2 binds the
sender, task and epoch into each (issue 10), protocol 1 keeps SPEC's payload-only forms so
recorded chains replay.
"""

from __future__ import annotations

from dataclasses import dataclass

from state_machine.crypto import keccak256


@dataclass(frozen=True)
class CommitBinding:
    """Who commits, where: bound into every commitment from protocol 2 on (issue 10).

    Why: a payload-only commitment can be copied from the mempool by another key and later
    opened with the victim's revealed payload (framing: two keys reveal identical updates and
    both are slashed `duplicate`), or front-run so the victim's own commit is refused. With
    the sender's pubkey inside the hash, a copied commitment opens only for its author."""

    sender: bytes
    task_id: int
    epoch: int

    def encode(self) -> bytes:
        """pubkey (32 bytes) || u64 task_id || u64 epoch."""
        return self.sender + self.task_id.to_bytes(8, "big") + self.epoch.to_bytes(8, "big")


UPDATE_V2_DOMAIN = b"flockchain/update/v2"
# Distinct domains (protocol 2): no preimage of one commitment kind is one of another kind.
COMMIT_UPDATE_DOMAIN = b"flockchain/commit/update/v1"
COMMIT_UPDATE_V2_DOMAIN = b"flockchain/commit/update/v2"
COMMIT_VOTE_DOMAIN = b"flockchain/commit/vote/v1"


def update_commitment(update_bytes: bytes, salt: bytes, bind: CommitBinding | None) -> bytes:
    """Protocol 2: :func:`update_commitment_of_hash` of keccak256(update_bytes). ``bind``
    None (protocol 1 chains only): keccak256(update_bytes || salt) (SPEC §2; the salt is the
    last 32 bytes, so the variable-length update is unambiguous)."""
    if bind is None:
        return keccak256(update_bytes, salt)
    return update_commitment_of_hash(keccak256(update_bytes), salt, bind)


def update_commitment_of_hash(update_hash: bytes, salt: bytes, bind: CommitBinding) -> bytes:
    """Protocol 2: keccak256(COMMIT_UPDATE_DOMAIN || sender || u64 task_id || u64 epoch ||
    keccak256(update_bytes) || salt). Why the hash, not the bytes: the STF needs the
    update's hash anyway (``update_hashes``, replay evidence), so a reveal of tens of MB is
    hashed once, not twice (issue 14), and every field has a fixed length."""
    return keccak256(COMMIT_UPDATE_DOMAIN, bind.encode(), update_hash, salt)


def update_commitment_v2(update_hash: bytes, size: int, chunk_size: int, chunk_root: bytes,
                         salt: bytes, bind: CommitBinding | None) -> bytes:
    """What a chunked (v2) proposer commits to. Protocol 2: keccak256(COMMIT_UPDATE_V2_DOMAIN
    || sender || u64 task_id || u64 epoch || update_hash || u64 size || u64 chunk_size ||
    chunk_root || salt); protocol 1 (``bind`` None): keccak256(UPDATE_V2_DOMAIN || update_hash
    || u64 size || u64 chunk_size || chunk_root || salt). The domain keeps a v2 commitment
    from ever being opened as a v1 reveal of the same 32 bytes, and the chunk root binds
    every chunk."""
    tail = (update_hash, size.to_bytes(8, "big"), chunk_size.to_bytes(8, "big"), chunk_root,
            salt)
    if bind is None:
        return keccak256(UPDATE_V2_DOMAIN, *tail)
    return keccak256(COMMIT_UPDATE_V2_DOMAIN, bind.encode(), *tail)


def vote_commitment(acc_candidate_bps: int, acc_current_bps: int, salt: bytes,
                    bind: CommitBinding | None) -> bytes:
    """Protocol 2: keccak256(COMMIT_VOTE_DOMAIN || sender || u64 task_id || u64 epoch ||
    uint256 acc_candidate || uint256 acc_current || salt); protocol 1 (``bind`` None):
    keccak256(uint256 acc_candidate || uint256 acc_current || salt), big-endian words."""
    words = (acc_candidate_bps.to_bytes(32, "big"), acc_current_bps.to_bytes(32, "big"), salt)
    if bind is None:
        return keccak256(*words)
    return keccak256(COMMIT_VOTE_DOMAIN, bind.encode(), *words)
