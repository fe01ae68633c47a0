"""Fixtures for node tests: a fresh database per test on SQLite and PostgreSQL.

PostgreSQL tests use a throw-away schema (``search_path`` in the URL) in the ``test``
database, so concurrent runs and other suites never see each other's tables. They skip
only when the server is unreachable and ``CI`` is not ``"true"``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

PG_URL = os.environ.get("FLOCKCHAIN_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
_pg_ok: bool | None = None


def pg_available() -> bool:
    global _pg_ok
    if _pg_ok is None:
        try:
            import psycopg

            dsn = PG_URL.replace("postgresql+psycopg://", "postgresql://")
            with psycopg.connect(dsn, connect_timeout=3):
                pass
            _pg_ok = True
        except Exception:
            _pg_ok = False
    return _pg_ok


def require_pg() -> None:
    if not pg_available():
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL unreachable at {PG_URL} (required in CI)")
        pytest.skip(f"PostgreSQL unreachable at {PG_URL}")


def _exec_pg(sql: str) -> None:
    from sqlalchemy import create_engine, text

    eng = create_engine(PG_URL)
    try:
        with eng.begin() as c:
            c.execute(text(sql))
    finally:
        eng.dispose()


def _pg_schema_url() -> Iterator[str]:
    require_pg()
    schema = f"flk_{uuid.uuid4().hex[:12]}"
    _exec_pg(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in PG_URL else "?"
    try:
        yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        _exec_pg(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@pytest.fixture
def pg_url() -> Iterator[str]:
    yield from _pg_schema_url()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/chain.db"


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/chain.db"
    else:
        yield from _pg_schema_url()
