"""One `Settings` object for the whole service, read from environment variables (prefix CLAIMLANE_).

The defaults are the embedded mode that `make run` starts: SQLite file, local-disk object store,
tasks in-process, bundled model, all under `CLAIMLANE_DATA_DIR` (default `.claimlane/`).
Production sets `CLAIMLANE_ENVIRONMENT=production`, the database URL, the S3 endpoint and
credentials, and the Celery broker.

This is the only place that reads the environment for the service: `api`, `workers`, `services`,
`models`, `storage` and the Alembic migrations all take their values from here (an import check in
the tests keeps it so). Secrets are `SecretStr`, so they never appear in a repr or a log line, and
outside development the known-unsafe values (empty or default credentials) refuse to start.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

import claims
from claims.policy import DEFAULT_POLICY_FILE

# The service-deadline file shipped with the code (see claims.deadlines).
DEFAULT_DEADLINES_FILE = Path(claims.__file__).resolve().parent / "policies" / "deadlines-2026-11-v1.toml"

# Credentials that are published defaults somewhere (MinIO's, compose's development secret, ...):
# fine on a laptop, refused in production.
UNSAFE_SECRETS = frozenset(
    {"", "minioadmin", "claimlane-dev-secret", "changeme", "password", "secret", "admin", "postgres"}
)


class UnsafeSettings(ValueError):
    """A setting that is acceptable in development only was used in another environment."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CLAIMLANE_", env_file=None, extra="ignore")

    # "development" (the default: `make run`, tests) accepts the embedded conveniences; "production"
    # refuses them (see `_refuse_unsafe`).
    environment: Literal["development", "production"] = "development"
    data_dir: Path = Path(".claimlane")
    # `claimlane serve` listens here; the platform convention PORT is honoured too.
    port: int = Field(default=8000, ge=1, le=65535, validation_alias=AliasChoices("CLAIMLANE_PORT", "PORT"))
    # Database: SQLAlchemy URL; empty means SQLite at <data_dir>/claimlane.db.
    database_url: SecretStr = SecretStr("")
    # Object store: "local" (a directory, embedded default) or "s3" (MinIO or any S3 server).
    object_store: Literal["local", "s3"] = "local"
    local_store_dir: Path | None = None  # default <data_dir>/objects
    s3_endpoint: str = "127.0.0.1:9000"  # host:port, no scheme
    s3_access_key: SecretStr = SecretStr("")
    s3_secret_key: SecretStr = SecretStr("")
    s3_bucket: str = "claimlane"
    s3_secure: bool = False
    s3_region: str | None = None
    # Tasks: "inprocess" (a thread pool in the API process) or "celery" (workers via the broker).
    task_runner: Literal["inprocess", "celery"] = "inprocess"
    broker_url: SecretStr = SecretStr("redis://127.0.0.1:6379/0")
    celery_queue: str = "claimlane"
    # Model: a model.onnx or a version folder; empty means the newest bundled version.
    model_path: Path | None = None
    # Where the served model comes from when model_path is empty: "registry" (the champion of the
    # model registry in the object store, seeded with the bundled model, hot-reloaded when it
    # changes) or "file" (the newest bundled version, fixed for the life of the process).
    model_source: Literal["registry", "file"] = "registry"
    # How often (seconds) the API and workers look for a new champion/challenger in the registry.
    model_poll_seconds: float = Field(10.0, ge=0)
    # API server processes (`claimlane serve`): one per core lets the Python parts of uploads (HTTP,
    # hashing, database) run on every core; each process assesses the claims it received.
    web_workers: int = Field(1, ge=1, le=64)
    # ONNX Runtime thread pools. Intra-op 0: cores / 2 (two assessments run side by side, so they
    # do not oversubscribe the cores); inter-op 0: ONNX Runtime's own default.
    ort_intra_threads: int = Field(0, ge=0)
    ort_inter_threads: int = Field(0, ge=0)
    # Freed memory each server and worker process keeps for reuse (MiB; 0: the C library's
    # defaults): uploads then reuse their buffers instead of faulting in fresh pages for every one
    # (config.runtime.keep_freed_memory).
    malloc_keep_mib: int = Field(64, ge=0, le=2047)  # mallopt(3) takes a C int of bytes
    # Grade every claim with the challenger too (if the registry has one) and record what it would
    # have decided; it never changes a claim's decision.
    shadow_mode: bool = True
    policy_file: Path = DEFAULT_POLICY_FILE
    # Service deadlines (first response, decision) and the working calendar they count in.
    deadlines_file: Path = DEFAULT_DEADLINES_FILE
    # Upload limits.
    max_photos: int = Field(8, ge=1)
    max_photo_bytes: int = Field(15 * 1024 * 1024, ge=1024)
    min_photo_side: int = Field(64, ge=1)
    # PNG, WebP and HEIC photos are decoded in full: above this many megapixels (read from the header)
    # they are refused before decoding (40 MP as RGBA is 160 MB; Pillow's own limit is 89 MP). JPEGs
    # decode at 1/8 scale and keep Pillow's limit.
    max_photo_megapixels: float = Field(40.0, gt=0, le=89)
    # Served photos: a re-encoded derivative without EXIF (no GPS), at most this many pixels a side.
    derivative_max_side: int = 2048
    # How long an idempotency key is remembered.
    idempotency_ttl_hours: int = 24
    # Rate limits, in the `limits` library's notation ("N/second", "N/minute", "N per 10 minutes");
    # an empty value turns that one off. Counted per API key on every authenticated request (uploads
    # stricter), per client address on failed authentications (a lockout against key guessing) and on
    # console sign-ins. Kept in this process's memory, or shared by every process through
    # rate_limit_storage_url (e.g. redis://127.0.0.1:6379/2).
    rate_limits: bool = True
    rate_limit_per_key: str = "600/minute"
    rate_limit_uploads: str = "30/minute"
    rate_limit_auth_failures: str = "20 per 10 minutes"
    rate_limit_logins: str = "10/minute"
    rate_limit_storage_url: SecretStr = SecretStr("memory://")
    # The interactive API pages (/docs, /redoc) load Swagger UI and ReDoc from a public CDN, so they
    # are served in development only unless this says otherwise; /openapi.json is always served.
    api_docs: bool | None = None
    # GET /metrics: readable with this bearer token (give it to Prometheus), or with an admin's or a
    # lead's API key. Empty: API keys only.
    metrics_token: SecretStr = SecretStr("")
    # Logs: "json" (one JSON object per line, with the request id) or "text" (for a terminal).
    log_format: Literal["json", "text"] = "json"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # Webhooks: how often the embedded deliverer looks for due messages (0: it does not run; Celery
    # deployments deliver from the beat task), and a factor on the retry schedule (tests shorten it).
    webhook_poll_s: float = Field(1.0, ge=0)
    webhook_retry_scale: float = Field(1.0, gt=0, le=1)
    # Celery workers: serve their own /metrics on this port (0: none). Needs PROMETHEUS_MULTIPROC_DIR
    # set to an empty folder when the worker starts (compose.yaml gives each worker a tmpfs).
    worker_metrics_port: int = Field(0, ge=0, le=65535)

    @property
    def serves_api_docs(self) -> bool:
        return self.api_docs if self.api_docs is not None else self.environment == "development"

    @field_validator(
        "rate_limit_per_key", "rate_limit_uploads", "rate_limit_auth_failures", "rate_limit_logins"
    )
    @classmethod
    def _rate(cls, value: str) -> str:
        """A limit that cannot be read is a start-up error, not a silent absence of limits."""
        if value.strip():
            from limits import parse

            try:
                parse(value)
            except ValueError as exc:
                raise ValueError(f"not a rate limit ({exc}); write e.g. '30/minute'") from None
        return value.strip()

    @model_validator(mode="after")
    def _refuse_unsafe(self) -> Settings:
        """Outside development, a default credential or a throw-away store is a mistake, not a choice:
        refuse to start rather than run a carrier's money on it."""
        if self.environment == "development":
            return self
        problems = []
        if not self.database_url.get_secret_value():
            problems.append("CLAIMLANE_DATABASE_URL is empty (the embedded SQLite file)")
        if self.object_store == "local":
            problems.append("CLAIMLANE_OBJECT_STORE is 'local' (photos on one machine's disk)")
        elif (
            self.s3_access_key.get_secret_value() in UNSAFE_SECRETS
            or self.s3_secret_key.get_secret_value() in UNSAFE_SECRETS
        ):
            problems.append(
                "CLAIMLANE_S3_ACCESS_KEY / CLAIMLANE_S3_SECRET_KEY are empty or a published default"
            )
        if problems:
            raise UnsafeSettings(
                f"refusing to start with CLAIMLANE_ENVIRONMENT={self.environment}: " + "; ".join(problems)
            )
        return self

    def resolved_database_url(self) -> str:
        url = self.database_url.get_secret_value()
        if url:
            return url
        return f"sqlite:///{(self.data_dir / 'claimlane.db').resolve()}"

    def resolved_local_store_dir(self) -> Path:
        return self.local_store_dir or self.data_dir / "objects"


@lru_cache
def get_settings() -> Settings:
    """The process's settings, read once (the API and workers build theirs at start)."""
    return Settings()
