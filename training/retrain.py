"""Retrain on the adjusters' grades: `claimlane model retrain [--quick] [--from champion|imagenet]`.

1. Export the reviewed claims (`training.reviewed`) into `<run>/reviewed/`.
2. Configure the run: `training/configs/starter.toml` (or `tiny.toml` with `--quick`: head-only
   training on 96 synthetic images, well under a minute on a CPU) plus the reviewed manifest as an
   extra manifest, in a fresh run folder (`runs/retrain/<version>/`), version `<arch>-<date>-r<N>`.
3. Start from the champion's weights (its `checkpoint.pt`, fetched from the registry): fine-tuning
   keeps what the champion learned and spends the run on the new labels. `--from imagenet`, or no
   champion (or one without a checkpoint), starts from ImageNet as the first model did.
4. Train, calibrate, export and evaluate (`training.train.run`, with its progress bars).
5. Register the new version with the champion as parent, as challenger: it runs in shadow next to
   the champion and is promoted, or not, by people (`claimlane model promote`). The champion is
   never changed here.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch

from training.config import RunConfig, load_config
from training.export import write_checksums
from training.reviewed import export_reviewed

if TYPE_CHECKING:
    from services.context import Services

CONFIGS = Path(__file__).resolve().parent / "configs"
RUNS = Path("runs/retrain")
ACTOR = "retrain"
Base = Literal["champion", "imagenet"]


def version_name(arch: str, n: int, day: str | None = None) -> str:
    return f"{arch.replace('_', '')}-{day or time.strftime('%Y.%m.%d')}-r{n}"


def _next_version(services: Services, arch: str, runs: Path) -> str:
    """`<arch>-<date>-r<N>` with the first N free both in the registry and among local run folders."""
    n = 1
    while services.registry.exists(version_name(arch, n)) or (runs / version_name(arch, n)).exists():
        n += 1
    return version_name(arch, n)


def _champion_checkpoint(services: Services) -> tuple[str | None, Path | None, str | None]:
    """(champion version, its checkpoint.pt, its architecture); the last two None without one."""
    champion = services.registry.alias("champion")
    if champion is None:
        return None, None, None
    checkpoint = services.registry.fetch(champion) / "checkpoint.pt"
    if not checkpoint.is_file():
        return champion, None, None
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    if state.get("format") == "grading-v2":
        # A v2 champion (training.grading) stores heads on a frozen ImageNet backbone, not a network
        # this loop can fine-tune: it starts from ImageNet instead (and says so).
        print(f"champion {champion} is a v2 model (training.grading): its heads cannot seed this loop")
        return champion, None, None
    return champion, checkpoint, state.get("arch")


def _register(services: Services, version_dir: Path, version: str, parent: str | None) -> None:
    """Register the new version as challenger through the promotion service (its events, its gate)."""
    from services.promotion import register

    register(services, version_dir, actor=ACTOR, parent=parent)


def retrain_config(
    *, quick: bool, version: str, run_dir: Path, arch: str | None, init_checkpoint: Path | None
) -> RunConfig:
    cfg = load_config(CONFIGS / ("tiny.toml" if quick else "starter.toml"))
    cfg.name = f"retrain-{version}"
    cfg.out_dir = str(run_dir)
    cfg.export.version = version
    if arch:
        cfg.model.arch = arch
    cfg.model.init_checkpoint = str(init_checkpoint) if init_checkpoint else ""
    return cfg


def retrain(
    services: Services,
    *,
    quick: bool = False,
    base: Base = "champion",
    out_dir: Path | None = None,
    cache_dir: str | Path | None = None,
) -> str:
    """Retrain on the reviewed claims, register the result as challenger; returns its version.

    `out_dir`: the run folder (must be new or empty; default `runs/retrain/<version>`).
    `cache_dir`: where generated training images are cached (default: the config's, `runs/data`).
    """
    if base not in ("champion", "imagenet"):
        raise ValueError(f"base must be 'champion' or 'imagenet', got {base!r}")
    from training.train import run

    champion, checkpoint, arch = _champion_checkpoint(services)
    if base == "imagenet" or checkpoint is None:
        if base == "champion":
            print(f"no champion checkpoint to start from (champion: {champion}); starting from ImageNet")
        checkpoint, arch = None, None
    arch = arch or load_config(CONFIGS / ("tiny.toml" if quick else "starter.toml")).model.arch

    version = _next_version(services, arch, RUNS)
    run_dir = Path(out_dir) if out_dir is not None else RUNS / version
    if run_dir.exists() and any(run_dir.iterdir()):
        raise ValueError(f"{run_dir} is not empty: a retraining run needs a fresh folder")

    reviewed = export_reviewed(services, run_dir / "reviewed")
    print(
        f"reviewed claims: {reviewed['photos']} graded photos from {reviewed['claims']} claims "
        f"({reviewed['splits']})"
    )
    cfg = retrain_config(quick=quick, version=version, run_dir=run_dir, arch=arch, init_checkpoint=checkpoint)
    if reviewed["photos"]:
        cfg.data.extra_manifests = [*cfg.data.extra_manifests, reviewed["manifest"]]
    if cache_dir is not None:
        cfg.data.cache_dir = str(cache_dir)
    print(
        f"retraining {version} from {'champion ' + str(champion) if checkpoint else 'ImageNet'} in {run_dir}"
    )

    version_dir = run(cfg)
    _record_lineage(version_dir, champion, base if checkpoint else "imagenet", reviewed)
    _register(services, version_dir, version, champion)
    print(f"registered {version} as challenger (parent {champion}); the champion is unchanged")
    return version


def _record_lineage(
    version_dir: Path, parent: str | None, started_from: str, reviewed: dict[str, Any]
) -> None:
    """Add the parent (the champion it challenges) and the reviewed data to training.json."""
    path = version_dir / "training.json"
    training = json.loads(path.read_text())
    training["parent"] = parent
    training["retrain"] = {
        "parent": parent,
        "started_from": started_from,
        "reviewed": {k: reviewed[k] for k in ("exported_at", "photos", "claims", "groups", "splits")},
    }
    path.write_text(json.dumps(training, indent=2, default=str))
    write_checksums(version_dir)
