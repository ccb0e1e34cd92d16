"""The model registry on a local folder and on a real S3 server (SeaweedFS): registration never
moves an alias, fetch verifies every byte, alias history and rollback, bootstrap, the evaluation set."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from models.inference import DamageModel, load_model
from models.registry import (
    BOOTSTRAP_REASON,
    CHALLENGER,
    CHAMPION,
    Registry,
    RegistryChecksumError,
    RegistryError,
    VersionExists,
    VersionNotFound,
    read_checksums,
)
from storage.objects import LocalObjectStore, ObjectStore
from tests.models.gate_models import GateModels, photo_png, write_evalset


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    if request.param == "local":
        return LocalObjectStore(tmp_path / "objects")
    return request.getfixturevalue("s3_store")


@pytest.fixture
def registry(store: ObjectStore, tmp_path: Path) -> Registry:
    return Registry(store, cache_dir=tmp_path / "cache")


# --------------------------------------------------------------------------------------------------
# Registering


def test_register_records_the_version_and_never_moves_an_alias(
    registry: Registry, gate_models: GateModels
) -> None:
    info = registry.register(gate_models.good, actor="cli:alice")
    assert info.version == "good-1"
    assert info.registered_by == "cli:alice"
    assert info.parent is None
    assert info.train_manifest_sha256 == "ab" * 32  # from the ONNX metadata
    assert info.metrics["auroc"] == 0.97 and info.metrics["ece"] == 0.03
    assert set(info.files) == {
        "model.onnx",
        "calibration.json",
        "training.json",
        "metrics.json",
        "SHA256SUMS",
    }
    assert registry.aliases() == {CHAMPION: None, CHALLENGER: None}

    stored = json.loads(registry.store.get("registry/versions/good-1/version.json"))
    assert (
        stored["version"] == "good-1"
        and stored["files"]["model.onnx"]["sha256"] == info.files["model.onnx"]["sha256"]
    )
    assert (
        registry.store.get("registry/versions/good-1/model.onnx")
        == (gate_models.good / "model.onnx").read_bytes()
    )

    registry.set_alias(CHAMPION, "good-1", actor="t", reason="first")
    second = registry.register(gate_models.bad, parent="good-1", actor="cli:alice")
    assert second.parent == "good-1"
    assert registry.aliases() == {CHAMPION: "good-1", CHALLENGER: None}
    assert [v.version for v in registry.versions()] == ["good-1", "bad-3"]
    assert registry.info("bad-3") == second


def test_register_refuses_an_existing_version(registry: Registry, gate_models: GateModels) -> None:
    registry.register(gate_models.good, actor="a")
    with pytest.raises(VersionExists):
        registry.register(gate_models.good, actor="b")
    assert registry.info("good-1").registered_by == "a"


def test_register_verifies_checksums_before_uploading(
    registry: Registry, gate_models: GateModels, tmp_path: Path
) -> None:
    folder = shutil.copytree(gate_models.good, tmp_path / "tampered" / "good-1")
    (folder / "calibration.json").write_text('{"temperature": 9.0}')
    with pytest.raises(RegistryChecksumError, match="calibration.json"):
        registry.register(folder, actor="a")
    assert registry.store.list("registry/") == []

    (folder / "SHA256SUMS").unlink()
    with pytest.raises(RegistryChecksumError, match="SHA256SUMS"):
        registry.register(folder, actor="a")
    assert registry.store.list("registry/") == []


def test_register_refuses_unknown_parents_and_non_models(
    registry: Registry, gate_models: GateModels, tmp_path: Path
) -> None:
    with pytest.raises(VersionNotFound):
        registry.register(gate_models.good, parent="nope-0", actor="a")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RegistryError, match="model.onnx"):
        registry.register(tmp_path / "empty", actor="a")
    assert registry.versions() == []
    with pytest.raises(VersionNotFound):
        registry.info("good-1")


# --------------------------------------------------------------------------------------------------
# Fetching


def test_fetch_downloads_once_into_a_loadable_folder(registry: Registry, gate_models: GateModels) -> None:
    registry.register(gate_models.good, actor="a")
    folder = registry.fetch("good-1")
    assert folder == registry.cache_dir / "good-1"
    assert read_checksums((folder / "SHA256SUMS").read_text())["model.onnx"]
    model = DamageModel(folder)  # verifies SHA256SUMS itself
    assert model.version == "good-1"
    assert load_model(folder).version == "good-1"
    # Nothing left behind but the version folder.
    assert [p.name for p in registry.cache_dir.iterdir()] == ["good-1"]

    # Fetched once: a second call does not download again.
    gets: list[str] = []
    real_get = registry.store.get

    def counting_get(key: str) -> bytes:
        gets.append(key)
        return real_get(key)

    registry.store.get = counting_get  # type: ignore[method-assign]
    try:
        assert registry.fetch("good-1") == folder
    finally:
        del registry.store.get
    assert gets == ["registry/versions/good-1/version.json"]


def test_fetch_refuses_a_tampered_store_object(registry: Registry, gate_models: GateModels) -> None:
    registry.register(gate_models.good, actor="a")
    bad_bytes = (gate_models.bad / "model.onnx").read_bytes()
    registry.store.put("registry/versions/good-1/model.onnx", bad_bytes, "application/octet-stream")
    with pytest.raises(RegistryChecksumError, match="model.onnx"):
        registry.fetch("good-1")
    # Nothing half-downloaded is left in the cache.
    assert not (registry.cache_dir / "good-1").exists()
    assert [p for p in registry.cache_dir.iterdir()] == []


def test_fetch_replaces_a_damaged_cached_copy(registry: Registry, gate_models: GateModels) -> None:
    registry.register(gate_models.good, actor="a")
    folder = registry.fetch("good-1")
    (folder / "model.onnx").write_bytes(b"not a model")
    again = registry.fetch("good-1")
    assert again == folder
    assert (again / "model.onnx").read_bytes() == (gate_models.good / "model.onnx").read_bytes()


def test_fetch_unknown_version(registry: Registry) -> None:
    with pytest.raises(VersionNotFound):
        registry.fetch("missing-1")
    with pytest.raises(RegistryError):
        registry.fetch("../escape")


# --------------------------------------------------------------------------------------------------
# Aliases


def test_alias_history_and_rollback_target(
    registry: Registry, gate_models: GateModels, tmp_path: Path
) -> None:
    from tests.models.gate_models import write_version

    for folder in (gate_models.good, gate_models.ok, gate_models.bad):
        registry.register(folder, actor="a")
    extra = write_version(tmp_path / "more", "good-4", scale=25)
    registry.register(extra, actor="a")

    assert registry.rollback_target(CHAMPION) is None
    registry.set_alias(CHAMPION, "good-1", actor="system", reason=BOOTSTRAP_REASON)
    assert registry.rollback_target(CHAMPION) is None
    registry.set_alias(CHAMPION, "ok-2", actor="admin:1", reason="promote")
    registry.set_alias(CHAMPION, "bad-3", actor="admin:1", reason="override")
    assert registry.alias(CHAMPION) == "bad-3"
    assert registry.rollback_target(CHAMPION) == "ok-2"

    registry.set_alias(CHAMPION, "ok-2", actor="admin:1", reason="rollback", rollback=True)
    # A stack: the second rollback goes further back, not to the version just left.
    assert registry.rollback_target(CHAMPION) == "good-1"
    registry.set_alias(CHAMPION, "good-4", actor="admin:1", reason="promote")
    assert registry.rollback_target(CHAMPION) == "ok-2"

    history = registry.history(CHAMPION)
    assert [(c.seq, c.version, c.previous, c.rollback) for c in history] == [
        (1, "good-1", None, False),
        (2, "ok-2", "good-1", False),
        (3, "bad-3", "ok-2", False),
        (4, "ok-2", "bad-3", True),
        (5, "good-4", "ok-2", False),
    ]
    assert history[0].reason == BOOTSTRAP_REASON and history[1].by == "admin:1"
    record = registry.alias_record(CHAMPION)
    assert record is not None and set(record) == {"version", "updated_at", "by", "reason"}
    # The history is stored one object per change, zero-padded, in order.
    assert registry.store.list("registry/aliases/champion/history/")[0].endswith("/00000001.json")


def test_set_alias_checks_the_version_and_the_name(registry: Registry, gate_models: GateModels) -> None:
    with pytest.raises(VersionNotFound):
        registry.set_alias(CHAMPION, "good-1", actor="a", reason=None)
    registry.register(gate_models.good, actor="a")
    with pytest.raises(RegistryError, match="unknown alias"):
        registry.set_alias("king", "good-1", actor="a", reason=None)
    registry.set_alias(CHALLENGER, "good-1", actor="a", reason=None)
    registry.set_alias(CHALLENGER, None, actor="a", reason="cleared")
    assert registry.alias(CHALLENGER) is None
    assert [c.version for c in registry.history(CHALLENGER)] == ["good-1", None]


# --------------------------------------------------------------------------------------------------
# Bootstrap


def test_bootstrap_registers_the_bundled_model_as_champion(registry: Registry, tiny_onnx_model: Path) -> None:
    # The tiny model's folder has no SHA256SUMS: the bundled model is trusted, checksums computed.
    assert registry.bootstrap(tiny_onnx_model.parent) == "tiny-0.0.1"
    assert registry.alias(CHAMPION) == "tiny-0.0.1"
    [change] = registry.history(CHAMPION)
    assert change.reason == BOOTSTRAP_REASON and change.by == "system"
    assert "SHA256SUMS" in registry.info("tiny-0.0.1").files
    assert DamageModel(registry.fetch("tiny-0.0.1")).version == "tiny-0.0.1"
    # Again: nothing changes.
    assert registry.bootstrap(tiny_onnx_model.parent) == "tiny-0.0.1"
    assert len(registry.history(CHAMPION)) == 1


def test_bootstrap_picks_the_newest_folder_and_keeps_an_existing_champion(
    registry: Registry, gate_models: GateModels, tmp_path: Path
) -> None:
    weights = tmp_path / "weights"
    shutil.copytree(gate_models.good, weights / "good-1")
    shutil.copytree(gate_models.ok, weights / "ok-2")
    assert registry.bootstrap(weights, actor="system") == "ok-2"

    other = Registry(LocalObjectStore(tmp_path / "other"), cache_dir=tmp_path / "other-cache")
    other.register(gate_models.bad, actor="a")
    other.set_alias(CHAMPION, "bad-3", actor="a", reason="chosen")
    assert other.bootstrap(weights) == "bad-3"
    assert [v.version for v in other.versions()] == ["bad-3"]


def test_bootstrap_without_a_bundled_model(registry: Registry, tmp_path: Path) -> None:
    (tmp_path / "nothing").mkdir()
    assert registry.bootstrap(tmp_path / "nothing") is None
    assert registry.versions() == []


# --------------------------------------------------------------------------------------------------
# The fixed evaluation set


def test_evalset_round_trip(registry: Registry, tmp_path: Path) -> None:
    manifest = write_evalset(tmp_path / "evalset", per_grade=3, binary_only=2)
    assert registry.evalset_info() is None and registry.evalset_samples() == []

    info = registry.put_evalset(manifest)
    assert info["count"] == 16 and info["damaged"] == 3 * 3 + 2 and info["graded"] == 12
    samples = registry.evalset_samples()
    assert len(samples) == 16
    assert samples[0].image == photo_png(0, 0) and samples[0].grade == 0 and samples[0].damaged == 0
    assert [s.grade for s in samples[-4:]] == [None] * 4

    # Split and limit; images no longer referenced are deleted.
    info = registry.put_evalset(manifest, split="test", limit=5)
    assert info["count"] == 5
    assert len(registry.store.list("registry/evalsets/fixed/images/")) == 5
    with pytest.raises(RegistryError, match="already installed"):
        registry.put_evalset(manifest, replace=False)
    with pytest.raises(RegistryError, match="no rows"):
        registry.put_evalset(manifest, split="train")


def test_evalset_refuses_contradictory_labels(registry: Registry, tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(photo_png(2))
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("path,grade,damaged\na.png,2,0\n")
    with pytest.raises(RegistryError, match="contradicts"):
        registry.put_evalset(manifest)
    manifest.write_text("path,grade\na.png,2\n")
    with pytest.raises(RegistryError, match="missing columns"):
        registry.put_evalset(manifest)
