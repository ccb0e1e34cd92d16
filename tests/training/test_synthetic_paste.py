"""Real studio boxes on rendered floors (`training/synthetic/paste.py`)."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from training.manifest import Row
from training.synthetic.paste import SOURCE, cut_out, generate_pastes, paste_on_floor


def _studio_box(path, fill=(176, 132, 86)):
    img = Image.new("RGB", (200, 200), (250, 250, 250))
    draw = ImageDraw.Draw(img)
    draw.rectangle((50, 60, 150, 160), fill=fill)
    draw.rectangle((90, 60, 110, 160), fill=(200, 170, 120))  # tape
    img.save(path)
    return path


def _cluttered(path):
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (200, 200, 3), dtype=np.uint8)).save(path)
    return path


def test_cut_out_finds_the_box_on_a_plain_backdrop_and_refuses_a_busy_photo(tmp_path):
    with Image.open(_studio_box(tmp_path / "box.png")) as im:
        cut = cut_out(im)
    assert cut is not None
    (x0, y0, x1, y1), alpha = cut
    assert abs(x0 - 50) <= 6 and abs(y1 - 161) <= 6
    assert alpha.shape == (y1 - y0, x1 - x0)
    with Image.open(_cluttered(tmp_path / "busy.png")) as im:
        assert cut_out(im) is None


def test_the_scene_is_a_function_of_the_seed(tmp_path):
    with Image.open(_studio_box(tmp_path / "box.png")) as im:
        base = im.convert("RGB")
    cut = cut_out(base)
    a, b, c = (np.asarray(paste_on_floor(base, cut, s, size=96)) for s in (5, 5, 6))
    assert a.shape == (96, 96, 3)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_generate_pastes_gives_an_intact_and_a_damaged_copy_with_the_base_group_and_split(tmp_path):
    rows = [
        Row(_studio_box(tmp_path / "a.png"), None, 0, "dib:1", "damaged-intact-boxes", "val"),
        Row(
            _studio_box(tmp_path / "b.png", (230, 40, 60)), None, 0, "dib:2", "damaged-intact-boxes", "train"
        ),
        Row(_cluttered(tmp_path / "c.png"), None, 0, "dib:3", "damaged-intact-boxes", "train"),
        Row(_studio_box(tmp_path / "d.png"), None, 1, "dib:4", "damaged-intact-boxes", "train"),
    ]
    out = generate_pastes(rows, tmp_path / "out", seed=2, size=96)
    assert [(r.group, r.split, r.damaged) for r in out] == [
        ("dib:1", "val", 0),
        ("dib:1", "val", 1),
        ("dib:2", "train", 0),
        ("dib:2", "train", 1),
    ]
    assert {r.source for r in out} == {SOURCE}
    assert [r.grade for r in out] == [0, 1, 0, 2]
    intact, damaged = (np.asarray(Image.open(r.path), dtype=np.int16) for r in out[:2])
    assert np.abs(intact - damaged).mean() > 0.5  # the same scene, with damage on the box
