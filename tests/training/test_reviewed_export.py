"""The reviewed-claims export: adjusters' grades -> a training manifest, split by time, grouped so that
neither a claim nor a near-duplicate photo ever straddles two splits."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from config.settings import Settings
from services.context import Services, build_services
from services.photos import store_photo
from storage import photos as photo_rows
from storage.tables import AuditEvent, Claim, Photo, PhotoLabel, ReviewDecision, User, utcnow
from training.annotations import reviewed_photos
from training.manifest import read_manifest
from training.reviewed import export_reviewed, hamming, phash, split_by_time

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def parcel_jpeg(seed: int, size: tuple[int, int] = (160, 120), quality: int = 92) -> bytes:
    """A structured picture (gradient and a few boxes), unlike any other seed's at the pHash level."""
    rng = np.random.default_rng(seed)
    w, h = size
    img = np.zeros((h, w, 3), dtype=np.float64)
    img += np.linspace(0, 1, w)[None, :, None] * rng.uniform(40, 120, 3)
    for _ in range(5):
        x0, y0 = int(rng.integers(0, w - 30)), int(rng.integers(0, h - 30))
        img[y0 : y0 + int(rng.integers(15, 60)), x0 : x0 + int(rng.integers(15, 80))] = rng.uniform(0, 255, 3)
    buf = io.BytesIO()
    Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def near_duplicate(data: bytes) -> bytes:
    """The same picture slightly smaller, re-encoded at another quality: new bytes, same photo."""
    img = Image.open(io.BytesIO(data))
    buf = io.BytesIO()
    img.resize((img.width * 9 // 10, img.height * 9 // 10), Image.Resampling.LANCZOS).save(
        buf, format="JPEG", quality=75
    )
    return buf.getvalue()


@dataclass
class Seeded:
    customer: int
    adjuster: int
    claims: list[str] = field(default_factory=list)
    photos: dict[str, list[Photo]] = field(default_factory=dict)  # claim id -> photos by position
    originals: dict[str, bytes] = field(default_factory=dict)  # sha256 -> bytes


def make_users(services: Services) -> tuple[int, int]:
    with services.sessions() as session:
        users = [
            User(name=f"{role}-1", role=role, key_prefix=role[:8], key_hash="0" * 64)
            for role in ("customer", "adjuster")
        ]
        session.add_all(users)
        session.commit()
        return users[0].id, users[1].id


def add_claim(services: Services, seeded: Seeded, photos: list[bytes], *, model_version="tiny-0.0.1") -> str:
    with services.sessions() as session:
        claim = Claim(
            customer_id=seeded.customer,
            tracking_number=f"TRK-{len(seeded.claims)}",
            declared_value=Decimal("120.00"),
            currency="EUR",
            state="in_review",
            created_at=T0 - timedelta(days=1),
            model_version=model_version,
            claim_grade=1,
            claim_probs=[0.2, 0.5, 0.2, 0.1],
        )
        stored_photos = []
        for data in photos:
            stored, _ = store_photo(services.store, data)
            seeded.originals[stored.sha256] = data
            stored_photos.append(stored)
        photo_rows.add_to_claim(session, claim, stored_photos, first_position=1, now=utcnow())
        session.commit()
        seeded.claims.append(claim.id)
        seeded.photos[claim.id] = sorted(claim.photos, key=lambda p: p.position)
        return claim.id


def decide(
    services: Services,
    seeded: Seeded,
    claim_id: str,
    at: datetime,
    grades: dict[int, int],
    *,
    action: str = "approve",
    amount: str | None = "60.00",
    model_version: str = "tiny-0.0.1",
) -> int:
    """An adjuster's decision with grades for the photos at the given positions."""
    photos = {p.position: p.id for p in seeded.photos[claim_id]}
    with services.sessions() as session:
        decision = ReviewDecision(
            claim_id=claim_id,
            adjuster_id=seeded.adjuster,
            at=at,
            action=action,
            amount=None if amount is None else Decimal(amount),
            currency="EUR",
            reason=None if action == "approve" else "see photos",
            model_version=model_version,
            model_grade=1,
            model_probs=[0.2, 0.5, 0.2, 0.1],
            labels=[
                PhotoLabel(photo_id=photos[pos], grade=g, adjuster_id=seeded.adjuster, at=at)
                for pos, g in grades.items()
            ],
        )
        session.add(decision)
        session.commit()
        return decision.id


def machine_sent(services: Services, claim_id: str, at: datetime, to_state: str, reasons: list[str]) -> None:
    with services.sessions() as session:
        session.add(
            AuditEvent(
                claim_id=claim_id,
                at=at,
                actor="system",
                action="transition",
                from_state="assessing",
                to_state=to_state,
                model_version="tiny-0.0.1",
                reason_codes=reasons,
                detail={},
            )
        )
        session.commit()


@pytest.fixture
def services(tmp_path: Path, tiny_onnx_model: Path):
    services = build_services(Settings(data_dir=tmp_path / "data", model_path=tiny_onnx_model))
    yield services
    services.close()


@pytest.fixture
def seeded(services: Services) -> Seeded:
    """Ten claims decided an hour apart (claim i at T0 + i hours), with:
    - claim 0: two photos; claim 2's photo is a near-duplicate of claim 0's second photo;
    - claim 1: graded twice (photos requested, then approved): the latest grade counts;
    - claims 3 and 4: the very same file;
    - claim 5: two photos, only the first graded;
    - claim 10: in review, never decided."""
    customer, adjuster = make_users(services)
    s = Seeded(customer, adjuster)
    base = parcel_jpeg(0)
    add_claim(services, s, [parcel_jpeg(100), base])
    add_claim(services, s, [parcel_jpeg(1)])
    add_claim(services, s, [near_duplicate(base)])
    add_claim(services, s, [parcel_jpeg(3)])
    add_claim(services, s, [parcel_jpeg(3)])
    add_claim(services, s, [parcel_jpeg(5), parcel_jpeg(105)])
    for i in range(6, 10):
        add_claim(services, s, [parcel_jpeg(i)])
    add_claim(services, s, [parcel_jpeg(10)])  # never decided

    c = s.claims
    machine_sent(services, c[0], T0 - timedelta(hours=2), "in_review", ["low_confidence"])
    machine_sent(services, c[1], T0 - timedelta(hours=2), "offered", [])
    decide(services, s, c[0], T0, {1: 0, 2: 2})
    decide(services, s, c[1], T0 + timedelta(hours=1), {1: 1}, action="request_photos", amount=None)
    decide(services, s, c[2], T0 + timedelta(hours=2), {1: 2}, action="adjust", amount="45.50")
    decide(services, s, c[1], T0 + timedelta(hours=11), {1: 3}, model_version="tiny-0.0.2")
    for i in (3, 4, 6, 7, 8, 9):
        decide(services, s, c[i], T0 + timedelta(hours=i), {1: i % 4})
    decide(services, s, c[5], T0 + timedelta(hours=5), {1: 3}, action="deny", amount=None)
    return s


def by_sha(rows) -> dict[str, object]:
    return {r.path.name.split(".")[0]: r for r in rows}


def test_phash_matches_near_duplicates_only() -> None:
    base = parcel_jpeg(0)
    h = phash(Image.open(io.BytesIO(base)))
    assert hamming(h, phash(Image.open(io.BytesIO(near_duplicate(base))))) <= 6
    others = [phash(Image.open(io.BytesIO(parcel_jpeg(seed)))) for seed in (1, 3, 5, 6, 7, 100, 105)]
    assert min(hamming(h, o) for o in others) > 6


def test_split_by_time_is_70_15_15_oldest_first() -> None:
    assert split_by_time(20) == ["train"] * 14 + ["val"] * 3 + ["test"] * 3
    assert split_by_time(7) == ["train"] * 5 + ["val", "test"]
    assert split_by_time(0) == []


def test_export_writes_adjuster_grades_groups_and_time_splits(
    services: Services, seeded: Seeded, tmp_path: Path
) -> None:
    out = tmp_path / "export"
    summary = export_reviewed(services, out)
    rows = read_manifest(out / "manifest.csv")
    c, photos = seeded.claims, seeded.photos

    def row(claim: int, position: int = 1):
        return by_sha(rows)[photos[c[claim]][position - 1].sha256]

    # Every graded photo, once; the ungraded photo of claim 5 and undecided claim 10 are not there.
    # Claims 3 and 4 share one file: two rows, one image.
    assert len(rows) == 11 and len({r.path for r in rows}) == 10
    assert photos[c[5]][1].sha256 not in by_sha(rows) and photos[c[10]][0].sha256 not in by_sha(rows)
    assert summary["photos"] == 11 and summary["images"] == 10 and summary["claims"] == 10
    assert summary["decisions"] == 11 and summary["skipped"] == {}

    # Labels: the adjuster's grade, the latest one for a photo graded twice.
    expected: dict[str, list[int]] = {}
    for (claim, position), grade in {(0, 1): 0, (0, 2): 2, (1, 1): 3, (2, 1): 2, (5, 1): 3}.items() | {
        (i, 1): i % 4 for i in (3, 4, 6, 7, 8, 9)
    }.items():
        expected.setdefault(photos[c[claim]][position - 1].sha256, []).append(grade)
    got: dict[str, list[int]] = {}
    for r in rows:
        assert r.source == "review" and r.damaged == int(r.grade >= 1)
        got.setdefault(r.path.name.split(".")[0], []).append(r.grade)
    assert {k: sorted(v) for k, v in got.items()} == {k: sorted(v) for k, v in expected.items()}

    # The images are the uploads, byte for byte, named by their sha256.
    for r in rows:
        data = r.path.read_bytes()
        sha = r.path.name.split(".")[0]
        assert r.path.parent == out / "images" and r.path.suffix == ".jpg"
        assert hashlib.sha256(data).hexdigest() == sha and data == seeded.originals[sha]

    # Groups: a claim's photos together, the near-duplicate with its twin, the same file together.
    assert row(0, 1).group == row(0, 2).group == row(2).group == f"review:{photos[c[0]][0].sha256[:12]}"
    assert row(3).group == row(4).group == f"review:{photos[c[3]][0].sha256[:12]}"
    groups = {r.group for r in rows}
    assert len(groups) == summary["groups"] == 8

    # Splits by time: groups by their first decision (claim 1's first decision is at hour 1).
    order = [row(i).group for i in (0, 1, 3, 5, 6, 7, 8, 9)]
    assert [row(i).split for i in (0, 1, 3, 5, 6, 7, 8, 9)] == split_by_time(8)
    assert split_by_time(8) == ["train"] * 6 + ["val", "test"]
    assert len(set(order)) == 8
    for r in rows:
        assert {x.split for x in rows if x.group == r.group} == {r.split}
    assert summary["splits"] == {"train": 9, "val": 1, "test": 1}

    # decisions.csv: one row per decision, oldest first, with what the machine said.
    with (out / "decisions.csv").open(newline="") as fh:
        decisions = list(csv.DictReader(fh))
    assert len(decisions) == 11
    assert [d["decided_at"] for d in decisions] == sorted(d["decided_at"] for d in decisions)
    first = decisions[0]
    assert first["claim_id"] == c[0] and first["decided_at"] == "2026-11-02T09:00:00Z"
    assert (first["action"], first["amount"], first["currency"]) == ("approve", "60.0000", "EUR")
    assert first["model_version"] == "tiny-0.0.1" and json.loads(first["model_probs"]) == [0.2, 0.5, 0.2, 0.1]
    assert (first["machine_decision"], json.loads(first["machine_reasons"])) == ("review", ["low_confidence"])
    assert json.loads(first["adjuster_grades"]) == {"1": 0, "2": 2}
    assert json.loads(first["photo_sha256"]) == {"1": photos[c[0]][0].sha256, "2": photos[c[0]][1].sha256}
    on_claim_1 = [d for d in decisions if d["claim_id"] == c[1]]
    assert [(d["action"], d["amount"], d["model_version"]) for d in on_claim_1] == [
        ("request_photos", "", "tiny-0.0.1"),
        ("approve", "60.0000", "tiny-0.0.2"),
    ]
    assert [json.loads(d["adjuster_grades"]) for d in on_claim_1] == [{"1": 1}, {"1": 3}]
    assert {d["machine_decision"] for d in on_claim_1} == {"offer"}
    [denied] = [d for d in decisions if d["claim_id"] == c[5]]
    assert denied["action"] == "deny" and json.loads(denied["adjuster_grades"]) == {"1": 3}
    assert denied["machine_decision"] == ""  # no assessment on record for this claim

    readme = (out / "README.md").read_text()
    assert "11 graded photos" in readme and "9 train, 1 val, 1 test" in readme and "time" in readme

    # The export feeds `python -m training.grading ... --reviewed DIR`: usable parcel photos with the
    # adjuster's grade, their group and time split; the file of claims 3 and 4 (graded 3 and 0) is
    # left out, as nobody agrees on its grade.
    real = reviewed_photos(out)
    assert len(real) == 9 and {p.source for p in real} == {"review"}  # 10 images, one ambiguous
    assert all(p.annotation.usable for p in real)
    assert row(3).path not in {p.path for p in real}
    for p in real:
        r = by_sha(rows)[p.sha256]
        assert (p.annotation.grade, p.group, p.split) == (r.grade, r.group, r.split)


def test_export_with_no_reviews_is_empty(services: Services, tmp_path: Path) -> None:
    summary = export_reviewed(services, tmp_path / "empty")
    assert summary["photos"] == 0 and read_manifest(tmp_path / "empty" / "manifest.csv") == []
    assert (tmp_path / "empty" / "decisions.csv").read_text().startswith("decision_id,claim_id")
