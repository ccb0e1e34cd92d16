"""Photo rows: looking them up (the image bytes are in `storage.objects`, their decoding elsewhere)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from storage.tables import Claim, Photo, PhotoHash, hash_segments

# Ids per IN (...) list: well below every database's bound-parameter limit.
BATCH = 500


def get(session: Session, photo_id: str) -> Photo | None:
    """The photo by id (from the session's identity map when it is already loaded)."""
    return session.get(Photo, photo_id)


def get_of_claim(session: Session, claim_id: str, photo_id: str) -> Photo | None:
    """The photo, only if it belongs to this claim (so a photo id cannot be read through another claim)."""
    return session.scalar(select(Photo).where(Photo.id == photo_id, Photo.claim_id == claim_id))


def of_claims(session: Session, claim_ids: Sequence[str]) -> list[Photo]:
    """Every photo of these claims (unordered), queried in batches of `BATCH` ids."""
    photos: list[Photo] = []
    for start in range(0, len(claim_ids), BATCH):
        photos.extend(
            session.scalars(select(Photo).where(Photo.claim_id.in_(claim_ids[start : start + BATCH])))
        )
    return photos


def add_to_claim(
    session: Session, claim: Claim, stored: Sequence[Any], *, first_position: int, now: datetime
) -> list[Photo]:
    """Rows for photos `services.photos` has stored (`StoredPhoto`s), on `claim`, numbered from
    `first_position`, and their perceptual hashes, in the session's transaction.

    The hashes (ten per photo) go in as one multi-row INSERT once the photos are flushed. As ORM
    objects each was its own INSERT ... RETURNING id, because the ORM reads integer keys back row
    by row: thirty statements for a claim of three photos, on the upload's critical path."""
    photos = [
        Photo.from_stored(photo, position=position, created_at=now)
        for position, photo in enumerate(stored, start=first_position)
    ]
    session.add(claim)
    claim.photos.extend(photos)
    session.flush()
    rows = [
        {"photo_id": row.id, **PhotoHash.columns(kind, value)}
        for row, photo in zip(photos, stored, strict=True)
        if photo.fingerprint is not None
        for kind, value in enumerate(photo.fingerprint.hashes)
    ]
    if rows:
        session.execute(insert(PhotoHash), rows)
    return photos


# --------------------------------------------------------------------------------------------------
# Near-duplicates: multi-index hashing over the 16-bit segments of `photo_hashes`


@dataclass(frozen=True)
class HashHit:
    """A stored photo whose hashes come within the distance asked for."""

    photo_id: str
    claim_id: str
    distance: int


# A segment and the 16 segments one bit away from it, by XOR.
_ONE_BIT = np.array([0] + [1 << bit for bit in range(16)], dtype=np.int64)


def _segment_keys(values: Sequence[int]) -> list[np.ndarray]:
    """For each of the four segments (most significant first), the sorted distinct 16-bit keys within
    one bit of any of `values`' segment there."""
    segments = np.array([hash_segments(v) for v in values], dtype=np.int64).reshape(-1, 4)
    return [np.unique((segments[:, i, None] ^ _ONE_BIT[None, :]).ravel()) for i in range(4)]


_SEGMENTS = (PhotoHash.s0, PhotoHash.s1, PhotoHash.s2, PhotoHash.s3)


def _segment_lookup(column: str, keys: np.ndarray, *, whole_only: bool = False) -> str:
    """SQL for the stored hashes (id, kind, value) whose segment `column` is one of `keys`, with the keys
    written into the statement as integer literals.

    Why literals and not bound parameters: a claim of three photos looks up about 2,000 keys, and an
    expanding IN of bound parameters costs SQLAlchemy Python work for every value (coercion, a unique
    name, a placeholder, a dictionary entry), on the decision's path: the look-up took 7.8 ms of CPU a
    claim that way and 3.7 ms this way (with the keys built in NumPy; in process, SQLite, 40 claims
    stored). The keys are 16-bit segments this module computed, as a NumPy integer array (so
    only digits can reach the SQL text); both SQLite and PostgreSQL plan the literal list as the IN on
    the segment's index it was before."""
    table = PhotoHash.__tablename__
    values = ",".join(map(str, (np.asarray(keys, dtype=np.int64) & 0xFFFF).tolist()))
    kind = " AND kind = 0" if whole_only else ""
    return f"SELECT id, kind, value FROM {table} WHERE {column} IN ({values}){kind}"


def _distances(values: np.ndarray, queries: Sequence[int]) -> np.ndarray:
    """For each stored value, the fewest bits it differs in from any of `queries`."""
    q = np.array([v & 0xFFFF_FFFF_FFFF_FFFF for v in queries], dtype=np.uint64)
    return np.bitwise_count(values[:, None] ^ q[None, :]).min(axis=1)


@dataclass(frozen=True)
class HashQuery:
    """One new photo's hashes: `whole` (its whole-photo hash and its mirror image's) and `parts`
    (its crops' hashes)."""

    whole: Sequence[int]
    parts: Sequence[int]


def similar_photos(
    session: Session,
    whole: Sequence[int],
    parts: Sequence[int],
    *,
    max_distance: int,
    exclude_claim_id: str | None = None,
) -> list[HashHit]:
    """Stored photos that match one new photo (see `similar_photos_many`)."""
    return similar_photos_many(
        session, [HashQuery(whole, parts)], max_distance=max_distance, exclude_claim_id=exclude_claim_id
    )[0]


def similar_photos_many(
    session: Session,
    queries: Sequence[HashQuery],
    *,
    max_distance: int,
    exclude_claim_id: str | None = None,
) -> list[list[HashHit]]:
    """For each new photo, the stored photos that match it: its whole hashes within `max_distance`
    bits of ANY stored hash (so a cropped copy of a stored photo is found through the stored
    photo's crop hashes), or its crop hashes within `max_distance` of a stored WHOLE-photo hash (so a
    stored cropped copy is found too). All photos of a claim share one round of look-ups.

    Multi-index hashing: two 64-bit hashes within 7 bits agree within 1 bit on at least one of their
    four 16-bit segments (pigeonhole), so the candidates are the rows with any segment within one bit
    of a query's: IN look-ups on indexes that also hold each row's kind and value, so they never
    touch the table. The exact distances are then checked here (numpy), and only the matches are
    joined to their photos. Best distance per stored photo, closest first."""
    if max_distance > 7:
        raise ValueError("the four-segment index finds matches within 7 bits only")
    all_whole = [h for q in queries for h in q.whole]
    all_parts = [h for q in queries for h in q.parts]
    if not all_whole and not all_parts:
        return [[] for _ in queries]
    whole_keys, part_keys = _segment_keys(all_whole), _segment_keys(all_parts)
    wanted = []
    for i, column in enumerate(_SEGMENTS):
        if all_whole:
            wanted.append(_segment_lookup(column.name, whole_keys[i]))
        if all_parts:
            wanted.append(_segment_lookup(column.name, part_keys[i], whole_only=True))
    # One statement per branch: on PostgreSQL a UNION ALL of the eight measured no faster at the
    # median and slower at p95 (bench/bench_photo_index.py).
    columns: list[list[int]] = [[], [], []]  # ids, kinds, values (Row objects are slow to convert)
    session.flush()  # what session.execute would do first: hashes added in this session are found too
    connection = session.connection()
    for query in wanted:
        rows = connection.exec_driver_sql(query).all()
        if rows:
            for column_values, values_ in zip(columns, zip(*rows, strict=True), strict=True):
                column_values.extend(values_)
    if not columns[0]:
        return [[] for _ in queries]
    ids, first = np.unique(np.array(columns[0], dtype=np.int64), return_index=True)
    kinds = np.array(columns[1], dtype=np.int64)[first]
    values = np.array(columns[2], dtype=np.int64)[first].view(np.uint64)
    whole_rows = kinds == 0
    per_query: list[dict[int, int]] = []
    for q in queries:
        bits = np.full(len(ids), 64, dtype=np.int64)
        if q.whole:
            bits = np.minimum(bits, _distances(values, q.whole))
        if q.parts and whole_rows.any():
            bits[whole_rows] = np.minimum(bits[whole_rows], _distances(values[whole_rows], q.parts))
        close = bits <= max_distance
        per_query.append(dict(zip(ids[close].tolist(), bits[close].tolist(), strict=True)))
    matched = {hash_id for found in per_query for hash_id in found}
    if not matched:
        return [[] for _ in queries]
    owners = {
        hash_id: (photo_id, claim_id)
        for hash_id, photo_id, claim_id in session.execute(
            select(PhotoHash.id, Photo.id, Photo.claim_id)
            .join(Photo, Photo.id == PhotoHash.photo_id)
            .where(PhotoHash.id.in_(sorted(matched)))
        ).all()
    }
    out: list[list[HashHit]] = []
    for found in per_query:
        best: dict[str, HashHit] = {}
        for hash_id, distance in found.items():
            photo_id, claim_id = owners[hash_id]
            if claim_id == exclude_claim_id:
                continue
            if photo_id not in best or distance < best[photo_id].distance:
                best[photo_id] = HashHit(photo_id, claim_id, int(distance))
        out.append(sorted(best.values(), key=lambda hit: (hit.distance, hit.claim_id, hit.photo_id)))
    return out
