"""PostgreSQL for the local network: a fresh database per network, dropped on request."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from devtools.procs import LocalnetError

DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def pg_url_for(url: str, database: str, driver: str = "") -> str:
    """``url`` with its database replaced (and ``postgresql+DRIVER`` when asked)."""
    parts = urlsplit(url)
    scheme = "postgresql" + (f"+{driver}" if driver else "")
    return urlunsplit((scheme, parts.netloc, "/" + database, parts.query, ""))


def postgres_available(url: str = DEFAULT_PG_URL, timeout: int = 3) -> bool:
    try:
        import psycopg

        with psycopg.connect(pg_url_for(url, urlsplit(url).path.lstrip("/") or "postgres"),
                             connect_timeout=timeout):
            return True
    except Exception:
        return False


def create_database(url: str, name: str) -> None:
    """Drop (forcibly: old connections included) and create database ``name``."""
    import psycopg
    from psycopg import sql

    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.Error as exc:
        raise LocalnetError(f"PostgreSQL at {urlsplit(url).netloc}: {exc}") from None


def drop_database(url: str, name: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(name)))
