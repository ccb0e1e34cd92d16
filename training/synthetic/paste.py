"""Real intact boxes cut out of studio shots and set down on synthetic doorstep floors.

Why: in `damaged-intact-boxes` an intact box is usually a studio shot on a plain backdrop, while
damaged boxes are usually phone photos of brown board in a cluttered room. A customer's photo of
an intact brown parcel on a hallway floor has both "damaged" looks. The procedural parcels of
`procedural` counter that only with rendered board; here the box pixels are real (real
kraft board, real print, real tape) and only the scene around them is rendered: floor and wall
from `background`, shadows of a stand-in box from the same light, then the phone
pipeline (exposure, white balance, blur, noise, JPEG). Each cut-out is used twice: once intact and
once with graded damage painted on it (`compose_damage`), so the same real box on the same floor
appears with both labels and only the damage tells them apart.

Only photos whose backdrop is one flat colour are cut out (the border test of
`training.balance`); the mask is `synthetic.foreground_mask`, the one compose_damage already uses.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from training.balance import PLAIN_BORDER, plain_border_fraction
from training.manifest import Row
from training.synthetic.background import render_background
from training.synthetic.geom import Box, Camera, sample_light, shadow_masks
from training.synthetic.procedural import (
    JPEG_QUALITY,
    SEED_STRIDE,
    compose_damage,
    foreground_mask,
    frame_camera,
    phone_photo,
    progress_bar,
)
from training.synthetic.tex import F32

SOURCE = "paste"
MIN_FG, MAX_FG = 0.06, 0.8  # share of the frame the box covers: less is a speck, more has no backdrop


def cut_out(base: Image.Image) -> tuple[tuple[int, int, int, int], np.ndarray] | None:
    """(the box's bounding box in `base`, its soft alpha there), or None when the photo is not a
    plain-backdrop shot."""
    rgb = base.convert("RGB")
    arr = np.asarray(rgb, F32) * F32(1 / 255)
    thumb = np.asarray(rgb.resize((96, 96)), dtype=np.float32)
    if plain_border_fraction(thumb) <= PLAIN_BORDER:
        return None
    fg = foreground_mask(arr)
    if not MIN_FG <= fg.mean() <= MAX_FG:
        return None
    ys, xs = np.nonzero(fg)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    alpha = Image.fromarray((fg[y0:y1, x0:x1] * 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(1.0))
    return (int(x0), int(y0), int(x1), int(y1)), np.asarray(alpha, F32) / 255


def paste_on_floor(
    base: Image.Image, cut: tuple[tuple[int, int, int, int], np.ndarray], seed: int, size: int = 256
) -> Image.Image | None:
    """A phone photo of the box `cut` (from `cut_out`) of `base` standing on a rendered floor.

    The scene is a function of `seed` alone, so a damaged copy of `base` with the same cut and
    seed lands in the same scene, under the same light, in the same place."""
    bbox, alpha = cut
    box_img = base.convert("RGB").crop(bbox)
    rng = np.random.default_rng(seed)
    # A stand-in box of the cut-out's proportions frames the camera and casts the shadows.
    aspect = box_img.width / max(box_img.height, 1)
    w = rng.uniform(0.25, 0.55)
    stand_in = Box(w, w * rng.uniform(0.5, 1.0), w / max(aspect, 0.3) * 0.8, rot=rng.uniform(0, np.pi))
    diag = math.sqrt(stand_in.w**2 + stand_in.d**2 + stand_in.h**2)
    el, az = math.radians(rng.uniform(12, 45)), rng.uniform(0, 2 * np.pi)
    target = np.array([0.0, 0.0, stand_in.h * 0.4])
    dist = diag * rng.uniform(1.6, 3.0)
    cam = Camera.look_at(
        target + dist * np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)]),
        target,
    )
    frame_camera(rng, cam, stand_in.verts, size, rng.uniform(0.45, 0.8), 0.0)
    light = sample_light(rng, cam)
    bg, info = render_background(rng, cam, size, light, max(stand_in.w, stand_in.d))

    ground_light = F32(light.ambient) * light.amb_col + info["direct"]
    direct_frac = info["direct"] / np.maximum(ground_light, 1e-3)
    cast, contact = shadow_masks(cam, stand_in.verts, light, size)
    floor = info["floor"]
    bg *= 1 - (cast * floor * F32(light.shadow_strength))[..., None] * direct_frac[None, None, :]
    bg *= (1 - contact * floor * F32(0.45))[..., None]

    # Fit the cut-out into the stand-in's projected outline, standing on its lowest point.
    p = cam.project(stand_in.verts)
    (px0, py0), (px1, py1) = p.min(0), p.max(0)
    scale = min((px1 - px0) / box_img.width, (py1 - py0) / box_img.height)
    bw, bh = max(4, int(box_img.width * scale)), max(4, int(box_img.height * scale))
    ox = int(round((px0 + px1) / 2 - bw / 2))
    oy = int(round(py1 - bh))
    sprite = np.asarray(box_img.resize((bw, bh), Image.Resampling.BILINEAR), F32) * F32(1 / 255)
    a = np.asarray(Image.fromarray(alpha).resize((bw, bh), Image.Resampling.BILINEAR), F32)[..., None]
    # The studio light is replaced by the scene's: its colour and a little of its brightness.
    tint = (F32(light.ambient) * light.amb_col + F32(light.diffuse * 0.6) * light.sun_col) / F32(1.05)
    sprite = sprite * tint * F32(rng.uniform(0.75, 1.0))
    ys0, xs0 = max(0, oy), max(0, ox)
    ys1, xs1 = min(size, oy + bh), min(size, ox + bw)
    if ys1 <= ys0 or xs1 <= xs0:
        return None
    sy, sx = ys0 - oy, xs0 - ox
    region = bg[ys0:ys1, xs0:xs1]
    aa = a[sy : sy + ys1 - ys0, sx : sx + xs1 - xs0]
    region[:] = region * (1 - aa) + sprite[sy : sy + ys1 - ys0, sx : sx + xs1 - xs0] * aa
    return phone_photo(rng, bg, size, flash=light.mode == "flash")


def generate_pastes(
    base_rows: Iterable[Row], out_dir: str | Path, *, seed: int = 0, size: int = 256, progress: bool = False
) -> list[Row]:
    """For every intact plain-backdrop photo: the box on a floor intact (grade 0), and the same
    photo with grade 1-3 damage painted on (grades cycling). Each keeps its base row's group and
    split, so a validation box is never trained on in another scene."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[Row] = []
    j = 0
    intact = [b for b in base_rows if b.damaged == 0]
    for i, r in enumerate(progress_bar(intact, progress, "paste")):
        with Image.open(r.path) as im:
            base = im.convert("RGB")
        cut = cut_out(base)
        if cut is None:
            continue
        s = seed * SEED_STRIDE + i
        g = 1 + j % 3
        # Damage is painted on the studio shot, where compose_damage finds the box by its
        # backdrop, and then both copies go into the same scene.
        intact_photo = paste_on_floor(base, cut, s, size)
        damaged_photo = paste_on_floor(compose_damage(base, g, s), cut, s, size)
        if intact_photo is None or damaged_photo is None:
            continue
        for grade, img in ((0, intact_photo), (g, damaged_photo)):
            path = out / f"paste_{seed}_{i:06d}_g{grade}.jpg"
            img.save(path, "JPEG", quality=JPEG_QUALITY)
            rows.append(
                Row(
                    path=path,
                    grade=grade,
                    damaged=int(grade >= 1),
                    group=r.group,
                    source=SOURCE,
                    split=r.split,
                )
            )
        j += 1
    return rows
