"""Explicit training configuration, read from a TOML file (`python -m training.train --config FILE`).

Every knob lives here with its default, so a run is reproducible from its config file alone; the
resolved config is written beside the run's checkpoints.
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any


@dataclass
class ModelConfig:
    arch: str = "efficientnet_lite0"
    pretrained: bool = True
    freeze_blocks: int = 3  # stem + first N MBConv blocks stay at their ImageNet values
    dropout: float = 0.2
    # A version's checkpoint.pt to start from (fine-tuning the champion keeps what it learned and
    # spends the run on the new data); empty: ImageNet weights (`pretrained`) or from scratch.
    init_checkpoint: str = ""


@dataclass
class DataConfig:
    shared: bool = True  # the damaged-intact-boxes photos (binary labels), split by group
    shared_limit: int = 0  # 0 = all; tests use a few
    synthetic_train: int = 4000
    synthetic_val: int = 400
    synthetic_test: int = 400
    synthetic_seed: int = 1
    synthetic_size: int = 256
    composites_per_intact: int = 1  # graded damage painted onto real intact photos
    # Real intact plain-backdrop boxes cut out and set on rendered floors, intact and damaged
    # (`training/synthetic/paste.py`)
    pastes: bool = False
    # Path-traced 3D parcels from Blender (`training/synthetic/render3d.py`, source `render`): how many
    # per split (0 = none; a run that asks for them needs Blender) and Cycles samples per pixel.
    renders_train: int = 0
    renders_val: int = 0
    renders_test: int = 0
    render_samples: int = 16
    holdout_list: str = (
        "training/data/brown_intact_holdout.csv"  # reported apart (test split); see model card
    )
    extra_manifests: list[str] = field(default_factory=list)  # e.g. exported reviewed claims
    # Datasets whose training photos are re-weighted so that, within cells of look-alike photos
    # (how much kraft board, plain backdrop or not), intact and damaged weigh the same
    # (`training/balance.py`); empty: every photo drawn once per epoch.
    balance_sources: list[str] = field(default_factory=list)
    cache_dir: str = "runs/data"  # generated images are reused across runs with the same seeds
    workers: int = 0  # processes rendering synthetic parcels; 0 = one per CPU core (same images)


@dataclass
class TrainConfig:
    epochs: int = 8
    batch_size: int = 32
    lr: float = 1e-3
    backbone_lr_scale: float = 0.3  # pretrained layers move slower than the new head
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    num_workers: int = 1
    threads: int = 2
    max_steps: int = 0  # 0 = no cap; tests cap steps to stay in seconds


@dataclass
class ExportConfig:
    version: str = ""  # empty: "<arch>-<date>"
    opset: int = 18


@dataclass
class RunConfig:
    name: str = "starter"
    seed: int = 0
    out_dir: str = "runs/starter"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    export: ExportConfig = field(default_factory=ExportConfig)


def _build(cls: type, values: dict[str, Any]) -> Any:
    known = {f.name: f for f in fields(cls)}
    unknown = set(values) - set(known)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} keys: {sorted(unknown)}")
    kwargs = {}
    for name, value in values.items():
        factory = known[name].default_factory
        default = factory() if callable(factory) else None
        kwargs[name] = _build(type(default), value) if is_dataclass(default) else value
    return cls(**kwargs)


def load_config(path: str | Path | None = None, **overrides: Any) -> RunConfig:
    values: dict[str, Any] = {}
    if path is not None:
        with open(path, "rb") as fh:
            values = tomllib.load(fh)
    for key, value in overrides.items():
        values[key] = value
    return _build(RunConfig, values)


def config_dict(cfg: RunConfig) -> dict[str, Any]:
    return asdict(cfg)
