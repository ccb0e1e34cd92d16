"""The benchmark's photos: `with_comment` makes an upload new bytes without touching its pixels or
its metadata."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest
from PIL import Image

from bench.phone_photos import phone_jpeg, with_comment


def _decoded(data: bytes) -> tuple[np.ndarray, dict[int, object], bytes | None]:
    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img.convert("RGB")), dict(img.getexif()), img.info.get("comment")


def test_a_new_comment_makes_new_bytes_with_the_same_pixels_and_exif() -> None:
    original = phone_jpeg(3, size=(640, 480))
    renamed = with_comment(original, b"upload 17 photo 0")
    assert hashlib.sha256(renamed).digest() != hashlib.sha256(original).digest()
    pixels, exif, comment = _decoded(renamed)
    before_pixels, before_exif, before_comment = _decoded(original)
    assert before_comment == b"shot on a phone" and comment == b"upload 17 photo 0"
    assert np.array_equal(pixels, before_pixels)
    assert exif == before_exif and 0x8825 in exif  # GPS still there: the served copy must drop it


def test_a_jpeg_without_a_comment_gets_one() -> None:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (120, 80, 40)).save(buf, format="JPEG")
    plain = buf.getvalue()
    commented = with_comment(plain, b"upload 1")
    pixels, _, comment = _decoded(commented)
    assert comment == b"upload 1"
    assert np.array_equal(pixels, _decoded(plain)[0])


def test_not_a_jpeg_is_refused() -> None:
    with pytest.raises(ValueError):
        with_comment(b"GIF89a", b"x")


def test_the_heic_photo_is_a_grid_of_tiles_as_an_iphone_saves_it() -> None:
    """iPhones store a HEIC photo as a grid of 512x512 HEVC tiles (the `grid` item in the file's
    item list), which libheif decodes on several threads; one HEVC image decodes on one."""
    from pillow_heif import register_heif_opener

    from bench.phone_photos import heic_photo

    register_heif_opener()
    tiled, single = heic_photo(5, size=(1024, 768)), heic_photo(5, size=(1024, 768), tile_size=None)
    assert b"grid" in tiled[:4096] and b"grid" not in single[:4096]
    with Image.open(io.BytesIO(tiled)) as img:
        assert img.size == (1024, 768) and img.getexif()[0x0110] == "iPhone 15"
