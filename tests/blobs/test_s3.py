"""The S3 backend against a real S3-compatible server (moto in server mode, over HTTP)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from blobstore import BlobMeta, open_blobstore
from blobstore.s3 import S3BlobStore
from rollup import client as sdk
from rollup.client import NodeClient
from rollup.config import NodeConfig
from rollup.keys import Keypair
from rollup.node import create_node_app
from sequencer.store import BlobWrite, BlockRow, Store
from state_machine.chunks import MIN_CHUNK_SIZE, verify_blob
from state_machine.crypto import keccak256


def test_s3_store_contract(s3_store: S3BlobStore, tmp_path: Path) -> None:
    data = os.urandom(40_000)
    k = keccak256(data)
    assert not s3_store.has(k) and s3_store.get(k) is None and s3_store.meta(k) is None
    with pytest.raises(KeyError):
        s3_store.read(k, 0, 10)
    s3_store.put_bytes(k, data, BlobMeta(len(data), 4096, b"\x01" * 32))
    s3_store.put_bytes(k, b"ignored: same key", None)  # idempotent, content-addressed
    assert s3_store.get(k) == data and s3_store.read(k, 100, 200) == data[100:200]
    assert s3_store.meta(k) == BlobMeta(len(data), 4096, b"\x01" * 32)
    big = os.urandom(20 * 1024 * 1024 + 7)  # above the multipart threshold: parts + complete
    kb = keccak256(big)
    f = tmp_path / "staged"
    f.write_bytes(big)
    s3_store.put_file(kb, f, BlobMeta(len(big), MIN_CHUNK_SIZE, b"\x02" * 32))
    assert not f.exists() and s3_store.read(kb, len(big) - 9, len(big)) == big[-9:]
    assert sorted(s3_store.keys()) == sorted([k, kb])
    s3_store.delete(k)
    assert not s3_store.has(k)


def test_sql_store_keeps_large_blobs_in_s3(s3_store: S3BlobStore, tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path}/c.db", blobstore=s3_store, blob_inline_max=1024)
    store.create()
    model = os.urandom(5000)
    with store.begin() as conn:
        store.write_block(conn, BlockRow(1, b"\x01" * 32, b"\x00" * 32, 0, b"\x02" * 32, b"h", 0),
                          [], [], [BlobWrite(keccak256(model), "global_model", len(model),
                                             data=model)], None)
    assert s3_store.get(keccak256(model)) == model  # not in the SQL row
    assert store.blob(keccak256(model)) == model
    store.close()


def test_node_uploads_into_s3(s3_endpoint: str, tmp_path: Path,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    bucket = f"node-{uuid.uuid4().hex[:10]}"
    url = f"s3://{bucket}/updates?endpoint={s3_endpoint}&create=1"
    cfg = NodeConfig(db_url=f"sqlite:///{tmp_path}/chain.db", chain_id=7, port=0,
                     sequencer_key_file=tmp_path / "seq.key", blob_dir=tmp_path / "local",
                     blob_store_url=url)
    data = os.urandom(3 * MIN_CHUNK_SIZE + 11)
    vb = verify_blob(data, MIN_CHUNK_SIZE)
    with TestClient(create_node_app(cfg)) as http:
        node = NodeClient(http=http)
        assert sdk.upload_blob(node, Keypair.from_seed(b"\x03" * 32), data, blob=vb)["complete"]
        assert sdk.download_blob(node, vb.keccak) == data
    s3 = open_blobstore(url)
    assert s3.get(vb.keccak) == data and s3.meta(vb.keccak).chunk_root == vb.root  # type: ignore[union-attr]
    assert not any((tmp_path / "local" / ".uploads").iterdir())  # staging cleaned up
