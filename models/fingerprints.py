"""What a photo says about itself, for the fraud checks: perceptual hashes, capture time, camera and
whether it is a screenshot.

Perceptual hashes (pHash, from the `imagehash` library) find the same photo sent again, even after
re-encoding, resizing or mirroring. A global pHash does not survive cropping (cutting 10% off changes
about 12 of its 64 bits, as much as some unrelated photos differ), so each photo is hashed whole AND as
nine crops (10% off one side, 10% off two sides at a corner, 5% off every side): a cropped copy of a
stored photo then matches one of the stored photo's crops almost exactly, and a stored cropped copy is
matched by one of the new photo's crops. A mirrored copy is caught by hashing the mirror image at look-up
time. `MATCH_DISTANCE` is the largest Hamming distance still called "the same photo"; see the README
(Fraud checks) for how it was measured.

Pure functions of the decoded image and its EXIF: no I/O, no database.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

import imagehash
import numpy as np
from PIL import ExifTags, Image, ImageOps

# Crops hashed beside the whole photo, as (left, top, right, bottom) fractions of its size. Index 0 of
# a photo's hashes is always the whole photo.
CROPS: tuple[tuple[float, float, float, float], ...] = (
    (0.0, 0.0, 1.0, 1.0),
    (0.1, 0.0, 1.0, 1.0),
    (0.0, 0.0, 0.9, 1.0),
    (0.0, 0.1, 1.0, 1.0),
    (0.0, 0.0, 1.0, 0.9),
    (0.1, 0.1, 1.0, 1.0),
    (0.0, 0.0, 0.9, 0.9),
    (0.1, 0.0, 1.0, 0.9),
    (0.0, 0.1, 0.9, 1.0),
    (0.05, 0.05, 0.95, 0.95),
)
HASH_BITS = 64
# Same photo: re-encoded, halved or mirrored copies of the shared set's photos stay within 4 bits, grid
# crops within 2; photos of different scenes are further apart than 6 bits in all but a few cases (most of
# those are the same stock image with another watermark). Measured in tests/models/test_fingerprints.py.
MATCH_DISTANCE = 6
# Hashes are computed on a copy this size: pHash looks at a 32x32 thumbnail, so more pixels add nothing
# but time (20 hashes: 3 ms a photo at 128 px, 28 ms at 512; tests/models/test_fingerprints.py holds).
_WORK_SIDE = 128


def _signed(value: int) -> int:
    """A 64-bit hash as a signed integer, so it fits a BIGINT column."""
    return value - (1 << HASH_BITS) if value >= 1 << (HASH_BITS - 1) else value


def unsigned(value: int) -> int:
    return value & ((1 << HASH_BITS) - 1)


def hamming(a: int, b: int) -> int:
    """Bits that differ between two hashes (signed or unsigned)."""
    return (unsigned(a) ^ unsigned(b)).bit_count()


def phash(image: Image.Image) -> int:
    """imagehash's 64-bit DCT pHash as a signed integer (stored in BIGINT columns)."""
    return _signed(int(str(imagehash.phash(image.convert("RGB"))), 16))


def _crop(image: Image.Image, box: tuple[float, float, float, float]) -> Image.Image:
    w, h = image.size
    left, top, right, bottom = box
    return image.crop((round(left * w), round(top * h), round(right * w), round(bottom * h)))


def _work_copy(image: Image.Image) -> Image.Image:
    work = image.convert("RGB")  # always a new image: the caller's is never changed
    if max(work.size) > _WORK_SIDE:
        work.thumbnail((_WORK_SIDE, _WORK_SIDE), Image.Resampling.BILINEAR)
    return work


def crop_hashes(image: Image.Image) -> tuple[int, ...]:
    """pHash of the whole photo, then of each crop in `CROPS` order."""
    work = _work_copy(image)
    return tuple(phash(_crop(work, box)) for box in CROPS)


@dataclass(frozen=True)
class Fingerprint:
    """A photo's hashes (stored) and its mirror image's (used only to look up)."""

    hashes: tuple[int, ...]
    mirrored: tuple[int, ...]


def fingerprint(image: Image.Image) -> Fingerprint:
    work = _work_copy(image)  # once: crop_hashes finds it small and RGB already
    return Fingerprint(crop_hashes(work), crop_hashes(ImageOps.mirror(work)))


def best_distance(query: Fingerprint, stored: Sequence[int]) -> int:
    """How close a stored photo's hashes come to a new photo: the new whole photo (or its mirror)
    against any stored hash, or any of the new photo's hashes against the stored whole photo."""
    best = HASH_BITS
    for side in (query.hashes, query.mirrored):
        best = min(best, min(hamming(side[0], h) for h in stored))
        best = min(best, min(hamming(h, stored[0]) for h in side))
    return best


# --------------------------------------------------------------------------------------------------
# EXIF: capture time and camera

_EXIF_TIME = re.compile(r"(\d{4}):(\d{2}):(\d{2})[ T](\d{2}):(\d{2}):(\d{2})")
_OFFSET = re.compile(r"([+-])(\d{2}):(\d{2})")


@dataclass(frozen=True)
class CaptureTime:
    """When the photo was taken. `zone_known` is False when EXIF gave no offset: the time is then the
    phone's local time read as UTC, up to 14 hours off either way."""

    at: datetime
    zone_known: bool


def _text(value: object) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if not isinstance(value, str):
        return None
    value = value.strip("\x00 ").strip()
    return value or None


def capture_time(exif: Image.Exif) -> CaptureTime | None:
    """DateTimeOriginal (with OffsetTimeOriginal when present), or None when missing or unreadable.
    Missing EXIF is normal (many apps strip it): never a reason for anything by itself."""
    try:
        ifd = exif.get_ifd(ExifTags.IFD.Exif)
    except Exception:
        return None
    raw = _text(ifd.get(ExifTags.Base.DateTimeOriginal))
    match = _EXIF_TIME.fullmatch(raw or "")
    if match is None:
        return None
    try:
        year, month, day, hour, minute, second = (int(g) for g in match.groups())
        local = datetime(year, month, day, hour, minute, second)
    except ValueError:
        return None
    offset = _OFFSET.fullmatch(_text(ifd.get(ExifTags.Base.OffsetTimeOriginal)) or "")
    if offset is None:
        return CaptureTime(local.replace(tzinfo=UTC), zone_known=False)
    sign = 1 if offset.group(1) == "+" else -1
    delta = timedelta(hours=int(offset.group(2)), minutes=int(offset.group(3)))
    if delta > timedelta(hours=14):
        return CaptureTime(local.replace(tzinfo=UTC), zone_known=False)
    return CaptureTime(local.replace(tzinfo=timezone(sign * delta)).astimezone(UTC), zone_known=True)


def camera(exif: Image.Exif) -> str | None:
    """ "Make Model" of the camera that took the photo, or None (no camera EXIF)."""
    make = _text(exif.get(ExifTags.Base.Make))
    model = _text(exif.get(ExifTags.Base.Model))
    name = " ".join(part for part in (make, model) if part)
    return name[:120] or None


# --------------------------------------------------------------------------------------------------
# Screenshots

# Screen resolutions of common phones, tablets and desktops (portrait; landscape is checked too).
SCREEN_SIZES = frozenset(
    {
        (640, 1136),
        (750, 1334),
        (828, 1792),
        (1125, 2436),
        (1170, 2532),
        (1179, 2556),
        (1206, 2622),
        (1242, 2208),
        (1242, 2688),
        (1284, 2778),
        (1290, 2796),
        (1320, 2868),
        (720, 1280),
        (720, 1600),
        (1080, 1920),
        (1080, 2220),
        (1080, 2280),
        (1080, 2340),
        (1080, 2400),
        (1440, 2560),
        (1440, 3040),
        (1440, 3088),
        (1440, 3200),
        (1536, 2048),
        (1620, 2160),
        (1668, 2388),
        (2048, 2732),
        (768, 1366),
        (1600, 2560),
        (1800, 2880),
        (1964, 3024),
        (2160, 3840),
    }
)
# A phone-shaped image (long side / short side at least this) with a flat band at the top or bottom
# (a status or navigation bar) is a screenshot too, even at a size not in the list.
_PHONE_ASPECT = 1.7
_BAR_FRACTION = 0.04  # of the height
_BAR_FLAT_SHARE = 0.85  # of the band's pixels within a few levels of its most common colour


def _flat_bar(gray: np.ndarray) -> bool:
    rows = max(2, int(gray.shape[0] * _BAR_FRACTION))
    for band in (gray[:rows], gray[-rows:]):
        mode = np.bincount(band.ravel(), minlength=256).argmax()
        if np.mean(np.abs(band.astype(np.int16) - int(mode)) <= 3) >= _BAR_FLAT_SHARE:
            return True
    return False


def looks_like_screenshot(image: Image.Image, exif: Image.Exif, size: tuple[int, int]) -> bool:
    """No camera EXIF, and either a screen's exact resolution or a phone-shaped image with a flat
    status or navigation bar. A camera photo (with Make/Model) is never a screenshot. `size` is the
    original's upright size (`image` may be a reduced decode)."""
    if camera(exif) is not None:
        return False
    width, height = size
    short, long = sorted((width, height))
    if (short, long) in SCREEN_SIZES:
        return True
    if long / short < _PHONE_ASPECT:
        return False
    small = image.convert("L")
    if max(small.size) > _WORK_SIDE:
        small.thumbnail((_WORK_SIDE, _WORK_SIDE))
    return _flat_bar(np.asarray(small))
