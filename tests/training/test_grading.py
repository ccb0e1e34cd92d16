"""Damage model v2's training pieces: annotations, folds, the gate threshold, and the exported graph
that serving reads (photo gate outputs and certified thresholds)."""

from __future__ import annotations

import csv
import json
import re
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from training.annotations import ANNOTATIONS, QUALITIES, SCENES, SOURCES, read_annotations, read_sources
from training.manifest import shared_dataset_dir


def test_every_shared_photo_is_annotated_once_with_its_sha256() -> None:
    annotations = read_annotations()
    root = shared_dataset_dir()
    if not (root / "labels.csv").exists():
        pytest.skip(f"shared dataset not found at {root} (set CLAIMLANE_BOXES_DIR)")
    with (root / "labels.csv").open(newline="") as fh:
        files = [r["file"] for r in csv.DictReader(fh)]
    assert sorted(annotations) == sorted(files)
    from training.annotations import shared_photos

    photos = shared_photos(verify=True)  # raises on a SHA-256 mismatch
    assert len(photos) == len(files) == 1580


def test_annotation_values_are_on_the_scales() -> None:
    for file, (sha, a) in read_annotations(ANNOTATIONS).items():
        assert re.fullmatch(r"images/\d{4}\.jpg", file)
        assert re.fullmatch(r"[0-9a-f]{64}", sha)
        assert a.scene in SCENES and a.quality in QUALITIES and 0 <= a.grade <= 3


def test_sources_manifest_names_repository_commit_path_sha_and_licence() -> None:
    rows = read_sources(SOURCES)
    assert rows
    for r in rows:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+", r["repository"])
        assert re.fullmatch(r"[0-9a-f]{40}", r["commit"])
        assert re.fullmatch(r"[0-9a-f]{64}", r["sha256"])
        assert r["path"] and r["licence"] and r["group"]


def test_group_folds_keep_near_duplicates_together() -> None:
    from training.grading import group_folds

    groups = np.array([f"g{i // 3}" for i in range(300)])
    folds = group_folds(groups, 5)
    for g in np.unique(groups):
        assert len(set(folds[groups == g])) == 1
    assert set(folds) == set(range(5))


def test_gate_threshold_lets_at_most_the_allowed_share_of_unusable_photos_through() -> None:
    from training.grading import choose_gate_threshold

    rng = np.random.default_rng(0)
    p = np.concatenate([rng.uniform(0, 0.8, 500), rng.uniform(0.3, 1, 500)])
    usable = np.array([False] * 500 + [True] * 500)
    t = choose_gate_threshold(p, usable, 0.01)
    assert (p[~usable] >= t).sum() <= 5
    assert (p[usable] >= t).sum() > 0


@pytest.mark.slow
def test_exported_v2_graph_serves_with_its_gate_and_thresholds(tmp_path: Path) -> None:
    """A v2 graph (ImageNet Lite0 + random heads) exported the way `training.grading` does, then
    loaded by serving: five outputs, the gate's verdicts, the certified thresholds from metadata."""
    pytest.importorskip("torch")
    import torch

    from models.inference import DamageModel
    from training.export import export_onnx
    from training.grading import V2_OUTPUTS, GradingConfig, GradingNet, Heads, backbone_factory

    torch.manual_seed(0)
    heads = Heads(2560, np.zeros(2560), np.ones(2560), 0.0).eval()
    net = GradingNet(backbone_factory("imagenet-l0", GradingConfig())(), heads, 1.0).eval()
    fast_lane = {"thresholds": {"0.01": None, "0.02": 0.97}, "delta": 0.1, "calibration_size": 300,
                 "gate_threshold": 0.4}  # fmt: skip
    meta = {
        "claimlane.model_version": "v2-test",
        "claimlane.input_size": "192",
        "claimlane.mean": json.dumps([0.5, 0.5, 0.5]),
        "claimlane.std": json.dumps([0.5, 0.5, 0.5]),
        "claimlane.grade_names": json.dumps(["none", "cosmetic", "structural", "severe"]),
        "claimlane.fast_lane": json.dumps(fast_lane),
    }
    path = export_onnx(net, tmp_path / "v2" / "model.onnx", opset=18, metadata=meta, size=192,
                       output_names=V2_OUTPUTS)  # fmt: skip
    model = DamageModel(path)
    assert model.input_size == 192 and model.has_gate and model.has_damage_map
    assert model.gate_threshold == 0.4
    assert {str(k): v for k, v in model.fast_lane_thresholds.items()} == {
        "0.01": None,
        "0.02": Decimal("0.97"),
    }
    x = np.random.default_rng(0).uniform(-1, 1, (3, 3, 192, 192)).astype(np.float32)
    out = model.assess(x)
    with torch.no_grad():
        want = net(torch.from_numpy(x))[0].numpy()
    np.testing.assert_allclose(out.probs, want, atol=1e-4)
    assert out.maps is not None and out.maps.shape[0] == 3
    assert len(out.problems) == 3
    assert all(p is None or p in ("not_a_parcel", "dark", "blurred", "too_far") for p in out.problems)
