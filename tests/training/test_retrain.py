"""`retrain --quick` from a registered champion with a few adjuster grades: a new challenger whose
training started from the champion and saw the reviewed photos; the champion stays."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path

import pytest

from config.settings import Settings
from services.context import Services, build_services
from tests.training.test_reviewed_export import T0, Seeded, add_claim, decide, make_users, parcel_jpeg
from training.config import load_config
from training.export import export_version
from training.manifest import read_manifest
from training.networks import build_network
from training.retrain import retrain, version_name

CHAMPION = "champion-0.1"
ARCH = "mobilenet_v3_small"  # small and fast on a CPU; the champion's architecture is what retrains

pytestmark = pytest.mark.slow  # a real training run (seconds to a minute)


@pytest.fixture
def services(tmp_path: Path, tiny_onnx_model: Path):
    services = build_services(Settings(data_dir=tmp_path / "data", model_path=tiny_onnx_model))
    yield services
    services.close()


@pytest.fixture
def champion(services: Services, tmp_path: Path) -> Path:
    """A real (untrained) network exported as a version with a checkpoint.pt, registered as champion."""
    cfg = load_config("training/configs/tiny.toml")
    cfg.model.arch = ARCH
    cfg.export.version = CHAMPION
    version_dir = export_version(
        build_network(ARCH, pretrained=False).eval(), 1.0, cfg, tmp_path / "champion"
    )
    services.registry.register(version_dir, actor="test")
    services.registry.set_alias("champion", CHAMPION, actor="test", reason="test champion")
    return version_dir


def test_quick_retrain_registers_a_challenger_fine_tuned_from_the_champion(
    services: Services, champion: Path, tmp_path: Path
) -> None:
    customer, adjuster = make_users(services)
    seeded = Seeded(customer, adjuster)
    for i in range(4):
        claim = add_claim(services, seeded, [parcel_jpeg(200 + i)])
        decide(services, seeded, claim, T0 + timedelta(hours=i), {1: i % 4})

    run_dir = tmp_path / "run"
    started = time.monotonic()
    version = retrain(services, quick=True, out_dir=run_dir, cache_dir=tmp_path / "cache")
    print(f"quick retrain: {time.monotonic() - started:.1f} s")

    assert version == version_name(ARCH, 1)
    registry = services.registry
    assert registry.alias("challenger") == version
    assert registry.alias("champion") == CHAMPION
    assert registry.info(version).parent == CHAMPION

    version_dir = run_dir / "export" / version
    training = json.loads((version_dir / "training.json").read_text())
    assert training["parent"] == CHAMPION and training["retrain"]["started_from"] == "champion"
    assert training["init_from"]["version"] == CHAMPION
    assert training["config"]["model"]["init_checkpoint"].endswith("checkpoint.pt")
    assert training["config"]["data"]["extra_manifests"] == [str(run_dir / "reviewed" / "manifest.csv")]
    assert training["retrain"]["reviewed"]["photos"] == 4
    assert (registry.fetch(version) / "training.json").read_text() == (
        version_dir / "training.json"
    ).read_text()

    reviewed = [r for r in read_manifest(run_dir / "manifest.csv") if r.source == "review"]
    assert len(reviewed) == 4 and sorted(r.grade for r in reviewed) == [0, 1, 2, 3]
    assert all(r.path.is_relative_to(run_dir / "reviewed" / "images") for r in reviewed)
