"""Balance the real photos' labels within look-alike cells, so box type and backdrop stop predicting damage.

Why: in `damaged-intact-boxes` two things that are not damage predict the label. Brown corrugated
board is mostly `damaged` (retail packs are mostly `intact`), and cluttered, dim, phone-like scenes
are mostly `damaged` (studio shots on a plain backdrop mostly `intact`). A customer's photo of an
intact brown parcel on a hallway floor has both "damaged" looks, so a model that learned them flags
it. Synthetic parcels counter this only in the generator's own look; here the real photos
themselves are re-weighted: every photo falls into a cell by how much kraft board it shows and
whether its backdrop is plain, and within each cell intact and damaged photos get equal total
weight (the cell keeps its size). The sampler then draws, e.g., the few real intact brown boxes on
busy floors about twice as often and the many damaged ones there less often.

The cell attributes are crude colour statistics on purpose: they only have to track the nuisance,
not to find damage, and they are cheap (a 96 px thumbnail per photo, once per run).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from training.manifest import Row

THUMB = 96
KRAFT_BINS = (0.1, 0.3)  # share of kraft-board pixels: little, some, mostly brown board
PLAIN_BORDER = 0.6  # share of the frame's border within a few levels of its median colour
BORDER = 6  # px of the thumbnail
WEIGHT_RANGE = (0.25, 4.0)  # a tiny cell must not turn into a handful of photos drawn endlessly

Cell = tuple[int, int]


def kraft_fraction(hsv: np.ndarray) -> float:
    """Share of pixels with the hue, saturation and value of brown corrugated board."""
    h, s, v = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    kraft = (h > 15 / 360) & (h < 45 / 360) & (s > 0.2) & (s < 0.75) & (v > 0.25) & (v < 0.9)
    return float(kraft.mean())


def border_pixels(rgb: np.ndarray, width: int) -> np.ndarray:
    """The (N, 3) pixels of a `width`-pixel frame around an image: where a studio backdrop shows."""
    b = width
    return np.concatenate(
        [
            rgb[:b].reshape(-1, 3),
            rgb[-b:].reshape(-1, 3),
            rgb[:, :b].reshape(-1, 3),
            rgb[:, -b:].reshape(-1, 3),
        ]
    )


def plain_border_fraction(rgb: np.ndarray) -> float:
    """Share of the border that is one flat colour: high for studio and stock shots."""
    border = border_pixels(rgb, BORDER)
    median = np.median(border, axis=0)
    return float((np.abs(border - median).max(axis=1) < 18).mean())


def nuisance_cell(path: str | Path) -> Cell:
    """(kraft bin 0-2, plain backdrop 0/1) of one photo."""
    with Image.open(path) as im:
        im.draft("RGB", (THUMB, THUMB))
        thumb = im.convert("RGB").resize((THUMB, THUMB))
    hsv = np.asarray(thumb.convert("HSV"), dtype=np.float32) / 255
    rgb = np.asarray(thumb, dtype=np.float32)
    kraft = int(np.digitize(kraft_fraction(hsv), KRAFT_BINS))
    return kraft, int(plain_border_fraction(rgb) > PLAIN_BORDER)


def balanced_weights(
    labels: Sequence[int], cells: Sequence[Cell | None], weight_range: tuple[float, float] = WEIGHT_RANGE
) -> np.ndarray:
    """Sampling weight per row: within each cell, both labels get half the cell's weight.

    Rows whose cell is None (synthetic and composite photos, balanced by construction) keep 1. A
    cell with only one label keeps 1 too: there is nothing to balance it against.
    """
    counts = Counter((c, y) for c, y in zip(cells, labels, strict=True) if c is not None)
    weights = np.ones(len(labels), dtype=np.float64)
    for i, (cell, y) in enumerate(zip(cells, labels, strict=True)):
        if cell is None or not counts[(cell, 1 - y)]:
            continue
        total = counts[(cell, 0)] + counts[(cell, 1)]
        weights[i] = np.clip(total / (2 * counts[(cell, y)]), *weight_range)
    return weights


def sampling_weights(rows: Sequence[Row], sources: Iterable[str]) -> tuple[np.ndarray, dict[str, dict]]:
    """Weights for the training rows of `sources` (a row's dataset is its source before ':').

    Returns the weights and, per cell, the damaged share before and after, for the run's log.
    """
    wanted = set(sources)
    cells = [nuisance_cell(r.path) if r.source.split(":")[0] in wanted else None for r in rows]
    labels = [r.damaged for r in rows]
    weights = balanced_weights(labels, cells)
    report: dict[str, dict] = {}
    for cell in sorted({c for c in cells if c is not None}):
        idx = [i for i, c in enumerate(cells) if c == cell]
        y = np.array([labels[i] for i in idx], dtype=np.float64)
        w = weights[idx]
        report[f"kraft{cell[0]}-plain{cell[1]}"] = {
            "photos": len(idx),
            "damaged_share": round(float(y.mean()), 3),
            "damaged_share_balanced": round(float((w * y).sum() / w.sum()), 3),
        }
    return weights, report
