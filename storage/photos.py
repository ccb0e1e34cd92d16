"""Photo rows: looking them up (the image bytes are in `storage.objects`, their decoding elsewhere)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.tables import Photo

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
