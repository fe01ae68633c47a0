"""Node configuration: defaults < config file (TOML or JSON) < ``FLOCKCHAIN_*`` env < CLI.

Why pydantic-settings: one typed object validated once at start-up, whichever way an
operator sets a value (``FLOCKCHAIN_BLOCK_TIME=0.5``, ``block_time = 0.5`` in the file,
or ``--block-time 0.5``).
"""

from __future__ import annotations

import os
import secrets
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import (
    BaseSettings,
    JsonConfigSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from state_machine.constants import CURRENT_PROTOCOL, MAX_ACTION_BYTES

_CONFIG_FILE: ContextVar[Path | None] = ContextVar("flockchain_config_file", default=None)

DEFAULT_DB_URL = "sqlite:///data/flockchain.db"
POSTGRES_TEST_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def read_or_create_token(path: Path) -> str:
    """The token in ``path`` (stripped), or a fresh random one written there (0600)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32) + "\n")
    token = path.read_text().strip()
    if not token:
        raise ValueError(f"admin token file {path} is empty")
    return token


class NodeConfig(BaseSettings):
    """Everything ``flockchain node`` needs."""

    model_config = SettingsConfigDict(env_prefix="FLOCKCHAIN_", extra="ignore")

    db_url: str = Field(DEFAULT_DB_URL, description="SQLAlchemy URL (sqlite or postgresql+psycopg)")
    host: str = "127.0.0.1"
    port: int = Field(8700, ge=0, le=65535, description="0 = any free port")
    chain_id: int = Field(1, ge=0)
    protocol: int = Field(CURRENT_PROTOCOL, description="protocol version of a chain this node "
                          "creates (state_machine.constants); an existing database keeps its own")
    block_time: float = Field(1.0, gt=0, description="seconds between blocks")
    max_block_actions: int = Field(1024, ge=1)
    max_body_bytes: int = Field(MAX_ACTION_BYTES, ge=1024, description="POST body limit")
    sequencer_key_file: Path = Field(Path("data/sequencer.key"),
                                     description="hex ed25519 seed; created (0600) if missing")
    snapshot_interval: int = Field(100, ge=0, description="blocks between state snapshots")
    snapshots_kept: int = Field(3, ge=1)
    blob_dir: Path | None = Field(None, description="directory for large blobs (else in SQL)")
    blob_store_url: str | None = Field(
        None, description="blob backend: s3://bucket/prefix?endpoint=URL, else blob_dir")
    max_blob_bytes: int | None = Field(None, ge=1, description="largest chunked upload")
    upload_sender_quota: int | None = Field(None, ge=1,
                                            description="bytes of unfinished uploads per signer")
    upload_ttl_s: float | None = Field(None, gt=0, description="idle upload lifetime")
    upload_unstaked_quota: int | None = Field(
        None, ge=1, description="bytes of unfinished uploads per key without stake")
    admin_token: str | None = Field(
        None, description="bearer token for /v1/admin/* (env FLOCKCHAIN_ADMIN_TOKEN or a "
        "config file; never a CLI flag); unset with no admin_token_file = admin disabled"
    )
    admin_token_file: Path | None = Field(
        None, description="file holding the admin bearer token (e.g. a compose secret)")
    admin_remote: bool = Field(
        False, description="answer /v1/admin/* on non-loopback client addresses too")
    admin_failures_per_minute: int = Field(10, ge=1, description="wrong admin tokens answered "
                                           "per client per minute before 429")
    # ---- HTTP limits (rollup.http_limits); figures in rollup/NODE.md
    max_header_bytes: int = Field(16 * 1024, ge=1024, description="request line + headers; "
                                  "more = 431")
    max_headers: int = Field(64, ge=8, description="header lines per request; more = 431")
    idle_timeout: float = Field(10.0, gt=0, description="seconds a connection may stay open "
                                "without a request in progress")
    header_timeout: float = Field(10.0, gt=0, description="seconds to receive a request's "
                                  "headers")
    body_min_rate: int = Field(64 * 1024, ge=0, description="bytes/s a body must average "
                               "after body_grace seconds (slow uploads are cut)")
    body_grace: float = Field(10.0, gt=0)
    max_connections: int = Field(1000, ge=8, description="open connections; beyond it the "
                                 "longest-idle connection is closed to admit a new one")
    # ---- admission quotas (sequencer.mempool_guard.Limits)
    admission_limits: bool = Field(True, description="false turns off quotas and rate limits "
                                   "(benchmarks only; soundness checks stay)")
    unstaked_actions_per_hour: int = Field(720, ge=0, description="advance/publish_genesis "
                                           "from keys with no stake, all keys together")
    sender_pending_max: int = Field(256, ge=1, description="queued actions per sender")
    mempool_max: int = Field(200_000, ge=1, description="queued actions, all senders")
    group_commit_max: int = Field(2048, ge=1)
    group_commit_wait: float = Field(0.0, ge=0.0, le=0.1, description="seconds the writer "
                                     "waits for more acks before a commit (group size vs "
                                     "latency; bench/ingest.py measures both)")
    log_level: str = "info"

    def resolved_admin_token(self) -> str | None:
        """The admin token: ``admin_token`` (env or config file), else the content of
        ``admin_token_file``, which is created (0600, 32 random bytes as hex) if missing so
        a deployment never ships a default token."""
        if self.admin_token:
            return self.admin_token
        if self.admin_token_file is None:
            return None
        return read_or_create_token(self.admin_token_file)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = _CONFIG_FILE.get()
        if path is not None:
            if path.suffix.lower() == ".json":
                sources.append(JsonConfigSettingsSource(settings_cls, json_file=path))
            else:
                sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)

    @classmethod
    def load(cls, config_file: str | Path | None = None, **overrides: Any) -> NodeConfig:
        """Build the config; ``overrides`` that are None are ignored (unset CLI flags)."""
        path = Path(config_file) if config_file else None
        if path is not None and not path.exists():
            raise FileNotFoundError(f"config file {path} not found")
        token = _CONFIG_FILE.set(path)
        try:
            return cls(**{k: v for k, v in overrides.items() if v is not None})
        finally:
            _CONFIG_FILE.reset(token)
