"""Synthetic parcel photos: determinism, labels, manifest rows, composites. Small sizes keep it fast."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from training.manifest import Row, read_manifest, write_manifest
from training.synthetic import compose_damage, generate, generate_composites, main, render_parcel

SIZE = 96


def _px(img: Image.Image) -> np.ndarray:
    return np.asarray(img, dtype=np.int16)


def test_same_seed_gives_identical_pixels_and_different_seeds_differ():
    a, ga = render_parcel(7, size=SIZE)
    b, gb = render_parcel(7, size=SIZE)
    c, _ = render_parcel(8, size=SIZE)
    assert ga == gb
    assert np.array_equal(_px(a), _px(b))
    assert not np.array_equal(_px(a), _px(c))


@pytest.mark.parametrize("grade", [0, 1, 2, 3])
def test_every_grade_can_be_requested(grade):
    img, g = render_parcel(100 + grade, grade=grade, size=SIZE)
    assert g == grade
    assert img.mode == "RGB"
    assert img.size == (SIZE, SIZE)


def test_drawn_grades_cover_the_scale():
    grades = {render_parcel(s, size=48)[1] for s in range(24)}
    assert grades <= {0, 1, 2, 3}
    assert len(grades) >= 3


def test_invalid_grade_is_rejected():
    with pytest.raises(ValueError):
        render_parcel(0, grade=4, size=SIZE)


def test_generate_writes_images_and_round_trippable_rows(tmp_path):
    rows = generate(tmp_path / "imgs", 4, seed=3, split="val", size=64)
    assert len(rows) == 4
    assert all(r.path.exists() for r in rows)
    assert len({r.group for r in rows}) == 4
    for r in rows:
        assert r.source == "synthetic"
        assert r.split == "val"
        assert r.damaged == int(r.grade >= 1)
        assert r.group.startswith("synthetic:")
        with Image.open(r.path) as im:
            assert im.size == (64, 64)
    path = write_manifest(tmp_path / "manifest.csv", rows)
    assert read_manifest(path) == rows


def test_different_top_level_seeds_do_not_share_images(tmp_path):
    a = generate(tmp_path / "a", 2, seed=0, size=48)
    b = generate(tmp_path / "b", 2, seed=1, size=48)
    assert not {r.group for r in a} & {r.group for r in b}


def test_compose_damage_keeps_size_and_changes_pixels():
    base, _ = render_parcel(5, grade=0, size=SIZE)
    for grade in (1, 2, 3):
        out = compose_damage(base, grade, seed=grade)
        assert out.size == base.size
        assert out.mode == "RGB"
        assert np.abs(_px(out) - _px(base)).sum() > 0
        assert np.array_equal(_px(out), _px(compose_damage(base, grade, seed=grade)))
    with pytest.raises(ValueError):
        compose_damage(base, 0, seed=0)


def test_generate_composites_keeps_group_and_split_of_intact_rows(tmp_path):
    rows = []
    for i, split in enumerate(["train", "val"]):
        img, _ = render_parcel(20 + i, grade=0, size=64)
        path = tmp_path / f"base{i}.jpg"
        img.save(path)
        rows.append(Row(path, None, 0, f"damaged-intact-boxes:g{i}", "damaged-intact-boxes", split))
    damaged_path = tmp_path / "damaged.jpg"
    render_parcel(30, grade=3, size=64)[0].save(damaged_path)
    rows.append(Row(damaged_path, None, 1, "damaged-intact-boxes:g9", "damaged-intact-boxes", "train"))

    out = generate_composites(rows, tmp_path / "comp", per_image=2, seed=1)
    assert len(out) == 4  # damaged base rows are skipped
    by_group = {r.group: r.split for r in rows}
    for r in out:
        assert r.source == "composite"
        assert r.grade in (1, 2, 3)
        assert r.damaged == 1
        assert r.split == by_group[r.group]
        assert r.path.exists()
    assert {r.grade for r in out} >= {1, 2}
    assert read_manifest(write_manifest(tmp_path / "m.csv", out)) == out


def test_cli_writes_manifest_and_preview(tmp_path, monkeypatch):
    monkeypatch.setenv("CLAIMLANE_BOXES_DIR", str(tmp_path / "missing"))
    out = tmp_path / "out"
    preview = tmp_path / "preview.png"
    rc = main(
        ["--out", str(out), "--n", "3", "--size", "48", "--composites-from-shared", "--preview", str(preview)]
    )
    assert rc == 0
    rows = read_manifest(out / "manifest.csv")
    assert len(rows) == 3
    assert preview.exists()


def test_parallel_rendering_writes_the_same_images_as_one_process(tmp_path):
    one = generate(tmp_path / "one", 6, seed=4, size=48)
    two = generate(tmp_path / "two", 6, seed=4, size=48, workers=2)
    assert [(r.grade, r.group, r.path.name) for r in one] == [(r.grade, r.group, r.path.name) for r in two]
    for a, b in zip(one, two, strict=True):
        assert a.path.read_bytes() == b.path.read_bytes()
