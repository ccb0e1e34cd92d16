"""Photo rows: looking them up (the image bytes are in `storage.objects`, their decoding elsewhere)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Row, or_, select
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


def _any_segment(keys: tuple[set[int], set[int], set[int], set[int]]) -> ColumnElement[bool]:
    return or_(
        PhotoHash.s0.in_(sorted(keys[0])),
        PhotoHash.s1.in_(sorted(keys[1])),
        PhotoHash.s2.in_(sorted(keys[2])),
        PhotoHash.s3.in_(sorted(keys[3])),
    )


def _bits(a: int, b: int) -> int:
    return ((a ^ b) & 0xFFFF_FFFF_FFFF_FFFF).bit_count()


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
    of the query's, four indexed IN look-ups; the exact distance is then checked here. Best distance
    per stored photo, closest first."""
    if max_distance > 7:
        raise ValueError("the four-segment index finds matches within 7 bits only")
    best: dict[str, HashHit] = {}

    def consider(rows: Iterable[Row[int, str, str]], queries: Sequence[int]) -> None:
        for value, photo_id, claim_id in rows:
            if claim_id == exclude_claim_id:
                continue
            distance = min(_bits(value, q) for q in queries)
            if distance <= max_distance and (photo_id not in best or distance < best[photo_id].distance):
                best[photo_id] = HashHit(photo_id, claim_id, distance)

    columns = select(PhotoHash.value, Photo.id, Photo.claim_id).join(Photo, Photo.id == PhotoHash.photo_id)
    if whole:
        consider(session.execute(columns.where(_any_segment(_segment_keys(whole)))).all(), whole)
    if parts:
        rows = session.execute(columns.where(PhotoHash.kind == 0, _any_segment(_segment_keys(parts)))).all()
        consider(rows, parts)
    return sorted(best.values(), key=lambda hit: (hit.distance, hit.claim_id, hit.photo_id))
