"""One contract for every ObjectStore: a local folder and a real S3 server (SeaweedFS)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from storage.objects import (
    InvalidObjectKey,
    LocalObjectStore,
    ObjectNotFound,
    ObjectStore,
    ObjectStoreError,
    ObjectStoreUnavailable,
    S3ObjectStore,
)
from tests.backends import free_ports


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    if request.param == "local":
        return LocalObjectStore(tmp_path / "objects")
    return request.getfixturevalue("s3_store")


# Every byte value, a NUL, bytes that are not UTF-8: stored and returned exactly.
PAYLOAD = bytes(range(256)) * 4 + b"\x00\xff\xfe end"


def test_put_get_round_trip_byte_for_byte(store: ObjectStore) -> None:
    assert isinstance(store, ObjectStore)
    store.put("photos/original/abc", PAYLOAD, "application/octet-stream")
    assert store.get("photos/original/abc") == PAYLOAD
    store.put("empty", b"", "text/plain")
    assert store.get("empty") == b""


def test_put_replaces(store: ObjectStore) -> None:
    store.put("a/b.txt", b"first", "text/plain")
    store.put("a/b.txt", b"second, longer", "text/plain")
    assert store.get("a/b.txt") == b"second, longer"


def test_exists(store: ObjectStore) -> None:
    assert not store.exists("photos/derived/x.jpg")
    store.put("photos/derived/x.jpg", b"jpeg", "image/jpeg")
    assert store.exists("photos/derived/x.jpg")
    # A "folder" is not an object.
    assert not store.exists("photos/derived")


def test_delete_is_idempotent(store: ObjectStore) -> None:
    store.put("k/1", b"x", "text/plain")
    store.delete("k/1")
    assert not store.exists("k/1")
    store.delete("k/1")
    store.delete("never/existed")


def test_missing_get_raises_object_not_found(store: ObjectStore) -> None:
    with pytest.raises(ObjectNotFound) as info:
        store.get("no/such/key")
    assert isinstance(info.value, KeyError)
    assert isinstance(info.value, ObjectStoreError)
    assert "no/such/key" in str(info.value)


def test_ping(store: ObjectStore) -> None:
    store.ping()


def test_list_by_prefix(store: ObjectStore) -> None:
    assert store.list() == []
    assert store.list("registry/") == []
    for key in ("registry/a/1", "registry/a/2", "registry/ab", "registry/b/deep/x", "photos/p"):
        store.put(key, b"x", "text/plain")
    assert store.list("registry/a/") == ["registry/a/1", "registry/a/2"]
    # A plain string prefix, as in S3: "registry/a" also matches "registry/ab".
    assert store.list("registry/a") == ["registry/a/1", "registry/a/2", "registry/ab"]
    assert store.list("registry/") == ["registry/a/1", "registry/a/2", "registry/ab", "registry/b/deep/x"]
    assert store.list() == sorted(
        ["photos/p", "registry/a/1", "registry/a/2", "registry/ab", "registry/b/deep/x"]
    )
    assert store.list("nothing/here/") == []
    store.delete("registry/a/1")
    assert store.list("registry/a/") == ["registry/a/2"]


@pytest.mark.parametrize("prefix", ["/abs", "../up/", "a/../b", "a//", "a\\b", ".hidden/"], ids=repr)
def test_list_refuses_bad_prefixes(store: ObjectStore, prefix: str) -> None:
    with pytest.raises(InvalidObjectKey):
        store.list(prefix)


def test_local_list_skips_temporary_files(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    store.put("a/obj", b"x", "text/plain")
    (tmp_path / "a" / ".obj.123.tmp").write_bytes(b"partial")
    assert store.list("a/") == ["a/obj"]


BAD_KEYS = [
    "",
    "/etc/passwd",
    "../outside",
    "a/../../outside",
    "a/./b",
    "a//b",
    "a/",
    "a\\b",
    "nul\x00byte",
    "new\nline",
    ".hidden",
    "a/.tmp-file",
    "x" * 1025,
]


@pytest.mark.parametrize("key", BAD_KEYS, ids=repr)
def test_bad_keys_are_refused(store: ObjectStore, key: str) -> None:
    for call in (
        lambda: store.put(key, b"x", "text/plain"),
        lambda: store.get(key),
        lambda: store.exists(key),
        lambda: store.delete(key),
    ):
        with pytest.raises(InvalidObjectKey):
            call()


def test_local_bad_keys_never_touch_the_disk(tmp_path: Path) -> None:
    root = tmp_path / "store"
    store = LocalObjectStore(root)
    for key in BAD_KEYS:
        with pytest.raises(ValueError):
            store.put(key, b"x", "text/plain")
    assert list(tmp_path.rglob("*")) == [root]


def test_local_creates_root_and_writes_atomically(tmp_path: Path) -> None:
    root = tmp_path / "deep" / "objects"
    store = LocalObjectStore(root)
    assert root.is_dir()
    store.put("photos/original/abc", b"data", "image/jpeg")
    # Only the object: no temporary file left behind.
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*")) == [
        "photos",
        "photos/original",
        "photos/original/abc",
    ]


def test_local_failed_write_leaves_old_object_and_no_temp_file(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    store.put("a/obj", b"old", "text/plain")

    # Writing something that is not bytes-like fails inside the write: the old object stays.
    with pytest.raises(TypeError):
        store.put("a/obj", object(), "text/plain")  # type: ignore[arg-type]
    assert store.get("a/obj") == b"old"
    assert sorted(os.listdir(tmp_path / "a")) == ["obj"]


# --------------------------------------------------------------------------------------------------
# A dead S3 server: errors within seconds, and construction does not fail.


@pytest.fixture
def dead_s3_store() -> S3ObjectStore:
    (port,) = free_ports(1)  # nothing listens there
    started = time.monotonic()
    store = S3ObjectStore(
        endpoint=f"127.0.0.1:{port}",
        access_key="nobody",
        secret_key="nothing",
        bucket="claimlane-dead",
    )
    assert time.monotonic() - started < 5, "construction must not wait for a dead server"
    return store


@pytest.mark.parametrize(
    "operation",
    [
        lambda s: s.put("a/b", b"x", "text/plain"),
        lambda s: s.get("a/b"),
        lambda s: s.exists("a/b"),
        lambda s: s.delete("a/b"),
        lambda s: s.ping(),
    ],
    ids=["put", "get", "exists", "delete", "ping"],
)
def test_dead_s3_server_is_unavailable_quickly(dead_s3_store: S3ObjectStore, operation) -> None:
    started = time.monotonic()
    with pytest.raises(ObjectStoreUnavailable):
        operation(dead_s3_store)
    assert time.monotonic() - started < 5


def test_s3_wrong_credentials_are_an_error_not_unavailable(seaweedfs) -> None:
    with pytest.raises(ObjectStoreError) as info:
        S3ObjectStore(
            endpoint=seaweedfs.endpoint,
            access_key=seaweedfs.access_key,
            secret_key="wrong-secret",
            bucket="claimlane-creds",
        )
    assert not isinstance(info.value, ObjectStoreUnavailable)


def test_s3_store_creates_its_bucket(seaweedfs, s3_store: S3ObjectStore) -> None:
    from minio import Minio

    client = Minio(
        seaweedfs.endpoint,
        access_key=seaweedfs.access_key,
        secret_key=seaweedfs.secret_key,
        secure=False,
    )
    assert client.bucket_exists(s3_store.bucket)
    # A second store on the same bucket (another process starting) is fine.
    again = S3ObjectStore(
        endpoint=seaweedfs.endpoint,
        access_key=seaweedfs.access_key,
        secret_key=seaweedfs.secret_key,
        bucket=s3_store.bucket,
    )
    again.ping()


def test_s3_content_type_is_stored(seaweedfs, s3_store: S3ObjectStore) -> None:
    from minio import Minio

    s3_store.put("photos/derived/a.jpg", b"\xff\xd8jpeg", "image/jpeg")
    client = Minio(
        seaweedfs.endpoint,
        access_key=seaweedfs.access_key,
        secret_key=seaweedfs.secret_key,
        secure=False,
    )
    assert client.stat_object(s3_store.bucket, "photos/derived/a.jpg").content_type == "image/jpeg"
