"""Photo rows: looking them up (the image bytes are in `storage.objects`, their decoding elsewhere)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.tables import Photo, PhotoHash, hash_segments

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


# --------------------------------------------------------------------------------------------------
# Near-duplicates: multi-index hashing over the 16-bit segments of `photo_hashes`


@dataclass(frozen=True)
class HashHit:
    """A stored photo whose hashes come within the distance asked for."""

    photo_id: str
    claim_id: str
    distance: int


def _within_one_bit(segment: int) -> set[int]:
    return {segment} | {segment ^ (1 << bit) for bit in range(16)}


def _segment_keys(values: Sequence[int]) -> tuple[set[int], set[int], set[int], set[int]]:
    keys: tuple[set[int], set[int], set[int], set[int]] = (set(), set(), set(), set())
    for value in values:
        for i, segment in enumerate(hash_segments(value)):
            keys[i].update(_within_one_bit(segment))
    return keys


_SEGMENTS = (PhotoHash.s0, PhotoHash.s1, PhotoHash.s2, PhotoHash.s3)


def _distances(values: np.ndarray, queries: Sequence[int]) -> np.ndarray:
    """For each stored value, the fewest bits it differs in from any of `queries`."""
    q = np.array([v & 0xFFFF_FFFF_FFFF_FFFF for v in queries], dtype=np.uint64)
    return np.bitwise_count(values[:, None] ^ q[None, :]).min(axis=1)


def similar_photos(
    session: Session,
    whole: Sequence[int],
    parts: Sequence[int],
    *,
    max_distance: int,
    exclude_claim_id: str | None = None,
) -> list[HashHit]:
    """Stored photos that match: one of `whole` (the new photo's whole-photo hashes, e.g. it and its
    mirror image) within `max_distance` bits of ANY stored hash (so a cropped copy of a stored photo
    is found through the stored photo's crop hashes), or one of `parts` (the new photo's crop hashes)
    within `max_distance` of a stored WHOLE-photo hash (so a stored cropped copy is found too).

    Multi-index hashing: two 64-bit hashes within 7 bits agree within 1 bit on at least one of their
    four 16-bit segments (pigeonhole), so the candidates are the rows with any segment within one bit
    of the query's: four IN look-ups on indexes that also hold each row's kind and value, so they
    never touch the table. The exact distance is then checked here (numpy), and only the matches are
    joined to their photos. Best distance per stored photo, closest first."""
    if max_distance > 7:
        raise ValueError("the four-segment index finds matches within 7 bits only")
    if not whole and not parts:
        return []
    whole_keys, part_keys = _segment_keys(whole), _segment_keys(parts)
    # Index-only scans (each index holds segment, kind and value): the whole-photo queries against
    # every stored hash, the crop queries against stored whole-photo hashes (kind 0) only.
    statement = select(PhotoHash.id, PhotoHash.kind, PhotoHash.value)
    wanted = []
    for i, column in enumerate(_SEGMENTS):
        if whole:
            wanted.append(statement.where(column.in_(sorted(whole_keys[i]))))
        if parts:
            wanted.append(statement.where(column.in_(sorted(part_keys[i])), PhotoHash.kind == 0))
    # One statement per branch: on PostgreSQL a UNION ALL of the eight measured no faster at the
    # median and slower at p95 (bench/bench_photo_index.py).
    columns: list[list[int]] = [[], [], []]  # ids, kinds, values (Row objects are slow to convert)
    for query in wanted:
        rows = session.execute(query).all()
        if rows:
            for out, values_ in zip(columns, zip(*rows, strict=True), strict=True):
                out.extend(values_)
    if not columns[0]:
        return []
    all_ids = np.array(columns[0], dtype=np.int64)
    ids, first = np.unique(all_ids, return_index=True)
    kinds = np.array(columns[1], dtype=np.int64)[first]
    values = np.array(columns[2], dtype=np.int64)[first].view(np.uint64)
    best_bits = np.full(len(ids), 64, dtype=np.int64)
    if whole:
        best_bits = np.minimum(best_bits, _distances(values, whole))
    if parts:
        whole_rows = kinds == 0
        best_bits[whole_rows] = np.minimum(best_bits[whole_rows], _distances(values[whole_rows], parts))
    close = best_bits <= max_distance
    if not close.any():
        return []
    bits_of = dict(zip(ids[close].tolist(), best_bits[close].tolist(), strict=True))
    matched = session.execute(
        select(PhotoHash.id, Photo.id, Photo.claim_id)
        .join(Photo, Photo.id == PhotoHash.photo_id)
        .where(PhotoHash.id.in_(list(bits_of)))
    ).all()
    best: dict[str, HashHit] = {}
    for hash_id, photo_id, claim_id in matched:
        distance = int(bits_of[hash_id])
        if claim_id == exclude_claim_id:
            continue
        if photo_id not in best or distance < best[photo_id].distance:
            best[photo_id] = HashHit(photo_id, claim_id, distance)
    return sorted(best.values(), key=lambda hit: (hit.distance, hit.claim_id, hit.photo_id))
