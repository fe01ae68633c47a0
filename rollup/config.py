"""Node configuration: defaults < config file (TOML or JSON) < ``FLOCKCHAIN_*`` env < CLI.

Why pydantic-settings: one typed object validated once at start-up, whichever way an
operator sets a value (``FLOCKCHAIN_BLOCK_TIME=0.5``, ``block_time = 0.5`` in the file,
or ``--block-time 0.5``).
"""

from __future__ import annotations

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

from state_machine.constants import MAX_ACTION_BYTES

_CONFIG_FILE: ContextVar[Path | None] = ContextVar("flockchain_config_file", default=None)

DEFAULT_DB_URL = "sqlite:///data/flockchain.db"
POSTGRES_TEST_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


class NodeConfig(BaseSettings):
    """Everything ``flockchain node`` needs."""

    model_config = SettingsConfigDict(env_prefix="FLOCKCHAIN_", extra="ignore")

    db_url: str = Field(DEFAULT_DB_URL, description="SQLAlchemy URL (sqlite or postgresql+psycopg)")
    host: str = "127.0.0.1"
    port: int = Field(8700, ge=0, le=65535, description="0 = any free port")
    chain_id: int = Field(1, ge=0)
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
        None, description="bearer token for POST /v1/admin/system; unset = endpoint disabled"
    )
    group_commit_max: int = Field(2048, ge=1)
    log_level: str = "info"

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
