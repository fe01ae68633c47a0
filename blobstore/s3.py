"""S3-compatible blob backend (AWS S3, MinIO, Ceph RGW, moto...) through boto3.

Why boto3: maintained, speaks every S3 dialect, and its managed transfer turns a large
local file into a multipart upload (bounded memory, parallel parts) whose object becomes
visible only when the upload completes, which is the "never a half blob" guarantee.
Metadata rides on the object as ``x-amz-meta-*`` headers, so a blob and its metadata appear
together.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from blobstore.base import BlobMeta

MULTIPART_THRESHOLD = 16 * 1024 * 1024
MULTIPART_CHUNK = 16 * 1024 * 1024


def _not_found(exc: Exception) -> bool:
    code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
    return code in ("404", "NoSuchKey", "NotFound")


class S3BlobStore:
    """Blobs as objects ``<prefix><hex hash>`` in ``bucket``; see ``blobstore.base``."""

    def __init__(self, bucket: str, *, prefix: str = "blobs/", endpoint_url: str | None = None,
                 region: str = "us-east-1", client: Any = None, create_bucket: bool = False,
                 **credentials: str) -> None:
        import boto3
        from boto3.s3.transfer import TransferConfig

        self.bucket = bucket
        self.prefix = prefix
        self.client = client or boto3.client("s3", endpoint_url=endpoint_url,
                                             region_name=region, **credentials)
        self._transfer = TransferConfig(multipart_threshold=MULTIPART_THRESHOLD,
                                        multipart_chunksize=MULTIPART_CHUNK, max_concurrency=4)
        if create_bucket:
            try:
                self.client.create_bucket(Bucket=bucket)
            except self.client.exceptions.BucketAlreadyOwnedByYou:
                pass

    def __repr__(self) -> str:
        return f"S3BlobStore(bucket={self.bucket!r}, prefix={self.prefix!r})"

    def _key(self, key: bytes) -> str:
        return self.prefix + key.hex()

    def has(self, key: bytes) -> bool:
        return self.meta(key) is not None

    def meta(self, key: bytes) -> BlobMeta | None:
        try:
            r = self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except Exception as exc:
            if _not_found(exc):
                return None
            raise
        m = {k.lower(): v for k, v in (r.get("Metadata") or {}).items()}
        m["size"] = str(r["ContentLength"])
        return BlobMeta.from_strings(m)

    def get(self, key: bytes) -> bytes | None:
        try:
            r = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
        except Exception as exc:
            if _not_found(exc):
                return None
            raise
        return bytes(r["Body"].read())

    def read(self, key: bytes, start: int, end: int) -> bytes:
        if end <= start:
            return b""
        try:
            r = self.client.get_object(Bucket=self.bucket, Key=self._key(key),
                                       Range=f"bytes={start}-{end - 1}")
        except Exception as exc:
            if _not_found(exc):
                raise KeyError(key.hex()) from None
            raise
        return bytes(r["Body"].read())

    def put_bytes(self, key: bytes, data: bytes, meta: BlobMeta | None = None) -> None:
        if self.has(key):
            return
        meta = meta or BlobMeta(len(data), 0, b"")
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=bytes(data),
                               Metadata=_object_meta(meta))

    def put_file(self, key: bytes, path: Path, meta: BlobMeta) -> None:
        if not self.has(key):
            self.client.upload_file(str(path), self.bucket, self._key(key),
                                    ExtraArgs={"Metadata": _object_meta(meta)},
                                    Config=self._transfer)
        path.unlink(missing_ok=True)

    def delete(self, key: bytes) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def keys(self) -> Iterator[bytes]:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix)
        for page in pages:
            for obj in page.get("Contents", []):
                yield bytes.fromhex(obj["Key"][len(self.prefix):])


def _object_meta(meta: BlobMeta) -> dict[str, str]:
    return {"chunk-size": str(meta.chunk_size), "chunk-root": meta.chunk_root.hex()}


def from_url(url: str) -> S3BlobStore:
    """``s3://bucket/prefix?endpoint=http://host:port&region=..&create=1`` (credentials
    from the usual AWS environment variables or config files)."""
    u = urlparse(url)
    q = {k: v[-1] for k, v in parse_qs(u.query).items()}
    prefix = u.path.lstrip("/")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return S3BlobStore(u.netloc, prefix=prefix or "blobs/", endpoint_url=q.get("endpoint"),
                       region=q.get("region", "us-east-1"),
                       create_bucket=q.get("create", "0") in ("1", "true"))
