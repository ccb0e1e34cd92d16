"""Decode a photo and turn it into the network's input: the one function training and serving share.

Why one function: a model is only as good as the agreement between the pixels it was trained on and
the pixels it is served. Training augments the decoded `PIL.Image` and then calls `to_input`; serving
calls `preprocess`, which is `load_image` followed by `to_input`. A test checks they agree exactly.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError
from pillow_heif import register_heif_opener

# HEIC/HEIF is the iPhone camera's default format: Pillow opens it through pillow-heif's plug-in.
register_heif_opener()

INPUT_SIZE = 224
# EfficientNet-Lite's ImageNet weights expect pixels in [-1, 1]: (x / 255 - 0.5) / 0.5.
MEAN = (0.5, 0.5, 0.5)
STD = (0.5, 0.5, 0.5)
# Pillow's own threshold: it warns above it and refuses twice above it. We refuse above it.
MAX_PIXELS = Image.MAX_IMAGE_PIXELS or 89_478_485
# Formats decoded in full (PNG, WebP, HEIC: no draft mode) are refused above this many pixels, read
# from the header before anything is decoded: 40 MP as RGBA is 160 MB, where Pillow's own limit (89 MP)
# let one 336 KB PNG of zeros cost the process gigabytes. A JPEG is decoded at 1/8 scale in draft
# mode, so it keeps Pillow's limit (a 108 MP phone photo decodes to 1.7 MP).
MAX_FULL_DECODE_PIXELS = 40_000_000
ALLOWED_FORMATS = frozenset({"JPEG", "MPO", "PNG", "WEBP", "HEIF"})
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".heic", ".heif"})
ACCEPTED = "JPEG, PNG, WebP or HEIC"

ImageSource = str | os.PathLike[str] | bytes | BinaryIO


class ImageError(ValueError):
    """The input is not a photo we can grade (not an image, truncated, too large, unsupported)."""


def _open(source: ImageSource) -> Image.Image:
    if isinstance(source, bytes):
        source = io.BytesIO(source)
    elif isinstance(source, (str, os.PathLike)):
        source = Path(source)
    try:
        return Image.open(source)
    except Image.DecompressionBombError as exc:
        raise ImageError(f"image too large: {exc}") from exc
    except UnidentifiedImageError as exc:
        raise ImageError(f"not a recognised image (expected {ACCEPTED} content)") from exc


def _byte_size(source: ImageSource) -> int | None:
    """The source's size in bytes, when known without reading it."""
    if isinstance(source, bytes):
        return len(source)
    if isinstance(source, (str, os.PathLike)):
        try:
            return os.path.getsize(source)
        except OSError:
            return None
    return None


def load_image(
    source: ImageSource, *, min_side: int = INPUT_SIZE, max_full_decode_pixels: int = MAX_FULL_DECODE_PIXELS
) -> Image.Image:
    """Decode a photo to an upright RGB image, at least `min_side` pixels on its shorter side if
    the original is.

    - Content decides the format, not the file name: only JPEG, PNG, WebP and HEIC/HEIF
      are accepted.
    - Decompression bombs are refused before decoding (Pillow's warning is treated as an error), and
      formats decoded in full above `max_full_decode_pixels` (from the header; the service's
      `CLAIMLANE_MAX_PHOTO_MEGAPIXELS`).
    - Big JPEGs are decoded in draft mode (DCT scaling), which is 3-4x faster for phone photos and
      loses nothing at the network's input size; other formats are decoded in full, then reduced by
      the factor the draft would have used (`_reduce_like_draft`).
    - EXIF orientation is applied, so a photo taken sideways is graded upright.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            img = _open(source)
        except Image.DecompressionBombWarning as exc:
            raise ImageError(f"image too large: {exc}") from exc
    try:
        if img.format not in ALLOWED_FORMATS:
            raise ImageError(f"unsupported image format {img.format!r} (expected {ACCEPTED})")
        width, height = img.size
        if width < 1 or height < 1:
            raise ImageError("image has no pixels")
        if width * height > MAX_PIXELS:
            raise ImageError(f"image too large: {width}x{height} pixels (limit {MAX_PIXELS})")
        if img.format not in {"JPEG", "MPO"} and width * height > max_full_decode_pixels:
            raise ImageError(
                f"image too large: {width}x{height} pixels; a {img.format} photo may have at most "
                f"{max_full_decode_pixels / 1e6:g} megapixels (a JPEG may have more)"
            )
        if img.format in {"JPEG", "MPO"}:
            # Keeps both sides >= min_side (the draft never scales below the requested size).
            img.draft("RGB", (min_side, min_side))
            # The whole file in one decoder call: Pillow otherwise feeds the decoder 64 KiB at a
            # time from a Python loop that takes the GIL back after each block (about 50 times for a
            # 3.4 MB photo), so on a busy server each decode waited for the GIL again and again
            # (ten decodes beside one busy Python thread: 1.22 s in 64 KiB blocks, 0.39 s whole).
            size = _byte_size(source)
            if size is not None and isinstance(img, ImageFile.ImageFile):
                img.decodermaxblock = max(img.decodermaxblock, size + 1)
        try:
            img.load()
        except (OSError, SyntaxError, ValueError) as exc:
            raise ImageError(f"image is corrupt or truncated: {exc}") from exc
        drafted = img.format in {"JPEG", "MPO"}
        img = _to_rgb(ImageOps.exif_transpose(img))
        return img if drafted else _reduce_like_draft(img, min_side)
    except ImageError:
        img.close()
        raise


def _reduce_like_draft(img: Image.Image, min_side: int) -> Image.Image:
    """A photo decoded in full (PNG, WebP, HEIC: no draft mode) reduced as JPEG's draft mode would
    have decoded it: by the largest of 8, 4 and 2 that keeps both sides >= `min_side` (a box average,
    a few milliseconds for 12 MP). Everything after the decode (the model's input, the hashes, the
    screenshot check) then works on about the pixels a JPEG of the same photo gives, instead of
    resizing 12 MP once for each: a 12 MP HEIC photo took 744 -> 716 ms of CPU here, nearly all of
    it libde265's decode."""
    scale = min(img.width // max(1, min_side), img.height // max(1, min_side))
    for factor in (8, 4, 2):
        if scale >= factor:
            reduced = img.reduce(factor)
            img.close()
            return reduced
    return img


def _to_rgb(img: Image.Image) -> Image.Image:
    """RGB, with any transparency flattened onto white (how a photo app would show it)."""
    if img.mode == "RGB":
        return img
    if img.mode in {"RGBA", "LA", "PA"} or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if img.mode in {"I;16", "I;16B", "I;16L", "I"}:
        # 16-bit PNGs: scale to 8 bits rather than clipping.
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if arr.max() > 255 else 255.0
        return Image.fromarray((arr / top * 255.0).round().astype(np.uint8)).convert("RGB")
    return img.convert("RGB")


def to_input(img: Image.Image, size: int = INPUT_SIZE) -> np.ndarray:
    """An RGB image -> float32 array (3, size, size) in [-1, 1].

    The whole frame is resized (not cropped) so damage near the edge of a photo is never cut off;
    training sees random aspect ratios, so the squash of a 4:3 phone photo is familiar.
    """
    return normalise(resized_pixels(img, size))


def resized_pixels(img: Image.Image, size: int = INPUT_SIZE) -> np.ndarray:
    """The first half of `to_input`: the image resized to (size, size), uint8 (size, size, 3). Small
    enough to hand from the API to a worker (150 KB at 224) instead of the photo."""
    if img.mode != "RGB":
        img = _to_rgb(img)
    return np.asarray(img.resize((size, size), Image.Resampling.BILINEAR), dtype=np.uint8)


def normalise(pixels: np.ndarray) -> np.ndarray:
    """The second half of `to_input`: uint8 (size, size, 3) -> float32 (3, size, size) in [-1, 1]."""
    scaled = pixels.astype(np.float32) / np.float32(255.0)
    normalised = (scaled - np.asarray(MEAN, dtype=np.float32)) / np.asarray(STD, dtype=np.float32)
    return np.ascontiguousarray(normalised.transpose(2, 0, 1))


def preprocess(source: ImageSource, size: int = INPUT_SIZE) -> np.ndarray:
    """A photo (path, bytes or file) -> the network's input. Raises ImageError on bad input."""
    return to_input(load_image(source, min_side=size), size)


def iter_image_files(paths: list[str | os.PathLike[str]]) -> list[Path]:
    """Expand files and folders (recursively) into image files, sorted within each folder."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(
                sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            )
        else:
            found.append(path)
    return found
