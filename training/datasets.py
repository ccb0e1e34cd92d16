"""Datasets: assemble the training manifest from every source, and read it as torch tensors.

Sources of one run's manifest:
- `damaged-intact-boxes`: real photos with binary labels, split by group. Its intact brown
  cardboard boxes (tagged in `training/data/brown_intact_holdout.csv`) get the source
  `damaged-intact-boxes:brown-intact` so every report shows the box-type bias on its own line.
- `synthetic`: procedural parcels with all four grades (train / val / test from disjoint seeds).
- `composite`: graded damage painted onto real intact photos (their group and split kept), so
  "retail box" stops meaning "intact".
- `paste`: real intact studio-shot boxes cut out and set on rendered floors, once intact and once
  damaged (group and split kept), so "phone photo of a floor" stops meaning "damaged".
- extra manifests (the review loop's exports) in the same format.
"""

from __future__ import annotations

import csv
import dataclasses
import os
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from models.preprocessing import load_image
from training.config import DataConfig
from training.manifest import Row, read_manifest, shared_dataset_dir, shared_dataset_rows, write_manifest

BROWN_INTACT_SOURCE = "damaged-intact-boxes:brown-intact"


class ManifestDataset(Dataset):
    """Rows -> (image tensor, grade or -1, damaged). Decoding is the serving decoder."""

    def __init__(self, rows: Sequence[Row], transform: Callable) -> None:
        self.rows = list(rows)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, int]:
        row = self.rows[i]
        image = self.transform(load_image(row.path))
        return torch.from_numpy(np.asarray(image)), -1 if row.grade is None else row.grade, row.damaged


def tagged_files(list_path: str | Path) -> set[str]:
    path = Path(list_path)
    if not path.exists():
        return set()
    with path.open() as fh:
        lines = [line.strip() for line in fh if line.strip() and not line.startswith("#")]
    return {row["file"] for row in csv.DictReader(lines)}


def shared_rows(cfg: DataConfig) -> list[Row]:
    root = shared_dataset_dir()
    if not (root / "labels.csv").exists():
        return []
    brown = tagged_files(cfg.holdout_list)
    rows = []
    for row in shared_dataset_rows(root):
        if row.path.relative_to(root).as_posix() in brown:
            row = dataclasses.replace(row, source=BROWN_INTACT_SOURCE)
        rows.append(row)
    if cfg.shared_limit:
        rng = np.random.default_rng(0)
        rows = [
            rows[i]
            for i in sorted(rng.choice(len(rows), size=min(cfg.shared_limit, len(rows)), replace=False))
        ]
    return rows


def build_manifest(cfg: DataConfig, out: str | Path) -> Path:
    """Write the run's manifest; generated images are cached by seed and size in `cfg.cache_dir`."""
    from training.synthetic import procedural as synthetic

    cache = Path(cfg.cache_dir)
    rows: list[Row] = []
    base = shared_rows(cfg) if cfg.shared else []
    rows += base
    workers = cfg.workers or os.cpu_count() or 1

    def procedural(d: Path, n: int, seed: int, split: str) -> list[Row]:
        return synthetic.generate(
            d, n, seed=seed, split=split, size=cfg.synthetic_size, progress=True, workers=workers
        )

    def rendered(d: Path, n: int, seed: int, split: str) -> list[Row]:
        from training.synthetic import render3d as synthetic_3d

        return synthetic_3d.generate_renders(
            d,
            n,
            seed=seed,
            split=split,
            size=cfg.synthetic_size,
            samples=cfg.render_samples,
            workers=workers,
            progress=True,
        )

    # One seed per generator and split; the 3D renders' seeds sit apart from the procedural ones.
    generators = (
        ("synthetic", 0, "", procedural, (cfg.synthetic_train, cfg.synthetic_val, cfg.synthetic_test)),
        (
            "render",
            5,
            f"-spp{cfg.render_samples}",
            rendered,
            (cfg.renders_train, cfg.renders_val, cfg.renders_test),
        ),
    )
    for prefix, seed_offset, suffix, make, counts in generators:
        for offset, (split, n) in enumerate(zip(("train", "val", "test"), counts, strict=True)):
            if n <= 0:
                continue
            seed = cfg.synthetic_seed * 10 + offset + seed_offset
            rows += _cached(
                cache / f"{prefix}-s{seed}-n{n}-{cfg.synthetic_size}{suffix}",
                partial(_generate, make, n, seed, split),
            )
    intact = [r for r in base if r.damaged == 0]  # the photos composites and pastes start from
    if cfg.composites_per_intact > 0 and base:
        rows += _cached(
            cache / f"composite-s{cfg.synthetic_seed}-k{cfg.composites_per_intact}-n{len(intact)}",
            lambda d: synthetic.generate_composites(
                intact, d, per_image=cfg.composites_per_intact, seed=cfg.synthetic_seed, progress=True
            ),
        )
    if cfg.pastes and base:
        from training.synthetic import paste as synthetic_paste

        rows += _cached(
            cache / f"paste-s{cfg.synthetic_seed}-n{len(intact)}-{cfg.synthetic_size}",
            lambda d: synthetic_paste.generate_pastes(
                intact, d, seed=cfg.synthetic_seed, size=cfg.synthetic_size, progress=True
            ),
        )
    for extra in cfg.extra_manifests:
        rows += read_manifest(extra)
    return write_manifest(out, rows)


def _cached(folder: Path, make: Callable[[Path], list[Row]]) -> list[Row]:
    manifest = folder / "manifest.csv"
    if manifest.exists():
        return read_manifest(manifest)
    tmp = folder.with_name(folder.name + ".partial")
    tmp.mkdir(parents=True, exist_ok=True)
    rows = make(tmp)
    write_manifest(tmp / "manifest.csv", rows)
    tmp.rename(folder)  # a half-generated folder is never mistaken for a finished one
    return read_manifest(manifest)


def _generate(
    make: Callable[[Path, int, int, str], list[Row]], n: int, seed: int, split: str, out: Path
) -> list[Row]:
    """One generator's split into `out` (what `_cached` builds when the cache has none)."""
    return make(out, n, seed, split)
