"""Content-addressed photo storage: originals byte-for-byte, derivatives upright and metadata-free."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms

from models.preprocessing import ImageError, preprocess
from services.photos import (
    StoredPhoto,
    discard_objects,
    inspect_photo,
    load_model_input,
    make_derivative,
    make_served_copy,
    prepare_photo,
    served_copy,
    store_model_input,
    store_original,
    store_photo,
)
from storage.objects import LocalObjectStore, ObjectStore, ObjectStoreUnavailable

RED, BLUE = (220, 20, 20), (20, 20, 220)
GPS_IFD = 0x8825
ORIENTATION = 0x0112


def _encode(img: Image.Image, fmt: str, **params) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **params)
    return buf.getvalue()


def _sideways_photo_with_gps() -> bytes:
    """A 120x80 JPEG stored sideways (EXIF orientation 6: rotate 90 degrees clockwise to view),
    left half red and right half blue, with GPS coordinates in its EXIF."""
    img = Image.new("RGB", (120, 80), BLUE)
    img.paste(RED, (0, 0, 60, 80))
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    exif[0x010F] = "PhoneMaker"  # camera make
    gps = exif.get_ifd(GPS_IFD)
    gps[1], gps[2] = "N", (52.0, 31.0, 12.0)
    gps[3], gps[4] = "E", (13.0, 24.0, 18.0)
    return _encode(img, "JPEG", quality=95, exif=exif, comment=b"shot at home")


def _noise(width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8))


def _jpeg_segments(data: bytes) -> list[int]:
    """Markers of the JPEG segments before the image data (SOS)."""
    assert data[:2] == b"\xff\xd8"
    markers, pos = [], 2
    while pos < len(data):
        assert data[pos] == 0xFF
        marker = data[pos + 1]
        markers.append(marker)
        if marker == 0xDA:  # start of scan: entropy-coded data follows
            break
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        pos += 2 + length
    return markers


def _png_claiming_size(width: int, height: int) -> bytes:
    """A 1x1 PNG whose IHDR claims width x height (CRC fixed): a bomb without a big buffer."""
    data = bytearray(_encode(Image.new("RGB", (1, 1), (1, 2, 3)), "PNG"))
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)
    return bytes(data)


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    if request.param == "local":
        return LocalObjectStore(tmp_path / "objects")
    return request.getfixturevalue("s3_store")


# --------------------------------------------------------------------------------------------------
# store_photo


def test_store_photo_keeps_original_and_writes_clean_upright_derivative(store: ObjectStore) -> None:
    data = _sideways_photo_with_gps()
    sha = hashlib.sha256(data).hexdigest()

    photo, created = store_photo(store, data)

    assert dataclasses.replace(photo, fingerprint=None) == StoredPhoto(
        sha256=sha,
        original_key=f"photos/original/{sha}",
        derivative_key=f"photos/derived/{sha}.jpg",
        content_type="image/jpeg",
        byte_size=len(data),
        width=80,  # upright: the EXIF orientation swaps the stored 120x80
        height=120,
        camera=photo.camera,
    )
    assert photo.fingerprint is not None and len(photo.fingerprint.hashes) == 10
    assert sorted(created) == sorted([photo.original_key, photo.derivative_key])

    # The original: byte-for-byte, GPS and all (it is evidence, never served as is).
    original = store.get(photo.original_key)
    assert original == data
    assert dict(Image.open(io.BytesIO(original)).getexif().get_ifd(GPS_IFD))

    # The derivative: no EXIF at all (so no GPS, no orientation tag), no comment, no ICC.
    derived = store.get(photo.derivative_key)
    img = Image.open(io.BytesIO(derived))
    assert img.format == "JPEG"
    assert len(img.getexif()) == 0
    assert not {"exif", "comment", "icc_profile", "xmp"} & set(img.info)
    assert b"Exif" not in derived and b"shot at home" not in derived
    # Only JFIF's APP0 among the application segments; no comment segment.
    markers = _jpeg_segments(derived)
    assert [m for m in markers if 0xE0 <= m <= 0xEF or m == 0xFE] == [0xE0]

    # Orientation applied: rotated 90 degrees clockwise, the red left half is now on top.
    assert img.size == (80, 120)
    rgb = np.asarray(img.convert("RGB"), dtype=np.int16)
    assert np.abs(rgb[20, 40] - RED).max() < 40
    assert np.abs(rgb[100, 40] - BLUE).max() < 40


def test_storing_the_same_photo_twice_creates_nothing_new(store: ObjectStore) -> None:
    data = _sideways_photo_with_gps()
    first, created = store_photo(store, data)
    assert len(created) == 2
    again, created_again = store_photo(store, data)
    assert again == first
    assert created_again == []
    assert store.get(first.original_key) == data


def test_discard_objects_removes_created_keys_and_ignores_missing(store: ObjectStore) -> None:
    photo, created = store_photo(store, _encode(_noise(100, 90), "PNG"))
    discard_objects(store, created + ["photos/original/not-there"])
    assert not store.exists(photo.original_key)
    assert not store.exists(photo.derivative_key)
    discard_objects(store, created)  # twice: still fine


def test_bad_photo_writes_nothing(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "objects")
    with pytest.raises(ImageError):
        store_photo(store, b"not an image at all")
    with pytest.raises(ImageError):
        store_photo(store, _encode(_noise(100, 30), "PNG"), min_side=64)
    assert not any(p.is_file() for p in (tmp_path / "objects").rglob("*"))


class _FailingOriginals(LocalObjectStore):
    """A real local store whose disk 'fails' for originals."""

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        if key.startswith("photos/original/"):
            raise ObjectStoreUnavailable("disk full")
        super().put(key, data, content_type)


def test_failed_store_leaves_nothing_behind(tmp_path: Path) -> None:
    store = _FailingOriginals(tmp_path / "objects")
    data = _encode(_noise(100, 100), "WEBP", quality=80)
    with pytest.raises(ObjectStoreUnavailable):
        store_photo(store, data)
    assert not any(p.is_file() for p in (tmp_path / "objects").rglob("*"))


def test_store_photo_formats(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    rgba = Image.new("RGBA", (90, 70), (255, 0, 0, 0))
    cases = {
        "image/png": _encode(rgba, "PNG"),
        "image/webp": _encode(_noise(90, 70), "WEBP", quality=80),
        "image/jpeg": _encode(_noise(90, 70), "JPEG", quality=80),
    }
    for content_type, data in cases.items():
        photo, _ = store_photo(store, data)
        assert (photo.content_type, photo.width, photo.height) == (content_type, 90, 70)
        derived = Image.open(io.BytesIO(store.get(photo.derivative_key)))
        assert (derived.format, derived.mode, derived.size) == ("JPEG", "RGB", (90, 70))
    # Transparency is flattened onto white.
    png_photo, _ = store_photo(store, cases["image/png"])
    white = np.asarray(Image.open(io.BytesIO(store.get(png_photo.derivative_key))))
    assert white.min() > 240


def test_an_iphone_heic_photo_is_accepted_upright_and_served_without_metadata(tmp_path: Path) -> None:
    """HEIC, the iPhone camera's default, made here with pillow-heif: a sideways photo (EXIF
    orientation 6) with camera EXIF, capture time and GPS."""
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees to view
    exif[0x010F], exif[0x0110] = "Apple", "iPhone 15 Pro"
    exif.get_ifd(0x8769)[0x9003] = "2026:12:04 18:30:00"  # DateTimeOriginal
    exif.get_ifd(0x8769)[0x9011] = "+08:00"  # OffsetTimeOriginal
    exif[GPS_IFD] = {1: "N", 2: (39.0, 54.0, 27.0), 3: "E", 4: (116.0, 23.0, 50.0)}
    left_red = np.zeros((80, 120, 3), dtype=np.uint8)
    left_red[:, :60] = (220, 30, 30)
    left_red[:, 60:] = (30, 30, 220)
    buf = io.BytesIO()
    Image.fromarray(left_red).save(buf, format="HEIF", quality=90, exif=exif.tobytes())
    data = buf.getvalue()

    store = LocalObjectStore(tmp_path)
    photo, _ = store_photo(store, data)
    assert photo.content_type == "image/heic"
    assert (photo.width, photo.height) == (80, 120)  # upright: the orientation swaps 120x80
    assert photo.camera == "Apple iPhone 15 Pro"
    assert photo.taken is not None and photo.taken.zone_known
    assert photo.taken.at.isoformat() == "2026-12-04T10:30:00+00:00"
    assert store.get(photo.original_key) == data  # the evidence, byte for byte
    derived = Image.open(io.BytesIO(store.get(photo.derivative_key)))
    assert (derived.format, derived.size) == ("JPEG", (80, 120))
    assert not derived.getexif() and "icc_profile" not in derived.info  # no EXIF, no GPS
    pixels = np.asarray(derived, dtype=np.int16)
    assert pixels[5, 40, 0] > 150 and pixels[-5, 40, 2] > 150  # the red half is on top once upright


# --------------------------------------------------------------------------------------------------
# make_derivative


def test_derivative_is_downscaled_to_max_side() -> None:
    derived = Image.open(io.BytesIO(make_derivative(_encode(_noise(1200, 400), "PNG"), 300)))
    assert derived.size == (300, 100)
    # Never upscaled.
    small = Image.open(io.BytesIO(make_derivative(_encode(_noise(120, 40), "PNG"), 300)))
    assert small.size == (120, 40)


def test_derivative_quality_is_88() -> None:
    img = _noise(200, 150)
    ours = make_derivative(_encode(img, "PNG"), 2048)
    assert ours == _encode(img, "JPEG", quality=88, optimize=True)


def test_derivative_drops_icc_profile() -> None:
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    data = _encode(_noise(100, 100), "JPEG", quality=90, icc_profile=srgb)
    assert Image.open(io.BytesIO(data)).info.get("icc_profile")
    derived = make_derivative(data, 2048)
    assert "icc_profile" not in Image.open(io.BytesIO(derived)).info


# --------------------------------------------------------------------------------------------------
# inspect_photo


def test_inspect_photo_accepts_by_content() -> None:
    assert inspect_photo(_encode(_noise(100, 80), "JPEG"), min_side=64) == ("image/jpeg", 100, 80)
    assert inspect_photo(_encode(_noise(100, 80), "PNG"), min_side=64) == ("image/png", 100, 80)
    assert inspect_photo(_encode(_noise(100, 80), "WEBP"), min_side=64) == ("image/webp", 100, 80)
    assert inspect_photo(_sideways_photo_with_gps(), min_side=64) == ("image/jpeg", 80, 120)
    assert inspect_photo(_encode(_noise(64, 64), "PNG"), min_side=64) == ("image/png", 64, 64)


def _truncated_jpeg() -> bytes:
    data = _encode(_noise(200, 200), "JPEG", quality=90)
    return data[: len(data) // 2]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: b"this is not a photo, just text\n" * 10, "not a recognised image"),
        (lambda: b"", "not a recognised image"),
        (_truncated_jpeg, "truncated"),
        (lambda: _png_claiming_size(20_000, 20_000), "too large"),
        (lambda: _encode(_noise(100, 100), "GIF"), "unsupported image format 'GIF'"),
        (lambda: _encode(_noise(100, 100), "BMP"), "unsupported image format 'BMP'"),
        (lambda: _encode(_noise(200, 63), "PNG"), "too small: 200x63"),
        (lambda: _encode(_noise(10, 10), "JPEG"), "too small"),
    ],
    ids=["text", "empty", "truncated-jpeg", "bomb-png", "gif", "bmp", "small-png", "tiny-jpeg"],
)
def test_inspect_photo_rejects(make, message: str) -> None:
    with pytest.raises(ImageError, match=message):
        inspect_photo(make(), min_side=64)


# --------------------------------------------------------------------------------------------------
# The served copy without re-encoding


def _phone_jpeg_with_everything(orientation: int = 1) -> bytes:
    """A JPEG as phones write them: EXIF (camera, time, GPS, orientation, a thumbnail), XMP with a
    place name, a comment, an ICC profile, and a second image appended (as MPO files carry)."""
    exif = Image.Exif()
    exif[0x010F], exif[0x0110], exif[0x0112] = "Apple", "iPhone 15", orientation
    exif[GPS_IFD] = {1: "N", 2: (39.0, 54.0, 27.0), 3: "E", 4: (116.0, 23.0, 50.0)}
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF><rdf:Description City="Beijing"/></rdf:RDF></x:xmpmeta>'
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    pixels = np.random.default_rng(4).integers(0, 256, size=(60, 90, 3), dtype=np.uint8)
    main = _encode(Image.fromarray(pixels), "JPEG", quality=90, exif=exif.tobytes(), xmp=xmp,
                   comment=b"home address: 1 Example Road", icc_profile=icc)  # fmt: skip
    trailer = _encode(Image.fromarray(pixels[:20, :20]), "JPEG", exif=exif.tobytes())
    return main + trailer


@pytest.mark.parametrize("orientation", [1, 6])
def test_the_served_jpeg_keeps_the_pixels_and_drops_every_personal_field(orientation: int) -> None:
    data = _phone_jpeg_with_everything(orientation)
    served = make_served_copy(data, "image/jpeg")
    for secret in (b"Beijing", b"home address", b"iPhone", b"Apple"):
        assert secret in data and secret not in served
    img = Image.open(io.BytesIO(served))
    exif = img.getexif()
    assert GPS_IFD not in exif and not exif.get_ifd(GPS_IFD)
    assert dict(exif) == ({} if orientation == 1 else {0x0112: orientation})  # orientation only
    assert "xmp" not in img.info and "comment" not in img.info
    assert img.info.get("icc_profile")  # colour, nothing personal: kept
    original = Image.open(io.BytesIO(data))
    assert np.array_equal(np.asarray(img), np.asarray(original))  # not re-encoded: the same pixels
    assert len(served) < len(data)
    assert served.endswith(b"\xff\xd9") and served.count(b"\xff\xd8\xff") == 1  # one image, no trailer


def test_served_copies_are_made_on_first_request_and_kept(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    data = _phone_jpeg_with_everything()
    prepared = prepare_photo(data, model_size=224)
    assert store_original(store, prepared) == [prepared.photo.original_key]
    photo = prepared.photo
    assert not store.exists(photo.derivative_key)  # nothing but the evidence at upload
    first = served_copy(store, photo.original_key, photo.derivative_key, photo.content_type, 2048)
    assert store.get(photo.derivative_key) == first
    assert served_copy(store, photo.original_key, photo.derivative_key, photo.content_type, 2048) == first
    png = _encode(Image.new("RGB", (80, 60), (9, 9, 9)), "PNG")
    assert Image.open(io.BytesIO(make_served_copy(png, "image/png"))).format == "JPEG"


def test_prepare_photo_decodes_once_at_the_models_size() -> None:
    big = _encode(_noise(2000, 1500), "JPEG", quality=85)
    prepared = prepare_photo(big, model_size=224)
    assert prepared.model_input.shape == (3, 224, 224)
    assert (prepared.photo.width, prepared.photo.height) == (2000, 1500)
    assert prepared.photo.fingerprint is not None
    with pytest.raises(ImageError):
        prepare_photo(big[: len(big) // 2], model_size=224)  # truncated: refused


def test_the_model_input_handed_to_a_worker_is_the_uploads_decode(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    prepared = prepare_photo(_encode(_noise(900, 700), "JPEG", quality=85), model_size=224)
    assert load_model_input(store, 224, prepared.photo.sha256) is None  # nothing kept: decode
    assert store_model_input(store, prepared) == [f"photos/input/224/{prepared.photo.sha256}.npy"]
    kept = load_model_input(store, 224, prepared.photo.sha256)
    assert kept is not None and np.array_equal(kept, prepared.model_input)
    assert np.array_equal(kept, preprocess(prepared.data, 224))  # what the worker would compute
    assert load_model_input(store, 260, prepared.photo.sha256) is None  # another model size
