"""The verifier as a long-running service: a loop, optional durable checkpoints, and a
small HTTP face (``GET /healthz`` JSON progress, ``GET /metrics`` Prometheus text).

Why checkpoints in a database: re-executing every batch from genesis after each restart
costs time proportional to the chain's age, and while it catches up the verifier cannot
challenge anything. After each verified batch the service stores (pickled ``State``,
parent block hash, state root) keyed by batch index, scoped to one deployment, so a
restarted verifier resumes where it stopped. A loaded checkpoint is trusted only if its
pickled state still hashes to the stored root; ``Verifier.step`` then drops any whose
root L1 no longer holds (a challenged batch was deleted). Pickle is acceptable here for
the same reason it is for the sequencer's snapshots: the database belongs to this
verifier alone.

Why old checkpoints are pruned: L1 can only delete batches that are not final, so a
checkpoint older than a *final* batch is never needed to rewind; only the newest few
(``keep``) are retained, which bounds memory, the database, and the per-step root checks.

Why the HTTP server runs on a thread: the verifier loop owns the main thread (and its
SIGTERM handling), uvicorn only reads the service's counters.
"""

from __future__ import annotations

import logging
import pickle
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import uvicorn
    from fastapi import FastAPI

    from bridge.verifier import Verifier

log = logging.getLogger("flockchain.verifier")


def normalize_db_url(url: str) -> str:
    """``postgresql://`` means psycopg 3 here (the driver in the lock), not psycopg2."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


class CheckpointStore:
    """Verified checkpoints in one SQLAlchemy table (SQLite or PostgreSQL)."""

    def __init__(self, url: str, scope: str) -> None:
        from sqlalchemy import (
            Column,
            Float,
            Integer,
            LargeBinary,
            MetaData,
            String,
            Table,
            create_engine,
        )

        self.url = normalize_db_url(url)
        self.scope = scope
        self.engine = create_engine(self.url, future=True, pool_pre_ping=True)
        self.meta = MetaData()
        self.table = Table(
            "verifier_checkpoints", self.meta,
            Column("scope", String(128), primary_key=True),
            Column("batch_index", Integer, primary_key=True, autoincrement=False),
            Column("height", Integer, nullable=False),
            Column("parent", LargeBinary, nullable=False),
            Column("root", LargeBinary, nullable=False),
            Column("state", LargeBinary, nullable=False),
            Column("created_at", Float, nullable=False),
        )
        self.meta.create_all(self.engine)

    def load(self) -> dict[int, tuple[Any, bytes, bytes]]:
        """``{index: (state, parent, root)}`` for every row whose state matches its root,
        stopping at the first bad one (later ones were built on it)."""
        from sqlalchemy import select

        t = self.table
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.c.batch_index, t.c.parent, t.c.root, t.c.state)
                                .where(t.c.scope == self.scope)
                                .order_by(t.c.batch_index)).all()
        out: dict[int, tuple[Any, bytes, bytes]] = {}
        for idx, parent, root, blob in rows:
            try:
                state = pickle.loads(blob)
                ok = state.state_root() == bytes(root)
            except Exception as exc:  # an unreadable row costs only re-verification
                log.warning("checkpoint %d unreadable: %s", idx, exc)
                ok = False
            if not ok:
                log.warning("checkpoint %d does not match its root; re-verifying from there",
                            idx)
                break
            out[int(idx)] = (state, bytes(parent), bytes(root))
        return out

    def sync(self, checkpoints: dict[int, Any]) -> None:
        """Make the table hold exactly ``checkpoints`` (objects with state/parent/root)."""
        from sqlalchemy import delete, select

        t = self.table
        with self.engine.begin() as conn:
            have = {int(i): bytes(r) for i, r in conn.execute(
                select(t.c.batch_index, t.c.root).where(t.c.scope == self.scope))}
            gone = [i for i, r in have.items()
                    if i not in checkpoints or checkpoints[i].root != r]
            if gone:
                conn.execute(delete(t).where(t.c.scope == self.scope,
                                             t.c.batch_index.in_(gone)))
            new = [i for i in checkpoints if i not in have or i in gone]
            for i in sorted(new):
                cp = checkpoints[i]
                conn.execute(t.insert().values(
                    scope=self.scope, batch_index=i, height=cp.state.height, parent=cp.parent,
                    root=cp.root, state=pickle.dumps(cp.state, protocol=5),
                    created_at=time.time()))

    def close(self) -> None:
        self.engine.dispose()


@dataclass
class VerifierService:
    """Drives a :class:`Verifier`, persists its checkpoints and exposes its progress."""

    verifier: Verifier
    store: CheckpointStore | None = None
    interval: float = 2.0
    keep: int = 16
    started_at: float = field(default_factory=time.time)
    steps: int = 0
    failed_steps: int = 0
    last_step_at: float | None = None
    last_ok_at: float | None = None
    l1_next_index: int | None = None
    resumed_from: int | None = None
    last_outcomes: list[tuple[int, str]] = field(default_factory=list)

    def resume(self) -> int | None:
        """Load stored checkpoints into the verifier; returns the highest index loaded."""
        if self.store is None:
            return None
        from bridge.verifier import _Checkpoint

        loaded = self.store.load()
        for idx, (state, parent, root) in loaded.items():
            self.verifier.checkpoints[idx] = _Checkpoint(state, parent, root)
        if loaded:
            top = max(loaded)
            self.verifier.stats.verified_batches = top + 1
            self.verifier.stats.verified_height = loaded[top][0].height
            self.resumed_from = top
            log.info("resumed from %d stored checkpoints (batch %d, height %d)", len(loaded),
                     top, loaded[top][0].height)
        return self.resumed_from

    def _prune(self) -> None:
        cps = self.verifier.checkpoints
        if self.keep <= 0 or len(cps) <= self.keep:
            return
        sc = self.verifier.sc
        for i in sorted(cps)[: len(cps) - self.keep]:
            if not sc.functions.isFinal(i).call():
                break  # everything after it is younger: not final either
            del cps[i]

    def step(self) -> list[tuple[int, str]]:
        self.last_step_at = time.time()
        self.steps += 1
        try:
            outcomes = self.verifier.step()
            self._prune()
            cps = self.verifier.checkpoints
            self.verifier.stats.verified_batches = max(cps) + 1 if cps else 0
            if self.store is not None:
                self.store.sync(cps)
            self.l1_next_index = self.verifier.sc.functions.nextIndex().call()
        except Exception as exc:
            self.failed_steps += 1
            self.verifier.stats.last_error = f"{type(exc).__name__}: {exc}"
            raise
        self.last_ok_at = time.time()
        if outcomes:
            self.last_outcomes = outcomes[-10:]
        return outcomes

    # ---- what the HTTP endpoints show
    def healthy(self) -> bool:
        """A step succeeded recently (three intervals, at least 30 s)."""
        if self.last_ok_at is None:
            return False
        return time.time() - self.last_ok_at <= max(3 * self.interval, 30.0)

    def health(self) -> dict[str, Any]:
        st = self.verifier.stats
        return {
            "ok": self.healthy(),
            "verified_batches": st.verified_batches,
            "verified_height": st.verified_height,
            "l1_next_index": self.l1_next_index,
            "challenges": list(st.challenges),
            "da_failures": st.da_failures,
            "last_error": st.last_error,
            "last_outcomes": [list(o) for o in self.last_outcomes],
            "steps": self.steps,
            "failed_steps": self.failed_steps,
            "last_step_at": self.last_step_at,
            "last_ok_at": self.last_ok_at,
            "resumed_from": self.resumed_from,
            "checkpoints_in_memory": len(self.verifier.checkpoints),
            "db": self.store is not None,
            "uptime_s": round(time.time() - self.started_at, 1),
        }

    def metrics(self) -> str:
        extra = [
            f"flockchain_verifier_steps_total {self.steps}",
            f"flockchain_verifier_step_failures_total {self.failed_steps}",
            f"flockchain_verifier_l1_batches {self.l1_next_index or 0}",
            f"flockchain_verifier_up {1 if self.healthy() else 0}",
            "",
        ]
        return self.verifier.stats.metrics() + "\n".join(extra)


def create_app(service: VerifierService) -> FastAPI:
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse, PlainTextResponse

    app = FastAPI(title="FLockChain verifier", docs_url=None, redoc_url=None)

    @app.get("/healthz")
    def healthz() -> JSONResponse:
        body = service.health()
        return JSONResponse(body, status_code=200 if body["ok"] else 503)

    @app.get("/metrics")
    def metrics() -> PlainTextResponse:
        return PlainTextResponse(service.metrics(), media_type="text/plain; version=0.0.4")

    return app


def serve_in_thread(app: FastAPI, host: str, port: int,
                    timeout: float = 10.0) -> tuple[uvicorn.Server, threading.Thread, int]:
    """Serve ``app`` on ``host:port`` (0 = any free port) from a daemon thread; returns
    once it accepts connections, with the bound port."""
    import uvicorn

    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False,
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]},
                              name="verifier-http", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"verifier HTTP server failed to start on {host}:{port}")
        time.sleep(0.01)
    return server, thread, bound
