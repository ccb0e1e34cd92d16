"""The service's long-lived parts, built once per process from `Settings`: database, object store,
payout policy, service deadlines and the damage model. The API (lifespan) and the Celery worker (on
start) both build one `Services`; tasks receive it rather than reaching for globals.

Where the model comes from
--------------------------
- ``model_path`` set, or ``model_source = "file"``: that file (or the newest bundled version), loaded
  once through `models.inference.load_model` and served for the life of the process.
- Otherwise (the default, ``model_source = "registry"``): the model registry in the object store
  (`models.registry.Registry`). On first use the bundled model is registered as champion if the
  registry is empty, and the champion is loaded. From then on the API and every worker pick up a
  promoted model without a restart (hot reload):

  * `Services.model()` stays cheap: it returns the current model, and at most every
    ``model_poll_seconds`` (monotonic clock) it starts ONE background check of the alias (one small
    GET). No caller ever waits for a check, a download or a load.
  * When the alias moved, the background thread fetches and loads the new version while the old
    one keeps serving, then swaps the reference (one attribute assignment: atomic). A caller holds
    on to the model it got, so a claim is graded, and its ``model_version`` recorded, by one model.
  * If the new version cannot be fetched or loaded, the old one keeps serving (readiness stays
    green) and the error is logged; that version is tried again after `FAILED_RETRY_S`, or at once
    if the alias moves on.
  * Registry loads bypass `load_model`'s process cache (they build a `DamageModel` directly), so a
    replaced version's ONNX Runtime session is freed once its last in-flight caller is done,
    rather than living in the cache forever.

`Services.challenger_model()` does the same for the "challenger" alias (shadow mode, see
`workers.shadow`); it is None when there is no challenger. A version held by both aliases (say the
challenger just promoted) is loaded once and shared.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from claims.deadlines import DeadlineConfig, parse_deadlines
from claims.policy import PolicyConfig, parse_policy
from config import metrics
from config.settings import Settings
from models.inference import DamageModel, ModelError, default_model_path, load_model
from services.photos import InputCache
from services.waiting import ClaimChanges
from storage.db import make_engine, make_sessionmaker, migrate
from storage.objects import LocalObjectStore, MeteredStore, ObjectStore, ObjectStoreUnavailable, S3ObjectStore

if TYPE_CHECKING:
    from models.registry import Registry

logger = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
# A registry version that failed to fetch or load is tried again after this long (unless the alias
# moves to another version first): a broken upload is not downloaded again every poll.
FAILED_RETRY_S = 300.0
# Who registers the bundled model when the registry starts empty (model_events.actor).
BOOTSTRAP_ACTOR = "system"


@dataclass(frozen=True)
class _Loaded:
    """A registry version and its loaded model: swapped as one reference."""

    version: str
    model: DamageModel


class _AliasSlot:
    """What one registry alias serves in this process, and when to look at the alias again."""

    def __init__(self, alias: str) -> None:
        self.alias = alias
        self.current: _Loaded | None = None
        self.checked = False  # the first (synchronous) check has succeeded
        self.next_check = 0.0  # time.monotonic() of the next background check
        self.first_lock = threading.Lock()  # the first check: callers wait for it
        self.refresh_lock = threading.Lock()  # held by the one check in progress
        self.failed: tuple[str, float] | None = None  # (version, monotonic time to retry it)


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
    _registry: Registry | None = field(default=None, repr=False)
    _registry_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _slots: dict[str, _AliasSlot] = field(
        default_factory=lambda: {CHAMPION: _AliasSlot(CHAMPION), CHALLENGER: _AliasSlot(CHALLENGER)},
        repr=False,
    )
    _closed: bool = field(default=False, repr=False)
    # Model inputs of photos just uploaded, for the in-process assessment (services.photos).
    inputs: InputCache = field(default_factory=InputCache, repr=False)
    # Requests of this process waiting for a claim's decision (services.waiting).
    changes: ClaimChanges = field(default_factory=ClaimChanges, repr=False)

    # -- the model registry --------------------------------------------------------------------

    @property
    def uses_registry(self) -> bool:
        """Whether models come from the registry (hot reload) rather than a fixed file."""
        return self.settings.model_source == "registry" and self.settings.model_path is None

    @property
    def registry(self) -> Registry:
        """The model registry in this process's object store, created on first use."""
        registry = self._registry
        if registry is None:
            with self._registry_lock:
                if self._registry is None:
                    from models.registry import Registry

                    self._registry = Registry(self.store, cache_dir=self.settings.data_dir / "model-cache")
                registry = self._registry
        return registry

    @registry.setter
    def registry(self, value: Registry) -> None:
        self._registry = value

    # -- the models ----------------------------------------------------------------------------

    def model(self) -> DamageModel:
        """The damage model to grade with (the champion). A caller keeps the instance it got for a
        whole claim, so the claim is graded, and recorded, by one version even across a swap.

        Raises ModelError (or ObjectStoreUnavailable, when the registry cannot be read) while no
        model could be loaded yet; once one is, a failing registry never makes this raise."""
        if not self.uses_registry:
            model = self._model
            if model is None:
                with self._model_lock:
                    if self._model is None:
                        self._model = load_model(self.settings.model_path)
                        metrics.set_model_serving(self._model.version)
                    model = self._model
            return model
        loaded = self._serve(self._slots[CHAMPION], required=True)
        assert loaded is not None  # required: the first check raises rather than return None
        return loaded.model

    def challenger_model(self) -> DamageModel | None:
        """The registry's challenger (shadow mode), None when there is none or models do not come
        from the registry. Never raises for a challenger that cannot be loaded: that is None."""
        if not self.uses_registry:
            return None
        try:
            loaded = self._serve(self._slots[CHALLENGER], required=False)
        except Exception:
            logger.exception("cannot look up the challenger model; shadow grading skipped")
            return None
        return None if loaded is None else loaded.model

    def model_versions(self) -> dict[str, str | None]:
        """The registry versions this process serves now, by alias (None: none loaded)."""
        return {
            alias: (slot.current.version if slot.current is not None else None)
            for alias, slot in self._slots.items()
        }

    def check_models_now(self) -> None:
        """Look at the registry aliases now and swap in what changed, in the calling thread (waits
        for a check already in progress). The background checks do the same on their own."""
        if not self.uses_registry:
            return
        for slot in self._slots.values():
            if not slot.checked:
                continue  # never used in this process: its first use loads it
            with slot.refresh_lock:
                self._check_quietly(slot)

    def _serve(self, slot: _AliasSlot, *, required: bool) -> _Loaded | None:
        if not slot.checked:
            return self._first_check(slot, required=required)
        if time.monotonic() >= slot.next_check:
            self._start_background_check(slot)
        return slot.current

    def _first_check(self, slot: _AliasSlot, *, required: bool) -> _Loaded | None:
        """The first use in this process: look up and load the alias in the caller's thread (there
        is nothing to serve meanwhile). The champion's errors propagate and the next call tries
        again; the challenger's are logged and it counts as absent until the next check."""
        with slot.first_lock:
            if slot.checked:
                return slot.current
            with slot.refresh_lock:
                try:
                    self._check(slot, first=True)
                except Exception:
                    if required:
                        raise
                    logger.exception("cannot load the %s model; trying again later", slot.alias)
                slot.next_check = time.monotonic() + self.settings.model_poll_seconds
                slot.checked = True
            return slot.current

    def _start_background_check(self, slot: _AliasSlot) -> None:
        if self._closed or not slot.refresh_lock.acquire(blocking=False):
            return  # a check is already running (or the services are closing)
        slot.next_check = time.monotonic() + self.settings.model_poll_seconds
        try:
            thread = threading.Thread(
                target=self._background_check,
                args=(slot,),
                name=f"claimlane-model-{slot.alias}",
                daemon=True,
            )
            thread.start()
        except BaseException:
            slot.refresh_lock.release()
            logger.exception("cannot start the %s model check", slot.alias)

    def _background_check(self, slot: _AliasSlot) -> None:
        try:
            self._check_quietly(slot)
        finally:
            slot.next_check = time.monotonic() + self.settings.model_poll_seconds
            slot.refresh_lock.release()

    def _check_quietly(self, slot: _AliasSlot) -> None:
        try:
            self._check(slot, first=False)
        except Exception:
            # Never take down what is serving: log, keep the current model, look again next time.
            logger.exception("checking the %s model failed; still serving %s", slot.alias, _name(slot))

    def _check(self, slot: _AliasSlot, *, first: bool) -> None:
        """Compare the alias with what is served and swap in a new version. Call with
        `slot.refresh_lock` held. Raises only on the champion's first check."""
        registry = self.registry
        version = registry.alias(slot.alias)
        if version is None and slot.alias == CHAMPION and first:
            # A fresh registry: the bundled model becomes the first champion.
            version = registry.bootstrap(default_model_path().parent, BOOTSTRAP_ACTOR)
            if version is None:
                raise ModelError("the model registry has no champion, even after bootstrapping it")
        current = slot.current
        if version is None:
            if current is not None:
                logger.info("the %s alias was removed: no longer serving %s", slot.alias, current.version)
                slot.current = None
            elif slot.alias == CHAMPION:
                logger.error("the model registry has no champion; still serving %s", _name(slot))
            return
        if current is not None and current.version == version:
            return
        now = time.monotonic()
        if not first and slot.failed is not None and slot.failed[0] == version and now < slot.failed[1]:
            return  # failed recently: keep serving the old one until FAILED_RETRY_S has passed
        try:
            model = self._shared_model(version) or self._load_version(version)
        except Exception as exc:
            slot.failed = (version, now + FAILED_RETRY_S)
            if first and slot.alias == CHAMPION:
                if isinstance(exc, (ModelError, ObjectStoreUnavailable)):
                    raise
                raise ModelError(f"cannot load champion model {version!r}: {exc}") from exc
            logger.exception("cannot load %s model %s; still serving %s", slot.alias, version, _name(slot))
            return
        slot.failed = None
        slot.current = _Loaded(version, model)  # the swap: one reference, atomic
        if slot.alias == CHAMPION:
            metrics.set_model_serving(version)
        if current is None:
            logger.info("serving %s model %s (%s)", slot.alias, version, model.path)
        else:
            logger.info("%s model %s -> %s, swapped without a restart", slot.alias, current.version, version)

    def _shared_model(self, version: str) -> DamageModel | None:
        """The model of `version` if another alias already serves it (loaded once, shared)."""
        for slot in self._slots.values():
            loaded = slot.current
            if loaded is not None and loaded.version == version:
                return loaded.model
        return None

    def _load_version(self, version: str) -> DamageModel:
        """Fetch a registry version and load it, outside `load_model`'s process cache: the session
        is freed when the version is swapped out and its last caller lets go of it."""
        started = time.monotonic()
        folder = self.registry.fetch(version)
        model = DamageModel(folder)
        logger.info("loaded model %s from the registry in %.2f s", version, time.monotonic() - started)
        return model

    def close(self) -> None:
        self._closed = True
        self.engine.dispose()


def _name(slot: _AliasSlot) -> str:
    loaded = slot.current
    return "nothing" if loaded is None else loaded.version


def make_store(settings: Settings) -> ObjectStore:
    """The configured object store, its failures counted (`storage.objects.MeteredStore`)."""
    return MeteredStore(_make_store(settings))


def _make_store(settings: Settings) -> ObjectStore:
    if settings.object_store == "s3":
        return S3ObjectStore(
            endpoint=settings.s3_endpoint,
            access_key=settings.s3_access_key.get_secret_value(),
            secret_key=settings.s3_secret_key.get_secret_value(),
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
