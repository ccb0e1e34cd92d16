from pathlib import Path

import pytest

from training.manifest import (
    Row,
    read_manifest,
    shared_dataset_dir,
    shared_dataset_rows,
    split_for_group,
    write_manifest,
)


def test_manifest_round_trip_with_relative_paths(tmp_path):
    rows = [
        Row(tmp_path / "img" / "a.jpg", 2, 1, "g1", "synthetic", "train"),
        Row(tmp_path / "img" / "b.jpg", None, 0, "g2", "damaged-intact-boxes", "val"),
        Row(Path("/elsewhere/c.jpg"), None, 1, "g3", "review", "test"),
    ]
    path = write_manifest(tmp_path / "m.csv", rows)
    assert "img/a.jpg" in path.read_text()
    assert read_manifest(path) == rows


def test_grade_and_label_must_agree():
    with pytest.raises(ValueError):
        Row(Path("x.jpg"), 0, 1, "g", "s", "train")
    with pytest.raises(ValueError):
        Row(Path("x.jpg"), 4, 1, "g", "s", "train")


def test_split_is_by_group_and_deterministic():
    assert split_for_group("g42") == split_for_group("g42")
    splits = [split_for_group(f"g{i}") for i in range(4000)]
    assert 0.1 < splits.count("test") / 4000 < 0.2
    assert 0.1 < splits.count("val") / 4000 < 0.2


@pytest.mark.skipif(
    not (shared_dataset_dir() / "labels.csv").exists(),
    reason="shared dataset absent (set CLAIMLANE_BOXES_DIR)",
)
def test_shared_dataset_rows_keep_groups_in_one_split_and_drop_conflicts():
    rows = shared_dataset_rows()
    assert len(rows) == 1580 - 15
    by_group: dict[str, set[str]] = {}
    for r in rows:
        by_group.setdefault(r.group, set()).add(r.split)
    assert all(len(s) == 1 for s in by_group.values())
