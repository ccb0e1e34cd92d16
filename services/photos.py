"""Content-addressed photo storage: the upload kept byte-for-byte, plus a served derivative.

- Original: ``photos/original/<sha256>``, exactly the uploaded bytes (evidence; never served as is
  because it may carry EXIF with GPS coordinates).
- Derivative: ``photos/derived/<sha256>.jpg``, what the console and the API serve: decoded with the
  same `models.preprocessing.load_image` the model uses (content-sniffed, bomb-checked, EXIF
  orientation applied, transparency flattened), downscaled, re-encoded as JPEG with no metadata at
  all: no EXIF (hence no GPS), no XMP, no comment and no ICC profile. A photo with an RGB ICC
  profile (Display P3 from phones, Adobe RGB) is converted to sRGB first, so colours stay right
  without the profile.

Same bytes, same keys: storing a photo twice writes nothing the second time.
"""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from PIL import ExifTags, Image

from models.fingerprints import (
    CaptureTime,
    Fingerprint,
    camera,
    capture_time,
    fingerprint,
    looks_like_screenshot,
)
from models.preprocessing import ACCEPTED, ImageError, load_image
from storage.objects import ObjectNotFound, ObjectStore, ObjectStoreError

__all__ = [
    "DERIVATIVE_QUALITY",
    "StoredPhoto",
    "derivative_key",
    "discard_objects",
    "inspect_photo",
    "make_derivative",
    "original_key",
    "store_photo",
]

log = logging.getLogger(__name__)

DERIVATIVE_QUALITY = 88
DERIVATIVE_CONTENT_TYPE = "image/jpeg"
MIME_TYPES = {
    "JPEG": "image/jpeg",
    "MPO": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "HEIF": "image/heic",
}
# EXIF orientations that swap width and height (transpose, rotate 90/270, transverse).
_SWAPS_SIDES = frozenset({5, 6, 7, 8})


@dataclass(frozen=True)
class StoredPhoto:
    sha256: str
    original_key: str
    derivative_key: str
    content_type: str  # of the original, from its content
    byte_size: int  # of the original
    width: int  # of the original, upright (after EXIF orientation)
    height: int
    # For the fraud checks (models.fingerprints): hashes of the photo and of its mirror image, when
    # it was taken (EXIF), the camera that took it, and whether it looks like a screenshot.
    fingerprint: Fingerprint | None = None
    taken: CaptureTime | None = None
    camera: str | None = None
    screenshot: bool = False


def original_key(sha256: str) -> str:
    return f"photos/original/{sha256}"


def derivative_key(sha256: str) -> str:
    return f"photos/derived/{sha256}.jpg"


def _header(data: bytes) -> tuple[str, int, int, Image.Exif]:
    """(MIME type, upright width, upright height, EXIF) from the header of bytes `load_image` accepted."""
    with Image.open(io.BytesIO(data)) as img:
        fmt = img.format or ""
        width, height = img.size
        try:
            exif = img.getexif()
            orientation = exif.get(ExifTags.Base.Orientation)
        except Exception:  # a broken EXIF block: load_image ignores it too
            exif, orientation = Image.Exif(), None
    if fmt not in MIME_TYPES:
        raise ImageError(f"unsupported image format {fmt!r} (expected {ACCEPTED})")
    if orientation in _SWAPS_SIDES:
        width, height = height, width
    return MIME_TYPES[fmt], width, height, exif


def _check_min_side(width: int, height: int, min_side: int) -> None:
    if min(width, height) < min_side:
        raise ImageError(
            f"image too small: {width}x{height} pixels (the shorter side must be at least {min_side})"
        )


def inspect_photo(data: bytes, *, min_side: int) -> tuple[str, int, int]:
    """Validate an upload by its content; return (content type, width, height).

    Width and height are the upright size (EXIF orientation applied), as the photo is shown.
    Raises `ImageError` for anything that is not a JPEG, PNG, WebP or HEIC photo we can decode in full
    (text, truncated files, decompression bombs, GIF...) or whose shorter side is below `min_side`.
    """
    # Fully decodes (in JPEG draft mode at about min_side: cheap), so truncation is caught here.
    load_image(data, min_side=max(1, min_side)).close()
    content_type, width, height, _ = _header(data)
    _check_min_side(width, height, min_side)
    return content_type, width, height


def _to_srgb(img: Image.Image) -> Image.Image:
    icc = img.info.get("icc_profile")
    if not icc or img.mode != "RGB":
        return img
    try:
        from PIL import ImageCms

        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        if profile.profile.xcolor_space.strip() != "RGB":
            return img  # e.g. a CMYK profile left over from a converted CMYK JPEG
        converted = ImageCms.profileToProfile(img, profile, ImageCms.createProfile("sRGB"), outputMode="RGB")
        return converted if converted is not None else img
    except Exception as exc:  # a broken profile or no littlecms: keep the pixels as they are
        log.debug("ignoring ICC profile: %s", exc)
        return img


def _derivative_from(img: Image.Image, max_side: int) -> bytes:
    img = _to_srgb(img)
    if max(img.size) > max_side:
        img.thumbnail((max_side, max_side), Image.Resampling.LANCZOS, reducing_gap=3.0)
    # A fresh image: nothing from the upload's `info` (EXIF, XMP, comment, ICC, DPI) can follow.
    clean = Image.new("RGB", img.size)
    clean.paste(img)
    buf = io.BytesIO()
    clean.save(buf, format="JPEG", quality=DERIVATIVE_QUALITY, optimize=True)
    return buf.getvalue()


def make_derivative(data: bytes, max_side: int = 2048) -> bytes:
    """The served copy of a photo: upright, at most `max_side` pixels a side, JPEG quality 88, no
    metadata. Raises `ImageError` for input `load_image` refuses."""
    if max_side < 1:
        raise ValueError("max_side must be positive")
    return _derivative_from(load_image(data, min_side=max_side), max_side)


def store_photo(
    store: ObjectStore, data: bytes, *, max_side: int = 2048, min_side: int = 1
) -> tuple[StoredPhoto, list[str]]:
    """Validate `data`, then store the original and its derivative unless already there.

    Returns the photo's description and the keys this call created. A caller whose database
    transaction then fails passes those keys to `discard_objects`. Raises `ImageError` (bad
    photo: nothing is written) or an `ObjectStoreError` (nothing this call wrote is left behind).
    """
    if max_side < 1:
        raise ValueError("max_side must be positive")
    # One decode serves both validation and the derivative.
    img = load_image(data, min_side=max_side)
    content_type, width, height, exif = _header(data)
    _check_min_side(width, height, min_side)
    sha256 = hashlib.sha256(data).hexdigest()
    try:
        prints = fingerprint(img)
    except Exception:  # a hash is evidence for a check, never a reason to refuse a decodable photo
        log.warning("could not hash photo %s", sha256, exc_info=True)
        prints = None
    photo = StoredPhoto(
        sha256=sha256,
        original_key=original_key(sha256),
        derivative_key=derivative_key(sha256),
        content_type=content_type,
        byte_size=len(data),
        width=width,
        height=height,
        fingerprint=prints,
        taken=capture_time(exif),
        camera=camera(exif),
        screenshot=looks_like_screenshot(img, exif, (width, height)),
    )
    created: list[str] = []
    try:
        if not store.exists(photo.derivative_key):
            store.put(photo.derivative_key, _derivative_from(img, max_side), DERIVATIVE_CONTENT_TYPE)
            created.append(photo.derivative_key)
        if not store.exists(photo.original_key):
            store.put(photo.original_key, data, content_type)
            created.append(photo.original_key)
    except BaseException:
        discard_objects(store, created)
        raise
    finally:
        img.close()
    return photo, created


def discard_objects(store: ObjectStore, keys: Iterable[str]) -> None:
    """Best-effort delete of `keys` (e.g. those `store_photo` created for a transaction that then
    failed). Missing keys are fine; other store errors are logged, not raised, so cleanup never
    hides the error that made it necessary.

    Content addressing means two concurrent uploads of the same bytes may both believe they
    created a key; discard only when no committed row references the photo's sha256.
    """
    for key in keys:
        try:
            store.delete(key)
        except ObjectNotFound:
            pass
        except ObjectStoreError as exc:
            log.warning("could not discard object %s: %s", key, exc)
