"""Tiny ONNX models of known quality, and photos they grade predictably, for the registry, the
promotion gate and the admin API tests.

Each photo is one flat colour; its red channel encodes the grade (`RED_LEVELS`, in the model's
normalised [-1, 1] space). A model computes P(grade >= k) = s_1 * ... * s_k with
s_k = sigmoid(scale * (sign * red - t_k)) and thresholds t = (-0.6, 0, 0.6) between the levels:

- `good` (sign +1, scale 20): right grade with probability ~0.99 on every photo;
- `ok` (sign +1, scale 15): as right, slightly less sure: "not worse" than good within tolerance;
- `bad` (sign -1): the inverse, confidently grading intact parcels as severe (AUROC 0, fast lane
  wrong every time).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from models.promotion import Sample
from tests.onnx_models import tiny_model_proto

RED_LEVELS = (-0.9, -0.3, 0.3, 0.9)  # grade 0..3
THRESHOLDS = (-0.6, 0.0, 0.6)


def model_proto(version: str, *, scale: float, sign: float = 1.0):
    weight = np.zeros((3, 3), dtype=np.float32)
    weight[0, :] = sign * scale  # only the red channel counts
    bias = np.array([-scale * t for t in THRESHOLDS], dtype=np.float32)
    return tiny_model_proto(
        version,
        weight,
        bias,
        architecture="gate-test",
        extra_props={"claimlane.train_manifest_sha256": "ab" * 32},
    )


def write_version(
    root: Path, version: str, *, scale: float, sign: float = 1.0, metrics: dict | None = None
) -> Path:
    """A version folder like training/export.py writes: model.onnx, calibration.json,
    training.json (and metrics.json if given), SHA256SUMS over all of them."""
    onnx = pytest.importorskip("onnx")
    folder = root / version
    folder.mkdir(parents=True)
    onnx.save(model_proto(version, scale=scale, sign=sign), str(folder / "model.onnx"))
    (folder / "calibration.json").write_text(json.dumps({"temperature": 1.0}))
    (folder / "training.json").write_text(json.dumps({"train_manifest_sha256": "cd" * 32, "scale": scale}))
    if metrics is not None:
        (folder / "metrics.json").write_text(json.dumps(metrics))
    lines = [
        f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}"
        for p in sorted(folder.iterdir())
        if p.is_file()
    ]
    (folder / "SHA256SUMS").write_text("\n".join(lines) + "\n")
    return folder


@dataclass(frozen=True)
class GateModels:
    root: Path
    good: Path  # version "good-1"
    ok: Path  # version "ok-2": not worse than good
    bad: Path  # version "bad-3": inverted


@pytest.fixture(scope="session")
def gate_models(tmp_path_factory: pytest.TempPathFactory) -> GateModels:
    """Read-only version folders shared by the session: copy one to change it."""
    root = tmp_path_factory.mktemp("gate-models")
    return GateModels(
        root=root,
        good=write_version(
            root, "good-1", scale=20, metrics={"binary": {"auroc": 0.97, "ece": 0.03}, "split": "test"}
        ),
        ok=write_version(root, "ok-2", scale=15),
        bad=write_version(root, "bad-3", scale=20, sign=-1),
    )


def photo_png(grade: int, variant: int = 0, size: int = 64) -> bytes:
    """A flat photo whose red channel encodes `grade` (`variant` changes green/blue, not the grade)."""
    red = round((RED_LEVELS[grade] * 0.5 + 0.5) * 255)
    color = (red, (40 * variant + 17 * grade) % 256, (90 + 31 * variant) % 256)
    buf = io.BytesIO()
    Image.new("RGB", (size, size), color).save(buf, format="PNG")
    return buf.getvalue()


def samples(per_grade: int = 4, *, binary_only: int = 0) -> list[Sample]:
    """Graded samples (per_grade of each grade) plus `binary_only` intact and damaged ones without
    a grade."""
    out = [Sample(photo_png(g, v), g, int(g >= 1)) for g in range(4) for v in range(per_grade)]
    for v in range(binary_only):
        out.append(Sample(photo_png(0, 100 + v), None, 0))
        out.append(Sample(photo_png(3, 100 + v), None, 1))
    return out


def write_evalset(folder: Path, per_grade: int = 4, *, binary_only: int = 2) -> Path:
    """A manifest.csv (path,grade,damaged,group,source,split) and its images: half test, half val."""
    images = folder / "images"
    images.mkdir(parents=True)
    rows = []
    i = 0
    for s in samples(per_grade, binary_only=binary_only):
        name = f"img{i:03d}.png"
        (images / name).write_bytes(s.image)
        split = "test" if i % 2 == 0 else "val"
        grade = "" if s.grade is None else str(s.grade)
        rows.append([f"images/{name}", grade, s.damaged, f"g{i}", "synthetic", split])
        i += 1
    manifest = folder / "manifest.csv"
    with manifest.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "grade", "damaged", "group", "source", "split"])
        writer.writerows(rows)
    return manifest
