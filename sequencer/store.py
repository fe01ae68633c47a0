"""SQL persistence of the chain: actions, blocks, receipts, blobs, snapshots, batches.

Why SQLAlchemy Core (not the ORM): every write path is a handful of bulk statements inside
one transaction, and the same code must run unchanged on SQLite (default, WAL +
``synchronous=FULL`` so an acknowledged action survives power loss) and PostgreSQL. The
chain itself (block hashes, state roots) never depends on the database: rows hold the
canonical bytes and the STF recomputes everything from them.

Durability contract used by the sequencer:

* an action row is committed *before* its ack is returned (status ``queued``);
* a block, its receipts, the status of every action it includes, the blobs it makes
  available and (every N blocks) a state snapshot are committed in *one* transaction, so
  after a crash the database holds a prefix of the chain and every acked action is either
  included in it or still queued.

Large blobs (global models) can live in a content-addressed directory (``blob_dir``) with
only their hash in SQL; a file is written and fsynced before the transaction that refers to
it commits, and an orphan file (crash in between) is harmless because names are hashes.
Reveal updates are not copied at all: their blob row points at the action that carries them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.pool import StaticPool

from blobstore import BlobStore, FsBlobStore
from sequencer.schema import (  # noqa: F401  (re-exported: tables and rows live in schema)
    TABLES,
    WAL_AUTOCHECKPOINT_PAGES,
    ActionRow,
    BatchRow,
    BlobWrite,
    BlockRow,
    ReceiptRow,
    actions,
    batches,
    blobs,
    blocks,
    meta,
    metadata,
    receipts,
    snapshots,
)


def _b(v: Any) -> Any:
    """psycopg may hand back memoryview for bytea; normalise to bytes."""
    return bytes(v) if isinstance(v, memoryview) else v


def _row(cls: type, row: Any) -> Any:
    return cls(**{k: _b(v) for k, v in row._mapping.items()})


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


class Store:
    """The node's database. Thread-safe: SQLAlchemy pools one connection per thread.

    Writes go through :meth:`begin` (one transaction); the sequencer funnels every write
    through a single writer thread, so SQLite never sees two concurrent writers.
    """

    def __init__(self, url: str, blob_dir: str | os.PathLike[str] | None = None,
                 blob_inline_max: int = 1 << 20, blobstore: BlobStore | None = None) -> None:
        self.url = url
        self.blob_dir = Path(blob_dir) if blob_dir else None
        # large blobs (v1 models above blob_inline_max, v2 updates): one content-addressed
        # backend, the local blob_dir by default (see the blobstore package)
        self.blobstore = blobstore or (FsBlobStore(self.blob_dir) if self.blob_dir else None)
        self._large_blobs_out = self.blobstore is not None  # else v1 models stay in SQL
        self.blob_inline_max = blob_inline_max
        self.engine = self._make_engine(url)
        self._compiled = self._compile_bulk()
        if self.blob_dir is not None:
            self.blob_dir.mkdir(parents=True, exist_ok=True)

    def _executemany(self, conn: Connection, key: str, rows: Sequence[dict[str, Any]]) -> None:
        """Bulk statement as one DBAPI executemany, compiled once per store (the generic
        Core path costs tens of microseconds per row in Python)."""
        sql, order = self._compiled[key]
        params: list[Any] = (
            [tuple(r[k] for k in order) for r in rows] if order is not None else list(rows)
        )
        conn.exec_driver_sql(sql, params)

    def _compile_bulk(self) -> dict[str, tuple[str, tuple[str, ...] | None]]:
        status = (
            update(actions)
            .where(actions.c.seq == bindparam("b_seq"))
            .values(
                status=bindparam("b_status"),
                reason=bindparam("b_reason"),
                detail=bindparam("b_detail"),
                block_height=bindparam("b_height"),
                block_index=bindparam("b_index"),
            )
        )
        out = {}
        for key, stmt in (("receipts", insert(receipts)), ("status", status),
                          ("actions", insert(actions))):
            c = stmt.compile(dialect=self.engine.dialect)
            order = tuple(c.positiontup) if c.positional and c.positiontup else None
            out[key] = (str(c), order)
        return out

    @staticmethod
    def _make_engine(url: str) -> Engine:
        if is_sqlite(url):
            memory = url in ("sqlite://", "sqlite:///:memory:")
            if not memory:
                path = url.split("///", 1)[1] if "///" in url else ""
                if path:
                    Path(path).parent.mkdir(parents=True, exist_ok=True)
            kwargs: dict[str, Any] = {"poolclass": StaticPool} if memory else {
                "pool_size": 8, "max_overflow": 16
            }
            engine = create_engine(
                url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs
            )

            @event.listens_for(engine, "connect")
            def _pragmas(dbapi_conn: Any, _record: Any) -> None:
                # WAL: readers never block the writer; FULL: the WAL is fsynced at every
                # commit, so an ack implies the action is on disk (power-loss safe).
                cur = dbapi_conn.cursor()
                if not memory:
                    cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA synchronous=FULL")
                # Checkpoints (copying the WAL into the database file) are run by
                # Store.checkpoint() off the commit path; this is only a safety net.
                cur.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
                cur.execute("PRAGMA busy_timeout=30000")
                cur.execute("PRAGMA foreign_keys=OFF")
                cur.close()

            return engine
        return create_engine(url, pool_size=8, max_overflow=16, pool_pre_ping=True)

    # ------------------------------------------------------------------ schema

    def create(self) -> None:
        metadata.create_all(self.engine)

    def drop(self) -> None:
        metadata.drop_all(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    @property
    def is_sqlite(self) -> bool:
        return is_sqlite(self.url)

    def checkpoint(self) -> None:
        """SQLite: copy committed WAL frames into the database file without blocking the
        writer (PASSIVE). Why: an automatic checkpoint runs inside the committing
        transaction, i.e. on the ack path; a 4 MiB reveal then pays ~6 ms extra."""
        if not self.is_sqlite:
            return
        with self.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")

    @contextmanager
    def _reader(self, conn: Connection | None) -> Iterator[Connection]:
        """The caller's connection (so a read sees its open transaction), else a fresh one."""
        if conn is not None:
            yield conn
        else:
            with self.engine.connect() as c:
                yield c

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """One write transaction (committed on exit, rolled back on error)."""
        with self.engine.begin() as conn:
            yield conn

    def writer(self) -> StoreWriter:
        """A persistent connection for the (single) writer thread."""
        return StoreWriter(self.engine)

    # ------------------------------------------------------------------ meta

    def get_meta(self, key: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(select(meta.c.value).where(meta.c.key == key)).scalar()

    def set_meta(self, conn: Connection, key: str, value: str) -> None:
        conn.execute(delete(meta).where(meta.c.key == key))
        conn.execute(insert(meta).values(key=key, value=value))

    # ------------------------------------------------------------------ actions

    @staticmethod
    def insert_actions(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
        """Durably record acknowledged actions (status ``queued``)."""
        if rows:
            conn.execute(insert(actions), list(rows))

    def action_meta_by_hash(self, h: bytes) -> dict[str, Any] | None:
        """Everything about an action except its (possibly large) bytes."""
        cols = [c for c in actions.c if c.name != "bytes"]
        with self.engine.connect() as conn:
            r = conn.execute(
                select(*cols).where(actions.c.hash == h).order_by(actions.c.seq.desc()).limit(1)
            ).first()
        return {k: _b(v) for k, v in r._mapping.items()} if r else None

    def queued_actions(self) -> list[ActionRow]:
        with self.engine.connect() as conn:
            rs = conn.execute(
                select(actions).where(actions.c.status == "queued").order_by(actions.c.seq)
            ).all()
        return [_row(ActionRow, r) for r in rs]

    def max_seq(self) -> int:
        with self.engine.connect() as conn:
            v = conn.execute(select(func.max(actions.c.seq))).scalar()
        return -1 if v is None else int(v)

    def block_action_bytes(self, height: int, conn: Connection | None = None) -> list[bytes]:
        q = (
            select(actions.c.bytes)
            .where(actions.c.block_height == height)
            .order_by(actions.c.block_index)
        )
        with self._reader(conn) as c:
            return [_b(r[0]) for r in c.execute(q)]

    def count_actions(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            rs = conn.execute(select(actions.c.status, func.count()).group_by(actions.c.status))
            return {r[0]: int(r[1]) for r in rs}

    # ------------------------------------------------------------------ blocks

    def write_block(
        self,
        conn: Connection,
        block: BlockRow,
        receipt_rows: Sequence[ReceiptRow],
        action_updates: Sequence[dict[str, Any]],
        blob_writes: Sequence[BlobWrite],
        snapshot: tuple[bytes, bytes] | None,
    ) -> None:
        """Everything a block changes, in the caller's (single) transaction."""
        conn.execute(insert(blocks).values(**block.__dict__))
        if receipt_rows:
            self._executemany(conn, "receipts", [r.__dict__ for r in receipt_rows])
        if action_updates:
            self._executemany(conn, "status", action_updates)
        for bw in blob_writes:
            self._put_blob(conn, bw, block.height)
        if snapshot is not None:
            root, data = snapshot
            conn.execute(insert(snapshots).values(height=block.height, state_root=root, data=data))

    def _put_blob(self, conn: Connection, bw: BlobWrite, height: int) -> None:
        exists = conn.execute(select(blobs.c.hash).where(blobs.c.hash == bw.hash)).first()
        if exists:
            return
        row: dict[str, Any] = {
            "hash": bw.hash, "kind": bw.kind, "size": bw.size, "height": height,
            "data": None, "action_seq": None,
        }
        if bw.action_seq is not None:
            row["location"] = "action"
            row["action_seq"] = bw.action_seq
        elif bw.data is None:  # v2 update: already verified and stored in the blob store
            row["location"] = "dir"
        elif self._large_blobs_out and bw.size > self.blob_inline_max:
            assert self.blobstore is not None
            self._write_blob_file(bw.hash, bw.data)
            row["location"] = "dir"
        else:
            row["location"] = "db"
            row["data"] = bytes(bw.data)  # (collect_blobs hands views, not copies)
        conn.execute(insert(blobs).values(**row))

    def _blob_path(self, h: bytes) -> Path:
        assert self.blob_dir is not None
        hx = h.hex()
        return self.blob_dir / hx[:2] / hx

    def _write_blob_file(self, h: bytes, data: bytes) -> None:
        assert self.blobstore is not None
        self.blobstore.put_bytes(h, data)  # temp file + fsync + rename (or an S3 PUT)

    def head(self) -> BlockRow | None:
        with self.engine.connect() as conn:
            r = conn.execute(select(blocks).order_by(blocks.c.height.desc()).limit(1)).first()
        return _row(BlockRow, r) if r else None

    def block(self, height: int) -> BlockRow | None:
        with self.engine.connect() as conn:
            r = conn.execute(select(blocks).where(blocks.c.height == height)).first()
        return _row(BlockRow, r) if r else None

    def iter_blocks(self, first: int, last: int | None = None,
                    conn: Connection | None = None) -> Iterator[BlockRow]:
        """Blocks ``first..last`` (inclusive) in height order, streamed in pages."""
        page = 256
        h = first
        while last is None or h <= last:
            q = select(blocks).where(blocks.c.height >= h)
            if last is not None:
                q = q.where(blocks.c.height <= last)
            q = q.order_by(blocks.c.height).limit(page)
            with self._reader(conn) as c:  # per page: no connection held between yields
                rows = c.execute(q).all()
            if not rows:
                return
            for r in rows:
                yield _row(BlockRow, r)
            h = int(rows[-1].height) + 1

    def receipts(self, height: int) -> list[ReceiptRow]:
        with self.engine.connect() as conn:
            rs = conn.execute(
                select(receipts).where(receipts.c.block_height == height).order_by(receipts.c.idx)
            ).all()
        return [_row(ReceiptRow, r) for r in rs]

    # ------------------------------------------------------------------ blobs

    def blob(self, h: bytes) -> bytes | None:
        """Blob bytes by keccak256, wherever they live."""
        with self.engine.connect() as conn:
            r = conn.execute(select(blobs).where(blobs.c.hash == h)).first()
            if r is None:  # uploaded (v2) but not yet referenced by a block
                return self.blobstore.get(h) if self.blobstore is not None else None
            if r.location == "db":
                return _b(r.data)
            if r.location == "dir":
                assert self.blobstore is not None
                return self.blobstore.get(h)
            q = select(actions.c.bytes).where(actions.c.seq == r.action_seq)
            raw = conn.execute(q).scalar()
        from state_machine.actions import decode_signed  # local: keep store STF-agnostic

        body = decode_signed(_b(raw)).action.body
        return body.update_bytes  # type: ignore[attr-defined, no-any-return]

    # ------------------------------------------------------------------ snapshots

    def latest_snapshot(self, max_height: int | None = None) -> tuple[int, bytes, bytes] | None:
        q = select(snapshots).order_by(snapshots.c.height.desc()).limit(1)
        if max_height is not None:
            q = q.where(snapshots.c.height <= max_height)
        with self.engine.connect() as conn:
            r = conn.execute(q).first()
        return (int(r.height), _b(r.state_root), _b(r.data)) if r else None

    def snapshot_at(self, height: int,
                    conn: Connection | None = None) -> tuple[bytes, bytes] | None:
        """(state_root, data) of the snapshot at exactly ``height``."""
        q = select(snapshots.c.state_root, snapshots.c.data).where(snapshots.c.height == height)
        with self._reader(conn) as c:
            r = c.execute(q).first()
        return (_b(r[0]), _b(r[1])) if r else None

    def snapshots_upto(self, height: int, limit: int) -> dict[int, tuple[bytes, bytes]]:
        """The ``limit`` newest snapshots at or below ``height``: {height: (root, data)}."""
        q = (select(snapshots).where(snapshots.c.height <= height)
             .order_by(snapshots.c.height.desc()).limit(limit))
        with self.engine.connect() as conn:
            return {int(r.height): (_b(r.state_root), _b(r.data)) for r in conn.execute(q)}

    @staticmethod
    def insert_snapshot(conn: Connection, height: int, root: bytes, data: bytes) -> None:
        conn.execute(insert(snapshots).values(height=height, state_root=root, data=data))

    def snapshot_heights(self) -> list[int]:
        with self.engine.connect() as conn:
            return [int(r[0]) for r in conn.execute(select(snapshots.c.height))]

    def prune_snapshots(self, conn: Connection, keep: int) -> None:
        """Keep the ``keep`` most recent snapshots (old ones only cost space)."""
        hs = [
            int(r[0])
            for r in conn.execute(select(snapshots.c.height).order_by(snapshots.c.height.desc()))
        ]
        if len(hs) > keep:
            conn.execute(delete(snapshots).where(snapshots.c.height < hs[keep - 1]))

    # ------------------------------------------------------------------ batches

    @staticmethod
    def insert_batch(conn: Connection, row: BatchRow) -> None:
        conn.execute(insert(batches).values(**row.__dict__))

    @staticmethod
    def update_batch(conn: Connection, idx: int, l1_tx_hash: bytes | None, l1_status: str) -> int:
        res = conn.execute(
            update(batches).where(batches.c.idx == idx).values(
                l1_tx_hash=l1_tx_hash, l1_status=l1_status
            )
        )
        return int(res.rowcount or 0)

    def batch(self, idx: int, conn: Connection | None = None) -> BatchRow | None:
        q = select(batches).where(batches.c.idx == idx)
        with self._reader(conn) as c:
            r = c.execute(q).first()
        return _row(BatchRow, r) if r else None

    def latest_batch(self, conn: Connection | None = None) -> BatchRow | None:
        q = select(batches).order_by(batches.c.idx.desc()).limit(1)
        with self._reader(conn) as c:
            r = c.execute(q).first()
        return _row(BatchRow, r) if r else None


ACTION_COLUMNS = tuple(c.name for c in actions.c)


class StoreWriter:
    """The writer thread's own connection: no pool checkout per transaction, and the
    hottest statement (inserting a group of acknowledged actions) precompiled and run as
    one DBAPI ``executemany``. Why: at thousands of acks per second the per-transaction
    overhead of a pooled SQLAlchemy ``engine.begin()`` was most of the writer's CPU."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.conn: Connection | None = None
        compiled = insert(actions).compile(dialect=engine.dialect)
        self._sql = str(compiled)
        self._order: tuple[str, ...] | None = (
            tuple(compiled.positiontup) if compiled.positional and compiled.positiontup else None
        )

    def _connection(self) -> Connection:
        if self.conn is None or self.conn.closed or self.conn.invalidated:
            self.conn = self.engine.connect()
        return self.conn

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        conn = self._connection()
        try:
            with conn.begin():
                yield conn
        except BaseException:
            self.reset()
            raise

    def insert_actions(self, rows: Sequence[dict[str, Any] | tuple[Any, ...]]) -> None:
        """Insert acknowledged actions: dicts, or tuples in :data:`ACTION_COLUMNS` order
        (what the group-commit writer builds: no dict per action)."""
        if not rows:
            return
        params: list[Any]
        if not isinstance(rows[0], tuple):
            params = ([tuple(r[k] for k in self._order) for r in rows]  # type: ignore[call-overload]
                      if self._order is not None else list(rows))
        elif self._order is None:  # named parameters (PostgreSQL's driver)
            params = [dict(zip(ACTION_COLUMNS, v, strict=True)) for v in rows]
        elif self._order == ACTION_COLUMNS:  # SQLite: the table's own column order
            params = list(rows)
        else:
            idx = [ACTION_COLUMNS.index(k) for k in self._order]
            params = [tuple(v[i] for i in idx) for v in rows]  # type: ignore[index]
        with self.begin() as conn:
            conn.exec_driver_sql(self._sql, params)

    def reset(self) -> None:
        """Drop the connection (after an error it may be unusable); reopened on demand."""
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:
                pass
            self.conn = None

    def close(self) -> None:
        self.reset()
