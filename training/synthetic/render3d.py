"""3D parcel renders: path-traced boxes from Blender, finished like phone photos (source `render`).

Why a second generator: the procedural one (`training/synthetic/procedural.py`) draws in 2.5D; here a box is
real geometry under one light, so a dent, a crushed corner or a caved side shades and shadows as
it would in a customer's photo, and an intact kraft parcel with tape and a courier label sits on a
doorstep floor the same way a damaged one does. The scene lives in `training/synthetic/blender_parcel.py`
(Blender's own Python); this module draws the labels, runs Blender processes in parallel, puts
each render through the phone pipeline of `synthetic.phone_photo` (exposure, white balance, blur,
noise, JPEG) and writes manifest rows.

Blender is optional: Debian's `blender` package (3.4, Cycles on the CPU, about 0.5 s per 256 px
image per core). Without it, `blender_path()` is None and a run that asks for renders stops with
that message rather than training on something else.

CLI: `python -m training.synthetic.render3d --out DIR --n N [--seed S] [--split train] [--preview PNG]`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from training.manifest import Row, write_manifest
from training.synthetic.procedural import GRADE_P, JPEG_QUALITY, SEED_STRIDE, phone_photo
from training.synthetic.tex import F32

SCENE = Path(__file__).with_name("blender_parcel.py")
SAMPLES = 16  # Cycles samples per pixel: the phone pipeline's own noise hides the rest
RENDERED = "CLAIMLANE_RENDERED "  # what the scene prints after each finished image

__all__ = ["blender_path", "draw_label", "generate_renders", "main"]


def blender_path() -> str | None:
    """The Blender binary (`BLENDER` overrides), or None when it is not installed."""
    return shutil.which(os.environ.get("BLENDER") or "blender")


def draw_label(rng: np.random.Generator, path: Path) -> None:
    """A courier label: a carrier's colour band, address lines and a barcode (no real text)."""
    w, h = 256, 184
    img = Image.new("RGB", (w, h), tuple(int(v) for v in rng.integers(236, 256, 3)))
    d = ImageDraw.Draw(img)
    band = tuple(int(v) for v in rng.integers(0, 230, 3))
    if rng.random() < 0.7:
        d.rectangle((0, 0, w, int(rng.integers(18, 36))), fill=band)
    y = 44
    for _ in range(int(rng.integers(3, 7))):
        x1 = int(rng.integers(60, 220))
        d.rectangle((12, y, x1, y + 5), fill=(40, 40, 40))
        y += int(rng.integers(10, 15))
    x = 14
    top = min(y + 8, h - 50)
    while x < w - 16:
        bw = int(rng.integers(1, 4))
        d.rectangle((x, top, x + bw - 1, h - 14), fill=(10, 10, 10))
        x += bw + int(rng.integers(1, 4))
    img.save(path)


def _jobs(tmp: Path, n: int, seed: int, size: int, samples: int) -> list[dict]:
    jobs = []
    for i in range(n):
        s = seed * SEED_STRIDE + i
        rng = np.random.default_rng(s)
        grade = int(rng.choice(4, p=GRADE_P))
        label = tmp / f"label_{i:06d}.png"
        draw_label(rng, label)
        jobs.append(
            {
                "i": i,
                "seed": s,
                "grade": grade,
                "png": str(tmp / f"r_{i:06d}.png"),
                "label": str(label),
                "size": size,
                "samples": samples,
                "threads": 1,
            }
        )
    return jobs


def _finish(job: dict, out: Path, seed: int, split: str) -> Row:
    """The phone pipeline on one render, saved as JPEG."""
    rng = np.random.default_rng(job["seed"] + 17)
    with Image.open(job["png"]) as im:
        rgb = np.asarray(im.convert("RGB"), F32) * F32(1 / 255)
    img = phone_photo(rng, rgb, job["size"], flash=False)
    path = out / f"render_{seed}_{job['i']:06d}.jpg"
    img.save(path, "JPEG", quality=JPEG_QUALITY)
    return Row(
        path=path,
        grade=job["grade"],
        damaged=int(job["grade"] >= 1),
        group=f"render:{job['seed']}",
        source="render",
        split=split,
    )


def generate_renders(
    out_dir: str | Path,
    n: int,
    *,
    seed: int = 0,
    split: str = "train",
    size: int = 256,
    samples: int = SAMPLES,
    workers: int = 0,
    progress: bool = False,
) -> list[Row]:
    """Render `n` parcels into `out_dir` and return their rows. Image i is a function of
    `seed * 1_000_003 + i` alone (grade, scene, label, phone finish), so any number of Blender
    processes (`workers`, 0 = one per core, each single-threaded) render the same set."""
    blender = blender_path()
    if blender is None:
        raise RuntimeError(
            "3D renders need Blender: `apt-get install blender` (or set BLENDER=/path/to/blender)"
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    workers = workers or os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="claimlane-render-") as tmp_name:
        tmp = Path(tmp_name)
        jobs = _jobs(tmp, n, seed, size, samples)
        procs = []
        for w in range(min(workers, max(n, 1))):
            chunk = jobs[w::workers]
            spec = tmp / f"jobs_{w}.json"
            spec.write_text(json.dumps(chunk))
            cmd = [
                blender,
                "-b",
                "--factory-startup",
                "-noaudio",
                "--python-exit-code",
                "1",
                "-P",
                str(SCENE),
                "--",
                str(spec),
            ]
            procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
        rows = _collect(procs, {j["png"]: j for j in jobs}, out, seed, split, n, progress)
    rows.sort(key=lambda r: str(r.path))
    return rows


def _collect(
    procs: list[subprocess.Popen],
    jobs: dict[str, dict],
    out: Path,
    seed: int,
    split: str,
    n: int,
    progress: bool,
) -> list[Row]:
    """Finish each render as its Blender process reports it (the phone pipeline runs while
    Blender renders the next), keeping each process's last lines for the error message."""
    import selectors

    rows: list[Row] = []
    logs: list[list[str]] = [[] for _ in procs]
    sel = selectors.DefaultSelector()
    for k, p in enumerate(procs):
        assert p.stdout is not None  # started with stdout=PIPE
        sel.register(p.stdout, selectors.EVENT_READ, k)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=n, desc="render 3d", unit="img")
    streams = len(procs)
    while streams:
        for key, _ in sel.select():
            line = key.fileobj.readline()  # type: ignore[union-attr]  # our pipes, registered above
            if not line:
                sel.unregister(key.fileobj)
                streams -= 1
                continue
            logs[key.data] = [*logs[key.data][-39:], line]
            if line.startswith(RENDERED):
                rows.append(_finish(jobs[line[len(RENDERED) :].strip()], out, seed, split))
                if bar is not None:
                    bar.update()
    if bar is not None:
        bar.close()
    sel.close()
    for k, p in enumerate(procs):
        if p.stdout is not None:
            p.stdout.close()  # read to the end above; closing it here, not at garbage collection
        if p.wait() != 0 or len(rows) < n:
            tail = "".join(logs[k][-20:])
            raise RuntimeError(f"Blender failed ({len(rows)} of {n} rendered):\n{tail}")
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--split", default="train")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--samples", type=int, default=SAMPLES)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--preview", type=Path, help="also write a contact sheet PNG of the renders")
    args = ap.parse_args(argv)
    rows = generate_renders(
        args.out,
        args.n,
        seed=args.seed,
        split=args.split,
        size=args.size,
        samples=args.samples,
        workers=args.workers,
        progress=True,
    )
    write_manifest(args.out / "manifest.csv", rows)
    if args.preview:
        from training.synthetic.procedural import preview_sheet

        preview_sheet(rows, args.preview)
    print(f"{len(rows)} renders in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
