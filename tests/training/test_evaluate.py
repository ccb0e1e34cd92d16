from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from training.evaluate import FILES, evaluate, evaluate_predictions, main
from training.manifest import Row, write_manifest

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
FOCUS = "real-intact-brown"


def _rows(tmp_path: Path) -> list[Row]:
    """Graded synthetic rows, binary-only shared rows, and an all-intact focus subset."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(24):
        grade = int(rng.integers(0, 4))
        rows.append(Row(tmp_path / f"syn{i}.jpg", grade, int(grade >= 1), f"s{i}", "synthetic", "test"))
    for i in range(16):
        damaged = i % 2
        rows.append(Row(tmp_path / f"box{i}.jpg", None, damaged, f"b{i}", "damaged-intact-boxes", "test"))
    for i in range(10):
        rows.append(Row(tmp_path / f"brown{i}.jpg", 0, 0, f"r{i}", FOCUS, "test"))
    return rows


def _probs(n: int, seed: int = 1) -> np.ndarray:
    logits = np.random.default_rng(seed).normal(size=(n, 4)) * 2
    e = np.exp(logits)
    return e / e.sum(axis=1, keepdims=True)


def _check_outputs(out: Path) -> None:
    for name in FILES.values():
        assert (out / name).is_file(), name
    for key in ("roc", "confusion", "reliability"):
        assert (out / FILES[key]).read_bytes()[:8] == PNG_SIGNATURE


def test_evaluate_predictions_writes_report(tmp_path):
    rows = _rows(tmp_path)
    probs = _probs(len(rows))
    manifest = write_manifest(tmp_path / "manifest.csv", rows)
    failed = [(Row(tmp_path / "broken.jpg", None, 1, "x", "damaged-intact-boxes", "test"), "truncated")]
    out = tmp_path / "report"
    result = evaluate_predictions(
        rows,
        probs,
        out,
        model_version="test-1",
        title="Synthetic check",
        manifest_path=manifest,
        split="test",
        focus=[FOCUS, "not-a-source"],
        failed=failed,
        n_bootstrap=50,
    )
    _check_outputs(out)

    data = json.loads((out / "metrics.json").read_text())  # strict JSON: NaN written as null
    assert data == result
    for key in (
        "binary",
        "grade",
        "by_source",
        "counts",
        "model_version",
        "manifest",
        "split",
        "date",
        "focus",
    ):
        assert key in data
    assert data["model_version"] == "test-1" and data["split"] == "test"
    assert len(data["manifest"]["sha256"]) == 64
    assert data["counts"]["evaluated"] == len(rows) and data["counts"]["failed"] == 1
    assert data["counts"]["graded"] == 34
    assert data["binary"]["count"] == len(rows)
    assert set(data["binary"]["ci95"]) == {"auroc", "fpr", "fpr_wilson"}
    assert data["grade"]["count"] == 34 and len(data["grade"]["confusion"]) == 4
    assert set(data["by_source"]) == {"synthetic", "damaged-intact-boxes", FOCUS}
    assert data["by_source"]["damaged-intact-boxes"]["grade"] is None
    assert data["by_source"]["damaged-intact-boxes"]["failed"] == 1
    assert data["by_source"][FOCUS]["binary"]["auroc"] is None  # one class: undefined, not 0 or 1
    assert data["failed"][0]["error"] == "truncated"

    focus = data["focus"][FOCUS]
    p_dam = 1 - probs[-10:, 0]
    assert focus["intact"] == 10 and focus["false_positives"] == int((p_dam >= 0.5).sum())
    assert focus["fpr"] == pytest.approx((p_dam >= 0.5).mean())
    assert data["focus"]["not-a-source"]["present"] is False

    with (out / "predictions.csv").open(newline="") as fh:
        lines = list(csv.DictReader(fh))
    assert len(lines) == len(rows)
    assert {"path", "source", "split", "damaged", "grade", "p0", "p3", "p_damaged", "pred_grade"} <= set(
        lines[0]
    )
    assert lines[30]["grade"] == ""  # binary-only row
    assert float(lines[0]["p_damaged"]) == pytest.approx(1 - probs[0, 0], abs=1e-6)
    assert int(lines[0]["pred_grade"]) == int(probs[0].argmax())

    summary = (out / "summary.md").read_text()
    assert "# Synthetic check" in summary
    assert f"## Focus: `{FOCUS}`" in summary and "false positive rate" in summary
    assert "![ROC curves](roc.png)" in summary and "## How to read this" in summary
    assert "| **3 severe** |" in summary  # grade confusion matrix as a markdown table


def test_evaluate_predictions_binary_only_and_rejects_bad_shapes(tmp_path):
    rows = [r for r in _rows(tmp_path) if r.grade is None]
    result = evaluate_predictions(rows, _probs(len(rows)), tmp_path / "r", model_version="v", n_bootstrap=20)
    _check_outputs(tmp_path / "r")
    assert result["grade"] is None and result["manifest"] is None
    assert "No graded photos" in (tmp_path / "r" / "summary.md").read_text()
    with pytest.raises(ValueError):
        evaluate_predictions(rows, _probs(len(rows) - 1), tmp_path / "x", model_version="v")


def test_evaluate_end_to_end_with_tiny_onnx_model(tmp_path, tiny_onnx_model):
    pytest.importorskip("models.inference")
    rows = []
    for i, colour in enumerate([(150, 110, 60), (20, 20, 20), (240, 240, 240), (90, 60, 30)]):
        path = tmp_path / f"img{i}.png"
        Image.new("RGB", (32, 24), colour).save(path)
        rows.append(Row(path, None, i % 2, f"g{i}", "damaged-intact-boxes", "test"))
    rows.append(Row(tmp_path / "img9.png", None, 0, "g9", FOCUS, "val"))
    Image.new("RGB", (8, 8)).save(rows[-1].path)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a photo")
    rows.append(Row(broken, None, 1, "g5", "damaged-intact-boxes", "test"))
    manifest = write_manifest(tmp_path / "m.csv", rows)

    result = evaluate(
        tiny_onnx_model.parent, manifest, tmp_path / "out", "test", batch_size=2, n_bootstrap=20
    )
    _check_outputs(tmp_path / "out")
    assert result["model_version"] == "tiny-0.0.1"
    assert result["counts"]["evaluated"] == 4 and result["counts"]["failed"] == 1
    assert result["failed"][0]["path"].endswith("broken.jpg")

    assert main(["--model", str(tiny_onnx_model), "--data", str(manifest), "--out", str(tmp_path / "cli"),
                 "--focus", FOCUS, "--bootstrap", "20"]) == 0  # fmt: skip
    data = json.loads((tmp_path / "cli" / "metrics.json").read_text())
    assert data["split"] is None and data["counts"]["evaluated"] == 5
    assert data["focus"][FOCUS]["count"] == 1
