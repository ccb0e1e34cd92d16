"""Shared fixtures: a tiny ONNX model that follows the serving contract, and a set of bad and good
image files. Neither needs torch, so serving tests run in a serving-only environment."""

from __future__ import annotations

import hashlib
import io
import os
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.onnx_models import tiny_model_proto

# Rate limits are off in the tests that do not test them (tests/api/test_rate_limits.py turns them
# on); servers the tests start as subprocesses inherit this.
os.environ.setdefault("CLAIMLANE_RATE_LIMITS", "false")

# --------------------------------------------------------------------------------------------------
# A tiny model following the ONNX contract (see models/inference.py)

TINY_MODEL_VERSION = "tiny-0.0.1"


def _tiny_model_proto(version: str = TINY_MODEL_VERSION, seed: int = 0):
    rng = np.random.default_rng(seed)
    weight = (rng.normal(size=(3, 3)) * 3.0).astype(np.float32)
    return tiny_model_proto(version, weight, np.array([1.0, 0.0, -1.0], dtype=np.float32))


@pytest.fixture(scope="session")
def tiny_onnx_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path of a tiny valid model, ``<tmp>/tiny-0.0.1/model.onnx``. Treat it as read-only (it is
    shared by the whole session); copy it to change it."""
    onnx = pytest.importorskip("onnx")
    path = tmp_path_factory.mktemp("weights", numbered=True) / TINY_MODEL_VERSION / "model.onnx"
    path.parent.mkdir()
    onnx.save(_tiny_model_proto(), str(path))
    return path


TinyModelFactory = Callable[..., Path]


@pytest.fixture(scope="session")
def tiny_model_factory(tmp_path_factory: pytest.TempPathFactory) -> TinyModelFactory:
    """`make(version, seed=0, checksums=True)`: the folder ``<tmp>/<version>/`` of a tiny valid
    model with that version in its metadata and weights drawn with `seed` (another seed grades
    differently), with a SHA256SUMS beside it unless `checksums` is False. Built once per
    arguments and shared by the session: treat it as read-only, copy it to change it."""
    onnx = pytest.importorskip("onnx")
    root = tmp_path_factory.mktemp("tiny-models", numbered=True)
    built: dict[tuple[str, int, bool], Path] = {}

    def make(version: str, seed: int = 0, checksums: bool = True) -> Path:
        key = (version, seed, checksums)
        if key not in built:
            folder = root / f"{len(built)}" / version
            folder.mkdir(parents=True)
            onnx.save(_tiny_model_proto(version, seed), str(folder / "model.onnx"))
            if checksums:
                digest = hashlib.sha256((folder / "model.onnx").read_bytes()).hexdigest()
                (folder / "SHA256SUMS").write_text(f"{digest}  model.onnx\n")
            built[key] = folder
        return built[key]

    return make


# --------------------------------------------------------------------------------------------------
# Bad and good image files


@dataclass
class ImageFiles:
    """Files made by the `bad_files` fixture: `bad` in `bad_dir`, `good` in `good_dir`, by name."""

    bad_dir: Path
    good_dir: Path
    bad: dict[str, Path] = field(default_factory=dict)
    good: dict[str, Path] = field(default_factory=dict)


def _jpeg_bytes(img: Image.Image, **save_args) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", **save_args)
    return buf.getvalue()


def _png_with_size(width: int, height: int) -> bytes:
    """A PNG whose header claims `width` x `height`: a 1x1 PNG with IHDR patched (and its CRC
    recomputed), so no big pixel buffer is ever allocated."""
    buf = io.BytesIO()
    Image.new("RGB", (1, 1), (200, 100, 50)).save(buf, format="PNG")
    data = bytearray(buf.getvalue())
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)
    return bytes(data)


@pytest.fixture
def bad_files(tmp_path: Path) -> ImageFiles:
    """Bad files (each must be refused with an ImageError) and a few valid but awkward photos."""
    files = ImageFiles(bad_dir=tmp_path / "bad", good_dir=tmp_path / "good")
    files.bad_dir.mkdir()
    files.good_dir.mkdir()
    rng = np.random.default_rng(1)
    noise = Image.fromarray(rng.integers(0, 256, size=(64, 96, 3), dtype=np.uint8))

    def bad(name: str, data: bytes) -> None:
        files.bad[name] = files.bad_dir / name
        files.bad[name].write_bytes(data)

    bad("empty.jpg", b"")
    jpeg = _jpeg_bytes(noise, quality=90)
    bad("truncated.jpg", jpeg[: len(jpeg) // 2])
    bad("text.jpg", b"this is not a photo, just text that happens to be named .jpg\n" * 4)
    bad("huge.png", _png_with_size(20_000, 20_000))

    def good(name: str) -> Path:
        files.good[name] = files.good_dir / name
        return files.good[name]

    # Landscape 40x20 pixels stored sideways: EXIF orientation 6 (rotate 90 degrees clockwise).
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (40, 20), (30, 120, 200)).save(good("exif_rotated.jpg"), format="JPEG", exif=exif)
    rgba = np.zeros((48, 32, 4), dtype=np.uint8)
    rgba[..., 0] = 255  # red, but the left half fully transparent
    rgba[:, 16:, 3] = 255
    Image.fromarray(rgba).save(good("alpha.png"), format="PNG")
    gray16 = (np.linspace(0, 65535, 50 * 30).reshape(30, 50)).astype(np.uint16)
    Image.fromarray(gray16).save(good("gray16.png"), format="PNG")
    noise.save(good("photo.webp"), format="WEBP", quality=80)
    # Content decides the format, not the name.
    noise.save(good("png_named.jpg"), format="PNG")
    return files


from tests.backends import *  # noqa: E402,F401,F403
