"""Benchmark the reused-photo look-up (`storage.photos.similar_photos`) as stored hashes accumulate.

    python bench/bench_photo_index.py [--sizes 10000,100000,1000000] [--queries 30] [--postgres URL]

Each photo stores 10 perceptual hashes (whole + 9 crops), so 1,000,000 stored hashes are 100,000
photos. For each size the table gives the look-up's p50/p95 per new photo (the query the assessment
runs: its whole hash and mirror against every stored hash, its 9 crop hashes against whole-photo
hashes), the floor (one indexed equality look-up on one segment: the least any indexed look-up
costs), and a full scan (read every stored hash and compare in numpy: what the index replaces).

Stored hashes: by default derived from real photos (each a hash of one of 1,200 shared-set photos,
whole or cropped, with 16 random bits flipped), which keeps the bias of real pHashes; the query
photos are 30 OTHER shared-set photos. `--uniform` uses uniform random hashes (the index's best
case). Without the shared set, uniform hashes and random-noise query photos. Goal (issue 13): under 20 ms at 1M on this machine.
This is a measurement, not a test: numbers depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import csv
import platform
import statistics
import sys
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
from sqlalchemy import insert, select, text  # noqa: E402

from models.fingerprints import MATCH_DISTANCE, fingerprint  # noqa: E402
from storage.db import make_engine, make_sessionmaker, migrate  # noqa: E402
from storage.photos import similar_photos  # noqa: E402
from storage.tables import Claim, Photo, PhotoHash, User, hash_segments, utcnow  # noqa: E402

HASHES_PER_PHOTO = 10
PHOTOS_PER_CLAIM = 100
SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "damaged-intact-boxes"


def _signed(values: np.ndarray) -> list[int]:
    return [int(v) for v in values.astype(np.int64)]


SEED_PHOTOS = 1200


def _shared_files() -> list[Path]:
    labels = SHARED / "labels.csv"
    if not labels.exists():
        return []
    with labels.open(encoding="utf-8") as f:
        return [SHARED / row["file"] for row in csv.DictReader(f)]


def _real_hashes(files: list[Path]) -> np.ndarray:
    """Every pHash (whole and crops) of these photos, unsigned."""
    prints = [fingerprint(Image.open(p)).hashes for p in files]
    return np.array([h & 0xFFFF_FFFF_FFFF_FFFF for hs in prints for h in hs], dtype=np.uint64)


def _stored(n: int, rng: np.random.Generator, seeds: np.ndarray) -> np.ndarray:
    if len(seeds) == 0:
        return rng.integers(0, 2**63, size=n, dtype=np.uint64) * np.uint64(2) + rng.integers(
            0, 2, size=n, dtype=np.uint64
        )
    base = seeds[rng.integers(0, len(seeds), size=n)]
    flips = np.zeros(n, dtype=np.uint64)
    for _ in range(16):
        flips |= np.uint64(1) << rng.integers(0, 64, size=n, dtype=np.uint64)
    return base ^ flips


def _load(sessions, values: np.ndarray) -> None:
    """Users, claims, photos and their hashes, in bulk (Core inserts, batches of 20,000)."""
    n_photos = len(values) // HASHES_PER_PHOTO
    now = utcnow()
    with sessions() as session:
        user = User(
            name=f"bench-{uuid.uuid4().hex[:8]}", role="customer", key_prefix="bench", key_hash="0" * 64
        )
        session.add(user)
        session.flush()
        claim_ids = [str(uuid.uuid4()) for _ in range((n_photos + PHOTOS_PER_CLAIM - 1) // PHOTOS_PER_CLAIM)]
        session.execute(
            insert(Claim),
            [
                {
                    "id": cid,
                    "customer_id": user.id,
                    "tracking_number": f"BENCH{i:09d}",
                    "declared_value": Decimal("100.00"),
                    "currency": "CNY",
                    "state": "denied",
                    "created_at": now,
                    "updated_at": now,
                    "state_changed_at": now,
                    "row_version": 1,
                }
                for i, cid in enumerate(claim_ids)
            ],
        )
        photo_ids = [str(uuid.uuid4()) for _ in range(n_photos)]
        for start in range(0, n_photos, 20_000):
            session.execute(
                insert(Photo),
                [
                    {
                        "id": photo_ids[i],
                        "claim_id": claim_ids[i // PHOTOS_PER_CLAIM],
                        "position": i % PHOTOS_PER_CLAIM + 1,
                        "sha256": f"{i:064d}",
                        "original_key": "-",
                        "derivative_key": "-",
                        "content_type": "image/jpeg",
                        "byte_size": 1,
                        "width": 1,
                        "height": 1,
                        "created_at": now,
                    }
                    for i in range(start, min(n_photos, start + 20_000))
                ],
            )
        signed = _signed(values)
        for start in range(0, len(signed), 20_000):
            rows = []
            for i in range(start, min(len(signed), start + 20_000)):
                s0, s1, s2, s3 = hash_segments(signed[i])
                rows.append(
                    {
                        "photo_id": photo_ids[i // HASHES_PER_PHOTO],
                        "kind": i % HASHES_PER_PHOTO,
                        "value": signed[i],
                        "s0": s0,
                        "s1": s1,
                        "s2": s2,
                        "s3": s3,
                    }
                )
            session.execute(insert(PhotoHash), rows)
        session.commit()
        if session.bind.dialect.name == "postgresql":
            session.execute(text("ANALYZE photo_hashes"))
            session.execute(text("ANALYZE photos"))
            session.commit()


def _time_ms(fn, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def _bench(url: str, n: int, queries: list, seeds: np.ndarray, label: str) -> dict[str, Any]:
    migrate(url)
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    try:
        rng = np.random.default_rng(n)
        t0 = time.perf_counter()
        _load(sessions, _stored(n, rng, seeds))
        load_s = time.perf_counter() - t0
        lookups: list[float] = []
        hits = 0
        with sessions() as session:
            for q in queries:  # warm-up
                similar_photos(
                    session, [q.hashes[0], q.mirrored[0]], q.hashes[1:], max_distance=MATCH_DISTANCE
                )
            for q in queries:
                t = time.perf_counter()
                found = similar_photos(
                    session, [q.hashes[0], q.mirrored[0]], q.hashes[1:], max_distance=MATCH_DISTANCE
                )
                lookups.append((time.perf_counter() - t) * 1000)
                hits += len(found)
            segment = hash_segments(queries[0].hashes[0])[0]
            floor = _time_ms(
                lambda: session.execute(select(PhotoHash.id).where(PhotoHash.s0 == segment)).all(), 20
            )
            scan: list[float] = []
            if n <= 100_000:
                q = queries[0]

                def full_scan() -> None:
                    values = np.array(session.scalars(select(PhotoHash.value)).all(), dtype=np.int64).view(
                        np.uint64
                    )
                    np.bitwise_count(values ^ np.uint64(q.hashes[0] & 0xFFFF_FFFF_FFFF_FFFF)).min()

                scan = _time_ms(full_scan, 3)
        return {
            "db": label,
            "stored": n,
            "load_s": load_s,
            "p50": statistics.median(lookups),
            "p95": sorted(lookups)[int(0.95 * (len(lookups) - 1))],
            "floor": statistics.median(floor),
            "scan": statistics.median(scan) if scan else None,
            "hits": hits / len(queries),
        }
    finally:
        engine.dispose()


def _postgres_db(admin_url: str) -> tuple[str, str]:
    import psycopg
    from sqlalchemy.engine import make_url

    admin = make_url(admin_url)
    conninfo = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    name = f"claimlane_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return admin.set(database=name).render_as_string(hide_password=False), conninfo


def _drop(conninfo: str, url: str) -> None:
    import psycopg
    from sqlalchemy.engine import make_url

    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--queries", type=int, default=30)
    parser.add_argument("--uniform", action="store_true", help="uniform random stored hashes")
    parser.add_argument("--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--no-sqlite", action="store_true")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]

    files = _shared_files()
    seeds = np.zeros(0, dtype=np.uint64)
    if files and not args.uniform:
        seeds = _real_hashes(files[:SEED_PHOTOS])
    if files:
        # New photos as the assessment sees them: real photos none of the stored hashes came from.
        queries = [fingerprint(Image.open(p)) for p in files[-args.queries :]]
    else:
        rng = np.random.default_rng(7)
        queries = [
            fingerprint(Image.fromarray(rng.integers(0, 256, size=(240, 320, 3), dtype=np.uint8)))
            for _ in range(args.queries)
        ]
    kind = "uniform random" if len(seeds) == 0 else f"real pHashes of {SEED_PHOTOS} photos, 16 bits flipped"
    print(
        f"# Reused-photo look-up, {platform.machine()} {platform.processor() or ''}, Python {platform.python_version()}"
    )
    print(f"stored hashes: {kind}; {len(queries)} query photos; match within {MATCH_DISTANCE} bits\n")
    print(
        "| database | stored hashes | look-up p50 ms | p95 ms | floor ms (1 indexed =) | p50 / floor | full scan ms | hits/query | load s |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    results: list[dict[str, Any]] = []
    for n in sizes:
        targets = []
        if not args.no_sqlite:
            targets.append("sqlite")
        if not args.no_postgres:
            targets.append("postgresql")
        for target in targets:
            if target == "sqlite":
                with tempfile.TemporaryDirectory() as tmp:
                    row = _bench(f"sqlite:///{tmp}/bench.db", n, queries, seeds, "SQLite")
            else:
                try:
                    url, conninfo = _postgres_db(args.postgres)
                except Exception as exc:  # noqa: BLE001 - a bench reports what it could not run
                    print(f"| PostgreSQL | {n:,} | unavailable: {type(exc).__name__} | | | | | | |")
                    continue
                try:
                    row = _bench(url, n, queries, seeds, "PostgreSQL")
                finally:
                    _drop(conninfo, url)
            results.append(row)
            scan = "—" if row["scan"] is None else f"{row['scan']:.0f}"
            print(
                f"| {row['db']} | {n:,} | {row['p50']:.1f} | {row['p95']:.1f} | {row['floor']:.2f} | "
                f"{row['p50'] / row['floor']:.0f}x | {scan} | {row['hits']:.2f} | {row['load_s']:.0f} |",
                flush=True,
            )
    worst = max((r["p50"] for r in results if r["stored"] == max(sizes)), default=None)
    if worst is not None:
        print(f"\nat {max(sizes):,} stored hashes: slowest p50 {worst:.1f} ms (goal: under 20 ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
