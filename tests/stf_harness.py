"""A small in-memory chain driver for STF tests: keys, actions, blocks, nonces."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from state_machine.actions import (
    AdvanceBody,
    CommitUpdateBody,
    CommitVoteBody,
    DepositBody,
    PublishGenesisBody,
    RevealUpdateBody,
    RevealUpdateV2Body,
    RevealVoteBody,
    SignedAction,
    TaskCreatedBody,
    make_action,
    system_action,
)
from state_machine.chunks import verify_blob_root
from state_machine.commitments import (
    CommitBinding,
    update_commitment,
    update_commitment_v2,
    vote_commitment,
)
from state_machine.constants import FEE_PER_EPOCH, STAKE_AMOUNT
from state_machine.crypto import keccak256, public_key
from state_machine.rules import commit_binding
from state_machine.state import State
from state_machine.tasks import TaskParams
from state_machine.transition import (
    GENESIS_PARENT,
    Block,
    Receipt,
    execute_block,
    genesis_state,
)

CHAIN_ID = 7


def seed_for(name: str) -> bytes:
    return hashlib.sha256(b"test-key:" + name.encode()).digest()


@dataclass
class Client:
    name: str
    seed: bytes
    pubkey: bytes
    address: bytes
    nonce: int = 0

    @classmethod
    def make(cls, name: str) -> Client:
        seed = seed_for(name)
        return cls(name, seed, public_key(seed), hashlib.sha256(name.encode()).digest()[:20])


@dataclass
class Harness:
    state: State = field(default_factory=lambda: genesis_state(CHAIN_ID))
    parent: bytes = GENESIS_PARENT
    l1_block: int = 1
    system_nonce: int = 0
    pending: list[SignedAction] = field(default_factory=list)
    receipts: list[Receipt] = field(default_factory=list)
    signers: dict[bytes, Client] = field(default_factory=dict)
    # v2 updates' verified bytes, handed to every block (``Block.blobs``) by their key
    blobs: dict[bytes, Any] = field(default_factory=dict)
    arrays: Any = None  # ``Block.arrays``: where the STF writes aggregates and candidates

    # -- system actions --
    def _sys(self, typ: str, body) -> SignedAction:
        sa = system_action(typ, CHAIN_ID, self.system_nonce, body)
        self.system_nonce += 1
        return sa

    def deposit(self, c: Client, amount: int = STAKE_AMOUNT) -> SignedAction:
        self.l1_block += 1
        return self._sys(
            "l1_deposit", DepositBody(c.address, c.pubkey, amount, self.l1_block, 0, b"\x11" * 32)
        )

    def create_task(
        self, task_id: int, params: TaskParams, max_epochs: int = 3, target: int = 10_000
    ) -> SignedAction:
        self.l1_block += 1
        body = TaskCreatedBody(
            task_id,
            b"\x22" * 20,
            b"\x33" * 32,
            max_epochs,
            target,
            params.encode(),
            max_epochs * FEE_PER_EPOCH,
            self.l1_block,
            0,
            b"\x44" * 32,
        )
        return self._sys("l1_task_created", body)

    # -- signed actions --
    def signed(self, c: Client, typ: str, body) -> SignedAction:
        sa = make_action(c.seed, typ, CHAIN_ID, c.nonce, body, c.pubkey)
        c.nonce += 1
        self.signers[c.pubkey] = c
        return sa

    def binding(self, c: Client, task_id: int, epoch: int) -> CommitBinding | None:
        """What ``c``'s commitments bind on this chain (None on protocol 1 chains)."""
        return commit_binding(self.state, c.pubkey, task_id, epoch)

    def genesis(self, c: Client, task_id: int, model: np.ndarray) -> SignedAction:
        return self.signed(
            c, "publish_genesis", PublishGenesisBody(task_id, model.astype("<i4").tobytes())
        )

    def commit(
        self, c: Client, task_id: int, epoch: int, delta: np.ndarray, salt: bytes | None = None
    ):
        salt = salt or keccak256(c.pubkey, b"salt", bytes([epoch]))
        ub = delta.astype("<i2").tobytes()
        com = update_commitment(ub, salt, self.binding(c, task_id, epoch))
        return self.signed(c, "commit_update", CommitUpdateBody(task_id, epoch, com))

    def reveal(
        self, c: Client, task_id: int, epoch: int, delta: np.ndarray, salt: bytes | None = None
    ):
        salt = salt or keccak256(c.pubkey, b"salt", bytes([epoch]))
        ub = delta.astype("<i2").tobytes()
        return self.signed(c, "reveal_update", RevealUpdateBody(task_id, epoch, ub, salt))

    def commit_blob(self, c: Client, task_id: int, epoch: int, delta: np.ndarray,
                    salt: bytes | None = None):
        """A v2 commit of ``delta`` as the SDK makes it on a protocol 4 chain: the update is
        named by its chunk root (``verify_blob_root``), its bytes go to ``self.blobs``."""
        salt = salt or keccak256(c.pubkey, b"salt", bytes([epoch]))
        vb = verify_blob_root(delta.astype("<i2").tobytes())
        self.blobs[vb.key] = vb
        com = update_commitment_v2(vb.key, vb.size, vb.chunk_size, vb.root, salt,
                                   self.binding(c, task_id, epoch))
        return self.signed(c, "commit_update", CommitUpdateBody(task_id, epoch, com))

    def reveal_blob(self, c: Client, task_id: int, epoch: int, delta: np.ndarray,
                    salt: bytes | None = None):
        salt = salt or keccak256(c.pubkey, b"salt", bytes([epoch]))
        vb = verify_blob_root(delta.astype("<i2").tobytes())
        return self.signed(c, "reveal_update_v2", RevealUpdateV2Body(
            task_id, epoch, vb.key, vb.size, vb.chunk_size, vb.root, salt))

    def commit_vote(self, c: Client, task_id: int, epoch: int, cand: int, cur: int):
        salt = keccak256(c.pubkey, b"vsalt", bytes([epoch]))
        com = vote_commitment(cand, cur, salt, self.binding(c, task_id, epoch))
        return self.signed(c, "commit_vote", CommitVoteBody(task_id, epoch, com))

    def reveal_vote(self, c: Client, task_id: int, epoch: int, cand: int, cur: int):
        salt = keccak256(c.pubkey, b"vsalt", bytes([epoch]))
        return self.signed(c, "reveal_vote", RevealVoteBody(task_id, epoch, cand, cur, salt))

    def advance(self, c: Client, task_id: int, epoch: int):
        return self.signed(c, "advance", AdvanceBody(task_id, epoch))

    # -- blocks --
    def block(self, *actions: SignedAction) -> list[Receipt]:
        """The next block, one second after the last (the harness's honest cadence)."""
        return self.block_at(1_700_000_000 + self.state.height, *actions)

    def block_at(self, timestamp: int, *actions: SignedAction) -> list[Receipt]:
        """The next block at ``timestamp`` (protocol 3 reads it: ``state_machine.pacing``)."""
        b = Block(self.state.height + 1, self.parent, timestamp, list(actions), blobs=self.blobs,
                  arrays=self.arrays)
        res = execute_block(self.state, b)
        self.state, receipts, self.parent = res.state, res.receipts, res.hash
        self.receipts.extend(receipts)
        for c in self.signers.values():  # rejected actions consume no nonce
            c.nonce = self.state.nonces.get(c.pubkey, 0)
        return receipts

    def until_phase_changes(self, task_id: int, limit: int = 50) -> None:
        phase, epoch = self.state.tasks[task_id].phase, self.state.tasks[task_id].epoch
        for _ in range(limit):
            t = self.state.tasks[task_id]
            if (t.phase, t.epoch) != (phase, epoch):
                return
            self.block()
        raise AssertionError("phase never changed")


def default_params(
    d: int, genesis: np.ndarray, proposers: int = 7, f: int = 1, voters: int = 0, window: int = 3
) -> TaskParams:
    return TaskParams(
        model="softmax",
        num_params=d,
        proposers_per_epoch=proposers,
        f=f,
        genesis_model_hash=keccak256(genesis.astype("<i4").tobytes()),
        voters_per_epoch=voters,
        commit_window=window,
        reveal_window=window,
        vote_commit_window=window,
        vote_reveal_window=window,
        # the rule the recorded chains (scripts/record_chain.py) and the scenario tests were
        # written for; the default rule has its own tests (test_vouching.py)
        aggregator="mean",
    )


def count_verifications(monkeypatch: Any) -> list[bytes]:
    """Record every ed25519 verification the STF performs (by action hash)."""
    calls: list[bytes] = []
    real = SignedAction.signature_valid

    def counting(self: SignedAction) -> bool:
        if not self.action.is_system:
            calls.append(self.hash)
        return real(self)

    monkeypatch.setattr(SignedAction, "signature_valid", counting)
    return calls


def first_epoch_deltas(
    h: Harness, clients: list[Client], d: int, seed: int
) -> tuple[dict[bytes, Client], dict[bytes, np.ndarray]]:
    """Past the genesis block: the clients by pubkey and one random int16 update (σ 300)
    per proposer selected for task 1, epoch 0 (the usual first epoch of a test)."""
    h.block()
    by = {c.pubkey: c for c in clients}
    ep = h.state.epochs[(1, 0)]
    rng = np.random.default_rng(seed)
    return by, {pk: rng.normal(0, 300, d).astype(np.int16) for pk in ep.proposers}
