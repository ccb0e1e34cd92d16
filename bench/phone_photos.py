"""Phone-camera-like test photos for the benchmarks: 12 megapixels, 3-5 MB, with camera EXIF and GPS.

A scene of shaded boxes on a floor, with per-pixel sensor noise (which is what makes real phone JPEGs
3-5 MB: noise does not compress), saved as JPEG quality 92 with the EXIF a phone writes (make, model,
capture time with its offset, orientation, GPS), an XMP packet and a comment. `heic_photo` is the
same scene as HEIC (pillow-heif), as an iPhone saves it.
"""

from __future__ import annotations

import functools
import io
from datetime import UTC, datetime

import numpy as np
from PIL import ExifTags, Image, ImageDraw

SIZE = (4032, 3024)  # 12.2 MP, the common phone sensor
XMP = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    b'<rdf:Description xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/" photoshop:City="Beijing"/>'
    b"</rdf:RDF></x:xmpmeta>"
)


def phone_exif(taken: datetime | None = None) -> Image.Exif:
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "Apple"
    exif[ExifTags.Base.Model] = "iPhone 15"
    exif[ExifTags.Base.Orientation] = 1
    ifd = exif.get_ifd(ExifTags.IFD.Exif)
    ifd[ExifTags.Base.DateTimeOriginal] = (taken or datetime.now(UTC)).strftime("%Y:%m:%d %H:%M:%S")
    ifd[ExifTags.Base.OffsetTimeOriginal] = "+00:00"
    exif[ExifTags.Base.GPSInfo] = {1: "N", 2: (39.0, 54.0, 27.0), 3: "E", 4: (116.0, 23.0, 50.0)}
    return exif


@functools.lru_cache(maxsize=2)
def _sensor_noise(size: tuple[int, int], noise: float) -> np.ndarray:
    """One field of sensor noise per size, shared by every scene (drawing 36 million normal values is
    most of a photo's cost; the scenes differ in what is drawn, which is what the hashes see)."""
    w, h = size
    return np.random.default_rng(12345).normal(0, noise, size=(h, w, 3)).astype(np.float32)


def scene(seed: int, size: tuple[int, int] = SIZE, noise: float = 7.0) -> Image.Image:
    rng = np.random.default_rng(seed)
    w, h = size
    small = Image.new("RGB", (w // 4, h // 4), tuple(int(c) for c in rng.integers(90, 170, size=3)))
    draw = ImageDraw.Draw(small)
    for _ in range(9):
        x0, y0 = int(rng.integers(0, w // 5)), int(rng.integers(0, h // 5))
        x1, y1 = x0 + int(rng.integers(w // 20, w // 8)), y0 + int(rng.integers(h // 20, h // 8))
        draw.rectangle([x0, y0, x1, y1], fill=tuple(int(c) for c in rng.integers(60, 220, size=3)))
    big = np.asarray(small.resize(size, Image.Resampling.BILINEAR), dtype=np.float32)
    shade = np.linspace(0.8, 1.15, h, dtype=np.float32)[:, None, None]
    pixels = big * shade + _sensor_noise(size, noise)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def phone_jpeg(seed: int, size: tuple[int, int] = SIZE) -> bytes:
    buf = io.BytesIO()
    scene(seed, size).save(
        buf, format="JPEG", quality=92, exif=phone_exif().tobytes(), xmp=XMP, comment=b"shot on a phone"
    )
    return buf.getvalue()


def with_comment(jpeg: bytes, text: bytes) -> bytes:
    """The JPEG with its first comment (COM segment) replaced by `text`, or one added before the
    image data when it has none: other bytes, the same pixels and metadata, without re-encoding. The
    benchmark sends every upload as new bytes this way, as customers do (each photo then stored,
    never found already in the content-addressed store). Raises ValueError for bytes that are not a
    JPEG (the service's own segment walk, `services.photos.jpeg_segments`)."""
    from services.photos import jpeg_segments

    if len(text) > 65533:
        raise ValueError("a comment too long for one segment")
    segment = b"\xff\xfe" + (len(text) + 2).to_bytes(2, "big") + text
    *header, (_, scan, _) = jpeg_segments(jpeg)
    for marker, start, end in header:
        if marker == 0xFE:
            return jpeg[:start] + segment + jpeg[end:]
    return jpeg[:scan] + segment + jpeg[scan:]


def heic_photo(seed: int, size: tuple[int, int] = SIZE, tile_size: int | None = 512) -> bytes:
    """The scene as an iPhone's HEIC: a grid of 512x512 HEVC tiles (which libheif decodes on several
    threads), or one HEVC image when `tile_size` is None."""
    from pillow_heif import register_heif_opener

    register_heif_opener()
    buf = io.BytesIO()
    grid = {} if tile_size is None else {"tile_size": tile_size}
    scene(seed, size, noise=2.0).save(buf, format="HEIF", quality=70, exif=phone_exif().tobytes(), **grid)
    return buf.getvalue()
