"""3D parcel renders from Blender (`training/synthetic/render3d.py`, scene in `training/synthetic/blender_parcel.py`).

The render tests need Debian's `blender` (`make test` installs it where it can, as it does
Chromium); without it they skip and say so.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from training.manifest import read_manifest, write_manifest
from training.synthetic import render3d as synthetic_3d

pytestmark = pytest.mark.slow  # Blender renders and a model run (5-20 s each)
needs_blender = pytest.mark.skipif(
    synthetic_3d.blender_path() is None,
    reason="SKIPPED: Blender is not installed (apt-get install blender); the 3D renders are untested",
)


def test_labels_are_a_function_of_the_seed(tmp_path):
    a, b, c = tmp_path / "a.png", tmp_path / "b.png", tmp_path / "c.png"
    synthetic_3d.draw_label(np.random.default_rng(3), a)
    synthetic_3d.draw_label(np.random.default_rng(3), b)
    synthetic_3d.draw_label(np.random.default_rng(4), c)
    assert a.read_bytes() == b.read_bytes() != c.read_bytes()


def test_without_blender_a_run_stops_with_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setenv("BLENDER", str(tmp_path / "no-such-blender"))
    assert synthetic_3d.blender_path() is None
    with pytest.raises(RuntimeError, match="apt-get install blender"):
        synthetic_3d.generate_renders(tmp_path / "out", 1)


@needs_blender
def test_renders_are_graded_phone_photos_and_the_same_set_with_any_worker_count(tmp_path):
    one = synthetic_3d.generate_renders(tmp_path / "one", 4, seed=2, size=64, samples=2, workers=1)
    two = synthetic_3d.generate_renders(tmp_path / "two", 4, seed=2, size=64, samples=2, workers=2)
    assert [r.grade for r in one] == [r.grade for r in two]
    assert [r.group for r in one] == [r.group for r in two]
    assert len({r.group for r in one}) == 4  # every render its own group
    for r in one:
        assert r.source == "render" and r.split == "train" and r.damaged == int(r.grade >= 1)
        with Image.open(r.path) as im:
            assert im.format == "JPEG" and im.size == (64, 64)
            arr = np.asarray(im.convert("RGB"), dtype=np.float32)
        assert arr.std() > 3  # a scene, not a blank frame
    write_manifest(tmp_path / "m.csv", one)
    assert [r.path for r in read_manifest(tmp_path / "m.csv")] == [r.path for r in one]


@needs_blender
def test_a_failing_scene_reports_blender_output(tmp_path, monkeypatch):
    broken = tmp_path / "broken_scene.py"
    broken.write_text("raise SystemExit('scene exploded')\n")
    monkeypatch.setattr(synthetic_3d, "SCENE", broken)
    with pytest.raises(RuntimeError, match="Blender failed"):
        synthetic_3d.generate_renders(tmp_path / "out", 1, size=32, samples=1, workers=1)


@needs_blender
def test_the_bundled_model_does_not_take_intact_3d_parcels_for_damaged(tmp_path):
    """The box-type bias check of the model card (measurement 5) in small: intact kraft parcels
    from a renderer the bundled model never trained on must not look damaged to it. The first
    16 images of the card's render test set (seed 17)."""
    from models.inference import load_model

    rows = synthetic_3d.generate_renders(tmp_path / "r", 16, seed=17, split="test")
    intact = [r for r in rows if r.grade == 0]
    assert len(intact) >= 3
    model = load_model()
    preds = model.predict_images([r.path for r in intact])
    assert [round(p.p_damaged, 2) for p in preds if p.p_damaged >= 0.5] == []
