"""Model lifecycle operations over `Services`: register, set the challenger, promote through the gate,
roll back. The admin API (`api.routers.admin`) and the CLI (`claimlane model ...`) both call these,
so every rule lives here once.

- `promote` scores the champion and the candidate on the fixed evaluation set and on the adjusters'
  recent labels (`reviewed_samples`), gates (`models.promotion.gate`), and moves the champion alias
  only if the gate passes, or if a person overrides it with a reason. Refused: `PromotionRefused`.
- Every change is a `model_events` row (append-only) with who, why and the gate's table; the row is
  flushed before the alias moves (a database that is down stops the change before it happens) and
  committed after.
- The serving processes pick up a new champion from the registry alias (hot reload); nothing here
  talks to them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from models.inference import WEIGHTS_DIR, DamageModel
from models.promotion import GateConfig, GateMetrics, GateResult, Sample, gate, score
from models.registry import (
    CHALLENGER,
    CHAMPION,
    NoRollbackTarget,
    Registry,
    RegistryError,
    VersionInfo,
    cache_dir_for,
)
from services.context import Services
from storage import model_events as event_rows
from storage.objects import ObjectNotFound, ObjectStore
from storage.review import latest_labelled_originals
from storage.tables import ModelEvent

logger = logging.getLogger("claimlane.promotion")

REVIEWED_LIMIT = 200
FIXED_SET = "fixed"
REVIEWED_SET = "reviewed"


class PromotionError(RegistryError):
    """A promotion that cannot even be attempted (the version is already champion, ...)."""


class PromotionRefused(Exception):
    """The gate refused the candidate and no override reason was given."""

    def __init__(self, result: PromotionResult) -> None:
        super().__init__(
            f"promotion of {result.version} refused by the gate: " + "; ".join(result.gate.failures)
        )
        self.result = result


@dataclass(frozen=True)
class PromotionResult:
    version: str
    previous_version: str | None
    promoted: bool
    action: str | None  # promote | override | None (refused)
    override_reason: str | None
    gate: GateResult
    metrics: dict[str, dict[str, GateMetrics]] = field(default_factory=dict)  # set -> role -> metrics
    evalset_sha256: str | None = None

    def gate_json(self) -> dict[str, Any]:
        return {
            **self.gate.to_json(),
            "champion": self.previous_version,
            "challenger": self.version,
            "evalset_sha256": self.evalset_sha256,
            "metrics": {
                name: {role: m.to_json() for role, m in roles.items()} for name, roles in self.metrics.items()
            },
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "previous_version": self.previous_version,
            "promoted": self.promoted,
            "action": self.action,
            "override_reason": self.override_reason,
            "gate": self.gate_json(),
        }


# --------------------------------------------------------------------------------------------------
# Helpers


def registry_for(services: Services) -> Registry:
    """`services.registry` when the services carry one, else a registry on their object store."""
    registry = getattr(services, "registry", None)
    if isinstance(registry, Registry):
        return registry
    return Registry(services.store, cache_dir=cache_dir_for(services.settings.data_dir))


def _reload_models(services: Services) -> None:
    """Let this process swap in the new alias targets now rather than at its next poll (the other
    processes pick the change up at theirs). Never fails the operation that already happened."""
    check = getattr(services, "check_models_now", None)
    if check is None:
        return
    try:
        check()
    except Exception:
        logger.exception("the registry changed but this process could not reload its models yet")


def bundled_model_source(services: Services) -> Path:
    """What `bootstrap` registers on an empty registry: the configured model, else the bundled one."""
    return Path(services.settings.model_path) if services.settings.model_path else WEIGHTS_DIR


def ensure_champion(services: Services, registry: Registry | None = None) -> str | None:
    registry = registry or registry_for(services)
    return registry.bootstrap(bundled_model_source(services))


def _clean_reason(reason: str | None) -> str | None:
    if reason is None:
        return None
    reason = reason.strip()
    return reason or None


def _record(
    session: Session,
    *,
    actor: str,
    action: str,
    version: str,
    previous: str | None,
    reason: str | None,
    gate_json: dict[str, Any] | None = None,
) -> ModelEvent:
    return event_rows.add(
        session,
        actor=actor,
        action=action,
        version=version,
        previous_version=previous,
        reason=reason,
        gate=gate_json,
    )


def reviewed_samples(session: Session, store: ObjectStore, limit: int = REVIEWED_LIMIT) -> list[Sample]:
    """The adjusters' most recent photo labels (the latest label of each photo), with the original
    photo bytes from the store; photos whose original is gone are skipped."""
    samples = []
    for grade, key in latest_labelled_originals(session, limit):
        try:
            image = store.get(key)
        except ObjectNotFound:
            logger.warning("reviewed photo %s is missing from the store; skipped", key)
            continue
        samples.append(Sample(image=image, grade=int(grade), damaged=int(grade >= 1)))
    return samples


# --------------------------------------------------------------------------------------------------
# Operations


def register(
    services: Services,
    version_dir: str | Path,
    *,
    actor: str,
    parent: str | None = None,
    as_challenger: bool = True,
) -> VersionInfo:
    """Register a version folder; by default also make it the challenger. Events recorded."""
    registry = registry_for(services)
    info = registry.register(version_dir, parent=parent, actor=actor)
    with services.sessions() as session:
        _record(session, actor=actor, action="register", version=info.version, previous=None, reason=None)
        if as_challenger:
            previous = registry.alias(CHALLENGER)
            _record(
                session,
                actor=actor,
                action="set_challenger",
                version=info.version,
                previous=previous,
                reason="registered as challenger",
            )
            registry.set_alias(CHALLENGER, info.version, actor=actor, reason="registered as challenger")
        session.commit()
    if as_challenger:
        _reload_models(services)
    return info


def set_challenger(services: Services, version: str, *, actor: str, reason: str | None = None) -> str | None:
    """Make `version` the challenger (run in shadow); returns the previous challenger."""
    registry = registry_for(services)
    registry.info(version)  # VersionNotFound
    if version == registry.alias(CHAMPION):
        raise PromotionError(f"{version} is the champion; a challenger must be another version")
    previous = registry.alias(CHALLENGER)
    reason = _clean_reason(reason) or "set as challenger"
    with services.sessions() as session:
        _record(
            session, actor=actor, action="set_challenger", version=version, previous=previous, reason=reason
        )
        registry.set_alias(CHALLENGER, version, actor=actor, reason=reason)
        session.commit()
    _reload_models(services)
    return previous


def evaluate(
    services: Services,
    version: str,
    *,
    champion: str | None,
    gate_cfg: GateConfig = GateConfig(),  # noqa: B008 - frozen
    reviewed_limit: int = REVIEWED_LIMIT,
) -> tuple[GateResult, dict[str, dict[str, GateMetrics]], str | None]:
    """Score `version` against `champion` on the fixed set and on recent reviewed photos, and gate."""
    registry = registry_for(services)
    candidate_model = DamageModel(registry.fetch(version) / "model.onnx")
    with services.sessions() as session:
        reviewed = reviewed_samples(session, services.store, reviewed_limit)
    sets = {FIXED_SET: registry.evalset_samples(), REVIEWED_SET: reviewed}
    evalset = registry.evalset_info()
    threshold = services.policy.confidence_threshold
    lanes = services.policy.fast_lane_grades
    if champion is None:
        empty = GateMetrics(
            n=0, auroc=float("nan"), ece=float("nan"), fast_lane_error_rate=0.0, fast_lane_count=0
        )
        metrics = {
            name: {"champion": empty, "challenger": score(candidate_model, s, threshold, lanes)}
            for name, s in sets.items()
        }
        result = GateResult(passed=True, failures=[], rows=[], notes=["no champion to compare with"])
        return result, metrics, evalset["sha256"] if evalset else None
    champion_model = DamageModel(registry.fetch(champion) / "model.onnx")
    metrics = {
        name: {
            "champion": score(champion_model, s, threshold, lanes),
            "challenger": score(candidate_model, s, threshold, lanes),
        }
        for name, s in sets.items()
    }
    result = gate(
        {name: m["champion"] for name, m in metrics.items()},
        {name: m["challenger"] for name, m in metrics.items()},
        gate_cfg,
    )
    if evalset is None:
        result.notes.insert(0, "no fixed evaluation set installed (claimlane model evalset --from MANIFEST)")
    return result, metrics, evalset["sha256"] if evalset else None


def promote(
    services: Services,
    version: str,
    *,
    actor: str,
    override_reason: str | None = None,
    gate_cfg: GateConfig = GateConfig(),  # noqa: B008 - frozen
) -> PromotionResult:
    """Make `version` the champion if the gate passes (or a person overrides it with a reason)."""
    registry = registry_for(services)
    registry.info(version)  # VersionNotFound
    override_reason = _clean_reason(override_reason)
    champion = registry.alias(CHAMPION) or ensure_champion(services, registry)
    if champion == version:
        raise PromotionError(f"{version} is already the champion")
    result, metrics, evalset_sha = evaluate(services, version, champion=champion, gate_cfg=gate_cfg)
    outcome = PromotionResult(
        version=version,
        previous_version=champion,
        promoted=False,
        action=None,
        override_reason=override_reason,
        gate=result,
        metrics=metrics,
        evalset_sha256=evalset_sha,
    )
    if not result.passed and override_reason is None:
        logger.warning("promotion of %s by %s refused: %s", version, actor, "; ".join(result.failures))
        raise PromotionRefused(outcome)
    action = "promote" if result.passed else "override"
    reason = override_reason or "gate passed"
    outcome = replace(outcome, promoted=True, action=action)
    with services.sessions() as session:
        if registry.alias(CHAMPION) != champion:
            raise PromotionError(
                f"the champion changed while {version} was being evaluated (now {registry.alias(CHAMPION)}); "
                "promote again"
            )
        _record(
            session,
            actor=actor,
            action=action,
            version=version,
            previous=champion,
            reason=reason,
            gate_json=outcome.gate_json(),
        )
        registry.set_alias(CHAMPION, version, actor=actor, reason=f"{action}: {reason}")
        if registry.alias(CHALLENGER) == version:  # the candidate now serves: nothing left to shadow
            registry.set_alias(CHALLENGER, None, actor=actor, reason=f"promoted to champion ({action})")
        session.commit()
    logger.info("%s: champion %s -> %s by %s (%s)", action, champion, version, actor, reason)
    _reload_models(services)
    return outcome


@dataclass(frozen=True)
class RollbackResult:
    champion: str  # serves now
    previous_version: str  # the champion it replaced


def rollback(services: Services, *, actor: str, reason: str) -> str:
    """Champion <- the champion before the current one (alias history as a stack). Returns it."""
    return rollback_champion(services, actor=actor, reason=reason).champion


def rollback_champion(services: Services, *, actor: str, reason: str) -> RollbackResult:
    """`rollback`, also saying which champion it replaced (the admin API shows both)."""
    cleaned = _clean_reason(reason)
    if cleaned is None:
        raise ValueError("a rollback needs a reason")
    registry = registry_for(services)
    current = registry.alias(CHAMPION)
    target = registry.rollback_target(CHAMPION)
    if target is None or current is None:
        raise NoRollbackTarget(f"no earlier champion to roll back to (current: {current})")
    with services.sessions() as session:
        _record(session, actor=actor, action="rollback", version=target, previous=current, reason=cleaned)
        registry.set_alias(CHAMPION, target, actor=actor, reason=f"rollback: {cleaned}", rollback=True)
        session.commit()
    logger.info("rollback: champion %s -> %s by %s (%s)", current, target, actor, reason)
    _reload_models(services)
    return RollbackResult(champion=target, previous_version=current)


def model_events(session: Session, *, version: str | None = None, limit: int = 100) -> list[ModelEvent]:
    """The latest model events (newest first), of one version if given."""
    return event_rows.recent(session, version=version, limit=limit)


def overview(services: Services) -> dict[str, Any]:
    """Versions (newest first) with their aliases, metrics and last gate; aliases; the evaluation set."""
    registry = registry_for(services)
    aliases = registry.aliases()
    by_version: dict[str, list[str]] = {}
    for name, version in aliases.items():
        if version is not None:
            by_version.setdefault(version, []).append(name)
    last_gate: dict[str, dict[str, Any]] = {}
    with services.sessions() as session:
        for event in event_rows.gated(session):
            last_gate[event.version] = {
                "at": event.at.isoformat(),
                "action": event.action,
                **(event.gate or {}),
            }
    versions = []
    for info in reversed(registry.versions()):
        versions.append(
            {
                **{k: v for k, v in info.to_json().items() if k != "files"},
                "aliases": by_version.get(info.version, []),
                "size_bytes": sum(int(f.get("size", 0)) for f in info.files.values()),
                "last_gate": last_gate.get(info.version),
            }
        )
    return {"aliases": aliases, "versions": versions, "evalset": registry.evalset_info()}
