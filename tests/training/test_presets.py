"""Preprocessing parity: the training eval preset is exactly what serving feeds the model."""

import io

import numpy as np
from PIL import Image

from models.preprocessing import load_image, preprocess
from training.presets import EvalPreset, TrainPreset


def _photo(size=(640, 480)) -> bytes:
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 255, size=(size[1], size[0], 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def test_eval_preset_equals_serving_preprocess():
    data = _photo()
    served = preprocess(data)
    trained = EvalPreset()(load_image(io.BytesIO(data)))
    assert trained.dtype == served.dtype == np.float32
    np.testing.assert_array_equal(trained, served)


def test_train_preset_shape_and_range():
    out = TrainPreset()(load_image(io.BytesIO(_photo())))
    assert out.shape == (3, 224, 224)
    assert out.min() >= -1.0 and out.max() <= 1.0
