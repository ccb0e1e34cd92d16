"""Decoding and preprocessing: what the network sees must not depend on how the photo was stored."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from models.preprocessing import INPUT_SIZE, ImageError, load_image, preprocess, to_input


def _jpeg(width: int, height: int) -> bytes:
    # A smooth gradient: photo-like, and cheap to encode at any size.
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :]
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    rgb = np.stack([x + 0 * y, y + 0 * x, (x + y) / 2], axis=-1).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def test_output_shape_dtype_and_range(bad_files):
    for path in bad_files.good.values():
        arr = preprocess(path)
        assert arr.shape == (3, INPUT_SIZE, INPUT_SIZE), path.name
        assert arr.dtype == np.float32
        assert arr.flags.c_contiguous
        assert arr.min() >= -1.0 and arr.max() <= 1.0, path.name


def test_extreme_pixels_map_to_minus_one_and_one():
    assert np.all(to_input(Image.new("RGB", (10, 10), (0, 0, 0))) == -1.0)
    assert np.all(to_input(Image.new("RGB", (10, 10), (255, 255, 255))) == 1.0)


def test_exif_orientation_is_applied(bad_files):
    img = load_image(bad_files.good["exif_rotated.jpg"])
    assert img.size == (20, 40)  # stored 40x20 with orientation 6 -> upright 20 wide, 40 tall


def test_draft_mode_engages_for_big_jpeg():
    img = load_image(_jpeg(3000, 2000))
    width, height = img.size
    assert width < 3000 and height < 2000, "big JPEG was fully decoded (draft mode not used)"
    assert min(width, height) >= INPUT_SIZE
    assert img.mode == "RGB"


def test_small_jpeg_is_not_shrunk_below_input_size():
    assert load_image(_jpeg(300, 250)).size == (300, 250)


@pytest.mark.parametrize("name", ["empty.jpg", "truncated.jpg", "text.jpg", "huge.png"])
def test_bad_files_raise_image_error(bad_files, name):
    path = bad_files.bad[name]
    with pytest.raises(ImageError):
        preprocess(path)
    with pytest.raises(ImageError):  # and the same from bytes
        preprocess(path.read_bytes())


def test_huge_png_refused_as_too_large(bad_files):
    path = bad_files.bad["huge.png"]
    assert path.stat().st_size < 1000  # the header lies: no 400-megapixel buffer was ever made
    with pytest.raises(ImageError, match="too large"):
        load_image(path)


def test_alpha_is_flattened_on_white(bad_files):
    img = load_image(bad_files.good["alpha.png"])
    assert img.mode == "RGB"
    arr = np.asarray(img)
    assert np.all(arr[:, :16] == 255)  # transparent half -> white
    assert np.all(arr[:, 16:] == (255, 0, 0))  # opaque half -> red


def test_16_bit_grayscale_is_scaled_not_clipped(bad_files):
    arr = np.asarray(load_image(bad_files.good["gray16.png"]))
    assert arr.shape == (30, 50, 3)
    assert arr.min() == 0 and arr.max() == 255
    assert len(np.unique(arr)) > 100  # a gradient, not a saturated image


def test_format_decided_by_content_not_name(bad_files):
    path = bad_files.good["png_named.jpg"]
    assert path.suffix == ".jpg"
    assert preprocess(path).shape == (3, INPUT_SIZE, INPUT_SIZE)


def test_webp_is_accepted(bad_files):
    assert load_image(bad_files.good["photo.webp"]).size == (96, 64)


def test_unsupported_format_refused(tmp_path):
    path = tmp_path / "photo.jpg"
    Image.new("RGB", (32, 32)).save(path, format="BMP")
    with pytest.raises(ImageError, match="unsupported"):
        preprocess(path)


def test_path_bytes_and_file_agree(bad_files):
    path = bad_files.good["exif_rotated.jpg"]
    from_path = preprocess(path)
    with path.open("rb") as fh:
        from_file = preprocess(fh)
    np.testing.assert_array_equal(from_path, preprocess(path.read_bytes()))
    np.testing.assert_array_equal(from_path, from_file)


def test_a_png_over_the_full_decode_cap_is_refused_before_decoding() -> None:
    """The 336 KB PNG of zeros, 9400x9400 (88 MP, under Pillow's own limit), that cost gigabytes:
    refused from its header; a JPEG of the same size is decoded in draft mode."""
    import io
    import time

    from PIL import Image

    from models.preprocessing import MAX_FULL_DECODE_PIXELS

    side = 9400
    assert side * side > MAX_FULL_DECODE_PIXELS
    buf = io.BytesIO()
    Image.new("L", (side, side)).save(buf, format="PNG", optimize=False, compress_level=9)
    started = time.perf_counter()
    with pytest.raises(ImageError, match="at most 40 megapixels"):
        load_image(buf.getvalue())
    assert time.perf_counter() - started < 1.0  # nothing was decoded
    jpeg = io.BytesIO()
    Image.new("RGB", (8000, 6000), (90, 90, 90)).save(jpeg, format="JPEG", quality=50)
    assert load_image(jpeg.getvalue()).size == (1000, 750)  # 48 MP JPEG: draft mode, 1/8 scale


def test_a_jpeg_decoded_in_one_call_has_the_same_pixels_and_truncation_is_still_refused(tmp_path):
    """load_image hands Pillow's decoder the whole JPEG at once (one GIL release instead of one per
    64 KiB block): the pixels are those of Pillow's block-by-block decode, from bytes and from a path,
    and a cut-off JPEG is refused as before."""
    from bench.phone_photos import phone_jpeg

    data = phone_jpeg(3, size=(1600, 1200))
    reference = Image.open(io.BytesIO(data))
    reference.draft("RGB", (224, 224))
    expected = np.asarray(reference.convert("RGB"))
    path = tmp_path / "phone.jpg"
    path.write_bytes(data)
    for source in (data, path):
        np.testing.assert_array_equal(np.asarray(load_image(source, min_side=224)), expected)
    with pytest.raises(ImageError, match="truncated"):
        load_image(data[: len(data) * 2 // 3], min_side=224)


def test_a_photo_decoded_in_full_is_reduced_as_a_jpeg_draft_would_be():
    """PNG, WebP and HEIC have no draft mode: the full decode is reduced by the factor JPEG's draft
    mode picks, so the model's input and the hashes are made from about the pixels a JPEG of the same
    photo gives (and 12 MP is not resized once for each); a size the caller needs stays whole."""
    from pillow_heif import register_heif_opener

    register_heif_opener()
    x = np.linspace(0, 255, 2000, dtype=np.float32)[None, :]
    y = np.linspace(0, 255, 1500, dtype=np.float32)[:, None]
    rgb = Image.fromarray(np.stack([x + 0 * y, y + 0 * x, (x + y) / 2], axis=-1).astype(np.uint8))
    encoded = {}
    for fmt, options in (("JPEG", {"quality": 95}), ("PNG", {}), ("WEBP", {"quality": 95})):
        buf = io.BytesIO()
        rgb.save(buf, format=fmt, **options)
        encoded[fmt] = buf.getvalue()
    jpeg = load_image(encoded["JPEG"], min_side=INPUT_SIZE)
    assert jpeg.size == (500, 375)  # draft mode: 1/4 scale (1/8 would give 187 < 224)
    for fmt in ("PNG", "WEBP"):
        img = load_image(encoded[fmt], min_side=INPUT_SIZE)
        assert img.size == jpeg.size, fmt
        # The same picture as the JPEG path's, within a few levels of 255 (WebP's and JPEG's losses).
        assert np.abs(to_input(img, INPUT_SIZE) - to_input(jpeg, INPUT_SIZE)).max() < 0.05, fmt
        assert load_image(encoded[fmt], min_side=700).size == (1000, 750), fmt  # by 2: 750 >= 700
        assert load_image(encoded[fmt], min_side=1000).size == (2000, 1500), fmt  # by 2: 750 < 1000
    heic = io.BytesIO()
    rgb.resize((960, 720)).save(heic, format="HEIF", quality=80)
    assert load_image(heic.getvalue(), min_side=INPUT_SIZE).size == (480, 360)  # 720 // 224 = 3: by 2
