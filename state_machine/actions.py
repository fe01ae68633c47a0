"""Action envelope and the typed body of every action (SPEC §2).

Why frozen dataclasses with explicit schemas: the STF must reject anything it does not
fully understand (extra fields, wrong types, wrong lengths) before looking at meaning,
and two nodes must derive the same bytes, hash and signature check from the same input.

Wire form of a signed action (canonical msgpack)::

    {"envelope": {"body": {...}, "chain_id": int, "nonce": int, "sender": bin32,
                  "type": str}, "signature": bin64}

System actions (``l1_*``) carry the all-zero sender and an empty signature: the
sequencer derives them from L1 logs and verifiers check them against those logs.
Wei amounts are ``uint256`` and travel as 32-byte big-endian ``bin`` (msgpack ints stop
at 2^64).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar

from state_machine import codec
from state_machine.constants import MAX_UINT64, SYSTEM_SENDER
from state_machine.crypto import ACTION_DOMAIN, keccak256, sign, verify
from state_machine.reasons import Reason


class ActionError(ValueError):
    """Malformed action: carries a machine-readable ``reason``."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


# field kinds: u64 (int), u256 (int, 32-byte bin on the wire), b20/b32 (fixed bytes),
# bytes (any length), str (utf-8, <= 64 chars)
_KINDS = {"u64", "u256", "b20", "b32", "bytes", "str"}


def _decode_field(kind: str, name: str, value: Any) -> Any:
    if kind == "u64":
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_UINT64:
            raise ActionError(Reason.INVALID_BODY, f"{name} must be an unsigned integer")
        return value
    if kind == "u256":
        if not isinstance(value, bytes) or len(value) != 32:
            raise ActionError(Reason.INVALID_BODY, f"{name} must be 32-byte big-endian bin")
        return int.from_bytes(value, "big")
    if kind in ("b20", "b32"):
        n = 20 if kind == "b20" else 32
        if not isinstance(value, bytes) or len(value) != n:
            raise ActionError(Reason.INVALID_BODY, f"{name} must be {n} bytes")
        return value
    if kind == "bytes":
        if not isinstance(value, bytes):
            raise ActionError(Reason.INVALID_BODY, f"{name} must be bin")
        return value
    if kind == "str":
        if not isinstance(value, str) or len(value) > 64:
            raise ActionError(Reason.INVALID_BODY, f"{name} must be a short string")
        return value
    raise AssertionError(kind)


def _encode_field(kind: str, value: Any) -> Any:
    if kind == "u256":
        return int(value).to_bytes(32, "big")
    return value


@dataclass(frozen=True)
class Body:
    """Base of every action body; ``SCHEMA`` maps field name to wire kind."""

    SCHEMA: ClassVar[dict[str, str]] = {}

    def to_wire(self) -> dict[str, Any]:
        return {k: _encode_field(kind, getattr(self, k)) for k, kind in self.SCHEMA.items()}

    @classmethod
    def from_wire(cls, raw: Any) -> Body:
        if not isinstance(raw, dict):
            raise ActionError(Reason.INVALID_BODY, "body must be a map")
        extra = set(raw) - set(cls.SCHEMA)
        missing = set(cls.SCHEMA) - set(raw)
        if extra:
            raise ActionError(Reason.INVALID_BODY, f"unknown fields {sorted(extra)}")
        if missing:
            raise ActionError(Reason.INVALID_BODY, f"missing fields {sorted(missing)}")
        return cls(**{k: _decode_field(kind, k, raw[k]) for k, kind in cls.SCHEMA.items()})


_L1 = {"l1_block": "u64", "log_index": "u64", "tx_hash": "b32"}


@dataclass(frozen=True)
class DepositBody(Body):
    """L1 ``Staked(account, pubkey, amount)`` log."""

    SCHEMA: ClassVar[dict[str, str]] = {
        "l1_address": "b20",
        "pubkey": "b32",
        "amount": "u256",
        **_L1,
    }
    l1_address: bytes
    pubkey: bytes
    amount: int
    l1_block: int
    log_index: int
    tx_hash: bytes


POP_DOMAIN = b"flockchain/pop/v1"


def pop_message(chain_id: int, l1_address: bytes) -> bytes:
    """What a client signs with its ed25519 key to bind it to ``l1_address`` on rollup
    ``chain_id`` (proof of possession, issue 11 F-15): a front-runner who copies a victim's
    pubkey into its own ``stake()`` cannot produce this signature for its own address."""
    return POP_DOMAIN + chain_id.to_bytes(8, "big") + l1_address


@dataclass(frozen=True)
class DepositPopBody(Body):
    """L1 ``Staked(account, pubkey, amount, pop)`` log: a deposit with its proof of
    possession (``pop`` = ed25519 signature over ``pop_message``)."""

    SCHEMA: ClassVar[dict[str, str]] = {
        "l1_address": "b20",
        "pubkey": "b32",
        "amount": "u256",
        "pop": "bytes",
        **_L1,
    }
    l1_address: bytes
    pubkey: bytes
    amount: int
    pop: bytes
    l1_block: int
    log_index: int
    tx_hash: bytes


@dataclass(frozen=True)
class BeaconBody(Body):
    """L1 ``Beacon(number, randomness)`` log: L1's ``prevrandao`` for epoch selection."""

    SCHEMA: ClassVar[dict[str, str]] = {"number": "u64", "randomness": "b32", **_L1}
    number: int
    randomness: bytes
    l1_block: int
    log_index: int
    tx_hash: bytes


@dataclass(frozen=True)
class UnbondBody(Body):
    """L1 ``Unbonded(account, pubkey, unlockTime)`` log."""

    SCHEMA: ClassVar[dict[str, str]] = {
        "l1_address": "b20",
        "pubkey": "b32",
        "unlock_time": "u64",
        **_L1,
    }
    l1_address: bytes
    pubkey: bytes
    unlock_time: int
    l1_block: int
    log_index: int
    tx_hash: bytes


@dataclass(frozen=True)
class TaskCreatedBody(Body):
    """L1 ``TaskCreated(taskId, owner, specHash, maxEpochs, targetAccuracyBps, taskParams,
    escrow)`` log; ``task_params`` is canonical msgpack (see ``state_machine.tasks``)."""

    SCHEMA: ClassVar[dict[str, str]] = {
        "task_id": "u64",
        "owner": "b20",
        "spec_hash": "b32",
        "max_epochs": "u64",
        "target_accuracy_bps": "u64",
        "task_params": "bytes",
        "escrow": "u256",
        **_L1,
    }
    task_id: int
    owner: bytes
    spec_hash: bytes
    max_epochs: int
    target_accuracy_bps: int
    task_params: bytes
    escrow: int
    l1_block: int
    log_index: int
    tx_hash: bytes


@dataclass(frozen=True)
class ForcedActionBody(Body):
    """L1 ``ForcedAction(number, sender, action)`` log (issue 11, F-12): ``action`` is a
    client's signed action (wire bytes) that the rollup applies with exactly the checks of
    a mempool action (``state_machine.forced``). The wrapper itself moves nothing."""

    SCHEMA: ClassVar[dict[str, str]] = {"number": "u64", "action": "bytes", **_L1}
    number: int
    action: bytes
    l1_block: int
    log_index: int
    tx_hash: bytes


@dataclass(frozen=True)
class PublishGenesisBody(Body):
    """Anyone publishes the genesis model bytes whose hash the task fixed on L1."""

    SCHEMA: ClassVar[dict[str, str]] = {"task_id": "u64", "model_bytes": "bytes"}
    task_id: int
    model_bytes: bytes


@dataclass(frozen=True)
class PublishGenesisV2Body(Body):
    """Protocol 4: the genesis model as a blob named by its chunk root (which must be the
    task's ``genesis_model_hash``); the bytes travel like a v2 update (state_machine.genesis)."""

    SCHEMA: ClassVar[dict[str, str]] = {
        "task_id": "u64",
        "size": "u64",
        "chunk_size": "u64",
        "model_root": "b32",
    }
    task_id: int
    size: int
    chunk_size: int
    model_root: bytes


@dataclass(frozen=True)
class CommitUpdateBody(Body):
    SCHEMA: ClassVar[dict[str, str]] = {"task_id": "u64", "epoch": "u64", "commitment": "b32"}
    task_id: int
    epoch: int
    commitment: bytes


@dataclass(frozen=True)
class RevealUpdateBody(Body):
    SCHEMA: ClassVar[dict[str, str]] = {
        "task_id": "u64",
        "epoch": "u64",
        "update_bytes": "bytes",
        "salt": "b32",
    }
    task_id: int
    epoch: int
    update_bytes: bytes
    salt: bytes


@dataclass(frozen=True)
class RevealUpdateV2Body(Body):
    """Protocol v2 reveal: the signed envelope carries the update's keccak256, size and
    chunk root, never its bytes; the bytes travel in chunks into the blob store and reach
    the STF beside the block (``Block.blobs``), hashed once when they were streamed."""

    SCHEMA: ClassVar[dict[str, str]] = {
        "task_id": "u64",
        "epoch": "u64",
        "update_hash": "b32",
        "size": "u64",
        "chunk_size": "u64",
        "chunk_root": "b32",
        "salt": "b32",
    }
    task_id: int
    epoch: int
    update_hash: bytes
    size: int
    chunk_size: int
    chunk_root: bytes
    salt: bytes


@dataclass(frozen=True)
class CommitVoteBody(Body):
    SCHEMA: ClassVar[dict[str, str]] = {"task_id": "u64", "epoch": "u64", "commitment": "b32"}
    task_id: int
    epoch: int
    commitment: bytes


@dataclass(frozen=True)
class RevealVoteBody(Body):
    SCHEMA: ClassVar[dict[str, str]] = {
        "task_id": "u64",
        "epoch": "u64",
        "acc_candidate_bps": "u64",
        "acc_current_bps": "u64",
        "salt": "b32",
    }
    task_id: int
    epoch: int
    acc_candidate_bps: int
    acc_current_bps: int
    salt: bytes


@dataclass(frozen=True)
class AdvanceBody(Body):
    SCHEMA: ClassVar[dict[str, str]] = {"task_id": "u64", "epoch": "u64"}
    task_id: int
    epoch: int


BODY_TYPES: dict[str, type[Body]] = {
    "l1_deposit": DepositBody,
    "l1_deposit_pop": DepositPopBody,
    "l1_unbond": UnbondBody,
    "l1_beacon": BeaconBody,
    "l1_task_created": TaskCreatedBody,
    "l1_task_created_v2": TaskCreatedBody,  # same log; the task can expire (F-10)
    "l1_forced_action": ForcedActionBody,
    "publish_genesis": PublishGenesisBody,
    "publish_genesis_v2": PublishGenesisV2Body,
    "commit_update": CommitUpdateBody,
    "reveal_update": RevealUpdateBody,
    "reveal_update_v2": RevealUpdateV2Body,
    "commit_vote": CommitVoteBody,
    "reveal_vote": RevealVoteBody,
    "advance": AdvanceBody,
}
SYSTEM_TYPES = frozenset(
    {"l1_deposit", "l1_deposit_pop", "l1_unbond", "l1_beacon", "l1_task_created",
     "l1_task_created_v2", "l1_forced_action"}
)


@dataclass(frozen=True)
class Action:
    """The signed envelope: who, which chain, which nonce, what."""

    type: str
    chain_id: int
    sender: bytes
    nonce: int
    body: Body

    def to_wire(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "chain_id": self.chain_id,
            "sender": self.sender,
            "nonce": self.nonce,
            "body": self.body.to_wire(),
        }

    @cached_property
    def _encoded(self) -> bytes:  # immutable, so computed once (hashing reads it often)
        return codec.encode(self.to_wire())

    def encode(self) -> bytes:
        return self._encoded

    def signing_bytes(self) -> bytes:
        return ACTION_DOMAIN + self.encode()

    @property
    def is_system(self) -> bool:
        return self.type in SYSTEM_TYPES

    @classmethod
    def from_wire(cls, raw: Any) -> Action:
        if not isinstance(raw, dict):
            raise ActionError(Reason.MALFORMED, "envelope must be a map")
        keys = {"type", "chain_id", "sender", "nonce", "body"}
        if set(raw) != keys:
            raise ActionError(Reason.MALFORMED, f"envelope fields must be exactly {sorted(keys)}")
        typ = raw["type"]
        if not isinstance(typ, str) or typ not in BODY_TYPES:
            raise ActionError(Reason.UNKNOWN_TYPE, repr(typ))
        chain_id = _decode_field("u64", "chain_id", raw["chain_id"])
        sender = _decode_field("b32", "sender", raw["sender"])
        nonce = _decode_field("u64", "nonce", raw["nonce"])
        body = BODY_TYPES[typ].from_wire(raw["body"])
        return cls(type=typ, chain_id=chain_id, sender=sender, nonce=nonce, body=body)


@dataclass(frozen=True)
class SignedAction:
    """An action plus its ed25519 signature (empty for system actions)."""

    action: Action
    signature: bytes

    def to_wire(self) -> dict[str, Any]:
        return {"envelope": self.action.to_wire(), "signature": self.signature}

    def encode(self) -> bytes:
        return codec.encode(self.to_wire())

    @cached_property
    def hash(self) -> bytes:
        """action_hash = keccak256(msgpack(envelope) || signature) (SPEC §2); cached, since
        the action is immutable and the sequencer and STF read it several times."""
        return keccak256(self.action.encode(), self.signature)

    def signature_valid(self) -> bool:
        if self.action.is_system:
            return self.action.sender == SYSTEM_SENDER and self.signature == b""
        if self.action.sender == SYSTEM_SENDER:
            return False
        return verify(self.action.sender, self.action.signing_bytes(), self.signature)


def decode_signed(data: bytes) -> SignedAction:
    """Parse wire bytes into a SignedAction; raises ActionError with a reason."""
    try:
        raw = codec.decode(data)
    except codec.CodecError as exc:
        raise ActionError(Reason.MALFORMED, str(exc)) from exc
    if not isinstance(raw, dict) or set(raw) != {"envelope", "signature"}:
        raise ActionError(Reason.MALFORMED, "expected {envelope, signature}")
    sig = raw["signature"]
    if not isinstance(sig, bytes) or len(sig) not in (0, 64):
        raise ActionError(Reason.MALFORMED, "signature must be 64 bytes (or empty for system)")
    action = Action.from_wire(raw["envelope"])
    _keep_envelope_bytes(action, data, sig)
    return SignedAction(action, sig)


_WIRE_HEAD = b"\x82\xa8envelope"  # fixmap(2), "envelope": the canonical wire starts so
_WIRE_SIG = b"\xa9signature\xc4"  # "signature", bin8 (then its length and the bytes)


def _keep_envelope_bytes(action: Action, data: bytes, sig: bytes) -> None:
    """Remember the envelope's canonical bytes, cut from the (canonical, just checked)
    wire bytes, so hashing and verifying do not re-encode it. ``from_wire`` is strict
    (exact field sets, exact types), so ``to_wire`` gives back the decoded value and its
    canonical encoding is exactly this slice (``tests/state_machine/test_codec_actions``
    checks it for every action type)."""
    tail = _WIRE_SIG + bytes([len(sig)]) + sig
    if data[:10] == _WIRE_HEAD and data[-len(tail):] == tail:
        action.__dict__["_encoded"] = bytes(data[10:len(data) - len(tail)])


def make_action(
    secret_seed: bytes, typ: str, chain_id: int, nonce: int, body: Body, sender: bytes
) -> SignedAction:
    """Build and sign an action (client side helper; the STF never signs)."""
    action = Action(type=typ, chain_id=chain_id, sender=sender, nonce=nonce, body=body)
    return SignedAction(action, sign(secret_seed, action.signing_bytes()))


def system_action(typ: str, chain_id: int, nonce: int, body: Body) -> SignedAction:
    """An unsigned system action derived from an L1 log."""
    if typ not in SYSTEM_TYPES:
        raise ValueError(typ)
    return SignedAction(Action(typ, chain_id, SYSTEM_SENDER, nonce, body), b"")
