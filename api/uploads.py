"""Where an uploaded file's bytes wait while the request is parsed: `UploadSpool`.

Starlette spools each file part of a multipart request in a `tempfile.SpooledTemporaryFile`, whose
in-memory stage is an `io.BytesIO` that grows as the pieces arrive (by reallocation, with the GIL
held); the service then read it out twice more (for its digest and for its decode). Under the
ten-client load a GIL profile put that write at 11% of the API's GIL-held time, and thirty uploads of
3.4 MB written interleaved in 64 KiB pieces cost 4.3 ms a photo that way against 2.0 ms kept as
pieces and joined once. `UploadSpool` keeps the pieces the parser hands over as they are, joins them
once on the first read, and gives that same `bytes` object to every later read: one copy in all. Past `max_size` it spills to a temporary file as
SpooledTemporaryFile does, so a request's memory stays bounded.

It implements what Starlette's `UploadFile` and the services use of a file, and no more: write, read,
seek, tell, close, and the `_rolled` and `_max_size` attributes `UploadFile` reads to decide whether a
write may block. A write that is not an append rolls it over to a real file first.
"""

from __future__ import annotations

import io
import tempfile
from typing import IO, Any

import starlette.formparsers


class UploadSpool:
    """An append-only in-memory spool of byte chunks that becomes a temporary file past `max_size`."""

    def __init__(self, max_size: int = 0, *args: Any, **kwargs: Any) -> None:
        # SpooledTemporaryFile's other arguments (mode, suffix...) are accepted and unused: Starlette
        # passes only max_size, and the spool is always binary.
        self._max_size = max_size
        self._chunks: list[bytes] = []
        self._size = 0
        self._pos = 0
        self._joined: bytes | None = None
        self._file: IO[bytes] | None = None
        self.closed = False

    @property
    def _rolled(self) -> bool:
        """Starlette's UploadFile runs writes on a thread once this is true (they may block on disk)."""
        return self._file is not None

    def rollover(self) -> None:
        """Move what is held to a temporary file; every later call goes to that file."""
        if self._file is not None:
            return
        file = tempfile.TemporaryFile()  # noqa: SIM115 - kept open: the spool is the file from now on
        for chunk in self._chunks:
            file.write(chunk)
        file.seek(self._pos)
        self._file, self._chunks, self._joined = file, [], None

    def write(self, data: bytes | bytearray | memoryview) -> int:
        if self.closed:
            raise ValueError("write to a closed upload spool")
        if self._file is None and (self._pos != self._size or self._size + len(data) > self._max_size > 0):
            self.rollover()  # a write that is not an append, or past the memory limit
        if self._file is not None:
            return self._file.write(data)
        chunk = bytes(data)  # the parser's pieces are bytes already: no copy for them
        self._chunks.append(chunk)
        self._size += len(chunk)
        self._pos = self._size
        self._joined = None
        return len(chunk)

    def _bytes(self) -> bytes:
        if self._joined is None:
            self._joined = self._chunks[0] if len(self._chunks) == 1 else b"".join(self._chunks)
            self._chunks = [self._joined]
        return self._joined

    def read(self, size: int | None = -1) -> bytes:
        if self._file is not None:
            return self._file.read(-1 if size is None else size)
        if self.closed:
            raise ValueError("read from a closed upload spool")
        data = self._bytes()
        end = self._size if size is None or size < 0 else min(self._size, self._pos + size)
        out = data if self._pos == 0 and end == self._size else data[self._pos : end]
        self._pos = max(self._pos, end)
        return out

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if self._file is not None:
            return self._file.seek(offset, whence)
        if whence == io.SEEK_SET:
            pos = offset
        elif whence == io.SEEK_CUR:
            pos = self._pos + offset
        elif whence == io.SEEK_END:
            pos = self._size + offset
        else:
            raise ValueError(f"invalid whence ({whence})")
        if pos < 0:
            raise ValueError(f"negative seek position {pos}")
        self._pos = pos
        return pos

    def tell(self) -> int:
        return self._file.tell() if self._file is not None else self._pos

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        self._chunks, self._joined, self.closed = [], None, True


def install(max_size: int) -> None:
    """Make Starlette's multipart parser spool file parts in `UploadSpool`s of `max_size` bytes."""
    starlette.formparsers.MultiPartParser.spool_max_size = max_size
    starlette.formparsers.SpooledTemporaryFile = UploadSpool  # type: ignore[misc,assignment]
