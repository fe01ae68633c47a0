"""The verifier service: durable checkpoints (SQLite, PostgreSQL), pruning, /healthz and
/metrics. The verifier itself is a stub here: what is under test is the service around it
(``tests/infra/test_localnet.py`` runs the real one against a real chain)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi.testclient import TestClient

from bridge.verifier import VerifierStats, _Checkpoint
from bridge.verifier_service import (
    CheckpointStore,
    VerifierService,
    create_app,
    normalize_db_url,
)
from rollup.config import POSTGRES_TEST_URL
from state_machine.transition import GENESIS_PARENT, genesis_state


def _cp(height: int, root: bytes | None = None) -> _Checkpoint:
    st = genesis_state(7)
    st.height = height
    return _Checkpoint(st, bytes([height]) * 32, root if root is not None else st.state_root())


def _pg_ok() -> bool:
    try:
        import psycopg

        with psycopg.connect(POSTGRES_TEST_URL.replace("+psycopg", ""), connect_timeout=2):
            return True
    except Exception:
        return False


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/verifier.db"
    if not _pg_ok():
        pytest.skip("PostgreSQL at 127.0.0.1:5432 unavailable")
    return POSTGRES_TEST_URL.replace("postgresql+psycopg://", "postgresql://")


def test_normalize_db_url() -> None:
    assert normalize_db_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_db_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_db_url("sqlite:///x.db") == "sqlite:///x.db"


def test_checkpoints_round_trip(db_url: str) -> None:
    scope = f"test:{uuid.uuid4().hex}"
    store = CheckpointStore(db_url, scope)
    other = CheckpointStore(db_url, scope + ":other")
    try:
        cps = {0: _cp(3), 1: _cp(8)}
        store.sync(cps)
        other.sync({0: _cp(1)})
        loaded = store.load()
        assert sorted(loaded) == [0, 1]
        state, parent, root = loaded[1]
        assert state.height == 8 and parent == cps[1].parent and root == cps[1].root
        # L1 rewound batch 1: the table follows the verifier's dict
        store.sync({0: cps[0]})
        assert sorted(store.load()) == [0]
        assert sorted(other.load()) == [0], "scopes are independent"
        # a row whose state does not hash to its root is dropped with everything after it
        store.sync({0: cps[0], 1: _cp(9, root=b"\x01" * 32), 2: _cp(12)})
        assert sorted(store.load()) == [0]
    finally:
        store.sync({})
        other.sync({})
        store.close()
        other.close()


@dataclass
class _Call:
    value: Any

    def call(self) -> Any:
        return self.value


@dataclass
class _StubVerifier:
    """What VerifierService touches on a Verifier."""

    final_below: int = 0
    posted: int = 0
    checkpoints: dict[int, Any] = field(default_factory=dict)
    stats: VerifierStats = field(default_factory=VerifierStats)
    fail: bool = False
    challenged: dict[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        stub = self
        self.sc = SimpleNamespace(functions=SimpleNamespace(
            nextIndex=lambda: _Call(stub.posted),
            isFinal=lambda i: _Call(i < stub.final_below)))
        self.genesis = _Checkpoint(genesis_state(7), GENESIS_PARENT, b"")

    def step(self) -> list[tuple[int, str]]:
        if self.fail:
            raise ConnectionError("L1 down")
        out = []
        for i in range(max(self.checkpoints, default=-1) + 1, self.posted):
            self.checkpoints[i] = _cp(i + 1)
            self.stats.verified_height = i + 1
            out.append((i, "ok"))
        return out


def test_service_health_metrics_and_pruning(tmp_path: Any) -> None:
    v = _StubVerifier(posted=5, final_below=3)
    svc = VerifierService(v, CheckpointStore(f"sqlite:///{tmp_path}/v.db", "s"),  # type: ignore[arg-type]
                          interval=1.0, keep=1)
    http = TestClient(create_app(svc))
    r = http.get("/healthz")
    assert r.status_code == 503 and r.json()["ok"] is False  # no step yet
    assert svc.step() == [(i, "ok") for i in range(5)]
    # final batches 0..2 pruned down to `keep`, the non-final ones stay
    assert sorted(v.checkpoints) == [3, 4]
    h = http.get("/healthz")
    assert h.status_code == 200
    body = h.json()
    assert body["ok"] and body["verified_batches"] == 5 and body["verified_height"] == 5
    assert body["l1_next_index"] == 5 and body["db"] is True and body["challenges"] == []
    m = http.get("/metrics")
    assert m.headers["content-type"].startswith("text/plain")
    assert "flockchain_verifier_batches_verified 5" in m.text
    assert "flockchain_verifier_steps_total 1" in m.text
    assert "flockchain_verifier_up 1" in m.text
    v.fail = True
    with pytest.raises(ConnectionError):
        svc.step()
    body = http.get("/healthz").json()
    assert body["failed_steps"] == 1 and "L1 down" in body["last_error"]

    # a restarted service resumes from the stored checkpoints
    v2 = _StubVerifier(posted=6, final_below=3)
    svc2 = VerifierService(v2, CheckpointStore(f"sqlite:///{tmp_path}/v.db", "s"),  # type: ignore[arg-type]
                           keep=1)
    assert svc2.resume() == 4
    assert sorted(v2.checkpoints) == [3, 4] and v2.stats.verified_batches == 5
    assert svc2.step() == [(5, "ok")]
