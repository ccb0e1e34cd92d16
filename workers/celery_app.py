"""The Celery application (production task runner): ``celery -A workers.celery_app worker``.

Configured from `Settings` (environment variables ``CLAIMLANE_*``): the broker is
``CLAIMLANE_BROKER_URL`` (Redis). There is no result backend: the outcome of an assessment is the
claim's state in the database, which the API reads.

Delivery guarantees: tasks are acknowledged late (after they ran), a task whose worker process was
killed is re-queued, and each worker process reserves one message at a time, so a crash or a deploy
loses no assessment. Re-delivery is safe because `workers.assessment.assess_claim` is idempotent.

Each worker process builds its `Services` (database engine, object store, policy, model) once:
after the fork in a prefork pool (`worker_process_init`; connections must not be shared across a
fork), or lazily on the first task for the solo/threads pools, behind a lock.
"""

from __future__ import annotations

import logging
import os
import threading

from celery import Celery, signals

from config import logs, metrics
from config.runtime import keep_freed_memory
from config.settings import Settings
from services.context import Services, build_services
from workers import decisions

logger = logging.getLogger(__name__)

DEFAULT_QUEUE = "claimlane"
# Redis re-delivers a message not acknowledged within this time to another worker. It must exceed
# the longest task plus the longest retry countdown (a retried task waits unacknowledged in the
# worker until its ETA); an assessment takes seconds and retries wait at most RETRY_BACKOFF_MAX.
VISIBILITY_TIMEOUT_S = 30 * 60
# How often the beat scheduler sweeps claims stuck in submitted/assessing, and how old "stuck" is: a
# claim whose worker died (kill -9, out of memory) is assessed again within STALE_AFTER_S + SWEEP_EVERY_S
# (under a minute). An assessment takes about a second, so a claim that old is stranded; if it is only
# slow (a stuck S3 read, at most the task time limit), the second run is harmless: the assessment is
# idempotent and only one of them records a decision. Under a queue backlog the sweep may add duplicate
# messages for claims still waiting; each returns "already_done" at once.
SWEEP_EVERY_S = 20
WEBHOOKS_EVERY_S = 5
STALE_AFTER_S = 30


def create_celery(settings: Settings | None = None) -> Celery:
    """A configured Celery app for `settings` (default: from the environment)."""
    settings = settings or Settings()
    app = Celery("claimlane", broker=settings.broker_url.get_secret_value(), include=["workers.tasks"])
    app.conf.update(
        task_default_queue=settings.celery_queue,
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        timezone="UTC",
        enable_utc=True,
        broker_connection_retry_on_startup=True,
        broker_transport_options={"visibility_timeout": VISIBILITY_TIMEOUT_S},
        # A hung assessment (say a stuck S3 read) is killed rather than holding its slot forever.
        task_soft_time_limit=120,
        task_time_limit=180,
        worker_hijack_root_logger=False,
        beat_schedule={
            "requeue-stale-claims": {
                "task": "claimlane.requeue_stale_claims",
                "schedule": float(SWEEP_EVERY_S),
                "kwargs": {"older_than_seconds": STALE_AFTER_S},
            },
            # The webhook outbox (services.webhooks): due messages are sent every few seconds.
            "deliver-webhooks": {"task": "claimlane.deliver_webhooks", "schedule": float(WEBHOOKS_EVERY_S)},
        },
    )
    app.conf.claimlane_settings = settings
    return app


app = create_celery()

_services: Services | None = None
_services_lock = threading.Lock()


def get_services() -> Services:
    """This worker process's `Services`, built on first use (migrations are a deploy step, not the
    worker's: `claimlane db upgrade`)."""
    global _services
    with _services_lock:
        if _services is None:
            settings: Settings = app.conf.claimlane_settings
            _services = build_services(settings, run_migrations=False)
            broker = settings.broker_url.get_secret_value()
            if broker.startswith(("redis://", "rediss://")):
                # Decisions are announced to the API processes (workers.decisions).
                _services.changes.publish = decisions.publisher(broker)
            logger.info("worker services ready (database %s)", _services.engine.url.render_as_string())
        return _services


@signals.worker_process_init.connect
def _init_worker_process(**_: object) -> None:
    # Prefork child, right after the fork: drop anything inherited from the parent, build fresh.
    global _services
    with _services_lock:
        _services = None
    keep_freed_memory(app.conf.claimlane_settings.malloc_keep_mib * 1024 * 1024)
    get_services()


@signals.worker_process_shutdown.connect
def _close_worker_process(**_: object) -> None:
    global _services
    with _services_lock:
        if _services is not None:
            _services.close()
            _services = None


@signals.setup_logging.connect
def _setup_logging(**_: object) -> None:
    # Connected, so Celery leaves logging to us: the same JSON lines as the API (config.logs).
    settings: Settings = app.conf.claimlane_settings
    logs.configure(settings.log_format, settings.log_level)


@signals.worker_init.connect
def _serve_metrics(**_: object) -> None:
    """The worker's own /metrics (assessments happen here in Celery mode), on
    `worker_metrics_port`; every pool process's values are summed through the multiprocess folder."""
    settings: Settings = app.conf.claimlane_settings
    if not settings.worker_metrics_port:
        return
    if not metrics.multiprocess_dir():
        logger.error(
            "CLAIMLANE_WORKER_METRICS_PORT is set but %s is not: the pool processes' metrics would be "
            "invisible, so no metrics server is started",
            metrics.MULTIPROC_ENV,
        )
        return
    from prometheus_client import start_http_server

    start_http_server(settings.worker_metrics_port, registry=metrics.registry())
    logger.info("worker metrics on port %d", settings.worker_metrics_port)


@signals.worker_process_shutdown.connect
def _metrics_process_dead(pid: int | None = None, **_: object) -> None:
    if metrics.multiprocess_dir():
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid or os.getpid())
