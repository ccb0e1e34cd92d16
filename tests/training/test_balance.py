"""Re-weighting the real photos within look-alike cells (`training/balance.py`)."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from training.balance import WEIGHT_RANGE, balanced_weights, nuisance_cell, sampling_weights
from training.manifest import Row

KRAFT = (176, 132, 86)


def _studio_kraft_box(path):
    img = Image.new("RGB", (160, 160), (245, 245, 245))
    ImageDraw.Draw(img).rectangle((30, 30, 130, 130), fill=KRAFT)
    img.save(path)
    return path


def _busy_white_scene(path):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(150, 256, (160, 160, 3), dtype=np.uint8)).save(path)
    return path


def test_cells_tell_kraft_on_a_plain_backdrop_from_a_busy_pale_scene(tmp_path):
    assert nuisance_cell(_studio_kraft_box(tmp_path / "a.png")) == (2, 1)
    assert nuisance_cell(_busy_white_scene(tmp_path / "b.png")) == (0, 0)


def test_both_labels_weigh_the_same_in_each_cell_and_the_cell_keeps_its_size():
    cells = [(2, 0)] * 8 + [(0, 1)] * 4
    labels = [1] * 6 + [0] * 2 + [0] * 3 + [1]
    w = balanced_weights(labels, cells)
    for cell in set(cells):
        idx = [i for i, c in enumerate(cells) if c == cell]
        damaged = sum(w[i] for i in idx if labels[i])
        intact = sum(w[i] for i in idx if not labels[i])
        assert np.isclose(damaged, intact)
        assert np.isclose(damaged + intact, len(idx))
    assert w[6] > 1 > w[0]  # the rare intact photos of a mostly-damaged cell are drawn more often


def test_weights_are_capped_and_cells_without_both_labels_or_rows_outside_keep_one():
    cells = [(1, 1)] * 40 + [(1, 1)] + [(2, 2)] * 3 + [None, None]
    labels = [1] * 40 + [0] + [1, 1, 1] + [0, 1]
    w = balanced_weights(labels, cells)
    assert w[40] == WEIGHT_RANGE[1]
    assert np.all(w[41:] == 1.0)


def test_sampling_weights_touch_only_the_named_datasets(tmp_path):
    box, scene = _studio_kraft_box(tmp_path / "a.png"), _busy_white_scene(tmp_path / "b.png")
    rows = [
        Row(box, None, 1, "g1", "damaged-intact-boxes", "train"),
        Row(box, None, 1, "g2", "damaged-intact-boxes", "train"),
        Row(box, None, 0, "g3", "damaged-intact-boxes:brown-intact", "train"),
        Row(scene, 0, 0, "g4", "synthetic", "train"),
    ]
    w, report = sampling_weights(rows, ["damaged-intact-boxes"])
    assert w.tolist() == [0.75, 0.75, 1.5, 1.0]
    assert report == {"kraft2-plain1": {"photos": 3, "damaged_share": 0.667, "damaged_share_balanced": 0.5}}
