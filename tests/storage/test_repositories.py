"""The repository functions of `storage/` (the queries the services, workers, API and the export of
reviewed photos run), directly on a migrated SQLite database."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import event, select
from sqlalchemy.orm import Session, sessionmaker

from models.fingerprints import MATCH_DISTANCE
from services.photos import prepare_photo
from storage import claims as claim_rows
from storage import model_events as event_rows
from storage import photos as photo_rows
from storage import review as review_rows
from storage import shadow as shadow_rows
from storage import users as user_rows
from storage.db import make_engine, make_sessionmaker, migrate
from storage.tables import AuditEvent, Claim, Photo, PhotoHash, ShadowPrediction, User, hash_segments
from tests.factories import scene_photo

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def sessions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[sessionmaker[Session]]:
    url = f"sqlite:///{tmp_path / 'claimlane.db'}"
    monkeypatch.chdir(tmp_path)
    migrate(url)
    engine = make_engine(url)
    yield make_sessionmaker(engine)
    engine.dispose()


def _user(
    session: Session, role: str = "customer", name: str | None = None, prefix: str = "0a0b0c0d"
) -> User:
    user = User(
        name=name or f"{role}-{uuid.uuid4().hex[:10]}", role=role, key_prefix=prefix, key_hash="0" * 64
    )
    session.add(user)
    session.flush()
    return user


def _claim(session: Session, customer: User, tracking: str = "TRK-1", **values: object) -> Claim:
    values.setdefault("state", "in_review")
    claim = Claim(
        customer_id=customer.id,
        tracking_number=tracking,
        declared_value=Decimal("150.00"),
        currency="EUR",
        **values,
    )
    session.add(claim)
    session.flush()
    return claim


def _photo(session: Session, claim: Claim, position: int) -> Photo:
    photo = Photo(
        claim_id=claim.id,
        position=position,
        sha256=uuid.uuid4().hex * 2,
        original_key=f"originals/{claim.id}/{position}",
        derivative_key=f"derivatives/{claim.id}/{position}",
        content_type="image/jpeg",
        byte_size=100,
        width=80,
        height=80,
    )
    session.add(photo)
    session.flush()
    return photo


def _transition(session: Session, claim: Claim, from_state: str, to_state: str, reasons: list[str]) -> None:
    session.add(
        AuditEvent(
            claim_id=claim.id,
            actor="system",
            action="transition",
            from_state=from_state,
            to_state=to_state,
            reason_codes=reasons,
        )
    )
    session.flush()


# --------------------------------------------------------------------------------------------------
# storage.users


def test_users_by_name_prefix_and_id(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        alice = _user(session, "adjuster", name="alice", prefix="11111111")
        bob = _user(session, "adjuster", name="bob", prefix="11111111")
        carol = _user(session, "admin", name="carol", prefix="22222222")
    with sessions() as session:
        assert user_rows.name_taken(session, "alice")
        assert not user_rows.name_taken(session, "mallory")
        assert user_rows.key_prefix_taken(session, "22222222")
        assert not user_rows.key_prefix_taken(session, "33333333")
        assert {uid for uid, _ in user_rows.key_hashes_with_prefix(session, "11111111")} == {alice.id, bob.id}
        assert user_rows.key_hashes_with_prefix(session, "33333333") == []
        assert [u.name for u in user_rows.all_users(session)] == ["alice", "bob", "carol"]
        names = user_rows.names_by_id(session, [carol.id, None, alice.id, 9999])
        assert names == {alice.id: "alice", carol.id: "carol"}
        assert user_rows.names_by_id(session, [None]) == {}
        assert bob.id not in names


# --------------------------------------------------------------------------------------------------
# storage.review: leases


def test_take_lease_is_exclusive_until_it_expires(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        alice = _user(session, "adjuster")
        bob = _user(session, "adjuster")
        claim_id = _claim(session, _user(session)).id
        done_id = _claim(session, _user(session), state="denied").id
    expires = T0 + timedelta(minutes=15)
    with sessions.begin() as session:
        assert review_rows.lease_of(session, claim_id) == (None, None)
        assert review_rows.take_lease(session, claim_id, alice.id, T0, expires)
        assert not review_rows.take_lease(session, claim_id, bob.id, T0 + timedelta(minutes=1), expires)
        assert review_rows.take_lease(
            session, claim_id, alice.id, T0 + timedelta(minutes=1), expires
        )  # renew
        assert not review_rows.take_lease(session, done_id, alice.id, T0, expires)  # not in review
    with sessions.begin() as session:
        assert review_rows.lease_of(session, claim_id) == (alice.id, expires)
        later = expires + timedelta(seconds=1)
        assert review_rows.take_lease(session, claim_id, bob.id, later, later + timedelta(minutes=15))
    with sessions() as session:
        claim = review_rows.load_claim(session, claim_id, lock=True)
        assert claim is not None and claim.lease_holder_id == bob.id
        assert claim.row_version == 1 + 3  # each take moves the version (alice, alice again, bob)
        assert review_rows.lease_of(session, "no-such-claim") is None
        assert review_rows.load_claim(session, "no-such-claim") is None


# --------------------------------------------------------------------------------------------------
# storage.review: the queue and a case


def test_queue_reasons_and_related_claims(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        customer = _user(session)
        first = _claim(session, customer, "TRK-1")
        again = _claim(session, customer, "TRK-2")  # same customer
        other = _claim(session, _user(session), "TRK-1", state="denied")  # same parcel
        lone = _claim(session, _user(session), "TRK-9")
        _transition(session, first, "assessing", "in_review", ["low_confidence"])
        _transition(session, first, "offered", "in_review", ["customer_declined"])
        _transition(session, again, "assessing", "offered", [])
        ids = {"first": first.id, "again": again.id, "other": other.id, "lone": lone.id}
    with sessions() as session:
        assert {c.id for c in review_rows.in_review(session)} == {ids["first"], ids["again"], ids["lone"]}
        entries = review_rows.review_entries(session, [ids["first"], ids["again"]])
        assert entries == [(ids["first"], ["low_confidence"]), (ids["first"], ["customer_declined"])]
        first = session.get(Claim, ids["first"])
        assert first is not None
        related = {r[0] for r in review_rows.related_claims(session, [first])}
        assert related == {ids["first"], ids["again"], ids["other"]}
        assert review_rows.related_claims(session, []) == []
        assert {c.id for c in review_rows.prior_claims(session, first)} == {ids["again"], ids["other"]}
        assert review_rows.count_prior_claims(session, first) == 2


def test_decisions_labels_and_notes(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        adjuster = _user(session, "adjuster", name="alice")
        claim = _claim(session, _user(session), claim_grade=2, model_version="v1", claim_probs=[0, 0, 1, 0])
        p1, p2 = _photo(session, claim, 1), _photo(session, claim, 2)
        review_rows.add_decision(
            session, claim, adjuster.id, "deny", amount=None, reason="r", labels={p1.id: 1, p2.id: 2}, at=T0
        )
        session.flush()
        review_rows.add_decision(
            session,
            claim,
            adjuster.id,
            "adjust",
            amount=Decimal("20"),
            reason="again",
            labels={p1.id: 3},
            at=T0 + timedelta(hours=1),
        )
        note = review_rows.add_case_note(session, claim.id, adjuster.id, "looks crushed", T0)
        assert note.id is not None  # flushed
        ids = (claim.id, p1.id, p2.id)
    claim_id, p1_id, p2_id = ids
    with sessions() as session:
        assert review_rows.claim_labels(session, claim_id) == [(p1_id, 1), (p2_id, 2), (p1_id, 3)]
        decisions = review_rows.all_decisions(session)
        assert [d.action for d in decisions] == ["deny", "adjust"]
        assert decisions[0].model_version == "v1" and decisions[0].model_grade == 2
        assert decisions[0].currency == "EUR"
        labelled = review_rows.labelled_photos(session)
        assert [(label.grade, d.action, p.id) for label, d, p in labelled] == [
            (1, "deny", p1_id),
            (2, "deny", p2_id),
            (3, "adjust", p1_id),
        ]
        latest = review_rows.latest_labelled_originals(session, limit=10)
        assert sorted(latest) == sorted([(3, f"originals/{claim_id}/1"), (2, f"originals/{claim_id}/2")])
        assert len(review_rows.latest_labelled_originals(session, limit=1)) == 1
        notes = review_rows.case_notes(session, claim_id)
        assert [(n.text, n.author.name) for n in notes] == [("looks crushed", "alice")]


def test_machine_decisions_are_moves_out_of_assessing(
    sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(review_rows, "BATCH", 1)  # several IN (...) batches
    with sessions.begin() as session:
        customer = _user(session)
        a, b = _claim(session, customer, "A"), _claim(session, customer, "B")
        _transition(session, a, "submitted", "assessing", [])
        _transition(session, a, "assessing", "in_review", ["low_confidence"])
        _transition(session, b, "assessing", "offered", [])
        ids = (a.id, b.id)
    with sessions() as session:
        machine = review_rows.machine_decisions(session, list(ids))
        assert [e.to_state for e in machine[ids[0]]] == ["in_review"]
        assert [e.to_state for e in machine[ids[1]]] == ["offered"]


# --------------------------------------------------------------------------------------------------
# storage.photos, storage.claims


def test_photo_lookups(sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(photo_rows, "BATCH", 1)
    with sessions.begin() as session:
        customer = _user(session)
        a, b = _claim(session, customer, "A"), _claim(session, customer, "B")
        pa, pb = _photo(session, a, 1), _photo(session, b, 1)
        ids = (a.id, b.id, pa.id, pb.id)
    a_id, b_id, pa_id, pb_id = ids
    with sessions() as session:
        photo = photo_rows.get(session, pa_id)
        assert photo is not None and photo.claim_id == a_id
        assert photo_rows.get(session, "nope") is None
        assert photo_rows.get_of_claim(session, a_id, pa_id) is photo
        assert photo_rows.get_of_claim(session, b_id, pa_id) is None  # not through another claim
        assert {p.id for p in photo_rows.of_claims(session, [a_id, b_id])} == {pa_id, pb_id}
        assert photo_rows.of_claims(session, []) == []


def test_stale_claims_and_the_locked_load(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        customer = _user(session)
        old = _claim(session, customer, "TRK-1", state="submitted", state_changed_at=T0 - timedelta(hours=2))
        older = _claim(
            session, customer, "TRK-2", state="assessing", state_changed_at=T0 - timedelta(hours=3)
        )
        _claim(session, customer, "TRK-3", state="submitted", state_changed_at=T0)  # too recent
        _claim(session, customer, "TRK-4", state="offered", state_changed_at=T0 - timedelta(hours=5))  # done
        _photo(session, old, 1)
        ids = (old.id, older.id)
    with sessions() as session:
        states = ["submitted", "assessing"]
        assert claim_rows.stale_claim_ids(session, states, T0 - timedelta(hours=1), 10) == [ids[1], ids[0]]
        assert claim_rows.stale_claim_ids(session, states, T0 - timedelta(hours=1), 1) == [ids[1]]
        claim = claim_rows.load_for_update(session, ids[0])
        assert claim is not None and len(claim.photos) == 1
        assert claim_rows.load_for_update(session, "nope") is None


# --------------------------------------------------------------------------------------------------
# storage.model_events, storage.shadow


def test_model_events(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        event_rows.add(
            session, actor="cli:a", action="register", version="v2", previous_version=None, reason=None
        )
        event_rows.add(
            session,
            actor="admin:1",
            action="promote",
            version="v2",
            previous_version="v1",
            reason="ok",
            gate={},
        )
        event_rows.add(
            session, actor="admin:1", action="rollback", version="v1", previous_version="v2", reason="x"
        )
        event_rows.add(
            session,
            actor="admin:1",
            action="override",
            version="v3",
            previous_version="v1",
            reason="y",
            gate={},
        )
    with sessions() as session:
        assert [e.action for e in event_rows.recent(session)] == [
            "override",
            "rollback",
            "promote",
            "register",
        ]
        assert [e.action for e in event_rows.recent(session, version="v2")] == ["promote", "register"]
        assert [e.action for e in event_rows.recent(session, limit=1)] == ["override"]
        assert [(e.action, e.version) for e in event_rows.gated(session)] == [
            ("promote", "v2"),
            ("override", "v3"),
        ]


def test_shadow_predictions_filtered_oldest_first(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        claim = _claim(session, _user(session))
        for at, challenger in ((T0 + timedelta(hours=1), "v2"), (T0, "v2"), (T0 + timedelta(hours=2), "v3")):
            session.add(
                ShadowPrediction(
                    claim_id=claim.id,
                    at=at,
                    champion_version="v1",
                    challenger_version=challenger,
                    champion_probs=[1, 0, 0, 0],
                    challenger_probs=[1, 0, 0, 0],
                    champion_decision={"kind": "offer"},
                    challenger_decision={"kind": "offer"},
                    agree=True,
                )
            )
    with sessions() as session:
        assert [r.at for r in shadow_rows.predictions(session)] == [
            T0,
            T0 + timedelta(hours=1),
            T0 + timedelta(hours=2),
        ]
        assert len(shadow_rows.predictions(session, challenger_version="v2")) == 2
        since = shadow_rows.predictions(session, since=T0 + timedelta(minutes=30))
        assert [r.challenger_version for r in since] == ["v2", "v3"]


@pytest.fixture(params=["sqlite", "postgresql"])
def any_sessions(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[sessionmaker[Session]]:
    """Sessions on SQLite, then on a real PostgreSQL (skipped loudly, or failed on CI, when down)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'claimlane.db'}"
        monkeypatch.chdir(tmp_path)
    else:
        url = request.getfixturevalue("postgres_url")
    migrate(url)
    engine = make_engine(url)
    yield make_sessionmaker(engine)
    engine.dispose()


def test_a_claims_photo_hashes_go_in_with_one_statement_and_are_found(
    any_sessions: sessionmaker[Session],
) -> None:
    stored = [prepare_photo(scene_photo(seed), model_size=224).photo for seed in (11, 12, 13)]
    inserts: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany) -> None:  # noqa: ANN001
        if statement.lstrip().upper().startswith("INSERT INTO PHOTO_HASHES"):
            inserts.append(statement)

    with any_sessions.begin() as session:
        customer = _user(session)
        claim = _claim(session, customer, f"HASH-{uuid.uuid4().hex[:8]}", state="submitted")
        event.listen(session.connection().engine, "before_cursor_execute", count)
        try:
            photos = photo_rows.add_to_claim(session, claim, stored, first_position=1, now=T0)
        finally:
            event.remove(session.connection().engine, "before_cursor_execute", count)
        claim_id, photo_ids = claim.id, [p.id for p in photos]
    assert len(inserts) == 1  # thirty hashes, one statement (the ORM wrote one per hash)

    with any_sessions() as session:
        rows = session.scalars(select(PhotoHash).where(PhotoHash.photo_id.in_(photo_ids))).all()
        for photo_id, photo in zip(photo_ids, stored, strict=True):
            assert photo.fingerprint is not None
            mine = sorted((r for r in rows if r.photo_id == photo_id), key=lambda r: r.kind)
            assert [r.value for r in mine] == list(photo.fingerprint.hashes)
            assert all((r.s0, r.s1, r.s2, r.s3) == hash_segments(r.value) for r in mine)
        assert sorted(p.position for p in photo_rows.of_claims(session, [claim_id])) == [1, 2, 3]
        # A re-upload of the second photo finds it through the stored hashes.
        again = stored[1].fingerprint
        assert again is not None
        hits = photo_rows.similar_photos(
            session, [again.hashes[0], again.mirrored[0]], list(again.hashes[1:]), max_distance=MATCH_DISTANCE
        )
        assert [(h.photo_id, h.claim_id, h.distance) for h in hits][:1] == [(photo_ids[1], claim_id, 0)]
        # A hash added in this session and not flushed yet is found too (the look-up flushes first, as
        # session.execute would), a negative (signed) one included.
        value = -0x0123_4567_89AB_CDEF
        session.add(PhotoHash(photo_id=photo_ids[2], **PhotoHash.columns(0, value)))
        hits = photo_rows.similar_photos(session, [value ^ 0b101], [], max_distance=MATCH_DISTANCE)
        assert [(h.photo_id, h.distance) for h in hits] == [(photo_ids[2], 2)]


def test_segment_keys_are_every_segment_within_one_bit_and_render_as_plain_integers() -> None:
    """The near-duplicate look-up writes its keys into the SQL as integer literals: they must be exactly
    the segments within one bit of the queries' (signed hashes included), and nothing but digits."""
    values = [0, -1, (1 << 63) - 1, -(1 << 63), 0x0123_4567_89AB_CDEF, -0x0123_4567_89AB_CDEF]
    keys = photo_rows._segment_keys(values)
    for i in range(4):
        expected: set[int] = set()
        for value in values:
            segment = hash_segments(value)[i]
            expected |= {segment} | {segment ^ (1 << bit) for bit in range(16)}
        assert keys[i].tolist() == sorted(expected)
    sql = photo_rows._segment_lookup("s2", keys[2], whole_only=True)
    assert re.fullmatch(
        r"SELECT id, kind, value FROM photo_hashes WHERE s2 IN \(\d+(,\d+)*\) AND kind = 0", sql
    )
