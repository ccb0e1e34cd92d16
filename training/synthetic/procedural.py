"""Synthetic, graded parcel photos: the counterweight to the shared dataset's box-type bias.

Why this exists: in `damaged-intact-boxes` the intact class is mostly glossy retail packaging and
the damaged class mostly brown corrugated cardboard, so a model trained on it alone learns
"brown cardboard = damaged". Customers photograph intact brown parcels all the time. This module
renders procedural phone photos of parcels, roughly a third of them undamaged, mostly brown kraft
boxes carrying everything a real intact parcel carries (tape, courier labels, printed logos, flap
seams, handling grime), and the rest with damage of a known grade 1-3 on the *same kinds* of
boxes, so the only thing that separates the classes is the damage itself. It also paints graded
damage onto real photos of intact (mostly retail) boxes, so that box type cannot predict the
label from either side.

How a render imitates a phone photo (each step names the real-photo property it copies):
- `geom`: one perspective camera (with the roll of a hand-held phone) and one light
  (ceiling lamp, low sun, overcast sky or flash), so faces, floor and shadows agree.
- `background`: doorstep and hallway floors (planks, tiles, pavers, concrete, carpet,
  table tops, doormats) receding to a wall, skirting board or door.
- `box`: cuboid parcels with two or three visible faces, close-ups, flat mailers, the
  occasional second parcel; kraft board with tape, courier labels, logos, handling marks,
  scribbles and grime; burst-open boxes with flaps, inner walls and contents.
- `tex`: board colour, mottling, fibres and corrugation flutes; the drawing helpers.
- `damage` and `place`: scuffs, dents, creases, crushed corners and edges,
  caved panels, tears with torn fibrous edges, stains, soaking, burst seams and crushing, lit
  through a height map and placed where the camera sees them.
- `phone_photo` below: auto-exposure error, white balance, uneven lighting, vignetting, defocus or
  hand-shake blur, phone sharpening, resolution loss, sensor noise and JPEG re-compression.

Everything is a pure function of the seed (`numpy.random.default_rng(seed)`, no global state).

CLI: `python -m training.synthetic --out DIR --n N [--seed S] [--split train] [--size 256]
[--composites-from-shared] [--preview PNG]` writes the images and `DIR/manifest.csv`.
"""

from __future__ import annotations

import argparse
import functools
import io
import math
import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from training.balance import border_pixels
from training.manifest import Row, read_manifest, shared_dataset_dir, shared_dataset_rows, write_manifest
from training.synthetic import damage as dmg
from training.synthetic.background import render_background
from training.synthetic.box import render_box
from training.synthetic.geom import Box, Camera, displacement_mesh, sample_light, shadow_masks
from training.synthetic.tex import F32, Ellipse, fine_noise, to_u8

SEED_STRIDE = 1_000_003
GRADE_P = (0.35, 0.65 / 3, 0.65 / 3, 0.65 / 3)
JPEG_QUALITY = 92

__all__ = ["compose_damage", "generate", "generate_composites", "main", "render_parcel"]


# --------------------------------------------------------------------------------------------
# Scene
# --------------------------------------------------------------------------------------------


def frame_camera(
    rng: np.random.Generator, cam: Camera, pts: np.ndarray, size: int, fill: float, spill: float
) -> None:
    """Choose focal length and principal point so `pts` fill `fill` of the frame. Customers
    centre the parcel roughly, not exactly; `spill` lets it run out of frame."""
    cam.scale, cam.ox, cam.oy = 1.0, 0.0, 0.0
    p = cam.project(pts)
    lo, hi = p.min(0), p.max(0)
    ext = float(max(hi - lo)) + 1e-9
    cam.scale = fill * size / ext
    centre = (lo + hi) / 2 * cam.scale
    slack = max(0.0, (1 - fill) / 2) * size * 0.8 + spill * size
    cam.ox = size / 2 - centre[0] + rng.uniform(-slack, slack)
    cam.oy = size / 2 - centre[1] + rng.uniform(-slack, slack)


def _scene(rng: np.random.Generator, grade: int, size: int) -> tuple[np.ndarray, list[tuple[str, int]], str]:
    """The clean render (float RGB), its damage plan and the light's mode. Shot types: a whole box on the floor
    (most photos), a close-up where one face fills the frame (customers zoom in on damage and on
    labels) and a flat mailer bag (a large share of real parcels)."""
    shot = str(rng.choice(["box", "closeup", "mailer"], p=[0.72, 0.13, 0.15]))
    if shot == "mailer":
        w = rng.uniform(0.22, 0.42)
        box = Box(
            w, w * rng.uniform(0.55, 0.8), rng.uniform(0.006, 0.03), rot=rng.uniform(0, np.pi), kind="mailer"
        )
    else:
        w = rng.uniform(0.18, 0.6)
        box = Box(w, w * rng.uniform(0.45, 1.0), w * rng.uniform(0.25, 1.0), rot=rng.uniform(0, np.pi))
    diag = math.sqrt(box.w**2 + box.d**2 + box.h**2)
    target = np.array([0.0, 0.0, box.h * 0.4])
    az = rng.uniform(0, 2 * np.pi)
    if shot == "box":
        el, dist = rng.uniform(16, 72), diag * rng.uniform(1.5, 3.3)
    elif shot == "mailer":
        el, dist = rng.uniform(45, 86), diag * rng.uniform(1.2, 2.4)
    else:
        top = rng.random() < 0.55
        el = rng.uniform(55, 86) if top else rng.uniform(4, 30)
        if not top:
            # Face-on to one side panel.
            face_az = box.rot + rng.choice([0, 0.5, 1.0, 1.5]) * np.pi - np.pi / 2
            az = face_az + rng.normal(0, 0.35)
        dist = diag * rng.uniform(1.0, 1.7)
    el = math.radians(el)
    pos = target + dist * np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])
    cam = Camera.look_at(pos, target)
    if rng.random() < 0.8:
        # Camera roll: nobody holds a phone level. Rolling the camera itself (not rotating the
        # finished photo) keeps every pixel rendered and costs nothing.
        a = math.radians(rng.normal(0, 4.0))
        r, u = cam.right, cam.up
        cam.right, cam.up = r * math.cos(a) + u * math.sin(a), u * math.cos(a) - r * math.sin(a)
    verts = box.rest_verts()
    if shot == "closeup":
        frame_camera(rng, cam, verts, size, rng.uniform(1.05, 1.5), 0.0)
    elif rng.random() < 0.12:
        frame_camera(rng, cam, verts, size, rng.uniform(0.8, 1.15), 0.15)
    else:
        frame_camera(rng, cam, verts, size, rng.uniform(0.42, 0.88), 0.0)
    light = sample_light(rng, cam)
    plan = dmg.plan_damage(rng, grade)
    extent = max(box.w, box.d)
    bg, info = render_background(rng, cam, size, light, extent)

    layers = []
    if shot != "closeup" and rng.random() < 0.15:
        # A second parcel nearby, undamaged: delivery photos often show several.
        ow = rng.uniform(0.15, 0.5)
        ang = math.atan2(cam.fwd[1], cam.fwd[0]) + rng.choice([-1, 1]) * rng.uniform(0.6, 1.6)
        r = extent * 0.75 + ow * 0.75 + rng.uniform(0.02, 0.3)  # type: ignore[assignment]  # numpy scalar vs float reuse
        other = Box(
            ow,
            ow * rng.uniform(0.5, 1),
            ow * rng.uniform(0.3, 1),
            rot=rng.uniform(0, np.pi),
            pos=(r * math.cos(ang), r * math.sin(ang)),  # type: ignore[arg-type]  # numpy scalar vs float reuse
        )
        layers.append(render_box(rng, cam, other, light, size, []))
    layers.append(render_box(rng, cam, box, light, size, plan))

    # Shadows only darken the floor's direct light; contact shadows darken everything near the base.
    ground_light = F32(light.ambient) * light.amb_col + info["direct"]
    direct_frac = info["direct"] / np.maximum(ground_light, 1e-3)
    floor = info["floor"]
    for lay in layers:
        cast, contact = shadow_masks(cam, lay.verts, light, size)
        cast = cast * floor * F32(light.shadow_strength)
        bg *= 1 - cast[..., None] * direct_frac[None, None, :]
        bg *= (1 - contact * floor * F32(0.45))[..., None]
        if light.mode in ("overcast", "indoor"):
            halo = Image.fromarray(to_u8(contact)).filter(ImageFilter.GaussianBlur(size * 0.05))
            bg *= (1 - np.asarray(halo, F32) * F32(1 / 255 * 0.3) * floor)[..., None]
    layers.sort(key=lambda lay: -float(cam.depth(lay.verts.mean(0)[None])[0]))
    for lay in layers:
        x0, y0 = lay.offset
        h, w = lay.alpha.shape
        a = lay.alpha[..., None]  # type: ignore[assignment]  # numpy scalar vs float reuse
        region = bg[y0 : y0 + h, x0 : x0 + w]
        region *= 1 - a
        region += lay.rgb * a
    return bg, plan, light.mode


# --------------------------------------------------------------------------------------------
# Phone camera
# --------------------------------------------------------------------------------------------


def phone_photo(rng: np.random.Generator, rgb: np.ndarray, size: int, flash: bool) -> Image.Image:
    """Turn a clean render into what a phone produces and a claims upload carries."""
    s = size
    # Auto-exposure aims at a mid grey and misses a bit; highlights roll off rather than clip.
    gain = np.clip(rng.uniform(0.4, 0.56) / max(float(rgb.mean()), 1e-3), 0.6, 2.2) * rng.uniform(0.85, 1.15)
    # White balance error / colour temperature of the light.
    t = rng.normal(0, 0.05)
    g = rng.normal(0, 0.015)
    channel = np.array([1 + t, 1 + g, 1 - t], F32) * F32(gain)
    # Uneven lighting across the frame (a window, a lamp off to one side) and lens vignetting.
    yy, xx = _unit_grid(s)
    ang = rng.uniform(0, 2 * np.pi)
    grad = 1 + (xx * F32(math.cos(ang)) + yy * F32(math.sin(ang))) * F32(rng.uniform(0, 0.4))
    vig = 1 - (xx * xx + yy * yy) * F32(rng.uniform(0.4, 1.2) if flash else rng.uniform(0, 0.6))
    rgb = rgb * (grad * vig)[..., None] * channel
    over = np.maximum(rgb - F32(0.8), 0)
    rgb = rgb - over + over * F32(0.2) / (over + F32(0.2))
    # Optics: slight defocus (most photos), hand-shake blur (some), then the phone's own
    # sharpening halo (many). Small separable filters in numpy are cheaper than Pillow's.
    r = rng.random()
    if r < 0.55:
        rgb = _soften(rgb, rng.uniform(0.2, 1.6))
    elif r < 0.65:
        rgb = _motion_blur(rng, rgb)
    if rng.random() < 0.4:
        k = F32(rng.uniform(0.3, 1.2))
        rgb = rgb + k * (rgb - _blur3(rgb))
    img = Image.fromarray(to_u8(rgb), "RGB")
    if rng.random() < 0.18:
        # Resolution loss: a low-resolution camera, digital zoom or a messaging app's downscale.
        f = rng.uniform(0.4, 0.8)
        small = img.resize((max(8, int(s * f)), max(8, int(s * f))), Image.Resampling.BILINEAR)
        img = small.resize((s, s), Image.Resampling.BILINEAR)
    arr = np.asarray(img, F32) * F32(1 / 255)
    sigma = rng.uniform(0.004, 0.022) * (1.6 if flash else 1.0)
    lum_noise = fine_noise(rng, s, s) * F32(sigma) * np.sqrt(np.clip(arr.mean(-1), 0.02, 1)) * F32(1.4)
    # Phone chroma noise is blotchy (demosaicing, denoising): half resolution, upsampled.
    hs = (s + 1) // 2
    chroma = np.stack([fine_noise(rng, hs, hs) for _ in range(3)], -1) * F32(sigma * 0.6)
    chroma = np.repeat(np.repeat(chroma, 2, 0), 2, 1)[:s, :s]
    arr = arr + lum_noise[..., None] + chroma
    img = Image.fromarray(to_u8(arr), "RGB")
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=int(rng.integers(50, 96)))
    buf.seek(0)
    out = Image.open(buf)
    out.load()
    return out.convert("RGB")


@functools.lru_cache(maxsize=8)
def _unit_grid(s: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates in [-0.5, 0.5] (cached: every photo of a size uses the same)."""
    yy, xx = (np.mgrid[0:s, 0:s].astype(F32) + F32(0.5)) / F32(s) - F32(0.5)
    yy.setflags(write=False)
    xx.setflags(write=False)
    return yy, xx


def _blur3(a: np.ndarray) -> np.ndarray:
    """Separable [1, 2, 1] / 4 blur with edge padding (about a 0.7 px Gaussian)."""
    p = np.pad(a, ((1, 1), (0, 0), (0, 0)), mode="edge")
    a = (p[:-2] + p[2:]) * F32(0.25) + p[1:-1] * F32(0.5)
    p = np.pad(a, ((0, 0), (1, 1), (0, 0)), mode="edge")
    return (p[:, :-2] + p[:, 2:]) * F32(0.25) + p[:, 1:-1] * F32(0.5)


def _soften(a: np.ndarray, amount: float) -> np.ndarray:
    """Defocus of about `amount` px: whole [1, 2, 1] passes plus a blend for the fraction."""
    whole = int(amount)
    for _ in range(whole):
        a = _blur3(a)
    frac = F32(amount - whole)
    return a + (_blur3(a) - a) * frac if frac > 0 else a


def _motion_blur(rng: np.random.Generator, arr: np.ndarray) -> np.ndarray:
    """Hand shake: average a few copies shifted along one direction."""
    n = int(rng.integers(3, 7))
    ang = rng.uniform(0, np.pi)
    dx, dy = math.cos(ang), math.sin(ang)
    pad = n + 1
    p = np.pad(arr, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
    acc = np.zeros_like(arr)
    h, w = arr.shape[:2]
    for k in range(n):
        t = k - (n - 1) / 2
        ox, oy = int(round(dx * t)), int(round(dy * t))
        acc += p[pad + oy : pad + oy + h, pad + ox : pad + ox + w]
    return acc / F32(n)


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def _draw_grade(rng: np.random.Generator) -> int:
    return int(rng.choice(4, p=GRADE_P))


def render_parcel(seed: int, grade: int | None = None, size: int = 256) -> tuple[Image.Image, int]:
    """A procedural phone photo of a parcel with damage `grade` (0-3; None: drawn from the seed,
    ~35% grade 0). The same (seed, grade, size) always gives identical pixels."""
    img, g, _ = _render(seed, grade, size)
    return img, g


def _render(seed: int, grade: int | None, size: int) -> tuple[Image.Image, int, list[tuple[str, int]]]:
    """`render_parcel` plus the damage plan (kind, grade) of each instance, for debugging."""
    rng = np.random.default_rng(seed)
    drawn = _draw_grade(rng)
    g = drawn if grade is None else int(grade)
    if not 0 <= g <= 3:
        raise ValueError(f"grade must be 0-3, got {grade}")
    rgb, plan, mode = _scene(rng, g, size)
    return phone_photo(rng, rgb, size, flash=mode == "flash"), g, plan


def foreground_mask(arr: np.ndarray) -> np.ndarray:
    """Rough box mask of a product photo: pixels that differ from the border colour. Product
    shots are mostly a box on a plain backdrop, so this keeps damage off the background."""
    h, w = arr.shape[:2]
    bw = max(2, min(h, w) // 20)
    bcol = np.median(border_pixels(arr, bw), axis=0)
    diff = np.abs(arr - bcol).sum(-1)
    mask = Image.fromarray(((diff > 0.2) * 255).astype(np.uint8))
    # Open the mask (erode, then dilate) to drop soft shadows, JPEG noise and thin outlines;
    # done at quarter resolution because rank filters are slow.
    small = mask.resize((max(8, w // 4), max(8, h // 4)), Image.Resampling.BOX)
    small = (
        small.filter(ImageFilter.MinFilter(3))
        .filter(ImageFilter.MaxFilter(3))
        .filter(ImageFilter.MinFilter(3))
    )
    return np.asarray(small.resize((w, h), Image.Resampling.BILINEAR)) > 160


def compose_damage(base: Image.Image, grade: int, seed: int) -> Image.Image:
    """Paint grade-`grade` damage (1-3) onto a real photo of an intact box.

    Damage lands on the box (pixels unlike the photo's border colour, near the centre), takes its
    colours from the photo (torn edges are a lightened local colour, stains and wet areas darken
    the local colour multiplicatively) and its relief is relit relative to the photo's own light.
    Retail boxes then appear damaged too, so box type alone cannot predict the label.
    """
    if not 1 <= grade <= 3:
        raise ValueError(f"compose_damage needs grade 1-3, got {grade}")
    rng = np.random.default_rng(seed)
    img = base.convert("RGB")
    arr = np.asarray(img, F32) * F32(1 / 255)
    h, w = arr.shape[:2]
    fg = foreground_mask(arr)
    yy, xx = np.mgrid[0:h, 0:w]
    central = (np.abs(xx - w / 2) < w * 0.36) & (np.abs(yy - h / 2) < h * 0.36)
    cand = np.argwhere(fg & central)
    if len(cand) < 0.04 * h * w:
        cand = np.argwhere(central)
        fg = central
    ys_, xs_ = np.nonzero(fg)
    bx0, bx1 = np.percentile(xs_, [3, 97]) if len(xs_) else (w * 0.2, w * 0.8)
    by0, by1 = np.percentile(ys_, [3, 97]) if len(ys_) else (h * 0.2, h * 0.8)
    m = float(max(8.0, min(bx1 - bx0, by1 - by0)))
    ppm = m / 0.35
    surf = dmg.Surface(
        arr.copy(),
        np.zeros((h, w), F32),
        ppm,
        dmg.fibre_colour(arr[fg].mean(0) if fg.any() else arr.mean((0, 1))),
    )
    comps: list[tuple] = []
    plan = dmg.plan_damage(rng, grade)

    def pick() -> tuple[float, float]:
        y, x = cand[int(rng.integers(len(cand)))]
        return float(x), float(y)

    def local_fibre(x: float, y: float) -> None:
        r = max(3, int(m * 0.08))
        patch = arr[max(0, int(y) - r) : int(y) + r, max(0, int(x) - r) : int(x) + r].reshape(-1, 3)
        surf.fibre = dmg.fibre_colour(np.median(patch, 0) if len(patch) else arr.mean((0, 1)))

    for kind, g in plan:
        strength = float(rng.uniform(0.6, 1.0) if g == 1 else rng.uniform(0.8, 1.0) if g == 2 else 1.0)
        x, y = pick()
        local_fibre(x, y)
        if kind == "scuff":
            dmg.scuff(surf, rng, x, y, m * rng.uniform(0.2, 0.45), strength)
        elif kind == "scrape":
            dmg.scrape(surf, rng, x, y, m * rng.uniform(0.12, 0.3), strength)
        elif kind == "dent":
            dmg.dent(surf, rng, x, y, m * rng.uniform(0.2, 0.4), strength)
        elif kind == "fray":
            dmg.scrape(surf, rng, x, y, m * rng.uniform(0.1, 0.2), strength * 0.8)
        elif kind in ("crushed_corner", "crushed_edge"):
            # The box's extreme point in a diagonal (corner) or axis (edge) direction.
            if kind == "crushed_corner":
                sx_, sy_ = rng.choice([-1, 1]), rng.choice([-1, 1])
            else:
                sx_, sy_ = (
                    (rng.choice([-1, 1]), rng.uniform(-0.4, 0.4))
                    if rng.random() < 0.5
                    else (rng.uniform(-0.4, 0.4), rng.choice([-1, 1]))
                )
            if len(xs_):
                k = int(np.argmax(xs_ * sx_ + ys_ * sy_))
                cx, cy = float(xs_[k]), float(ys_[k])
            else:
                cx, cy = w / 2 + sx_ * w * 0.3, h / 2 + sy_ * h * 0.3
            cx += (w / 2 - cx) * 0.04
            cy += (h / 2 - cy) * 0.04
            local_fibre(cx, cy)
            r = m * rng.uniform(0.2, 0.35)
            dmg.crushed_corner(surf, rng, (cx, cy), r, strength)
            d = np.array([cx - (bx0 + bx1) / 2, cy - (by0 + by1) / 2])
            d /= np.linalg.norm(d) + 1e-9
            comps.append(("bump", cx, cy, r * 0.6, d[0] * r * 0.4, d[1] * r * 0.4))
        elif kind == "caved_side":
            dmg.caved_side(surf, rng, x, y, m * rng.uniform(0.45, 0.75), strength)
        elif kind == "hole":
            rx = max(2.5, m * rng.uniform(0.05, 0.11))
            dmg.hole(surf, rng, Ellipse(x, y, rx, rx * rng.uniform(0.6, 1.0), rng.uniform(0, np.pi)), 0.3)
        elif kind == "tear":
            rx = max(4.0, m * rng.uniform(0.12, 0.24))
            dmg.hole(surf, rng, Ellipse(x, y, rx, rx * rng.uniform(0.15, 0.35), rng.uniform(0, np.pi)), 0.25)
        elif kind == "water_stain":
            dmg.water_stain(surf, rng, x, y, m * rng.uniform(0.15, 0.32), strength)
        elif kind in ("large_tear", "burst_open"):
            rx = m * rng.uniform(0.2, 0.35)
            dmg.hole(surf, rng, Ellipse(x, y, rx, rx * rng.uniform(0.5, 1.0), rng.uniform(0, np.pi)), 0.95)
        elif kind in ("crushed_flat", "soaked"):
            # Whole-box damage: apply to a copy, keep it only on the box (not the backdrop).
            sub = dmg.Surface(surf.rgb.copy(), surf.height.copy(), ppm, surf.fibre)
            if kind == "crushed_flat":
                dmg.crumple(sub, rng, rng.uniform(0.8, 1.6), rng.uniform(0.6, 0.85))
                comps.append(("noise", m * rng.uniform(0.006, 0.014), m * 0.4))
            else:
                dmg.soak(sub, rng, rng.uniform(0.7, 1.0), 1.0, from_bottom=rng.random() < 0.5)
            keep = (
                np.asarray(
                    Image.fromarray(fg.astype(np.uint8) * 255).filter(ImageFilter.GaussianBlur(2)), F32
                )
                / 255
            )
            surf.rgb = surf.rgb * (1 - keep[..., None]) + sub.rgb * keep[..., None]
            surf.height = surf.height * (1 - keep) + sub.height * keep
    ang = rng.uniform(-2.6, -0.6)
    out = dmg.shade_relative(surf, (math.cos(ang), math.sin(ang)), strength=rng.uniform(0.6, 1.0))
    # Damage only ever lands on the box, never on the backdrop around it.
    on_box = (
        np.asarray(Image.fromarray(fg.astype(np.uint8) * 255).filter(ImageFilter.GaussianBlur(1.5)), F32)
        / 255
    )
    out = arr + (out - arr) * on_box[..., None]
    result = Image.fromarray(to_u8(out), "RGB")
    if comps:
        weight = (
            np.asarray(
                Image.fromarray(fg.astype(np.uint8) * 255).filter(ImageFilter.GaussianBlur(m * 0.15)), F32
            )
            / 255
        )
        weight = np.clip(weight * 1.5, 0, 1)
        mesh = displacement_mesh(max(w, h), (0, 0, w, h), comps, rng, weight=weight)
        result = result.transform(
            (w, h),
            Image.Transform.MESH,
            mesh,
            Image.Resampling.BILINEAR,
            fillcolor=tuple(int(v) for v in np.asarray(result)[0, 0]),
        )
    return result


def _render_to(job: tuple[Path, int, int, int, str]) -> Row:
    """Render and save one parcel (module level, so a process pool can run it)."""
    out, seed, i, size, split = job
    s = seed * SEED_STRIDE + i
    img, g = render_parcel(s, None, size)
    path = out / f"syn_{seed}_{i:06d}.jpg"
    img.save(path, "JPEG", quality=JPEG_QUALITY)
    return Row(
        path=path, grade=g, damaged=int(g >= 1), group=f"synthetic:{s}", source="synthetic", split=split
    )


def generate(
    out_dir: str | Path,
    n: int,
    *,
    seed: int = 0,
    split: str = "train",
    size: int = 256,
    progress: bool = False,
    workers: int = 1,
) -> list[Row]:
    """Render `n` parcels into `out_dir` (JPEG q92) and return their manifest rows.

    Image i uses seed `seed * 1_000_003 + i`, so runs with different top-level seeds never share
    an image; each image is its own group (no near-duplicates among synthetic renders). Every
    image is a function of its own seed, so `workers` processes render exactly the same set (a
    training run's data is ready in a fraction of the time on a multi-core machine)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    jobs = [(out, seed, i, size, split) for i in range(n)]
    if workers <= 1 or n < 2 * workers:
        return [_render_to(job) for job in progress_bar(jobs, progress, "render")]
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        return list(progress_bar(pool.imap(_render_to, jobs, chunksize=8), progress, "render", total=n))


def generate_composites(
    base_rows: Iterable[Row],
    out_dir: str | Path,
    *,
    per_image: int = 1,
    seed: int = 0,
    progress: bool = False,
) -> list[Row]:
    """Damaged versions of real intact photos (rows with damaged == 0), grades cycling 1, 2, 3.

    Each composite keeps its base row's group and split: a composite of a validation photo must
    never be trained on, or validation would score the model on damage painted onto a photo it
    has already seen."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    intact = [r for r in base_rows if r.damaged == 0]
    rows = []
    j = 0
    offset = int(np.random.default_rng(seed).integers(3))
    for r in progress_bar(intact, progress, "composite"):
        with Image.open(r.path) as im:
            base = im.convert("RGB")
        for _ in range(per_image):
            g = 1 + (j + offset) % 3
            s = seed * SEED_STRIDE + j
            img = compose_damage(base, g, s)
            path = out / f"comp_{seed}_{j:06d}.jpg"
            img.save(path, "JPEG", quality=JPEG_QUALITY)
            rows.append(Row(path=path, grade=g, damaged=1, group=r.group, source="composite", split=r.split))
            j += 1
    return rows


def progress_bar(it: Sequence | Iterable, enabled: bool, desc: str, total: int | None = None) -> Iterable:
    if not enabled:
        return it
    from tqdm import tqdm

    return tqdm(it, desc=desc, unit="img", total=total)


def preview_sheet(
    rows: Sequence[Row], path: str | Path, cols: int = 8, rows_n: int = 6, thumb: int = 160
) -> Path:
    """A contact sheet labelled with grades, for a human to eyeball realism and label sanity.
    Composites, if any, fill the last row (labelled "C"), so both kinds get looked at."""
    rows = list(rows)
    comps = [r for r in rows if r.source == "composite"][:cols]
    others = [r for r in rows if r.source != "composite"][: cols * rows_n - len(comps)]
    rows = others + comps
    sheet = Image.new("RGB", (cols * thumb, max(1, math.ceil(len(rows) / cols)) * thumb), (30, 30, 30))
    d = ImageDraw.Draw(sheet)
    names = ("0 none", "1 cosmetic", "2 structural", "3 severe")
    for i, r in enumerate(rows):
        with Image.open(r.path) as im:
            t = im.convert("RGB").resize((thumb, thumb), Image.Resampling.BILINEAR)
        x, y = (i % cols) * thumb, (i // cols) * thumb
        sheet.paste(t, (x, y))
        label = names[r.grade] if r.grade is not None else f"bin {r.damaged}"
        label = f"C {label}" if r.source == "composite" else label
        d.rectangle([x, y, x + 8 + 7 * len(label), y + 14], fill=(0, 0, 0))
        d.text((x + 4, y + 2), label, fill=(255, 255, 0) if (r.grade or 0) > 0 else (120, 255, 120))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: render, optionally composite onto the shared dataset's intact train photos, write
    `manifest.csv` and an optional preview sheet."""
    p = argparse.ArgumentParser(prog="python -m training.synthetic", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, type=Path, help="output folder (images + manifest.csv)")
    p.add_argument("--n", required=True, type=int, help="number of synthetic parcel photos")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--split", default="train", choices=["train", "val", "test"])
    p.add_argument("--size", type=int, default=256)
    p.add_argument(
        "--composites-from-shared",
        action="store_true",
        help="also damage the shared dataset's intact train photos",
    )
    p.add_argument("--composites-per-image", type=int, default=1)
    p.add_argument("--preview", type=Path, default=None, help="write a labelled contact sheet PNG here")
    p.add_argument("--workers", type=int, default=0, help="rendering processes (0: one per CPU core)")
    a = p.parse_args(argv)
    workers = a.workers or os.cpu_count() or 1
    rows = generate(
        a.out / "images", a.n, seed=a.seed, split=a.split, size=a.size, progress=True, workers=workers
    )
    if a.composites_from_shared:
        root = shared_dataset_dir()
        if not (root / "labels.csv").exists():
            print(f"shared dataset not found at {root}; skipping composites", file=sys.stderr)
        else:
            base = [r for r in shared_dataset_rows(root) if r.split == "train" and r.damaged == 0]
            rows += generate_composites(
                base, a.out / "composites", per_image=a.composites_per_image, seed=a.seed, progress=True
            )
    manifest = write_manifest(a.out / "manifest.csv", rows)
    counts = np.bincount([r.grade for r in rows if r.grade is not None], minlength=4)
    print(f"wrote {len(rows)} rows to {manifest} (grades 0-3: {counts.tolist()})")
    if a.preview is not None:
        print(f"preview: {preview_sheet(read_manifest(manifest), a.preview)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
