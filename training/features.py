"""Pooled backbone features of real photos, cached, so recipes can be compared in seconds.

Why: on a 2-core CPU one fine-tuning run of a backbone takes most of an hour, too slow to compare
backbones, input sizes and heads on the real graded photos. The backbone's forward pass is the same
for every head, so it runs once per (backbone, size, view) and is cached; heads (grade, photo gate)
train on the cached features. The shipped model is still one ONNX graph, image in, grades out: the
heads are exported on top of the same backbone (see `training.grading`).

Views: `orig` is what serving sees; `flip` (mirror) is a free augmentation; `dark` and `blur` are
degraded copies that teach the photo gate what an unusable photo looks like (the shared photos are
almost all well exposed stock photos, so real dark or blurred examples are rare).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

from models.preprocessing import load_image, to_input
from training.networks import feature_map

VIEWS = ("orig", "flip", "dark", "blur")


def _dark(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Under-exposed: brightness 8-20%, then sensor noise, as a phone photo in a dark hallway."""
    out = ImageEnhance.Brightness(img).enhance(float(rng.uniform(0.08, 0.2)))
    arr = np.asarray(out, dtype=np.float32) + rng.normal(0, 4.0, size=(out.size[1], out.size[0], 3))
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def _blur(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Out of focus or shaken: a Gaussian blur of 2.5-4.5% of the shorter side."""
    radius = float(rng.uniform(0.025, 0.045)) * min(img.size)
    return img.filter(ImageFilter.GaussianBlur(radius))


def apply_view(img: Image.Image, view: str, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    if view == "orig":
        return img
    if view == "flip":
        return ImageOps.mirror(img)
    if view == "dark":
        return _dark(img, rng)
    if view == "blur":
        return _blur(img, rng)
    raise ValueError(f"unknown view {view!r}; choose from {VIEWS}")


def _seed(path: str, view: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{path}|{view}".encode()).digest()[:4], "little")


@torch.no_grad()
def extract(
    backbone: torch.nn.Module,
    paths: Sequence[str | Path],
    *,
    size: int,
    view: str = "orig",
    batch_size: int = 32,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Pooled feature maps, float32 (N, 2C): the global average, then the global maximum, in the
    order of `paths`. Why the maximum too: a crushed corner covers a few cells of the feature map,
    and averaging over the whole photo dilutes it; the maximum keeps it."""
    backbone.eval()
    out: list[np.ndarray] = []
    for start in range(0, len(paths), batch_size):
        chunk = paths[start : start + batch_size]
        batch = np.stack(
            [
                to_input(apply_view(load_image(p, min_side=size), view, _seed(str(p), view)), size)
                for p in chunk
            ]
        )
        fmap = feature_map(backbone, torch.from_numpy(batch))
        pooled = torch.cat([fmap.mean(dim=(2, 3)), fmap.amax(dim=(2, 3))], dim=1)
        out.append(pooled.numpy().astype(np.float32))
        if progress:
            progress(len(chunk))
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def cached(
    cache_dir: Path,
    key: str,
    backbone_factory: Callable[[], torch.nn.Module],
    paths: Sequence[str | Path],
    *,
    size: int,
    view: str,
) -> np.ndarray:
    """extract() through a cache keyed by the backbone, size, view and the exact list of files."""
    digest = hashlib.sha256("\n".join(str(p) for p in paths).encode()).hexdigest()[:16]
    path = cache_dir / f"pooled-{key}-{size}-{view}-{digest}.npy"
    if path.exists():
        return np.load(path)
    cache_dir.mkdir(parents=True, exist_ok=True)
    feats = extract(backbone_factory(), paths, size=size, view=view)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, feats)
    tmp.replace(path)
    return feats
