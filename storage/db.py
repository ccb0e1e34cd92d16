"""Database engines, sessions and migrations (SQLite for embedded mode, PostgreSQL in production).

- `make_engine(url)`: SQLite gets foreign keys on, WAL and a busy timeout on every connection
  (an in-memory ``sqlite://`` is one database shared by all threads);
  PostgreSQL gets pre-ping and a 3 s connect timeout, so a dead server fails fast (API -> 503).
  ``postgresql://`` and ``postgres://`` URLs use psycopg 3 (the driver installed).
- `migrate(url)`: Alembic ``upgrade head`` from code; works from any working directory and from an
  installed package (no alembic.ini needed).
- `ping(engine)`, `DatabaseUnavailable`, `is_unavailable(exc)`: readiness and 503 mapping.
"""

from __future__ import annotations

import contextlib
import fcntl
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool, StaticPool

from config import metrics
from storage import metering

__all__ = [
    "MIGRATIONS_DIR",
    "DatabaseUnavailable",
    "alembic_config",
    "is_unavailable",
    "make_engine",
    "make_sessionmaker",
    "migrate",
    "normalize_url",
    "ping",
]

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 5000
PG_CONNECT_TIMEOUT_S = 3
# Any constant: serialises concurrent `migrate` calls (API and workers starting together).
_MIGRATION_LOCK_ID = 0x436C61696D4C616E  # "ClaimLan"


class DatabaseUnavailable(Exception):
    """The database cannot be reached or is not accepting work right now (API -> 503)."""


def normalize_url(url: str | URL) -> URL:
    """Parse `url`; a PostgreSQL URL without a driver gets psycopg 3."""
    parsed = make_url(url)
    if parsed.drivername in {"postgresql", "postgres"}:
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def make_engine(url: str | URL, **kwargs: Any) -> Engine:
    """An Engine for `url`, configured for this service. Extra kwargs go to `create_engine`."""
    engine = _make_engine(url, **kwargs)
    event.listen(engine, "handle_error", _count_error)
    return engine


def _count_error(context: Any) -> None:
    """Every failed statement counts in `claimlane_database_errors_total`, by kind: `integrity` (a
    constraint refused a write: often a lost race the service answers with 409), `unavailable`
    (connection lost, database down), `other`."""
    if isinstance(context.original_exception, sa_exc.IntegrityError) or isinstance(
        context.sqlalchemy_exception, sa_exc.IntegrityError
    ):
        kind = "integrity"
    elif context.is_disconnect or isinstance(context.sqlalchemy_exception, sa_exc.OperationalError):
        kind = "unavailable"
    else:
        kind = "other"
    metrics.DATABASE_ERRORS.labels(kind).inc()


def _make_engine(url: str | URL, **kwargs: Any) -> Engine:
    parsed = normalize_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        connect_args = {"check_same_thread": False, **kwargs.pop("connect_args", {})}
        if parsed.database in (None, "", ":memory:"):
            # One in-memory database shared by every thread (tests), not one per connection.
            kwargs.setdefault("poolclass", StaticPool)
        engine = create_engine(parsed, connect_args=connect_args, **kwargs)
        event.listen(engine, "connect", _sqlite_on_connect)
        return engine
    if backend == "postgresql":
        connect_args = dict(kwargs.pop("connect_args", {}))
        if "connect_timeout" not in parsed.query:
            connect_args.setdefault("connect_timeout", PG_CONNECT_TIMEOUT_S)
        kwargs.setdefault("pool_pre_ping", True)
        return create_engine(parsed, connect_args=connect_args, **kwargs)
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(parsed, **kwargs)


def _sqlite_on_connect(dbapi_connection, connection_record) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode=WAL")  # in-memory databases answer "memory": fine
        cursor.execute("PRAGMA synchronous=NORMAL")  # safe with WAL; fsync at checkpoints
    finally:
        cursor.close()


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """Sessions of the service: objects stay readable after commit; business counters move when a
    transaction commits (`storage.metering`)."""
    maker = sessionmaker(bind=engine, expire_on_commit=False)
    metering.install(maker)
    return maker


def alembic_config(url: str | URL | None = None):
    """An Alembic Config built in code (script_location = the packaged migrations folder)."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        # ConfigParser interpolates '%': escape it (URL-encoded passwords).
        rendered = normalize_url(url).render_as_string(hide_password=False)
        cfg.set_main_option("sqlalchemy.url", rendered.replace("%", "%%"))
    return cfg


def migrate(url: str | URL, revision: str = "head") -> None:
    """Bring the database at `url` to `revision` (Alembic upgrade). Safe to call at every start,
    from several processes at once (web workers starting together): PostgreSQL serialises them with
    an advisory lock, a SQLite file with an exclusive lock on a file beside it, so the second process
    finds the schema up to date instead of creating the tables again."""
    engine = make_engine(url, poolclass=NullPool)
    with _sqlite_file_lock(engine.url):
        try:
            _upgrade(engine, alembic_config(url), revision)
        finally:
            engine.dispose()


@contextlib.contextmanager
def _sqlite_file_lock(url: URL) -> Iterator[None]:
    """An exclusive lock on ``<database>.migrate.lock`` while a SQLite file is migrated (nothing for
    PostgreSQL or an in-memory database)."""
    database = url.database or ""
    if url.get_backend_name() != "sqlite" or database in ("", ":memory:") or database.startswith("file:"):
        yield
        return
    lock_path = Path(database).with_name(Path(database).name + ".migrate.lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file is closed, or the process dies
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _upgrade(engine: Engine, cfg: Any, revision: str) -> None:
    from alembic import command

    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            # Batch migrations recreate tables; foreign keys must be off meanwhile (outside
            # a transaction, where this pragma works).
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            conn.commit()
        with conn.begin():
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _MIGRATION_LOCK_ID})
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)


def ping(engine: Engine) -> None:
    """SELECT 1. Raises DatabaseUnavailable (chained to the driver's error) when the database
    cannot be reached; other errors propagate as they are."""
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        if is_unavailable(exc):
            raise DatabaseUnavailable(f"database unavailable: {_first_line(exc)}") from exc
        raise


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    return (str(orig).strip().splitlines() or [type(orig).__name__])[0]


# PostgreSQL SQLSTATEs meaning "cannot serve you now": connection exceptions (08...), shutdown,
# starting up, too many connections, out of resources.
_PG_UNAVAILABLE_STATES = frozenset({"57P01", "57P02", "57P03", "53000", "53100", "53200", "53300"})
_SQLITE_UNAVAILABLE_MESSAGES = (
    "database is locked",
    "database table is locked",
    "unable to open database file",
    "disk i/o error",
    "database or disk is full",
)


def is_unavailable(exc: BaseException) -> bool:
    """True when `exc` (or an exception it was raised from) means the database cannot be reached
    or is not accepting work right now: connection refused or lost, timeouts, pool exhausted,
    server shutting down, SQLite locked or unopenable. False for errors in the request itself
    (constraint violations, missing tables, syntax, deadlocks, serialization failures)."""
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if _is_unavailable_one(current):
            return True
        stack.extend([getattr(current, "orig", None), current.__cause__, current.__context__])
    return False


def _is_unavailable_one(exc: BaseException) -> bool:
    if isinstance(exc, DatabaseUnavailable):
        return True
    if isinstance(exc, (sa_exc.TimeoutError, sa_exc.DisconnectionError)):
        return True  # pool exhausted / connection invalidated
    if isinstance(exc, sa_exc.DBAPIError):
        return bool(exc.connection_invalidated)  # otherwise judged by its .orig
    if isinstance(exc, sqlite3.OperationalError):
        message = str(exc).lower()
        return any(m in message for m in _SQLITE_UNAVAILABLE_MESSAGES)
    import psycopg  # a dependency; imported here so SQLite-only tools never load libpq

    if isinstance(exc, psycopg.InterfaceError):
        return True  # e.g. "the connection is closed"
    if isinstance(exc, psycopg.OperationalError):
        state = getattr(exc, "sqlstate", None)
        # No SQLSTATE: libpq failed to connect or lost the connection (refused, timeout...).
        return state is None or state.startswith("08") or state in _PG_UNAVAILABLE_STATES
    return isinstance(exc, (ConnectionError, TimeoutError))
