"""Fixtures for blob tests: a real S3-compatible server (moto in server mode, on a free
loopback port, started here) and blob stores on it and on a temporary directory."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from blobstore import FsBlobStore

S3_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server over real HTTP (``ThreadedMotoServer``), shared by the session."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_store(s3_endpoint: str):  # type: ignore[no-untyped-def]
    from blobstore.s3 import S3BlobStore

    return S3BlobStore(f"flk-{uuid.uuid4().hex[:12]}", endpoint_url=s3_endpoint,
                       create_bucket=True, **S3_CREDENTIALS)


@pytest.fixture
def fs_store(tmp_path: Path) -> FsBlobStore:
    return FsBlobStore(tmp_path / "blobs")
