"""Engines, migrations and table behaviour on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import exc as sa_exc
from sqlalchemy import inspect, select, text, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from storage.db import (
    DatabaseUnavailable,
    is_unavailable,
    make_engine,
    make_sessionmaker,
    migrate,
    normalize_url,
    ping,
)
from storage.tables import AuditEvent, Base, Claim, ModelEvent, ShadowPrediction, User
from tests.backends import free_ports

TABLES = {
    "claim_feedback",
    "webhook_endpoints",
    "webhook_messages",
    "webhook_attempts",
    "console_sessions",
    "payout_instructions",
    "shipments",
    "photo_hashes",
    "users",
    "claims",
    "photos",
    "audit_events",
    "idempotency_keys",
    "review_decisions",
    "photo_labels",
    "case_notes",
    "model_events",
    "shadow_predictions",
}

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def migrated_postgres(postgres_url: str) -> str:
    migrate(postgres_url)
    return postgres_url


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A migrated database URL: a fresh SQLite file, or the session's PostgreSQL database."""
    if request.param == "postgresql":
        return request.getfixturevalue("migrated_postgres")
    url = f"sqlite:///{tmp_path / 'claimlane.db'}"
    monkeypatch.chdir(tmp_path)  # migrate must not depend on the working directory
    migrate(url)
    return url


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


def _customer(session: Session) -> User:
    user = User(
        name=f"customer-{uuid.uuid4().hex[:10]}", role="customer", key_prefix="ck_test", key_hash="0" * 64
    )
    session.add(user)
    session.flush()
    return user


def _claim(session: Session, **values) -> Claim:
    claim = Claim(
        customer_id=_customer(session).id,
        tracking_number="TRK-1",
        declared_value=Decimal("150.00"),
        currency="EUR",
        state="received",
        **values,
    )
    session.add(claim)
    session.flush()
    return claim


# --------------------------------------------------------------------------------------------------
# Migrations


def test_migrate_creates_the_schema(engine: Engine, db_url: str) -> None:
    migrate(db_url)  # again: a no-op
    names = set(inspect(engine).get_table_names())
    assert names == TABLES | {"alembic_version"}
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == "0010"


def test_migrated_schema_matches_the_models(engine: Engine) -> None:
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": True}
        )
        assert compare_metadata(context, Base.metadata) == []


@pytest.mark.slow
def test_processes_starting_together_migrate_one_sqlite_file_once(tmp_path: Path) -> None:
    """Web workers start at the same moment and each migrates at start: without a lock the second
    one created the tables again and died ("table users already exists"), taking the server down."""
    url = f"sqlite:///{tmp_path / 'claimlane.db'}"
    code = "import sys; from storage.db import migrate; migrate(sys.argv[1])"
    procs = [
        subprocess.Popen([sys.executable, "-c", code, url], cwd=ROOT, stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    failures = [err for p, err in zip(procs, errors, strict=True) if p.returncode != 0]
    assert not failures, failures[0][-2000:]
    engine = make_engine(url)
    try:
        assert "users" in inspect(engine).get_table_names()
    finally:
        engine.dispose()


def test_schema_comparison_does_see_differences(tmp_path: Path) -> None:
    """The empty diff above means something: a dropped index shows up."""
    url = f"sqlite:///{tmp_path / 'drift.db'}"
    migrate(url)
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text("DROP INDEX ix_claims_state"))
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert [d[0] for d in diff] == ["add_index"]
    finally:
        engine.dispose()


def test_normalize_url_picks_psycopg() -> None:
    assert normalize_url("postgresql://u@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("postgres://u@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("sqlite:///x.db").drivername == "sqlite"


def test_sqlite_connection_settings(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'p.db'}")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000
    finally:
        engine.dispose()


# --------------------------------------------------------------------------------------------------
# Tables


@pytest.mark.parametrize("amount", [Decimal("12345678901234.5678"), Decimal("0.01"), Decimal("-3.5")])
def test_money_round_trips_exactly(engine: Engine, amount: Decimal) -> None:
    sessions = make_sessionmaker(engine)
    with sessions.begin() as session:
        claim_id = _claim(session, payout_amount=amount).id
    with sessions() as session:
        value = session.get(Claim, claim_id).payout_amount
    assert isinstance(value, Decimal)
    assert value == amount
    assert value.as_tuple().exponent == -4  # 4 places on both databases
    with engine.connect() as conn:
        raw = conn.execute(text("SELECT payout_amount FROM claims WHERE id = :id"), {"id": claim_id}).scalar()
    assert Decimal(str(raw)) == amount  # exact in the database too, not a float


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        (1.5, TypeError),
        (Decimal("NaN"), ValueError),
        (Decimal("Infinity"), ValueError),
        (Decimal("100000000000000"), ValueError),
        (Decimal("99999999999999.99995"), ValueError),  # rounds up past NUMERIC(18, 4)
    ],
)
def test_money_refuses_what_numeric_18_4_cannot_hold(engine: Engine, bad, error) -> None:
    sessions = make_sessionmaker(engine)
    with sessions() as session, pytest.raises(sa_exc.StatementError) as info:
        _claim(session, payout_amount=bad)
    assert isinstance(info.value.orig, error)


def test_money_rounds_like_postgresql(engine: Engine) -> None:
    sessions = make_sessionmaker(engine)
    with sessions.begin() as session:
        claim_id = _claim(session, payout_amount=Decimal("0.00005"), confidence=Decimal("0.8765435")).id
    with sessions() as session:
        claim = session.get(Claim, claim_id)
        assert (claim.payout_amount, claim.confidence) == (Decimal("0.0001"), Decimal("0.876544"))


def test_datetimes_come_back_aware_utc(engine: Engine) -> None:
    sessions = make_sessionmaker(engine)
    due = datetime(2030, 1, 2, 3, 4, 5, 678000, tzinfo=UTC) + timedelta(hours=0)
    with sessions.begin() as session:
        claim_id = _claim(session, decision_due_at=due).id
    with sessions() as session:
        claim = session.get(Claim, claim_id)
    assert claim.decision_due_at == due and claim.decision_due_at.tzinfo is not None
    assert claim.created_at.tzinfo is not None


def test_foreign_keys_are_enforced(engine: Engine) -> None:
    sessions = make_sessionmaker(engine)
    with sessions() as session, pytest.raises(sa_exc.IntegrityError):
        session.add(
            Claim(
                customer_id=999_999, tracking_number="T", declared_value=Decimal(1), currency="EUR", state="x"
            )
        )
        session.flush()


def _audit_event(engine: Engine) -> int:
    sessions = make_sessionmaker(engine)
    with sessions.begin() as session:
        claim = _claim(session)
        event = AuditEvent(claim_id=claim.id, actor="system", action="transition", to_state="received")
        session.add(event)
        session.flush()
        return event.id


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_events SET actor = 'someone else' WHERE id = :id",
        "DELETE FROM audit_events WHERE id = :id",
    ],
    ids=["update", "delete"],
)
def test_audit_log_refuses_raw_sql_changes(engine: Engine, statement: str) -> None:
    event_id = _audit_event(engine)
    with pytest.raises(sa_exc.DBAPIError, match="append-only"), engine.begin() as conn:
        conn.execute(text(statement), {"id": event_id})
    with engine.connect() as conn:
        row = conn.execute(text("SELECT actor FROM audit_events WHERE id = :id"), {"id": event_id}).one()
    assert row.actor == "system"


def test_audit_log_refuses_truncate_on_postgresql(migrated_postgres: str) -> None:
    engine = make_engine(migrated_postgres)
    try:
        _audit_event(engine)
        with pytest.raises(sa_exc.DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(text("TRUNCATE audit_events CASCADE"))
    finally:
        engine.dispose()


def test_audit_log_refuses_orm_changes(engine: Engine) -> None:
    event_id = _audit_event(engine)
    sessions = make_sessionmaker(engine)
    with sessions() as session:
        event = session.get(AuditEvent, event_id)
        event.actor = "rewritten"
        with pytest.raises(PermissionError, match="append-only"):
            session.flush()
        session.rollback()
        session.delete(session.get(AuditEvent, event_id))
        with pytest.raises(PermissionError, match="append-only"):
            session.flush()
        session.rollback()
    # A bulk ORM statement skips mapper events; the database trigger still refuses it.
    with sessions() as session, pytest.raises(sa_exc.DBAPIError, match="append-only"):
        session.execute(update(AuditEvent).where(AuditEvent.id == event_id).values(actor="bulk"))
    with sessions() as session:
        assert session.scalars(select(AuditEvent.actor).where(AuditEvent.id == event_id)).one() == "system"


def _model_event(engine: Engine) -> int:
    sessions = make_sessionmaker(engine)
    with sessions.begin() as session:
        event = ModelEvent(
            actor="admin:1", action="promote", version="v2", previous_version="v1", gate={"passed": True}
        )
        session.add(event)
        session.flush()
        return event.id


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE model_events SET reason = 'rewritten' WHERE id = :id",
        "DELETE FROM model_events WHERE id = :id",
    ],
    ids=["update", "delete"],
)
def test_model_events_refuse_raw_sql_changes(engine: Engine, statement: str) -> None:
    event_id = _model_event(engine)
    with pytest.raises(sa_exc.DBAPIError, match="append-only"), engine.begin() as conn:
        conn.execute(text(statement), {"id": event_id})
    with engine.connect() as conn:
        row = conn.execute(text("SELECT reason, version FROM model_events WHERE id = :id"), {"id": event_id})
        assert tuple(row.one()) == (None, "v2")


def test_model_events_refuse_truncate_on_postgresql(migrated_postgres: str) -> None:
    engine = make_engine(migrated_postgres)
    try:
        _model_event(engine)
        with pytest.raises(sa_exc.DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(text("TRUNCATE model_events"))
    finally:
        engine.dispose()


def test_model_events_refuse_orm_changes(engine: Engine) -> None:
    event_id = _model_event(engine)
    sessions = make_sessionmaker(engine)
    with sessions() as session:
        session.get(ModelEvent, event_id).reason = "rewritten"
        with pytest.raises(PermissionError, match="append-only"):
            session.flush()
        session.rollback()
        session.delete(session.get(ModelEvent, event_id))
        with pytest.raises(PermissionError, match="append-only"):
            session.flush()


def test_shadow_predictions_round_trip(engine: Engine) -> None:
    sessions = make_sessionmaker(engine)
    with sessions.begin() as session:
        claim = _claim(session)
        row = ShadowPrediction(
            claim_id=claim.id,
            champion_version="v1",
            challenger_version="v2",
            champion_probs=[0.1, 0.2, 0.3, 0.4],
            challenger_probs=[0.4, 0.3, 0.2, 0.1],
            champion_decision={"kind": "offer", "grade": 3},
            challenger_decision={"kind": "review", "grade": 0},
            agree=False,
        )
        session.add(row)
        session.flush()
        row_id = row.id
    with sessions() as session:
        back = session.get(ShadowPrediction, row_id)
        assert back.challenger_probs == [0.4, 0.3, 0.2, 0.1]
        assert back.champion_decision == {"kind": "offer", "grade": 3}
        assert back.agree is False
        assert back.at.tzinfo is not None


def _down_and_up(tmp_path: Path, revision: str, after_down, after_up) -> None:
    """Migrate a fresh SQLite file, downgrade it to `revision`, check, upgrade again, check."""
    from alembic import command

    from storage.db import alembic_config

    url = f"sqlite:///{tmp_path / 'down.db'}"
    migrate(url)
    command.downgrade(alembic_config(url), revision)
    for step, check in ((None, after_down), (migrate, after_up)):
        if step is not None:
            step(url)
        engine = make_engine(url)
        try:
            check(engine)
        finally:
            engine.dispose()


def test_migration_0003_downgrades_and_upgrades_again(tmp_path: Path) -> None:
    def down(engine: Engine) -> None:
        names = set(inspect(engine).get_table_names())
        assert "model_events" not in names and "shadow_predictions" not in names
        with engine.connect() as conn:
            triggers = conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'trigger'")).scalars()
            assert not [t for t in triggers if t.startswith("model_events")]

    def up(engine: Engine) -> None:
        assert {"model_events", "shadow_predictions"} <= set(inspect(engine).get_table_names())

    _down_and_up(tmp_path, "0002", down, up)


def test_migration_0004_downgrades_and_upgrades_again(tmp_path: Path) -> None:
    def down(engine: Engine) -> None:
        inspector = inspect(engine)
        assert not {"shipments", "photo_hashes"} & set(inspector.get_table_names())
        assert "claimed_value" not in {c["name"] for c in inspector.get_columns("claims")}

    def up(engine: Engine) -> None:
        indexes = {i["name"]: i for i in inspect(engine).get_indexes("claims")}
        assert indexes["ux_claims_open_parcel"]["unique"]
        hashes = {i["name"]: i["column_names"] for i in inspect(engine).get_indexes("photo_hashes")}
        assert hashes["ix_photo_hashes_s0"] == ["s0", "kind", "value"]

    _down_and_up(tmp_path, "0003", down, up)


def test_migration_0006_downgrades_and_upgrades_again(tmp_path: Path) -> None:
    def down(engine: Engine) -> None:
        assert "owner" not in {c["name"] for c in inspect(engine).get_columns("idempotency_keys")}

    def up(engine: Engine) -> None:
        assert "owner" in {c["name"] for c in inspect(engine).get_columns("idempotency_keys")}

    _down_and_up(tmp_path, "0005", down, up)


def test_migration_0007_downgrades_and_upgrades_again(tmp_path: Path) -> None:
    def down(engine: Engine) -> None:
        assert "console_sessions" not in inspect(engine).get_table_names()

    def up(engine: Engine) -> None:
        assert "console_sessions" in inspect(engine).get_table_names()

    _down_and_up(tmp_path, "0006", down, up)


def test_migration_0008_downgrades_and_upgrades_again_with_the_paid_claims_in_its_outbox(
    tmp_path: Path,
) -> None:
    """A claim already in payout_instructed before 0008 gets its instruction when 0008 runs."""
    claim_id = ""

    def down(engine: Engine) -> None:
        nonlocal claim_id
        assert "payout_instructions" not in inspect(engine).get_table_names()
        with Session(engine) as session:
            user = User(name="c", role="customer", key_prefix="00000000", key_hash="0" * 64)
            session.add(user)
            session.flush()
            claim = Claim(
                customer_id=user.id,
                tracking_number="SF0008",
                declared_value=Decimal("80.00"),
                currency="CNY",
                state="payout_instructed",
                accepted_option="cash",
                payout_amount=Decimal("40.00"),
            )
            session.add(claim)
            session.commit()
            claim_id = claim.id

    def up(engine: Engine) -> None:
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT claim_id, option, amount, currency FROM payout_instructions")
            ).all()
        assert [(r[0], r[1], Decimal(str(r[2])), r[3]) for r in rows] == [
            (claim_id, "cash", Decimal("40"), "CNY")
        ]

    _down_and_up(tmp_path, "0007", down, up)


def test_migration_0009_downgrades_and_upgrades_again(tmp_path: Path) -> None:
    def down(engine: Engine) -> None:
        assert "claim_feedback" not in inspect(engine).get_table_names()

    def up(engine: Engine) -> None:
        assert "claim_feedback" in inspect(engine).get_table_names()

    _down_and_up(tmp_path, "0008", down, up)


def test_optimistic_locking_refuses_a_stale_update(engine: Engine) -> None:
    sessions = make_sessionmaker(engine)
    with sessions.begin() as session:
        claim_id = _claim(session).id
    first, second = sessions(), sessions()
    try:
        mine = first.get(Claim, claim_id)
        theirs = second.get(Claim, claim_id)
        assert mine.row_version == theirs.row_version == 1
        mine.state = "assessing"
        first.commit()
        assert mine.row_version == 2
        theirs.state = "rejected"
        with pytest.raises(StaleDataError):
            second.commit()
        second.rollback()
    finally:
        first.close()
        second.close()
    with sessions() as session:
        claim = session.get(Claim, claim_id)
        assert (claim.state, claim.row_version) == ("assessing", 2)


# --------------------------------------------------------------------------------------------------
# Availability


def test_ping_succeeds(engine: Engine) -> None:
    ping(engine)


def test_ping_on_a_closed_port_fails_fast_and_is_unavailable() -> None:
    (port,) = free_ports(1)
    engine = make_engine(f"postgresql://postgres@127.0.0.1:{port}/nothing")
    try:
        started = time.monotonic()
        with pytest.raises(DatabaseUnavailable) as info:
            ping(engine)
        assert time.monotonic() - started < 5
        assert is_unavailable(info.value)
        assert isinstance(info.value.__cause__, sa_exc.OperationalError)
        assert is_unavailable(info.value.__cause__)
        # The raw error from any query, as the API sees it, is recognised too.
        with pytest.raises(sa_exc.OperationalError) as raw:
            make_sessionmaker(engine)().execute(text("SELECT 1"))
        assert is_unavailable(raw.value)
    finally:
        engine.dispose()


def test_sqlite_that_cannot_be_opened_is_unavailable(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'missing-folder' / 'x.db'}")
    try:
        with pytest.raises(DatabaseUnavailable):
            ping(engine)
    finally:
        engine.dispose()


def test_request_errors_are_not_unavailability(engine: Engine) -> None:
    sessions = make_sessionmaker(engine)
    with sessions() as session:
        user = _customer(session)
        session.commit()
        session.add(User(name=user.name, role="customer", key_prefix="x", key_hash="0" * 64))
        with pytest.raises(sa_exc.IntegrityError) as duplicate:
            session.flush()
        assert not is_unavailable(duplicate.value)
        session.rollback()
        with pytest.raises(sa_exc.DBAPIError) as missing:
            session.execute(text("SELECT * FROM no_such_table"))
        assert not is_unavailable(missing.value)
    assert not is_unavailable(ValueError("nope"))


def test_in_memory_sqlite_is_shared_by_threads() -> None:
    engine = make_engine("sqlite://")
    try:
        Base.metadata.create_all(engine)
        sessions = make_sessionmaker(engine)
        worker = threading.Thread(target=lambda: _commit_customer(sessions))
        worker.start()
        worker.join()
        with sessions() as session:
            assert session.scalars(select(User)).one().role == "customer"
    finally:
        engine.dispose()


def _commit_customer(sessions) -> None:
    with sessions.begin() as session:
        _customer(session)
