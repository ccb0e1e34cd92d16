"""The ONNX serving wrapper: batching, the per-process session cache, checksums, the contract."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from models import inference
from models.grades import NUM_GRADES
from models.inference import (
    ChecksumError,
    DamageModel,
    ModelError,
    Prediction,
    PredictionError,
    default_model_path,
    load_model,
    verify_checksum,
)
from models.preprocessing import INPUT_SIZE


def _inputs(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # Different per-channel offsets, so the tiny model (which pools) gives different answers.
    base = rng.uniform(-0.9, 0.9, size=(n, 3, 1, 1))
    noise = rng.uniform(-0.1, 0.1, size=(n, 3, INPUT_SIZE, INPUT_SIZE))
    return (base + noise).astype(np.float32)


def _copy_model(src: Path, dest_dir: Path) -> Path:
    dest_dir.mkdir(parents=True)
    shutil.copy(src, dest_dir / "model.onnx")
    return dest_dir / "model.onnx"


def _with_metadata(src: Path, dest_dir: Path, **changes: str | None) -> Path:
    """A copy of the model with metadata props changed (value None removes the key)."""
    onnx = pytest.importorskip("onnx")
    proto = onnx.load(str(src))
    props = {p.key: p.value for p in proto.metadata_props}
    for key, value in changes.items():
        key = "claimlane." + key
        if value is None:
            props.pop(key, None)
        else:
            props[key] = value
    del proto.metadata_props[:]
    onnx.helper.set_model_props(proto, props)
    dest_dir.mkdir(parents=True)
    onnx.save(proto, str(dest_dir / "model.onnx"))
    return dest_dir / "model.onnx"


@pytest.fixture(scope="module")
def model(tiny_onnx_model) -> DamageModel:
    return DamageModel(tiny_onnx_model, intra_op_num_threads=1, inter_op_num_threads=1)


def test_attributes(model, tiny_onnx_model):
    assert model.version == "tiny-0.0.1"
    assert model.path == tiny_onnx_model.resolve()
    assert model.input_size == INPUT_SIZE
    assert model.metadata["claimlane.architecture"] == "tiny-gap-gemm"
    assert model.temperature == 1.0
    assert model.max_batch == 16


def test_predict_arrays_gives_distributions(model):
    probs = model.predict_arrays(_inputs(5))
    assert probs.shape == (5, NUM_GRADES)
    assert probs.dtype == np.float64
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-12)
    assert np.all(probs >= 0)
    assert len(set(probs.argmax(axis=1).tolist())) > 1  # the inputs really differ


def test_batching_matches_one_by_one(model):
    x = _inputs(37, seed=3)  # more than two max_batch chunks, with a ragged tail
    batched = model.predict_arrays(x)
    single = np.concatenate([model.predict_arrays(x[i : i + 1]) for i in range(len(x))])
    np.testing.assert_allclose(batched, single, atol=1e-6, rtol=0)
    np.testing.assert_allclose(model.predict_arrays(x, batch_size=5), single, atol=1e-6, rtol=0)


def _gated_model(tmp_path: Path) -> DamageModel:
    """A tiny model with the photo gate's heads: brightness decides the quality verdict."""
    onnx = pytest.importorskip("onnx")
    from tests.onnx_models import tiny_model_proto

    quality_w = np.zeros((3, 4), dtype=np.float32)
    quality_w[:, 0], quality_w[:, 1] = 4.0, -4.0  # ok rises with brightness, dark falls with it
    gate = (
        np.zeros((3, 4), np.float32),
        np.array([4.0, 0, 0, 0], np.float32),
        quality_w,
        np.zeros(4, np.float32),
    )
    proto = tiny_model_proto(
        "tiny-gated", np.eye(3, dtype=np.float32), np.zeros(3, np.float32),
        extra_props={"claimlane.fast_lane": json.dumps({"thresholds": {}, "gate_threshold": 0.5})},
        gate=gate,
    )  # fmt: skip
    path = tmp_path / "tiny-gated" / "model.onnx"
    path.parent.mkdir()
    onnx.save(proto, str(path))
    return DamageModel(path, intra_op_num_threads=1, inter_op_num_threads=1, verify=False)


@pytest.mark.parametrize("max_batch", [16, 2])
def test_assess_split_over_the_cores_matches_one_run(tmp_path, max_batch):
    gated = _gated_model(tmp_path)
    gated.max_batch = max_batch
    x = _inputs(5, seed=4)
    x[1] = -0.95  # a dark photo among bright ones: its gate verdict must stay at its position
    gated.parallel_runs = 1
    one = gated.assess(x)
    gated.parallel_runs = 2  # chunks of 3 and 2 (or of 2) graded side by side
    split = gated.assess(x)
    np.testing.assert_allclose(split.probs, one.probs, atol=1e-6, rtol=0)
    assert split.problems == one.problems
    assert split.problems[1] is not None and split.problems.count(None) == 4
    assert split.maps is None and one.maps is None
    assert gated.assess(x[1:2]).problems == [one.problems[1]]


def test_the_bundled_models_damage_maps_survive_the_split():
    bundled = DamageModel(default_model_path(), intra_op_num_threads=1, inter_op_num_threads=1)
    x = _inputs(3, seed=5).clip(-1, 1)
    bundled.parallel_runs = 1
    one = bundled.assess(x)
    bundled.parallel_runs = 2
    split = bundled.assess(x)
    assert one.maps is not None and split.maps is not None and split.maps.shape == one.maps.shape
    np.testing.assert_allclose(split.maps, one.maps, atol=1e-5)
    np.testing.assert_allclose(split.probs, one.probs, atol=1e-6)


def test_predict_arrays_empty_and_wrong_shape(model):
    assert model.predict_arrays(np.zeros((0, 3, INPUT_SIZE, INPUT_SIZE), np.float32)).shape == (0, 4)
    with pytest.raises(ValueError, match="shape"):
        model.predict_arrays(np.zeros((3, INPUT_SIZE, INPUT_SIZE), np.float32))
    with pytest.raises(ValueError, match="shape"):
        model.predict_arrays(np.zeros((1, 3, 100, 100), np.float32))


def test_predict_images_keeps_order_and_isolates_bad_files(model, bad_files):
    sources = []
    for good, bad in zip(bad_files.good.values(), bad_files.bad.values(), strict=False):
        sources += [good, bad]
    sources.append(bad_files.good_dir / "missing.jpg")
    results = model.predict_images(sources, batch_size=3)
    assert [r.path for r in results] == [str(s) for s in sources]
    for source, result in zip(sources, results, strict=True):
        if source.parent == bad_files.bad_dir or source.name == "missing.jpg":
            assert isinstance(result, PredictionError), source
            assert result.error and "Traceback" not in result.error
            assert set(result.to_json()) == {"path", "error"}
        else:
            assert isinstance(result, Prediction), (source, result)
            assert result.grade == int(np.argmax(result.grade_probs))
            assert result.p_damaged == pytest.approx(1 - result.grade_probs[0])
            assert result.model_version == "tiny-0.0.1"
    assert results[-1].error == "file not found"


def test_predict_images_matches_predict_arrays(model, bad_files):
    from models.preprocessing import preprocess

    paths = list(bad_files.good.values())
    expected = model.predict_arrays(np.stack([preprocess(p) for p in paths]))
    results = model.predict_images(paths, batch_size=2)
    np.testing.assert_allclose([r.grade_probs for r in results], expected, atol=1e-6)


def test_prediction_to_json():
    pred = Prediction("a.jpg", 2, [0.1234567891, 0.2, 0.6765432109, 0.0], 0.8765432109, "v1")
    record = pred.to_json()
    assert set(record) == {"path", "grade", "grade_probs", "p_damaged", "model_version"}
    assert record["grade_probs"] == [0.123457, 0.2, 0.676543, 0.0]
    assert record["p_damaged"] == 0.876543
    json.dumps(record)


def test_load_model_caches_one_instance_per_file(tiny_onnx_model, tmp_path):
    path = _copy_model(tiny_onnx_model, tmp_path / "cached-1.0")
    first = load_model(path)
    assert load_model(str(path)) is first
    assert load_model(path.parent) is first  # a version folder names its model.onnx
    other = load_model(_copy_model(tiny_onnx_model, tmp_path / "cached-2.0"))
    assert other is not first


def test_load_model_is_thread_safe(tiny_onnx_model, tmp_path):
    path = _copy_model(tiny_onnx_model, tmp_path / "threads-1.0")
    seen: list[DamageModel] = []
    threads = [threading.Thread(target=lambda: seen.append(load_model(path))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) == 4 and all(m is seen[0] for m in seen)


def test_default_model_path_picks_newest_version(tiny_onnx_model, tmp_path, monkeypatch):
    monkeypatch.delenv("CLAIMLANE_MODEL_PATH", raising=False)
    weights = tmp_path / "weights"
    with pytest.raises(ModelError, match="no bundled model"):
        default_model_path(weights)
    _copy_model(tiny_onnx_model, weights / "effnetlite0-2026.10.01")
    _copy_model(tiny_onnx_model, weights / "effnetlite0-2026.11.22")
    (weights / "effnetlite0-2026.12.31").mkdir()  # no model.onnx: skipped
    assert default_model_path(weights) == weights / "effnetlite0-2026.11.22" / "model.onnx"

    monkeypatch.setenv("CLAIMLANE_MODEL_PATH", str(tiny_onnx_model))
    assert default_model_path(weights) == tiny_onnx_model.resolve()
    assert load_model() is load_model(tiny_onnx_model)

    monkeypatch.setenv("CLAIMLANE_MODEL_PATH", str(tmp_path / "nope.onnx"))
    with pytest.raises(ModelError, match="not found"):
        load_model()


def test_checksum(tiny_onnx_model, tmp_path):
    path = _copy_model(tiny_onnx_model, tmp_path / "sums-1.0")
    assert verify_checksum(path.parent) is False  # nothing to verify
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    sums = path.parent / "SHA256SUMS"
    sums.write_text(f"{digest}  model.onnx\n{'0' * 64}  checkpoint.pt\n")
    assert verify_checksum(path.parent) is True
    assert DamageModel(path).version == "tiny-0.0.1"

    sums.write_text(f"{'0' * 64} *model.onnx\n")
    with pytest.raises(ChecksumError, match="does not match"):
        verify_checksum(path.parent)
    with pytest.raises(ChecksumError):
        DamageModel(path)
    with pytest.raises(ChecksumError):
        load_model(path)
    assert path.resolve() not in inference._MODELS  # a refused model is not cached

    sums.write_text(f"{digest}  checkpoint.pt\n")
    with pytest.raises(ChecksumError, match="no entry"):
        verify_checksum(path.parent)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"input_size": "256"}, "256px"),
        ({"mean": "[0.485, 0.456, 0.406]"}, "mean"),
        ({"std": "[0.229, 0.224, 0.225]"}, "std"),
        ({"std": "not json"}, "JSON list"),
        ({"grade_names": '["ok", "damaged"]'}, "grade scale"),
    ],
)
def test_metadata_mismatch_refused(tiny_onnx_model, tmp_path, changes, match):
    path = _with_metadata(tiny_onnx_model, tmp_path / "mismatch-1.0", **changes)
    with pytest.raises(ModelError, match=match):
        DamageModel(path)


def test_missing_metadata_falls_back(tiny_onnx_model, tmp_path):
    keys = ["model_version", "input_size", "mean", "std", "temperature", "grade_names", "architecture"]
    path = _with_metadata(tiny_onnx_model, tmp_path / "bare-0.9", **dict.fromkeys(keys))
    model = DamageModel(path)
    assert model.metadata == {}
    assert model.version == "bare-0.9"  # the version folder's name
    assert model.input_size == INPUT_SIZE
    assert model.temperature is None and model.architecture is None


def test_invalid_files_are_model_errors(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        DamageModel(tmp_path / "absent.onnx")
    junk = tmp_path / "junk" / "model.onnx"
    junk.parent.mkdir()
    junk.write_bytes(b"not an onnx model")
    with pytest.raises(ModelError, match="cannot load"):
        DamageModel(junk)


def test_thread_settings_from_env(tiny_onnx_model, monkeypatch):
    monkeypatch.setenv("CLAIMLANE_ORT_INTRA_THREADS", "1")
    monkeypatch.setenv("CLAIMLANE_ORT_INTER_THREADS", "1")
    options = DamageModel(tiny_onnx_model).session.get_session_options()
    assert (options.intra_op_num_threads, options.inter_op_num_threads) == (1, 1)
    monkeypatch.delenv("CLAIMLANE_ORT_INTRA_THREADS")
    options = DamageModel(tiny_onnx_model).session.get_session_options()
    assert options.intra_op_num_threads == max(1, (os.cpu_count() or 1) // 2)  # no oversubscription
    monkeypatch.setenv("CLAIMLANE_ORT_INTRA_THREADS", "many")
    with pytest.raises(ModelError, match="ort_intra_threads"):
        DamageModel(tiny_onnx_model)
