"""Export the adjusters' grades as a training set: `claimlane dataset export --out DIR`.

Every photo an adjuster graded (the latest grade given to it) becomes one manifest row in the one
manifest format (`training.manifest`): the original upload, byte for byte, as
`images/<sha256>.<ext>`, with `grade` = the adjuster's grade, `damaged` = grade >= 1 and
`source = "review"`. Photos nobody graded are not exported.

Groups: photos that must never straddle train/val/test share a group, named
`review:<sha256[:12] of the group's earliest-graded photo>`. Joined into one group are
- all photos of one claim (a claim's photos show one parcel);
- the same bytes (same sha256) wherever they were uploaded;
- near-duplicates: a 64-bit DCT perceptual hash (pHash) of each photo, and every pair at Hamming
  distance <= 6 is joined (union-find), so a photo re-encoded, resized or re-uploaded with another
  claim lands with its twin.

Split by time, not at random: groups are ordered by the earliest decision on any of their claims;
the oldest 70% are `train`, the next 15% `val`, the newest 15% `test`. A time split answers the
question that matters in production: how does a model trained on the past grade the claims that
come later? (A random split would flatter it: same season, same parcels, same fraud wave.) The split
is recomputed at each export, so test scores compare only between models evaluated on one export.

Also written: `decisions.csv`, one row per review decision: which model had assessed the claim and
with what probabilities, what the machine decided (offer or review, and why), what the adjuster did
(action, amount) and the adjuster's grade for each photo; and a `README.md` with the counts.

The originals are evidence and may carry EXIF metadata (GPS included): treat an export as personal
data.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from claims.lifecycle import ClaimState
from models.fingerprints import hamming as hamming
from models.fingerprints import phash as fingerprint_phash
from models.fingerprints import unsigned
from models.preprocessing import ImageError, load_image
from storage import photos as photo_rows
from storage import review as review_rows
from storage.objects import ObjectNotFound
from storage.tables import Photo, PhotoLabel, ReviewDecision
from training.manifest import Row, write_manifest

if TYPE_CHECKING:
    from services.context import Services

logger = logging.getLogger("claimlane.training.reviewed")

SOURCE = "review"
GROUP_PREFIX = "review:"
NEAR_DUPLICATE_BITS = 6  # pHash Hamming distance at or below which two photos are one group
SPLIT_FRACTIONS = (("train", 0.70), ("val", 0.15), ("test", 0.15))  # oldest to newest
EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp"}
PIL_EXTENSIONS = {"JPEG": "jpg", "MPO": "jpg", "PNG": "png", "WEBP": "webp"}
DECISION_FIELDS = (
    "decision_id",
    "claim_id",
    "decided_at",
    "adjuster_id",
    "action",
    "amount",
    "currency",
    "model_version",
    "model_grade",
    "model_probs",
    "machine_decision",
    "machine_reasons",
    "adjuster_grades",
    "photo_sha256",
)


# --------------------------------------------------------------------------------------------------
# Perceptual hash and groups


def phash(image: Image.Image) -> int:
    """64-bit DCT perceptual hash (the `imagehash` library's, the same one the reused-photo check of
    `models.fingerprints` stores), as an unsigned integer for numpy's uint64 arrays."""
    return unsigned(fingerprint_phash(image))


class UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)  # the root is the earliest item: stable names


def near_duplicate_pairs(hashes: list[int], max_bits: int = NEAR_DUPLICATE_BITS) -> list[tuple[int, int]]:
    """Index pairs (i < j) whose hashes differ in at most `max_bits` bits (vectorised, O(n^2))."""
    h = np.array(hashes, dtype=np.uint64)
    pairs = []
    for i in range(len(h) - 1):
        close = np.nonzero(np.bitwise_count(h[i + 1 :] ^ h[i]) <= max_bits)[0]
        pairs += [(i, i + 1 + int(j)) for j in close]
    return pairs


def split_by_time(n_groups: int) -> list[str]:
    """Splits for groups ordered oldest first: group i goes by the middle of its slot, (i + 0.5) / n,
    against the cumulative fractions (70% train, 15% val, 15% test)."""
    out = []
    for i in range(n_groups):
        position, bound = (i + 0.5) / n_groups, 0.0
        for split, fraction in SPLIT_FRACTIONS:
            bound += fraction
            if position < bound or split == SPLIT_FRACTIONS[-1][0]:
                out.append(split)
                break
    return out


# --------------------------------------------------------------------------------------------------
# Export


@dataclass
class _Labelled:
    photo: Photo
    grade: int
    decision: ReviewDecision
    first_decided: datetime  # the first decision on the photo's claim: its place in time
    data: bytes = b""
    ext: str = ""
    hash: int = 0


def _iso(value: datetime | None) -> str:
    return "" if value is None else value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _extension(photo: Photo, data: bytes) -> str:
    if photo.content_type in EXTENSIONS:
        return EXTENSIONS[photo.content_type]
    with Image.open(io.BytesIO(data)) as img:
        return PIL_EXTENSIONS.get(img.format or "", "bin")


def export_reviewed(services: Services, out_dir: str | Path) -> dict[str, Any]:
    """Write `out_dir/{images/, manifest.csv, decisions.csv, README.md}`; return the counts."""
    out = Path(out_dir)
    images = out / "images"
    images.mkdir(parents=True, exist_ok=True)
    skipped: Counter[str] = Counter()

    with services.sessions() as session:
        labels = review_rows.labelled_photos(session)
        decisions = review_rows.all_decisions(session)
        claim_ids = sorted({d.claim_id for d in decisions})
        machine = review_rows.machine_decisions(session, claim_ids)
        photos_of: dict[str, list[Photo]] = {}
        for photo in photo_rows.of_claims(session, claim_ids):
            photos_of.setdefault(photo.claim_id, []).append(photo)

    # The latest grade for each photo; a claim's place in time is its first decision.
    first_decided: dict[str, datetime] = {}
    latest: dict[str, tuple[PhotoLabel, ReviewDecision, Photo]] = {}
    for label, decision, photo in labels:
        first_decided.setdefault(decision.claim_id, decision.at)
        latest[photo.id] = (label, decision, photo)

    items: list[_Labelled] = []
    for label, decision, photo in latest.values():
        item = _Labelled(photo, label.grade, decision, first_decided[photo.claim_id])
        try:
            item.data = services.store.get(photo.original_key)
        except ObjectNotFound:
            logger.warning("photo %s: original %s is missing; not exported", photo.id, photo.original_key)
            skipped["missing_original"] += 1
            continue
        if hashlib.sha256(item.data).hexdigest() != photo.sha256:
            logger.warning("photo %s: original does not match its sha256; not exported", photo.id)
            skipped["checksum_mismatch"] += 1
            continue
        try:
            with load_image(item.data, min_side=64) as img:
                item.hash = phash(img)
        except ImageError as exc:
            logger.warning("photo %s: cannot decode (%s); not exported", photo.id, exc)
            skipped["undecodable"] += 1
            continue
        item.ext = _extension(photo, item.data)
        items.append(item)
    # Oldest first: group roots (and so group names) are each group's earliest photo.
    items.sort(key=lambda it: (it.first_decided, it.photo.claim_id, it.photo.position))

    uf = UnionFind(len(items))
    first_of: dict[str, int] = {}
    for i, item in enumerate(items):
        for key in (f"claim:{item.photo.claim_id}", f"sha:{item.photo.sha256}"):
            uf.union(first_of.setdefault(key, i), i)
    for i, j in near_duplicate_pairs([it.hash for it in items]):
        uf.union(i, j)
    members: dict[int, list[int]] = {}
    for i in range(len(items)):
        members.setdefault(uf.find(i), []).append(i)
    # Groups by their earliest decision (the root is the earliest item), then split by time.
    order = sorted(members, key=lambda root: (items[root].first_decided, root))
    split_of_root = dict(zip(order, split_by_time(len(order)), strict=True))

    rows: list[Row] = []
    for i, item in enumerate(items):
        root = uf.find(i)
        path = images / f"{item.photo.sha256}.{item.ext}"
        if not (path.exists() and path.stat().st_size == len(item.data)):
            path.write_bytes(item.data)
        rows.append(
            Row(
                path=path,
                grade=item.grade,
                damaged=int(item.grade >= 1),
                group=f"{GROUP_PREFIX}{items[root].photo.sha256[:12]}",
                source=SOURCE,
                split=split_of_root[root],
            )
        )
    manifest = write_manifest(out / "manifest.csv", rows)

    _write_decisions(out / "decisions.csv", decisions, labels, photos_of, machine)

    exported_at = datetime.now(UTC)
    splits = Counter(r.split for r in rows)
    summary: dict[str, Any] = {
        "out_dir": str(out),
        "manifest": str(manifest),
        "exported_at": _iso(exported_at),
        "photos": len(rows),
        "images": len({r.path for r in rows}),
        "claims": len({it.photo.claim_id for it in items}),
        "groups": len(order),
        "decisions": len(decisions),
        "splits": {s: splits.get(s, 0) for s, _ in SPLIT_FRACTIONS},
        "grades": {g: sum(r.grade == g for r in rows) for g in range(4)},
        "skipped": dict(skipped),
    }
    times = [it.first_decided for it in items]
    summary["first_decision"] = _iso(min(times)) if times else ""
    summary["last_decision"] = _iso(max(times)) if times else ""
    _write_readme(out / "README.md", summary)
    return summary


def _write_decisions(path: Path, decisions, labels, photos_of, machine) -> None:
    grades_of: dict[int, dict[str, int]] = {}
    for label, decision, _photo in labels:
        grades_of.setdefault(decision.id, {})[label.photo_id] = label.grade
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(DECISION_FIELDS)
        for d in decisions:
            photos = sorted(photos_of.get(d.claim_id, []), key=lambda p: p.position)
            graded = grades_of.get(d.id, {})
            # What the machine had decided: its last move out of `assessing` before this decision.
            before = [e for e in machine.get(d.claim_id, []) if e.at <= d.at]
            event = before[-1] if before else None
            kind = (
                "" if event is None else ("offer" if event.to_state == ClaimState.OFFERED.value else "review")
            )
            writer.writerow(
                [
                    d.id,
                    d.claim_id,
                    _iso(d.at),
                    d.adjuster_id,
                    d.action,
                    "" if d.amount is None else str(d.amount),
                    d.currency,
                    d.model_version or "",
                    "" if d.model_grade is None else d.model_grade,
                    json.dumps(d.model_probs) if d.model_probs is not None else "",
                    kind,
                    json.dumps(list(event.reason_codes or [])) if event is not None else "",
                    json.dumps({str(p.position): graded[p.id] for p in photos if p.id in graded}),
                    json.dumps({str(p.position): p.sha256 for p in photos if p.id in graded}),
                ]
            )


def _write_readme(path: Path, s: dict[str, Any]) -> None:
    splits = ", ".join(f"{n} {k}" for k, n in s["splits"].items())
    grades = ", ".join(f"grade {g}: {n}" for g, n in s["grades"].items())
    skipped = ", ".join(f"{k}: {n}" for k, n in s["skipped"].items()) or "none"
    path.write_text(
        f"""# Reviewed claims: adjusters' grades

Exported {s["exported_at"]} (UTC) by `claimlane dataset export`.

- {s["photos"]} graded photos ({s["images"]} distinct images) from {s["claims"]} claims,
  {s["groups"]} groups; decisions from {s["first_decision"] or "-"} to {s["last_decision"] or "-"}.
- {grades}.
- Splits: {splits}.
- {s["decisions"]} review decisions in `decisions.csv`. Not exported (skipped): {skipped}.

## Files

- `manifest.csv`: the training manifest (`path,grade,damaged,group,source,split`), one row per
  graded photo. `grade` is the adjuster's latest grade for the photo, `damaged` is `grade >= 1`,
  `source` is `review`. Photos no adjuster graded are not exported.
- `images/<sha256>.<ext>`: the original uploads, byte for byte. They may carry EXIF metadata,
  GPS included: this folder is personal data.
- `decisions.csv`: one row per review decision: claim, time, adjuster, action, amount, currency,
  the model version that assessed the claim, its claim probabilities and grade, what the machine
  decided (`offer` or `review`, with reason codes) and the adjuster's grade per photo position
  (`adjuster_grades`, with the photos' sha256 in `photo_sha256`).

## Groups and splits

A group is never split: all photos of one claim, identical files, and near-duplicates (64-bit DCT
pHash within {NEAR_DUPLICATE_BITS} bits) share a group, named `review:<sha256[:12]>` after its earliest photo.

Split by time: groups ordered by the earliest decision on their claims; the oldest 70% train, the
next 15% validation, the newest 15% test. The test split therefore measures how a model trained on
earlier claims grades later ones, which is how it is used. Splits are recomputed at every export.
"""
    )
