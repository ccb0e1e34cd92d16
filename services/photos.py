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
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from PIL import ExifTags, Image

from claims.errors import NotFound
from models.fingerprints import (
    CaptureTime,
    Fingerprint,
    camera,
    capture_time,
    fingerprint,
    looks_like_screenshot,
)
from models.preprocessing import (
    ACCEPTED,
    MAX_FULL_DECODE_PIXELS,
    ImageError,
    load_image,
    normalise,
    resized_pixels,
)
from storage.objects import ObjectNotFound, ObjectStore, ObjectStoreError
from storage.tables import Photo

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


def heatmap_key(model_version: str, sha256: str) -> str:
    """Content-addressed by photo and model: rendering it again writes the same object, harmlessly."""
    return f"photos/heatmap/{model_version}/{sha256}.png"


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
    try:
        photo = _describe(data, img, min_side, None)
    except BaseException:
        img.close()
        raise
    created: list[str] = []
    try:
        if not store.exists(photo.derivative_key):
            store.put(photo.derivative_key, _derivative_from(img, max_side), DERIVATIVE_CONTENT_TYPE)
            created.append(photo.derivative_key)
        if not store.exists(photo.original_key):
            store.put(photo.original_key, data, photo.content_type)
            created.append(photo.original_key)
    except BaseException:
        discard_objects(store, created)
        raise
    finally:
        img.close()
    return photo, created


# --------------------------------------------------------------------------------------------------
# The decision-first upload: one decode at the model's size, the original stored, nothing else


@dataclass(frozen=True)
class PreparedPhoto:
    """A checked upload: its description (for the photo row) and the model's input, made from the
    one decode the upload gets (draft mode at the model's size)."""

    photo: StoredPhoto
    pixels: np.ndarray  # uint8 (size, size, 3): the model's input before normalising
    data: bytes

    @property
    def model_input(self) -> np.ndarray:
        return normalise(self.pixels)


def prepare_photo(
    data: bytes,
    *,
    model_size: int,
    min_side: int = 1,
    sha256: str | None = None,
    max_full_decode_pixels: int = MAX_FULL_DECODE_PIXELS,
) -> PreparedPhoto:
    """Validate `data` by decoding it once, in draft mode at about `model_size` (a 12 MP JPEG
    decodes at 1/8 scale: 504x378), and derive from that one decode everything the decision needs:
    the model's input, the perceptual hashes, the screenshot check. Stores nothing. Raises
    `ImageError` for anything `load_image` refuses or a photo below `min_side`."""
    img = load_image(data, min_side=model_size, max_full_decode_pixels=max_full_decode_pixels)
    try:
        return PreparedPhoto(_describe(data, img, min_side, sha256), resized_pixels(img, model_size), data)
    finally:
        img.close()


def _describe(data: bytes, img: Image.Image, min_side: int, sha256: str | None) -> StoredPhoto:
    """The photo's description from its bytes (header, EXIF) and one decode of it (hashes, screenshot
    check). `sha256`: the caller's, when it hashed the bytes already."""
    content_type, width, height, exif = _header(data)
    _check_min_side(width, height, min_side)
    sha256 = sha256 or hashlib.sha256(data).hexdigest()
    try:
        prints = fingerprint(img)
    except Exception:  # a hash is evidence for a check, never a reason to refuse a decodable photo
        log.warning("could not hash photo %s", sha256, exc_info=True)
        prints = None
    return StoredPhoto(
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


def input_key(size: int, sha256: str) -> str:
    return f"photos/input/{size}/{sha256}.npy"


def store_model_input(store: ObjectStore, prepared: PreparedPhoto) -> list[str]:
    """Put the model's input (150 KB at 224 px, lossless) where a worker in another process finds
    it, so the photo is decoded once, by the upload, and never passes through the broker."""
    key = input_key(prepared.pixels.shape[0], prepared.photo.sha256)
    if store.exists(key):
        return []
    buf = io.BytesIO()
    np.save(buf, prepared.pixels, allow_pickle=False)
    store.put(key, buf.getvalue(), "application/octet-stream")
    return [key]


def load_model_input(store: ObjectStore, size: int, sha256: str) -> np.ndarray | None:
    """The model's input a `store_model_input` kept, normalised; None when there is none (a photo
    from before, or another size): the caller decodes the original."""
    try:
        data = store.get(input_key(size, sha256))
    except ObjectNotFound:
        return None
    try:
        pixels = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError):
        log.warning("model input %s is unreadable; decoding the original", input_key(size, sha256))
        return None
    if pixels.dtype != np.uint8 or pixels.shape != (size, size, 3):
        return None
    return normalise(pixels)


def store_original(store: ObjectStore, prepared: PreparedPhoto) -> list[str]:
    """Put the original (the evidence, byte for byte) unless it is there; the keys this call created."""
    photo = prepared.photo
    if store.exists(photo.original_key):
        return []
    store.put(photo.original_key, prepared.data, photo.content_type)
    return [photo.original_key]


class InputCache:
    """The model inputs of photos just uploaded, by SHA-256 and input size, so the in-process
    assessment grades the very decode the upload validated instead of reading and decoding the
    original again. Small and bounded (a miss only costs a decode: a Celery worker, or a process
    restarted since the upload, always misses)."""

    def __init__(self, capacity: int = 64) -> None:
        self.capacity = capacity
        self._items: OrderedDict[tuple[str, int], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, sha256: str, size: int, array: np.ndarray) -> None:
        with self._lock:
            self._items[(sha256, size)] = array
            self._items.move_to_end((sha256, size))
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)

    def get(self, sha256: str, size: int) -> np.ndarray | None:
        with self._lock:
            return self._items.get((sha256, size))


# --------------------------------------------------------------------------------------------------
# The served copy, made on first request (or after the decision) and kept

# JPEG markers: APP0 (JFIF) and APP14 (Adobe: how to read the colour channels) are kept, APP2 only
# when it is an ICC profile (colour, nothing personal); every other APPn (EXIF with GPS and the
# camera's thumbnail, XMP, IPTC, maker notes, MPF) and every comment are dropped.
_SOI, _EOI, _SOS = 0xD8, 0xD9, 0xDA
_KEEP_APP = {0xE0, 0xEE}
_ICC = b"ICC_PROFILE\x00"


def _orientation_exif(orientation: int) -> bytes:
    """A minimal APP1 EXIF segment holding only the orientation (so viewers still show the photo
    upright): no camera, no time, no GPS."""
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    body = exif.tobytes()
    if not body.startswith(b"Exif\x00\x00"):
        body = b"Exif\x00\x00" + body
    return b"\xff\xe1" + (len(body) + 2).to_bytes(2, "big") + body


def jpeg_segments(data: bytes) -> list[tuple[int, int, int]]:
    """The segments of a JPEG up to its image data, as (marker, start, end), `data[start:end]` being
    the whole segment (FF, marker, length, body); the last is the start of scan (SOS), which the
    entropy-coded image data follows. Fill bytes are skipped. Raises ImageError for bytes that are not
    a well-formed JPEG."""
    if data[:2] != b"\xff\xd8":
        raise ImageError("not a JPEG")
    segments: list[tuple[int, int, int]] = []
    i, n = 2, len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            raise ImageError("JPEG segments are corrupt")
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        end = i + 2 + int.from_bytes(data[i + 2 : i + 4], "big")
        segments.append((marker, i, end))
        if marker == _SOS:
            return segments
        i = end
    raise ImageError("JPEG has no image data")


def strip_jpeg_metadata(data: bytes, orientation: int | None = None) -> bytes:
    """The same JPEG without its metadata, pixels untouched (no re-encoding): the segments before
    the image data are filtered (see `_KEEP_APP`), anything after the first image's end (MPO's
    second images, trailing data) is cut, and, for a photo that is not upright, a minimal EXIF with
    only the orientation is written. Raises ImageError for bytes that are not a well-formed JPEG."""
    *header, (_, scan, scan_end) = jpeg_segments(data)
    out = bytearray(b"\xff\xd8")
    if orientation not in (None, 1):
        out += _orientation_exif(int(orientation))
    for marker, start, end in header:
        keep = marker in _KEEP_APP or (marker == 0xE2 and data[start + 4 : start + 4 + len(_ICC)] == _ICC)
        if not (0xE0 <= marker <= 0xEF or marker == 0xFE) or keep:
            out += data[start:end]
    out += data[scan : _end_of_image(data, scan_end)]
    return bytes(out)


def _end_of_image(data: bytes, start: int) -> int:
    """Index just past the EOI marker that ends the entropy-coded data starting at `start` (inside
    it, 0xFF is always followed by 0x00 stuffing or an RST marker, so the first FF D9 is the end)."""
    end = data.find(b"\xff\xd9", start)
    return len(data) if end < 0 else end + 2


def make_served_copy(data: bytes, content_type: str, max_side: int = 2048) -> bytes:
    """The served copy of an original: for a JPEG the same pixels without metadata (milliseconds);
    for PNG, WebP and HEIC (which browsers may not show) an upright JPEG re-encoded without any
    metadata, at most `max_side` a side."""
    if content_type == "image/jpeg":
        with Image.open(io.BytesIO(data)) as img:
            try:
                orientation = img.getexif().get(ExifTags.Base.Orientation)
            except Exception:
                orientation = None
        return strip_jpeg_metadata(data, orientation)
    return make_derivative(data, max_side)


def served_copy(
    store: ObjectStore, original_key: str, derivative_key: str, content_type: str, max_side: int
) -> bytes:
    """The photo's served copy: from the store, or made from the original now and kept (on demand,
    so an upload never waits for it and a process killed before making it loses nothing)."""
    try:
        return store.get(derivative_key)
    except ObjectNotFound:
        pass
    copy = make_served_copy(store.get(original_key), content_type, max_side)
    store.put(derivative_key, copy, DERIVATIVE_CONTENT_TYPE)
    return copy


def served_photo_bytes(store: ObjectStore, photo: Photo, max_side: int) -> bytes:
    """A stored photo's served copy (never the original: it may carry GPS), for the customer's API
    and the console alike. NotFound, logged, when its original is missing or cannot be decoded."""
    try:
        return served_copy(store, photo.original_key, photo.derivative_key, photo.content_type, max_side)
    except ObjectNotFound:
        log.error("claim %s photo %s: original %s is missing", photo.claim_id, photo.id, photo.original_key)
    except ImageError:
        log.exception("claim %s photo %s: cannot make its served copy", photo.claim_id, photo.id)
    raise NotFound("photo not available")


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
