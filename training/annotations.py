"""By-eye annotations of real photos: grade, scene and quality, for the shared set and fetched sources.

Files (committed; the images never are):
- `training/data/annotations.csv`: every photo of `../shared/datasets/damaged-intact-boxes/`, keyed by
  its file name (`images/NNNN.jpg`) and SHA-256. Protocol: `training/data/annotations.md`.
- `training/data/annotations_second.csv`: a random 200 annotated a second time, independently, for the
  agreement figures in the dataset card; `annotations.csv` holds the settled value (third look).
- `training/data/sources.csv`: the manifest of every other real photo (repository, commit, path,
  SHA-256, licence) with the same three fields; `python -m training.sources rebuild` restores the images.

Why three fields and not one label: the shared set's "damaged"/"intact" is far from a claim. Most of
its photos are not parcels at all (retail boxes, illustrations), so the grade alone would teach the
model to grade an infographic; `scene` and `quality` train the photo gate and let every figure be
reported on the photos a customer would actually send (`scene == parcel`).
"""

from __future__ import annotations

import csv
import hashlib
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from training.manifest import SHARED_SOURCE, read_manifest, shared_dataset_dir, split_for_group

DATA_DIR = Path(__file__).resolve().parent / "data"
ANNOTATIONS = DATA_DIR / "annotations.csv"
ANNOTATIONS_SECOND = DATA_DIR / "annotations_second.csv"
SOURCES = DATA_DIR / "sources.csv"

SCENES = ("parcel", "product_box", "not_a_photo", "other")
QUALITIES = ("ok", "dark", "blurred", "too_far")
ANNOTATION_FIELDS = ("file", "sha256", "grade", "scene", "quality", "note")
SOURCE_FIELDS = (
    "source", "repository", "commit", "path", "sha256", "licence", "group", "grade", "scene", "quality",
)  # fmt: skip


@dataclass(frozen=True)
class Annotation:
    grade: int
    scene: str
    quality: str

    def __post_init__(self) -> None:
        if not 0 <= self.grade <= 3:
            raise ValueError(f"grade must be 0-3, got {self.grade}")
        if self.scene not in SCENES:
            raise ValueError(f"scene must be one of {SCENES}, got {self.scene!r}")
        if self.quality not in QUALITIES:
            raise ValueError(f"quality must be one of {QUALITIES}, got {self.quality!r}")

    @property
    def usable(self) -> bool:
        """What the photo gate learns: a judgeable photo of a parcel."""
        return self.scene == "parcel" and self.quality == "ok"


@dataclass(frozen=True)
class RealPhoto:
    """One annotated real photo, with the split of its group (the same rule as every manifest)."""

    path: Path
    annotation: Annotation
    group: str
    source: str
    split: str
    sha256: str


def _annotation(record: dict[str, str]) -> Annotation:
    return Annotation(int(record["grade"]), record["scene"].strip(), record["quality"].strip())


def read_annotations(path: str | os.PathLike[str] = ANNOTATIONS) -> dict[str, tuple[str, Annotation]]:
    """file -> (sha256, annotation)."""
    out: dict[str, tuple[str, Annotation]] = {}
    with Path(path).open(newline="") as fh:
        for record in csv.DictReader(fh):
            if record["file"] in out:
                raise ValueError(f"{path}: {record['file']} is annotated twice")
            out[record["file"]] = (record.get("sha256", ""), _annotation(record))
    return out


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def shared_photos(root: str | os.PathLike[str] | None = None, *, verify: bool = False) -> list[RealPhoto]:
    """The shared set's photos with their annotations, split by the shared set's groups.

    The split is `split_for_group` of the same group key as `training.manifest.shared_dataset_rows`,
    so the test split is the one every earlier model was kept away from.
    """
    root = Path(root) if root is not None else shared_dataset_dir()
    annotations = read_annotations()
    photos = []
    with (root / "labels.csv").open(newline="") as fh:
        for record in csv.DictReader(fh):
            sha, annotation = annotations[record["file"]]
            path = root / record["file"]
            if verify and sha256_file(path) != sha:
                raise ValueError(
                    f"{path}: SHA-256 differs from annotations.csv (another version of the set?)"
                )
            group = f"{SHARED_SOURCE}:{record['group']}"
            photos.append(RealPhoto(path, annotation, group, SHARED_SOURCE, split_for_group(group), sha))
    return photos


def read_sources(path: str | os.PathLike[str] = SOURCES) -> list[dict[str, str]]:
    with Path(path).open(newline="") as fh:
        return list(csv.DictReader(fh))


def source_photos(images_root: str | os.PathLike[str]) -> list[RealPhoto]:
    """Photos of the fetched sources, as rebuilt by `training.sources` under `images_root`.

    A missing file is skipped (the sources are optional extra data); a present file whose SHA-256
    differs is an error.
    """
    root = Path(images_root)
    photos = []
    for record in read_sources():
        path = (
            root
            / record["source"]
            / record["sha256"][:2]
            / f"{record['sha256']}{Path(record['path']).suffix}"
        )
        if not path.exists():
            continue
        group = f"{record['source']}:{record['group']}"
        photos.append(
            RealPhoto(
                path, _annotation(record), group, record["source"], split_for_group(group), record["sha256"]
            )
        )
    return photos


def reviewed_photos(export_dir: str | os.PathLike[str]) -> list[RealPhoto]:
    """The adjusters' graded photos of a `claimlane dataset export` folder (`training.reviewed`):
    real customer photos with a person's grade, the data the fast-lane bound needs more of.

    Each keeps the export's group (a claim's photos and near-duplicates together) and its time
    split. An adjuster grades the photos of a claim as a parcel's, so they count as usable parcel
    photos (scene `parcel`, quality `ok`): an export does not say which photos the gate refused.
    One image filed with several claims is one photo; if adjusters graded it differently, it is left
    out (a label nobody agrees on teaches nothing). Rows without a grade are skipped; a missing image
    is an error (an export is complete).
    """
    root = Path(export_dir)
    by_image: dict[Path, list] = {}
    for row in read_manifest(root / "manifest.csv"):
        if row.grade is None:
            continue
        if not row.path.exists():
            raise FileNotFoundError(f"{root}: {row.path} is in the manifest but missing")
        by_image.setdefault(row.path, []).append(row)
    photos = []
    for path, rows in by_image.items():
        if len({r.grade for r in rows}) > 1:
            continue
        row = rows[0]
        sha256 = path.stem if len(path.stem) == 64 else hashlib.sha256(path.read_bytes()).hexdigest()
        photos.append(
            RealPhoto(path, Annotation(row.grade, "parcel", "ok"), row.group, "review", row.split, sha256)
        )
    return photos


# --------------------------------------------------------------------------------------------------
# Agreement between two annotators


def agreement(first: dict[str, Annotation], second: dict[str, Annotation]) -> dict[str, object]:
    """Cohen's kappa for scene and quality, quadratic weighted kappa for grade, on the common files."""
    from sklearn.metrics import cohen_kappa_score

    files = sorted(set(first) & set(second))
    if not files:
        raise ValueError("no file annotated twice")

    def pair(field: str) -> tuple[list[object], list[object]]:
        return [getattr(first[f], field) for f in files], [getattr(second[f], field) for f in files]

    g1, g2 = pair("grade")
    s1, s2 = pair("scene")
    q1, q2 = pair("quality")
    parcel = [i for i, f in enumerate(files) if first[f].scene == "parcel" and second[f].scene == "parcel"]
    return {
        "n": len(files),
        "grade_qwk": float(cohen_kappa_score(g1, g2, weights="quadratic")),
        "grade_exact": sum(a == b for a, b in zip(g1, g2, strict=True)) / len(files),
        "grade_qwk_parcels": float(
            cohen_kappa_score([g1[i] for i in parcel], [g2[i] for i in parcel], weights="quadratic")
        )
        if len(parcel) > 1
        else None,
        "n_parcels_both": len(parcel),
        "scene_kappa": float(cohen_kappa_score(s1, s2)),
        "scene_exact": sum(a == b for a, b in zip(s1, s2, strict=True)) / len(files),
        "quality_kappa": float(cohen_kappa_score(q1, q2)),
        "usable_kappa": float(
            cohen_kappa_score([first[f].usable for f in files], [second[f].usable for f in files])
        ),
    }


def counts(photos: Iterable[RealPhoto]) -> dict[str, Counter[object]]:
    photos = list(photos)
    return {
        "scene": Counter(p.annotation.scene for p in photos),
        "quality": Counter(p.annotation.quality for p in photos),
        "grade": Counter(p.annotation.grade for p in photos),
        "parcel_grade": Counter(p.annotation.grade for p in photos if p.annotation.scene == "parcel"),
        "split": Counter(p.split for p in photos),
    }


def write_annotations(path: Path, rows: Sequence[dict[str, object]]) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=ANNOTATION_FIELDS)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row.get(k, "") for k in ANNOTATION_FIELDS})
