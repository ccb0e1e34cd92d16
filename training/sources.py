"""Rebuild the fetched real photo sources from clones of their repositories, exactly.

`training/data/sources.csv` names every real photo the project uses besides the shared set: the
repository, the commit, the path inside it, the SHA-256 of the bytes and the licence. Images are
never committed here; this script restores them from clones at those commits and refuses any file
whose bytes differ, so a figure computed on the rebuilt set is computed on the same photos.

    python -m training.sources rebuild --clones DIR [--out runs/sources]
    python -m training.sources list

`--clones DIR` holds one clone per repository, as `DIR/<owner>+<name>/repo` (a bare mirror) or
`DIR/<owner>/<name>` (an ordinary clone); `git clone https://github.com/<owner>/<name>` gives the
latter. Output: `OUT/<source>/<sha[:2]>/<sha>.<ext>` (content-addressed, so names never collide),
which is what `training.annotations.source_photos` reads.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
from collections import Counter
from pathlib import Path

from training.annotations import read_sources

DEFAULT_OUT = Path("runs/sources")


def clone_dir(clones: Path, repository: str) -> Path:
    owner, name = repository.split("/", 1)
    for candidate in (clones / f"{owner}+{name}" / "repo", clones / owner / name, clones / name):
        if candidate.exists():
            return candidate
    raise FileNotFoundError(
        f"no clone of {repository} under {clones} (expected {owner}+{name}/repo or {owner}/{name})"
    )


def rebuild(clones: Path, out: Path) -> dict[str, int]:
    """Write every manifest row's image under `out`; returns counts per source."""
    written: Counter[str] = Counter()
    for record in read_sources():
        repo = clone_dir(clones, record["repository"])
        data = subprocess.run(
            ["git", "-C", str(repo), "show", f"{record['commit']}:{record['path']}"],
            check=True,
            capture_output=True,
        ).stdout
        digest = hashlib.sha256(data).hexdigest()
        if digest != record["sha256"]:
            raise SystemExit(f"{record['repository']}@{record['commit']}:{record['path']}: SHA-256 {digest} "
                             f"differs from the manifest's {record['sha256']}")  # fmt: skip
        target = out / record["source"] / digest[:2] / f"{digest}{Path(record['path']).suffix.lower()}"
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            tmp = target.with_suffix(".tmp")
            tmp.write_bytes(data)
            tmp.replace(target)
        written[record["source"]] += 1
    return dict(written)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.sources", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    rb = sub.add_parser("rebuild", help="restore the images from clones at the manifest's commits")
    rb.add_argument("--clones", type=Path, required=True)
    rb.add_argument("--out", type=Path, default=DEFAULT_OUT)
    sub.add_parser("list", help="sources, licences and photo counts")
    args = parser.parse_args(argv)
    if args.cmd == "list":
        seen: Counter[tuple[str, str, str, str]] = Counter()
        for r in read_sources():
            seen[(r["source"], r["repository"], r["commit"], r["licence"])] += 1
        for (source, repo, commit, licence), n in sorted(seen.items()):
            print(f"{source}: {n} photos from {repo}@{commit[:12]} ({licence})")
        return 0
    counts = rebuild(args.clones, args.out)
    for source, n in sorted(counts.items()):
        print(f"{source}: {n} photos -> {args.out / source}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
