"""Fixtures of the model-registry tests (hot reload, shadow mode): a bundled weights folder holding a
tiny model, and `Services` in registry mode on a temporary data folder."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

import models.inference as inference
from claims.policy import PolicyConfig
from config.settings import Settings
from services.context import Services, build_services
from tests.factories import OFFER_ALL

# Registry versions of the tiny model: V1 is the bundled one (the first champion); V2 and V3 have
# other weights (they grade differently).
V1 = "tiny-reg-1"
V2 = "tiny-reg-2"
V3 = "tiny-reg-3"
SEEDS = {V1: 0, V2: 1, V3: 2}


@pytest.fixture
def bundled(tmp_path: Path, tiny_model_factory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A bundled weights folder whose newest (only) version is V1, as models/weights would be."""
    weights = tmp_path / "weights"
    shutil.copytree(tiny_model_factory(V1, seed=SEEDS[V1], checksums=False), weights / V1)
    monkeypatch.setattr(inference, "WEIGHTS_DIR", weights)
    monkeypatch.delenv(inference.ENV_MODEL_PATH, raising=False)
    return weights


@pytest.fixture
def registry_services(tmp_path: Path, bundled: Path) -> Iterator[Callable[..., Services]]:
    """`make(**settings)`: Services in registry mode (polling on every use) on one data folder.
    Every call is another process's view (its own engine, store client, registry and models) of the
    same database and object store. The policy is OFFER_ALL unless `policy=` says otherwise."""
    stack = ExitStack()

    def make(*, policy: PolicyConfig | None = OFFER_ALL, **overrides) -> Services:
        values = {"data_dir": tmp_path / "data", "model_path": None, "model_poll_seconds": 0.0}
        values.update(overrides)
        services = build_services(Settings(**values))
        if policy is not None:
            services.policy = policy
        stack.callback(services.close)
        return services

    yield make
    stack.close()
