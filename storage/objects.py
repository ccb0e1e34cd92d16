"""Object storage for photos and other blobs: a local directory (embedded mode) or an S3 server
(MinIO, SeaweedFS, AWS) through the `minio` client.

Both stores follow one small contract (`ObjectStore`) and raise only the errors below:

- `ObjectNotFound` (also a `KeyError`): the key does not exist.
- `ObjectStoreUnavailable`: the store cannot be reached or is failing (server down, timeouts,
  connection refused, 5xx, local disk failing); the API answers 503 with Retry-After.
- `InvalidObjectKey` (also a `ValueError`): the key is malformed; a programming error.
- `ObjectStoreError`: anything else (access denied, a bucket that disappeared...).

Keys are relative, '/'-separated paths such as ``photos/original/<sha256>``: not empty, at most 1024
UTF-8 bytes, no leading '/', no backslashes or control characters, and no empty, '.', '..' or
dot-prefixed segments (names starting with '.' are reserved for temporary files).
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar, runtime_checkable

from config import metrics

_T = TypeVar("_T")

__all__ = [
    "InvalidObjectKey",
    "LocalObjectStore",
    "ObjectNotFound",
    "ObjectStore",
    "ObjectStoreError",
    "ObjectStoreUnavailable",
    "S3ObjectStore",
    "validate_key",
    "validate_prefix",
]

MAX_KEY_BYTES = 1024


class ObjectStoreError(Exception):
    """The object store refused or failed an operation."""


class ObjectStoreUnavailable(ObjectStoreError):
    """The object store cannot be reached or is failing right now; retrying later may work."""


class ObjectNotFound(ObjectStoreError, KeyError):
    """No object under this key."""

    def __str__(self) -> str:  # KeyError would print the repr of its argument
        return Exception.__str__(self)


class InvalidObjectKey(ObjectStoreError, ValueError):
    """A malformed key (absolute, '..', control characters...)."""


@runtime_checkable
class ObjectStore(Protocol):
    def put(self, key: str, data: bytes, content_type: str) -> None:
        """Store `data` under `key`, replacing any object there (atomically: readers see the old
        object or the new one, never a part)."""
        ...

    def get(self, key: str) -> bytes:
        """The object's bytes. Raises ObjectNotFound."""
        ...

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> None:
        """Remove the object; no error if it does not exist."""
        ...

    def ping(self) -> None:
        """Raise (ObjectStoreUnavailable, ObjectStoreError) unless the store is usable."""
        ...

    def list(self, prefix: str = "") -> list[str]:
        """Every key that starts with `prefix` (a plain string prefix, as in S3: "a/b" matches
        "a/b/c" and "a/bc"), sorted. Raises InvalidObjectKey for a malformed prefix."""
        ...


def validate_prefix(prefix: str) -> str:
    """Return `prefix` if it can start a well-formed key ("" lists everything), else raise
    InvalidObjectKey. A trailing '/' is allowed ("photos/" lists the keys under the folder)."""
    if not isinstance(prefix, str):
        raise InvalidObjectKey(f"key prefix must be a string, got {prefix!r}")
    if prefix:
        validate_key(prefix[:-1] if prefix.endswith("/") else prefix)
    return prefix


def validate_key(key: str) -> str:
    """Return `key` if it is a well-formed object key, else raise InvalidObjectKey."""
    if not isinstance(key, str) or not key:
        raise InvalidObjectKey(f"object key must be a non-empty string, got {key!r}")
    if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise InvalidObjectKey(f"object key longer than {MAX_KEY_BYTES} bytes")
    if key.startswith("/"):
        raise InvalidObjectKey(f"object key must be relative, got {key!r}")
    if "\\" in key or any(ord(ch) < 32 or ord(ch) == 127 for ch in key):
        raise InvalidObjectKey(f"object key contains a backslash or control character: {key!r}")
    for part in key.split("/"):
        if not part or part.startswith("."):
            raise InvalidObjectKey(f"object key has an empty, '.', '..' or dot-prefixed segment: {key!r}")
    return key


# --------------------------------------------------------------------------------------------------
# Local directory


class LocalObjectStore:
    """Objects as files under `root` (created if missing). Writes go to a temporary file in the
    same directory and are renamed into place, so a reader never sees a partial object."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).resolve()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ObjectStoreUnavailable(f"cannot create object store folder {self.root}: {exc}") from exc

    def __repr__(self) -> str:
        return f"LocalObjectStore({str(self.root)!r})"

    def _path(self, key: str) -> Path:
        path = self.root.joinpath(*validate_key(key).split("/"))
        # Belt and braces: the checks above already rule out escaping the root.
        if os.path.commonpath([self.root, path]) != str(self.root):
            raise InvalidObjectKey(f"object key escapes the store: {key!r}")
        return path

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        path = self._path(key)
        tmp_name: str | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp_name, path)
            tmp_name = None
        except OSError as exc:
            raise _local_error(key, exc) from exc
        finally:
            if tmp_name is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp_name)

    def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise ObjectNotFound(f"no object {key!r}") from exc
        except OSError as exc:
            raise _local_error(key, exc) from exc

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            pass
        except OSError as exc:
            raise _local_error(key, exc) from exc

    def list(self, prefix: str = "") -> list[str]:
        validate_prefix(prefix)
        # Walk only the deepest folder the prefix names; "a/b" may match "a/b/..." and "a/bc".
        folder = self.root.joinpath(*prefix.split("/")[:-1]) if prefix else self.root
        keys: list[str] = []
        try:
            for dirpath, dirnames, filenames in os.walk(folder):
                dirnames[:] = [d for d in dirnames if not d.startswith(".")]
                rel = Path(dirpath).relative_to(self.root).as_posix()
                for name in filenames:
                    if name.startswith("."):  # temporary files of writes in progress
                        continue
                    key = name if rel == "." else f"{rel}/{name}"
                    if key.startswith(prefix):
                        keys.append(key)
        except OSError as exc:
            raise _local_error(prefix or "<root>", exc) from exc
        return sorted(keys)

    def ping(self) -> None:
        if not self.root.is_dir():
            raise ObjectStoreUnavailable(f"object store folder {self.root} does not exist")
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise ObjectStoreUnavailable(f"object store folder {self.root} is not writable")


def _local_error(key: str, exc: OSError) -> ObjectStoreError:
    # A full or failing disk is a condition to retry later; anything else (EACCES on one file,
    # a file where a folder should be) is a plain error.
    transient = {errno.ENOSPC, errno.EIO, errno.EDQUOT, errno.EROFS, errno.EAGAIN, errno.EMFILE}
    cls = ObjectStoreUnavailable if exc.errno in transient else ObjectStoreError
    return cls(f"object store failed on {key!r}: {exc}")


# --------------------------------------------------------------------------------------------------
# S3 (minio client)

_NOT_FOUND_CODES = frozenset({"NoSuchKey", "NoSuchObject", "ResourceNotFound"})
_UNAVAILABLE_CODES = frozenset(
    {"ServiceUnavailable", "SlowDown", "InternalError", "RequestTimeout", "ServerBusy", "Throttling"}
)


class S3ObjectStore:
    """Objects in one S3 bucket through the `minio` client.

    Construction never fails because the server is down: the bucket is created (if missing) at
    construction when the server answers, otherwise on first use, so the API can start and report
    itself not ready. Requests use short timeouts and at most one retry, so a dead server yields
    ObjectStoreUnavailable within seconds.
    """

    def __init__(
        self,
        *,
        endpoint: str,
        access_key: str,
        secret_key: str,
        bucket: str,
        secure: bool = False,
        region: str | None = None,
        connect_timeout: float = 3.0,
        read_timeout: float = 10.0,
        retries: int = 1,
    ) -> None:
        import certifi
        import urllib3
        from minio import Minio

        self.endpoint = endpoint
        self.bucket = bucket
        self._bucket_ready = False
        self._lock = threading.Lock()
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=connect_timeout, read=read_timeout),
            retries=urllib3.Retry(
                total=retries,
                connect=retries,
                read=retries,
                backoff_factor=0.2,
                status_forcelist=(500, 502, 503, 504),
                raise_on_status=False,  # hand the final 5xx to minio, which parses it
            ),
            maxsize=10,
            cert_reqs="CERT_REQUIRED" if secure else "CERT_NONE",
            ca_certs=certifi.where() if secure else None,
        )
        try:
            self._client = Minio(
                endpoint=endpoint,
                access_key=access_key,
                secret_key=secret_key,
                secure=secure,
                region=region,
                http_client=http,
            )
        except ValueError as exc:  # e.g. an endpoint with a scheme or a path
            raise ObjectStoreError(f"bad S3 endpoint {endpoint!r}: {exc}") from exc
        with contextlib.suppress(ObjectStoreUnavailable):
            self._ensure_bucket()  # the server is down: try again on first use

    def __repr__(self) -> str:
        return f"S3ObjectStore(endpoint={self.endpoint!r}, bucket={self.bucket!r})"

    def _ensure_bucket(self) -> None:
        if self._bucket_ready:
            return
        from minio.error import S3Error

        with self._lock, _mapped_errors(f"bucket {self.bucket!r}"):
            if self._bucket_ready:
                return
            if not self._client.bucket_exists(bucket_name=self.bucket):
                try:
                    self._client.make_bucket(bucket_name=self.bucket)
                except S3Error as exc:
                    # Another process created it between our check and our request.
                    if exc.code not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                        raise
            self._bucket_ready = True

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        validate_key(key)
        self._ensure_bucket()
        with _mapped_errors(key):
            self._client.put_object(
                bucket_name=self.bucket,
                object_name=key,
                data=io.BytesIO(data),
                length=len(data),
                content_type=content_type,
            )

    def get(self, key: str) -> bytes:
        validate_key(key)
        self._ensure_bucket()
        with _mapped_errors(key):
            response = self._client.get_object(bucket_name=self.bucket, object_name=key)
            try:
                return response.read()
            finally:
                response.close()
                response.release_conn()

    def exists(self, key: str) -> bool:
        validate_key(key)
        self._ensure_bucket()
        try:
            with _mapped_errors(key):
                self._client.stat_object(bucket_name=self.bucket, object_name=key)
        except ObjectNotFound:
            return False
        return True

    def delete(self, key: str) -> None:
        validate_key(key)
        self._ensure_bucket()
        try:
            with _mapped_errors(key):
                self._client.remove_object(bucket_name=self.bucket, object_name=key)
        except ObjectNotFound:
            pass

    def list(self, prefix: str = "") -> list[str]:
        validate_prefix(prefix)
        self._ensure_bucket()
        with _mapped_errors(f"listing {prefix!r}"):
            names = [
                obj.object_name
                for obj in self._client.list_objects(
                    bucket_name=self.bucket, prefix=prefix or None, recursive=True
                )
                if obj.object_name and not obj.is_dir
            ]
        return sorted(names)

    def ping(self) -> None:
        self._ensure_bucket()
        with _mapped_errors(f"bucket {self.bucket!r}"):
            found = self._client.bucket_exists(bucket_name=self.bucket)
        if not found:
            self._bucket_ready = False
            raise ObjectStoreError(f"bucket {self.bucket!r} does not exist on {self.endpoint}")


class _mapped_errors:
    """Context manager turning minio and urllib3 exceptions into ObjectStore errors."""

    def __init__(self, what: str) -> None:
        self.what = what

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> Literal[False]:
        if exc is None or isinstance(exc, ObjectStoreError):
            return False
        mapped = _map_exception(exc, self.what)
        if mapped is None:
            return False
        raise mapped from exc


def _map_exception(exc: BaseException, what: str) -> ObjectStoreError | None:
    import urllib3.exceptions
    from minio.error import InvalidResponseError, S3Error, ServerError

    if isinstance(exc, S3Error):
        if exc.code in _NOT_FOUND_CODES:
            return ObjectNotFound(f"no object {what}")
        status = exc.response.status if exc.response is not None else 0
        if exc.code in _UNAVAILABLE_CODES or status >= 500:
            return ObjectStoreUnavailable(f"S3 server failed on {what}: {exc.code}: {exc.message}")
        return ObjectStoreError(f"S3 refused {what}: {exc.code}: {exc.message}")
    if isinstance(exc, ServerError):
        return ObjectStoreUnavailable(f"S3 server failed on {what}: {exc}")
    if isinstance(exc, InvalidResponseError):
        return ObjectStoreUnavailable(f"S3 server gave an invalid response on {what}: {exc}")
    if isinstance(exc, ValueError):  # minio's own checks, e.g. an invalid bucket name
        return ObjectStoreError(f"S3 request for {what} refused by the client: {exc}")
    if isinstance(exc, (urllib3.exceptions.HTTPError, OSError)):
        # MaxRetryError (connection refused, timeouts), ProtocolError, ReadTimeoutError, sockets.
        reason = getattr(exc, "reason", None) or exc
        return ObjectStoreUnavailable(f"S3 server unreachable on {what}: {reason}")
    return None


class MeteredStore:
    """Any `ObjectStore`, with its failures counted in `claimlane_object_store_errors_total` by
    operation (a missing object or a malformed key is an answer, not a failure, and is not counted)."""

    def __init__(self, inner: ObjectStore) -> None:
        self.inner = inner

    def __repr__(self) -> str:
        return f"MeteredStore({self.inner!r})"

    def _call(self, operation: str, fn: Callable[..., _T], *args: Any) -> _T:
        try:
            return fn(*args)
        except (ObjectNotFound, InvalidObjectKey):
            raise
        except Exception:
            metrics.OBJECT_STORE_ERRORS.labels(operation).inc()
            raise

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        self._call("put", self.inner.put, key, data, content_type)

    def get(self, key: str) -> bytes:
        return self._call("get", self.inner.get, key)

    def exists(self, key: str) -> bool:
        return self._call("exists", self.inner.exists, key)

    def delete(self, key: str) -> None:
        self._call("delete", self.inner.delete, key)

    def ping(self) -> None:
        self._call("ping", self.inner.ping)

    def list(self, prefix: str = "") -> list[str]:
        return self._call("list", self.inner.list, prefix)
