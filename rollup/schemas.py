"""Typed JSON shapes of the node's HTTP API, shared by the server (response models) and
the SDK (``rollup.client`` parses answers into them).

Why types instead of key names: a wei amount is serialised as a decimal string because it
is a :data:`Wei`, wherever it appears and whatever it is called; bytes are 0x-hex because
they are :data:`Hex`. Records the STF keeps as 32-byte big-endian ``bytes`` (msgpack ints
stop at 2^64) are accepted by :data:`Wei` as well, so a record can be validated as-is.
Record models allow extra fields (``extra="allow"``): the STF's records stay the one
source of their field list; the models pin the types of the fields clients rely on.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, PlainSerializer, WithJsonSchema

from state_machine.constants import PROTOCOL_V1

MAX_SQL_INT = 2**63 - 1  # BIGINT on PostgreSQL and SQLite alike


def _to_int(v: Any) -> Any:
    if isinstance(v, (bytes, bytearray)):
        return int.from_bytes(v, "big")
    if isinstance(v, str):
        s = v.strip()
        return int(s, 16) if s[:2] in ("0x", "0X") else int(s)
    return v


def _to_bytes(v: Any) -> Any:
    if isinstance(v, str):
        return bytes.fromhex(v[2:] if v[:2] in ("0x", "0X") else v)
    return v


def _hex(b: bytes) -> str:
    return "0x" + bytes(b).hex()


Wei = Annotated[
    int,
    BeforeValidator(_to_int),
    PlainSerializer(str, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "pattern": "^[0-9]+$",
                    "description": "uint256 wei as a decimal string"}),
]
Hex = Annotated[
    bytes,
    BeforeValidator(_to_bytes),
    PlainSerializer(_hex, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "pattern": "^0x[0-9a-f]*$", "description": "0x-hex"}),
]


class JsonView(BaseModel):
    """Read access by key to the model's JSON form (``m["stake"]`` is the decimal string
    the API sent, ``m.stake`` the int), so SDK callers written against plain JSON dicts
    keep working while new code uses the typed attributes."""

    def _json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def __getitem__(self, key: str) -> Any:
        return self._json()[key]

    def __contains__(self, key: object) -> bool:
        return key in self._json()

    def get(self, key: str, default: Any = None) -> Any:
        return self._json().get(key, default)

    def keys(self) -> Any:
        return self._json().keys()

    def items(self) -> Any:
        return self._json().items()

    def values(self) -> Any:
        return self._json().values()


class _Model(JsonView):
    model_config = ConfigDict(extra="forbid")


class _Record(JsonView):
    """A state record: the listed fields are typed, other fields pass through."""

    model_config = ConfigDict(extra="allow")

    def model_post_init(self, _ctx: Any) -> None:
        extra = self.__pydantic_extra__ or {}
        for k, v in list(extra.items()):
            extra[k] = _plain(v)


def _plain(v: Any) -> Any:
    """Untyped record values to JSON: bytes as hex, containers recursively."""
    if isinstance(v, (bytes, bytearray)):
        return _hex(v)
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if hasattr(v, "item") and not isinstance(v, (int, float, str, bool)):
        return v.item()  # numpy scalars
    return v


class ErrorBody(_Model):
    reason: str
    detail: str = ""


class AckBody(_Model):
    action_hash: Hex
    ack: Hex
    received_height: int
    duplicate: bool = False


class ActionStatus(_Record):
    action_hash: Hex
    status: str
    seq: int
    type: str
    sender: Hex
    nonce: int
    received_height: int
    ack: Hex
    block_height: int | None = None
    block_index: int | None = None
    reason: str | None = None
    detail: str | None = None


class ReceiptView(_Model):
    action_hash: Hex
    applied: bool
    reason: str
    detail: str
    events: list[str]


class BlockView(_Model):
    height: int
    hash: Hex
    parent_hash: Hex
    timestamp: int
    state_root: Hex
    header: dict[str, Any]
    actions: list[Hex]
    receipts: list[ReceiptView]


class StateRootView(_Model):
    chain_id: int
    height: int
    state_root: Hex
    block_hash: Hex
    timestamp: int


class AccountRecord(_Record):
    index: int
    l1_address: Hex
    pubkey: Hex
    stake: Wei
    cumulative_slashed: Wei
    cumulative_reward: Wei
    status: str
    unlock_time: int


class AccountView(_Model):
    pubkey: Hex
    nonce: int
    next_nonce: int
    staked: bool
    account: AccountRecord | None


class AccountList(_Model):
    accounts: list[AccountRecord]
    height: int
    batch_index: int | None


class TaskRecord(_Record):
    task_id: int
    phase: str
    epoch: int
    global_hash: Hex
    escrow: Wei
    charged: Wei
    treasury: Wei
    fee_per_epoch: Wei


class TaskList(_Model):
    tasks: list[TaskRecord]
    height: int
    next_deadline: int | None


class EpochRecord(_Record):
    task_id: int
    epoch: int
    phase: str
    treasury: Wei


class AccountProof(_Record):
    fields: AccountRecord
    height: int
    batch_index: int | None


class TaskProof(_Record):
    fields: TaskRecord
    height: int
    batch_index: int | None


class BatchView(_Model):
    index: int
    first_height: int
    last_height: int
    last_block_hash: Hex
    state_root: Hex
    da_hash: Hex
    l1_tx_hash: Hex | None
    l1_status: str


class Health(_Model):
    ok: bool
    status: str
    chain_id: int
    # the chain's protocol version (rule set); a node that predates the field runs 1
    protocol: int = PROTOCOL_V1
    height: int
    block_hash: Hex
    sequencer_pubkey: Hex
    mempool: int
    max_body_bytes: int
    l1_cursor: tuple[int, int] | None
    read_only: bool = False
    last_write_error: str | None = None


def dump(model: BaseModel) -> dict[str, Any]:
    """JSON-ready dict of a model (wei as strings, bytes as hex)."""
    return model.model_dump(mode="json")
