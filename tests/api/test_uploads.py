"""`api.uploads.UploadSpool`: an upload's pieces kept as they arrived and joined once, spilled to a
temporary file past the memory limit, behaving as the file Starlette and the services expect."""

from __future__ import annotations

import hashlib
import io
import os

import pytest
import starlette.formparsers
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

import api.main  # noqa: F401 - installs the spool, as the service does
from api.uploads import UploadSpool


def _spool(chunks: list[bytes], max_size: int = 1 << 20) -> UploadSpool:
    spool = UploadSpool(max_size=max_size)
    for chunk in chunks:
        spool.write(chunk)
    return spool


def test_the_service_parses_uploads_into_upload_spools() -> None:
    assert starlette.formparsers.SpooledTemporaryFile is UploadSpool
    assert starlette.formparsers.MultiPartParser.spool_max_size == api.main.UPLOAD_SPOOL_BYTES


def test_pieces_are_joined_once_and_every_full_read_returns_the_same_bytes() -> None:
    chunks = [os.urandom(1000) for _ in range(5)]
    spool = _spool(chunks)
    assert spool.tell() == 5000
    assert spool.seek(0, io.SEEK_END) == 5000
    spool.seek(0)
    first = spool.read()
    assert first == b"".join(chunks)
    assert spool.tell() == 5000 and spool.read() == b""
    spool.seek(0)
    assert spool.read() is first  # no second copy for the second reader (digest, then decode)
    assert not spool._rolled


def test_partial_reads_and_seeks_behave_like_a_file() -> None:
    data = os.urandom(4096)
    spool, reference = _spool([data[:1000], data[1000:]]), io.BytesIO(data)
    for whence, offset, size in [(0, 0, 10), (1, 5, 100), (2, -50, 80), (0, 4000, -1), (0, 5000, 10)]:
        assert spool.seek(offset, whence) == reference.seek(offset, whence)
        assert spool.read(size) == reference.read(size)
        assert spool.tell() == reference.tell()
    with pytest.raises(ValueError):
        spool.seek(-1)


def test_past_the_memory_limit_it_spills_to_a_temporary_file_with_nothing_lost() -> None:
    chunks = [os.urandom(300) for _ in range(4)]
    spool = _spool(chunks, max_size=1000)
    assert spool._rolled  # Starlette runs the writes of a rolled file on a thread
    spool.seek(0)
    assert spool.read() == b"".join(chunks)
    spool.close()
    assert spool.closed


def test_a_write_that_is_not_an_append_goes_to_a_file_and_overwrites_like_one() -> None:
    spool = _spool([b"abcdef"])
    spool.seek(2)
    spool.write(b"XY")
    assert spool._rolled
    spool.seek(0)
    assert spool.read() == b"abXYef"
    spool.close()


def test_closed_spools_refuse_reads_and_writes() -> None:
    spool = _spool([b"abc"])
    spool.close()
    with pytest.raises(ValueError):
        spool.read()
    with pytest.raises(ValueError):
        spool.write(b"more")


async def _describe_form(request: Request) -> JSONResponse:
    form = await request.form()
    out = {}
    for name, value in form.multi_items():
        if isinstance(value, str):
            out[name] = value
            continue
        data = await value.read()
        out[name] = {
            "sha256": hashlib.sha256(data).hexdigest(),
            "size": value.size,
            "spool": type(value.file).__name__,
            "rolled": value.file._rolled,
        }
    await form.close()
    return JSONResponse(out)


@pytest.mark.parametrize("spool_bytes", [8 * 1024 * 1024, 64 * 1024], ids=["in memory", "spilled"])
def test_a_multipart_upload_arrives_intact_whether_held_in_memory_or_spilled(
    spool_bytes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(starlette.formparsers.MultiPartParser, "spool_max_size", spool_bytes)
    app = Starlette(routes=[Route("/", _describe_form, methods=["POST"])])
    photos = {"a": os.urandom(3 * 1024 * 1024 + 17), "b": os.urandom(10)}
    with TestClient(app) as client:
        answer = client.post(
            "/",
            data={"tracking_number": "SF1"},
            files=[
                ("photos", ("a.jpg", photos["a"], "image/jpeg")),
                ("other", ("b.jpg", photos["b"], "image/jpeg")),
            ],
        )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["tracking_number"] == "SF1"
    for field, key in (("photos", "a"), ("other", "b")):
        assert body[field]["sha256"] == hashlib.sha256(photos[key]).hexdigest()
        assert body[field]["size"] == len(photos[key])
        assert body[field]["spool"] == "UploadSpool"
    assert body["photos"]["rolled"] is (spool_bytes < len(photos["a"]))
    assert body["other"]["rolled"] is False
