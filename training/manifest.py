"""The dataset manifest: one CSV format for every source of labelled photos.

Columns: `path,grade,damaged,group,source,split`
- `path`: the image, relative to the manifest's folder (or absolute).
- `grade`: 0-3 when the photo is graded (synthetic photos, adjusters' decisions), empty otherwise.
- `damaged`: 0/1, the binary label; for graded rows it is `grade >= 1`.
- `group`: near-duplicates share a group; splits are made by group, never by file.
- `source`: where the row came from (e.g. `damaged-intact-boxes`, `synthetic`, `composite`, `review`).
- `split`: `train`, `val` or `test`.

The review loop exports this same format, so every trainer and evaluator reads one thing.
"""

from __future__ import annotations

import csv
import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

FIELDS = ("path", "grade", "damaged", "group", "source", "split")
SPLITS = ("train", "val", "test")
SHARED_DATASET_ENV = "CLAIMLANE_BOXES_DIR"
SHARED_DATASET_DEFAULT = (
    Path(__file__).resolve().parent.parent.parent / "shared/datasets/damaged-intact-boxes"
)
SHARED_SOURCE = "damaged-intact-boxes"


@dataclass(frozen=True)
class Row:
    path: Path
    grade: int | None
    damaged: int
    group: str
    source: str
    split: str

    def __post_init__(self) -> None:
        if self.grade is not None and not 0 <= self.grade <= 3:
            raise ValueError(f"grade must be 0-3, got {self.grade}")
        if self.damaged not in (0, 1):
            raise ValueError(f"damaged must be 0 or 1, got {self.damaged}")
        if self.grade is not None and self.damaged != int(self.grade >= 1):
            raise ValueError(f"{self.path}: damaged={self.damaged} contradicts grade={self.grade}")
        if self.split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {self.split!r}")


def read_manifest(path: str | os.PathLike[str]) -> list[Row]:
    """Read a manifest; relative image paths are resolved against the manifest's folder."""
    path = Path(path)
    base = path.parent
    rows = []
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        missing = set(FIELDS) - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path}: missing columns {sorted(missing)}")
        for record in reader:
            image = Path(record["path"])
            rows.append(
                Row(
                    path=image if image.is_absolute() else base / image,
                    grade=int(record["grade"]) if record["grade"] not in ("", None) else None,
                    damaged=int(record["damaged"]),
                    group=record["group"],
                    source=record["source"],
                    split=record["split"],
                )
            )
    return rows


def write_manifest(path: str | os.PathLike[str], rows: Iterable[Row]) -> Path:
    """Write rows; image paths under the manifest's folder are stored relative to it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    base = path.parent.resolve()
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(FIELDS)
        for row in rows:
            image = Path(row.path).resolve()
            try:
                shown = image.relative_to(base).as_posix()
            except ValueError:
                shown = str(image)
            grade = "" if row.grade is None else str(row.grade)
            writer.writerow([shown, grade, row.damaged, row.group, row.source, row.split])
    return path


def split_for_group(group: str, *, val: float = 0.15, test: float = 0.15, salt: str = "claimlane") -> str:
    """Deterministic split by group: every near-duplicate of a photo lands in the same split."""
    bucket = int.from_bytes(hashlib.sha256(f"{salt}:{group}".encode()).digest()[:8], "big") / 2**64
    if bucket < test:
        return "test"
    if bucket < test + val:
        return "val"
    return "train"


def shared_dataset_dir() -> Path:
    return Path(os.environ.get(SHARED_DATASET_ENV, SHARED_DATASET_DEFAULT))


def shared_dataset_rows(root: str | os.PathLike[str] | None = None) -> list[Row]:
    """Rows for `damaged-intact-boxes`: binary labels, split by group, label conflicts dropped.

    The 15 photos that appear with both labels are dropped: they would teach noise and, worse,
    make a score depend on which copy landed in which split.
    """
    root = Path(root) if root is not None else shared_dataset_dir()
    rows = []
    with (root / "labels.csv").open(newline="") as fh:
        for record in csv.DictReader(fh):
            if record["label_conflict"] == "yes":
                continue
            group = f"{SHARED_SOURCE}:{record['group']}"
            rows.append(
                Row(
                    path=root / record["file"],
                    grade=None,
                    damaged=int(record["label"] == "damaged"),
                    group=group,
                    source=SHARED_SOURCE,
                    split=split_for_group(group),
                )
            )
    return rows
