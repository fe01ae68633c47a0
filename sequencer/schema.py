"""The node's SQL schema (SQLAlchemy Core tables) and the row types the store returns.

Why a module of its own: the tables are the durable contract (see ``sequencer.store`` for
the durability rules); the queries over them change far more often.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

WAL_AUTOCHECKPOINT_PAGES = 65536  # 256 MiB with 4 KiB pages

actions = Table(
    "actions",
    metadata,
    # seq: the sequencer's arrival order (FIFO); assigned before the ack, never reused.
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    # Not unique: an action the STF rejected did not use its nonce, so the very same signed
    # bytes may be submitted again later and get a new row (seq); lookups take the latest.
    Column("hash", LargeBinary(32), nullable=False),
    Column("bytes", LargeBinary, nullable=False),
    Column("sender", LargeBinary(32), nullable=False),
    Column("nonce", BigInteger, nullable=False),
    Column("type", String(32), nullable=False),
    Column("size", Integer, nullable=False),
    Column("status", String(16), nullable=False),  # queued | included | rejected
    Column("reason", String(64)),
    Column("detail", Text),
    Column("received_height", BigInteger, nullable=False),
    Column("ack", LargeBinary(64), nullable=False),
    Column("block_height", BigInteger),
    Column("block_index", Integer),
)
Index("ix_actions_hash", actions.c.hash)
Index("ix_actions_status_seq", actions.c.status, actions.c.seq)
Index("ix_actions_block", actions.c.block_height, actions.c.block_index)
# No (sender, nonce) index: no query reads one, and a random-keyed index costs every ack
# commit a B-tree leaf page per action (written to the WAL and fsynced). Databases created
# before keep theirs (create_all never drops an index); nothing depends on it either way.

blocks = Table(
    "blocks",
    metadata,
    Column("height", BigInteger, primary_key=True, autoincrement=False),
    Column("hash", LargeBinary(32), nullable=False, unique=True),
    Column("parent_hash", LargeBinary(32), nullable=False),
    Column("timestamp", BigInteger, nullable=False),
    Column("state_root", LargeBinary(32), nullable=False),
    Column("header", LargeBinary, nullable=False),  # canonical msgpack of block_header()
    Column("num_actions", Integer, nullable=False),
)

receipts = Table(
    "receipts",
    metadata,
    Column("block_height", BigInteger, primary_key=True, autoincrement=False),
    Column("idx", Integer, primary_key=True, autoincrement=False),
    Column("action_hash", LargeBinary(32), nullable=False),
    Column("applied", Boolean, nullable=False),
    Column("reason", String(64), nullable=False),
    Column("detail", Text, nullable=False),
    Column("events", Text, nullable=False),  # comma-separated event names
)

blobs = Table(
    "blobs",
    metadata,
    Column("hash", LargeBinary(32), primary_key=True),
    Column("kind", String(32), nullable=False),  # global_model | prev_delta | update
    Column("size", BigInteger, nullable=False),
    Column("location", String(8), nullable=False),  # db | dir | action
    Column("data", LargeBinary),
    Column("action_seq", BigInteger),  # location == action: the reveal that carries it
    Column("height", BigInteger, nullable=False),
)

snapshots = Table(
    "snapshots",
    metadata,
    Column("height", BigInteger, primary_key=True, autoincrement=False),
    Column("state_root", LargeBinary(32), nullable=False),
    # state_machine.snapshot payload: scalars + changed entries, arrays by blob hash
    Column("data", LargeBinary, nullable=False),
)

batches = Table(
    "batches",
    metadata,
    Column("idx", BigInteger, primary_key=True, autoincrement=False),
    Column("first_height", BigInteger, nullable=False),
    Column("last_height", BigInteger, nullable=False),
    Column("last_block_hash", LargeBinary(32), nullable=False),
    Column("state_root", LargeBinary(32), nullable=False),
    Column("da_hash", LargeBinary(32), nullable=False),
    Column("l1_tx_hash", LargeBinary(32)),
    Column("l1_status", String(16), nullable=False),  # pending | posted | final | ...
)

meta = Table(
    "meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

TABLES = (actions, blocks, receipts, blobs, snapshots, batches, meta)


@dataclass(frozen=True)
class ActionRow:
    """One acknowledged action as stored."""

    seq: int
    hash: bytes
    bytes: bytes
    sender: bytes
    nonce: int
    type: str
    size: int
    status: str
    reason: str | None
    detail: str | None
    received_height: int
    ack: bytes
    block_height: int | None
    block_index: int | None


@dataclass(frozen=True)
class BlockRow:
    height: int
    hash: bytes
    parent_hash: bytes
    timestamp: int
    state_root: bytes
    header: bytes
    num_actions: int


@dataclass(frozen=True)
class ReceiptRow:
    block_height: int
    idx: int
    action_hash: bytes
    applied: bool
    reason: str
    detail: str
    events: str


@dataclass(frozen=True)
class BatchRow:
    idx: int
    first_height: int
    last_height: int
    last_block_hash: bytes
    state_root: bytes
    da_hash: bytes
    l1_tx_hash: bytes | None
    l1_status: str


@dataclass(frozen=True)
class BlobWrite:
    """A blob made available by a block: inline bytes or a reference to an action."""

    hash: bytes
    kind: str
    size: int
    data: bytes | None = None
    action_seq: int | None = None
