"""Alembic environment for ClaimLane.

Used two ways:
- from code: `storage.db.migrate(url)` passes an open connection in ``config.attributes``;
- by developers: ``alembic -c storage/alembic.ini upgrade head`` (or ``revision --autogenerate``),
  with the URL from ``sqlalchemy.url`` if set, else the service's own (`config.settings`:
  ``CLAIMLANE_DATABASE_URL``, or the embedded SQLite file).

SQLite migrations run in batch mode (``render_as_batch``), since SQLite cannot ALTER most things.
"""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context

from config.settings import Settings
from storage.db import make_engine
from storage.tables import Base

config = context.config
target_metadata = Base.metadata
if config.config_file_name and config.attributes.get("connection") is None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)  # CLI use only


def _configure(**kwargs) -> None:
    context.configure(
        target_metadata=target_metadata,
        compare_type=True,
        compare_server_default=True,
        **kwargs,
    )


def _url() -> str:
    return config.get_main_option("sqlalchemy.url") or Settings().resolved_database_url()


def run_migrations_offline() -> None:
    url = _url()
    _configure(
        url=url,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        render_as_batch=url.startswith("sqlite"),
    )
    with context.begin_transaction():
        context.run_migrations()


def _run_on(connection) -> None:
    _configure(connection=connection, render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run_on(connection)
        return
    engine = make_engine(_url())
    try:
        with engine.connect() as conn:
            _run_on(conn)
            conn.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
