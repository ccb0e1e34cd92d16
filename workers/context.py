"""The service's long-lived parts, built once per process from `Settings`: database, object store,
payout policy, service deadlines and the damage model. The API (lifespan) and the Celery worker (on
start) both build one `Services`; tasks receive it rather than reaching for globals.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from api.settings import Settings
from claims.deadlines import DeadlineConfig, parse_deadlines
from claims.policy import PolicyConfig, parse_policy
from models.inference import DamageModel, load_model
from storage.db import make_engine, make_sessionmaker, migrate
from storage.objects import LocalObjectStore, ObjectStore, S3ObjectStore


@dataclass
class Services:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    store: ObjectStore
    policy: PolicyConfig
    deadlines: DeadlineConfig
    _model: DamageModel | None = field(default=None, repr=False)
    _model_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def model(self) -> DamageModel:
        """The damage model, loaded on first use (one ONNX Runtime session per process)."""
        with self._model_lock:
            if self._model is None:
                self._model = load_model(self.settings.model_path)
            return self._model

    def close(self) -> None:
        self.engine.dispose()


def make_store(settings: Settings) -> ObjectStore:
    if settings.object_store == "s3":
        return S3ObjectStore(
            endpoint=settings.s3_endpoint,
            access_key=settings.s3_access_key,
            secret_key=settings.s3_secret_key,
            bucket=settings.s3_bucket,
            secure=settings.s3_secure,
            region=settings.s3_region,
        )
    return LocalObjectStore(settings.resolved_local_store_dir())


def load_policy(path: Path) -> PolicyConfig:
    return parse_policy(Path(path).read_text())


def load_deadlines(path: Path) -> DeadlineConfig:
    return parse_deadlines(Path(path).read_text())


def build_services(settings: Settings, *, run_migrations: bool = True) -> Services:
    """Connect everything. Embedded mode creates its data folder and migrates SQLite at start."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    url = settings.resolved_database_url()
    if run_migrations:
        migrate(url)
    engine = make_engine(url)
    return Services(
        settings=settings,
        engine=engine,
        sessions=make_sessionmaker(engine),
        store=make_store(settings),
        policy=load_policy(settings.policy_file),
        deadlines=load_deadlines(settings.deadlines_file),
    )
