"""Backgrounds for synthetic parcel photos: the floor a parcel is left on (wood, laminate, tiles,
pavers, concrete, carpet, a table top, often a doormat) and the wall or door behind it.

Both are evaluated per pixel in world coordinates through the camera's homographies, so plank
seams and grout lines converge towards the horizon exactly as the box's edges do; lines are
anti-aliased by their width in pixels so distant grout does not shimmer.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from training.synthetic.geom import Camera, Light, Z, unit_vector
from training.synthetic.tex import F32, blur, fine_noise, hsv, smooth_noise

FLOORS = ("planks", "tiles", "concrete", "carpet", "pavers", "table", "laminate")


FLOOR_P = (0.24, 0.17, 0.16, 0.13, 0.12, 0.1, 0.08)


def _lines(coord: np.ndarray, period: float, width: float, fp: np.ndarray) -> np.ndarray:
    """Anti-aliased periodic lines (grout, plank seams): coverage from distance in pixels."""
    f = np.mod(coord / period, 1.0)
    dist = np.minimum(f, 1 - f) * period
    return np.clip((width * 0.5 - dist) / np.maximum(fp, 1e-6) + 0.5, 0, 1) * np.clip(
        width / np.maximum(fp, 1e-6), 0, 1
    )


def _table(rng: np.random.Generator, n: int = 64) -> np.ndarray:
    """Random per-plank/per-tile values, indexed by a hash of the plank or tile number."""
    return rng.normal(0, 1, n).astype(F32)


def render_background(
    rng: np.random.Generator, cam: Camera, size: int, light: Light, box_extent: float
) -> tuple[np.ndarray, dict]:
    """Floor (with a doormat sometimes) and a wall behind it, evaluated per pixel in world
    coordinates so planks, tiles and grout converge correctly towards the horizon.

    Rendered at half resolution and upsampled, with fresh full-resolution grain on top: phone
    photos focus on the parcel, so the surroundings are a little soft anyway, and this halves the
    cost of the most expensive per-pixel step. Returns the lit colour and, in `info`, the float
    floor mask (1 = floor, 0 = wall) and the direct-light colour reaching the floor."""
    if size < 160:
        rgb, info = _background(rng, cam, size, light, box_extent)
        info["floor"] = (~info.pop("wall")).astype(F32)
        return rgb, info
    low = (size + 1) // 2
    f = low / size
    half = Camera(cam.pos, cam.right, cam.up, cam.fwd, cam.scale * f, cam.ox * f, cam.oy * f)
    rgb_low, info = _background(rng, half, low, light, box_extent)
    rgb = np.stack(
        [
            np.asarray(Image.fromarray(rgb_low[..., c], "F").resize((size, size), Image.Resampling.BICUBIC))
            for c in range(3)
        ],
        -1,
    )
    floor = Image.fromarray((~info.pop("wall")).astype(F32), "F").resize(
        (size, size), Image.Resampling.BILINEAR
    )
    info["floor"] = np.asarray(floor)
    grain = fine_noise(rng, size, size) * F32(rng.uniform(0.008, 0.03))
    rgb = rgb * (1 + grain)[..., None]
    return np.clip(rgb, 0, None).astype(F32), info


def _background(
    rng: np.random.Generator, cam: Camera, s: int, light: Light, box_extent: float
) -> tuple[np.ndarray, dict]:
    """`render_background` at s x s pixels (no upsampling)."""
    ys, xs = np.mgrid[0:s, 0:s].astype(F32) + F32(0.5)
    hg = cam.plane_to_pixel(np.zeros(3), np.array([1.0, 0, 0]), np.array([0, 1.0, 0]))
    inv = np.linalg.inv(hg).astype(F32)
    q0 = inv[0, 0] * xs + inv[0, 1] * ys + inv[0, 2]
    q1 = inv[1, 0] * xs + inv[1, 1] * ys + inv[1, 2]
    q2 = inv[2, 0] * xs + inv[2, 1] * ys + inv[2, 2]
    valid = q2 > 1e-7
    q2s = np.where(valid, q2, F32(1e-7))
    gx = np.where(valid, q0 / q2s, F32(1e3))
    gy = np.where(valid, q1 / q2s, F32(1e3))
    # World size of one pixel (for anti-aliasing lines).
    fp = np.abs(np.diff(gx, axis=1, append=gx[:, -1:])) + np.abs(np.diff(gy, axis=0, append=gy[-1:, :]))
    fp = np.clip(fp + np.abs(np.diff(gy, axis=1, append=gy[:, -1:])), 1e-4, 1.0)

    # Wall: a vertical plane behind the parcel, facing the camera. Its base is parallel to the
    # camera's horizontal axis, so the wall covers the rows above a line: render only those.
    fh = unit_vector(np.array([cam.fwd[0], cam.fwd[1], 0.0]) + 1e-9)
    rh = np.array([-fh[1], fh[0], 0.0])
    wall_d = box_extent * 0.6 + (rng.uniform(0.05, 0.6) if rng.random() < 0.6 else rng.uniform(0.6, 2.5))
    depth_h = gx * F32(fh[0]) + gy * F32(fh[1])
    wall = (~valid) | (depth_h > wall_d)
    rows = np.nonzero(wall.any(1))[0]
    wr = int(rows.max()) + 1 if len(rows) else 0
    frows = np.nonzero((~wall).any(1))[0]
    fr = int(frows.min()) if len(frows) else s
    floor = np.zeros((s, s, 3), F32)
    if fr < s:
        floor[fr:] = _floor(rng, gx[fr:], gy[fr:], fp[fr:])
        if rng.random() < 0.35:
            floor[fr:] = _doormat(rng, floor[fr:], gx[fr:], gy[fr:], fp[fr:], box_extent)
    wall_rgb = np.zeros((s, s, 3), F32)
    if wr > 0:
        ho = fh * wall_d
        hw = cam.plane_to_pixel(ho, rh, Z)
        winv = np.linalg.inv(hw).astype(F32)
        xw, yw = xs[:wr], ys[:wr]
        w0 = winv[0, 0] * xw + winv[0, 1] * yw + winv[0, 2]
        w1 = winv[1, 0] * xw + winv[1, 1] * yw + winv[1, 2]
        w2 = winv[2, 0] * xw + winv[2, 1] * yw + winv[2, 2]
        w2 = np.where(np.abs(w2) < 1e-7, F32(1e-7), w2)
        wa, wb = w0 / w2, w1 / w2
        wfp = np.clip(
            np.abs(np.diff(wa, axis=1, append=wa[:, -1:])) + np.abs(np.diff(wb, axis=0, append=wb[-1:, :])),
            1e-4,
            1,
        )
        wall_rgb[:wr] = _wall(rng, wa, wb, wfp)

    ld = light.direction
    ground_light = F32(light.ambient) * light.amb_col + F32(light.diffuse * max(ld[2], 0.0)) * light.sun_col
    wall_n = -fh
    wall_light = (
        F32(light.ambient * 0.8) * light.amb_col
        + F32(light.diffuse * max(float(wall_n @ ld), 0.0)) * light.sun_col
    )
    direct = F32(light.diffuse * max(ld[2], 0.0)) * light.sun_col
    rgb = np.where(wall[..., None], wall_rgb * wall_light, floor * ground_light).astype(F32)
    # The corner where floor meets wall gets less light.
    near_wall = np.clip(1 - np.abs(depth_h - wall_d) / 0.15, 0, 1) * (~wall)
    rgb *= (1 - 0.15 * near_wall)[..., None]
    info = {"wall": wall, "direct": direct}
    return rgb, info


def _floor(rng: np.random.Generator, gx: np.ndarray, gy: np.ndarray, fp: np.ndarray) -> np.ndarray:
    """Floor albedo at world points (gx, gy). Real floors are never one flat colour: per-plank and
    per-tile tone, wood grain, grout and seams, and broad low-frequency variation are what make
    a floor read as a floor (and keep a model from keying on a uniform backdrop)."""
    kind = str(rng.choice(FLOORS, p=FLOOR_P))
    ang = rng.uniform(0, np.pi)
    ca, sa = math.cos(ang), math.sin(ang)
    a = gx * F32(ca) + gy * F32(sa)
    b = -gx * F32(sa) + gy * F32(ca)
    tab = _table(rng)
    lowf = np.zeros_like(gx)
    for _ in range(4):
        k = rng.uniform(1.0, 6.0)
        t = rng.uniform(0, 2 * np.pi)
        lowf += np.sin(gx * F32(k * math.cos(t)) + gy * F32(k * math.sin(t)) + F32(rng.uniform(0, 6))) * F32(
            0.25
        )
    h, w = gx.shape
    grain = fine_noise(rng, h, w)
    if kind in ("planks", "table", "laminate"):
        if kind == "planks":
            base = hsv(rng.uniform(0.05, 0.11), rng.uniform(0.3, 0.7), rng.uniform(0.25, 0.8))
            pw, pl = rng.uniform(0.08, 0.2), rng.uniform(0.6, 1.8)
        elif kind == "laminate":
            base = hsv(rng.uniform(0.06, 0.12), rng.uniform(0.1, 0.45), rng.uniform(0.45, 0.85))
            pw, pl = rng.uniform(0.15, 0.22), rng.uniform(1.0, 1.4)
        else:
            base = (
                hsv(rng.uniform(0.06, 0.11), rng.uniform(0.2, 0.6), rng.uniform(0.3, 0.75))
                if rng.random() < 0.6
                else np.array([rng.uniform(0.75, 0.95)] * 3, F32)
            )
            pw, pl = rng.uniform(0.3, 0.6), 8.0
        k = np.floor(b / F32(pw)).astype(np.int64)  # type: ignore[assignment]  # numpy scalar vs float reuse
        stagger = tab[(k * 7) % 64] * F32(pl)  # type: ignore[call-overload]  # numpy scalar vs float reuse
        m = np.floor((a + stagger) / F32(pl)).astype(np.int64)
        pid = (k * 31 + m * 17) % 64
        tone = tab[pid] * F32(0.09)
        phase = tab[(pid + 13) % 64] * F32(3)
        wood = np.sin(
            b * F32(rng.uniform(60, 160)) + np.sin(a * F32(rng.uniform(2, 6)) + phase) * F32(2.5) + phase
        )
        lum = 1 + tone + wood * F32(0.045) + lowf * F32(0.05) + grain * F32(0.02)
        seams = np.maximum(_lines(b, pw, 0.002, fp), _lines(a + stagger, pl, 0.002, fp) * (kind != "table"))
        lum = lum * (1 - seams * F32(0.45))
        return base * lum[..., None]
    if kind in ("tiles", "pavers"):
        if kind == "tiles":
            base = (
                np.array([rng.uniform(0.6, 0.95)] * 3, F32)
                * hsv(rng.uniform(0.05, 0.6), rng.uniform(0, 0.15), 1)
                if rng.random() < 0.7
                else hsv(rng.uniform(0.03, 0.12), rng.uniform(0.2, 0.5), rng.uniform(0.3, 0.7))
            )
            tw, th, gw = [rng.uniform(0.2, 0.6)] * 2 + [rng.uniform(0.002, 0.008)]
            grout = F32(rng.uniform(0.6, 1.15))
        else:
            base = hsv(rng.uniform(0.0, 0.1), rng.uniform(0.05, 0.45), rng.uniform(0.35, 0.7))
            tw = rng.uniform(0.15, 0.3)
            th, gw = tw * rng.uniform(0.4, 1.0), rng.uniform(0.006, 0.015)
            grout = F32(rng.uniform(0.5, 0.8))
        row = np.floor(b / F32(th)).astype(np.int64)
        shift = (row % 2) * F32(tw * 0.5) if kind == "pavers" else F32(0)
        col = np.floor((a + shift) / F32(tw)).astype(np.int64)
        pid = (row * 31 + col * 17) % 64
        var = 0.04 if kind == "tiles" else 0.1
        lum = 1 + tab[pid] * F32(var) + lowf * F32(0.04) + grain * F32(0.03 if kind == "tiles" else 0.07)
        g = np.maximum(_lines(b, th, gw, fp), _lines(a + shift, tw, gw, fp))
        rgb = base * lum[..., None]
        return rgb * (1 - g[..., None]) + (base * grout)[None, None, :] * g[..., None]
    if kind == "concrete":
        base = np.array([rng.uniform(0.45, 0.75)] * 3, F32) * hsv(
            rng.uniform(0.05, 0.15), rng.uniform(0, 0.12), 1
        )
        blotch = smooth_noise(rng, h, w, w / rng.uniform(3, 8)) * F32(0.05)
        lum = 1 + lowf * F32(0.07) + blotch + grain * F32(0.06) + blur(grain, 1.0) * F32(0.1)
        return base * lum[..., None]
    base = hsv(rng.random(), rng.uniform(0.05, 0.45), rng.uniform(0.25, 0.75))
    lum = 1 + lowf * F32(0.04) + grain * F32(0.11) + blur(grain, 1.0) * F32(0.08)
    return base * lum[..., None]


def _doormat(
    rng: np.random.Generator, floor: np.ndarray, gx: np.ndarray, gy: np.ndarray, fp: np.ndarray, ext: float
) -> np.ndarray:
    """Parcels are left on doormats: coir (bristly tan), rubber (dark) or fabric with a border."""
    ang = rng.uniform(0, np.pi)
    ca, sa = math.cos(ang), math.sin(ang)
    cx, cy = rng.normal(0, ext * 0.2, 2)
    a = (gx - F32(cx)) * F32(ca) + (gy - F32(cy)) * F32(sa)
    b = -(gx - F32(cx)) * F32(sa) + (gy - F32(cy)) * F32(ca)
    hw, hh = max(0.38, ext * 0.7) * rng.uniform(0.9, 1.3), max(0.24, ext * 0.5) * rng.uniform(0.9, 1.3)
    inside = np.clip((hw - np.abs(a)) / fp + 0.5, 0, 1) * np.clip((hh - np.abs(b)) / fp + 0.5, 0, 1)
    kind = rng.integers(0, 3)
    noise = fine_noise(rng, *gx.shape)
    if kind == 0:
        base = hsv(rng.uniform(0.07, 0.1), rng.uniform(0.45, 0.7), rng.uniform(0.45, 0.7))
        lum = 1 + noise * F32(0.16) + blur(noise, 1.0) * F32(0.2)
    elif kind == 1:
        base = np.array([rng.uniform(0.08, 0.2)] * 3, F32)
        lum = 1 + noise * F32(0.08) + _lines(a, 0.03, 0.008, fp) * F32(0.6)
    else:
        base = hsv(rng.random(), rng.uniform(0.1, 0.5), rng.uniform(0.2, 0.6))
        lum = 1 + noise * F32(0.08) + blur(noise, 1.0) * F32(0.1)
    border = ((np.abs(a) > hw - 0.04) | (np.abs(b) > hh - 0.04)).astype(F32)
    mat = base * (lum * (1 - border * F32(0.3)))[..., None]
    return floor * (1 - inside[..., None]) + mat * inside[..., None]


def _wall(rng: np.random.Generator, wa: np.ndarray, wb: np.ndarray, fp: np.ndarray) -> np.ndarray:
    """Painted wall, siding or brick, with a skirting board and sometimes a door."""
    h, w = wa.shape
    kind = str(rng.choice(["paint", "siding", "brick"], p=[0.65, 0.17, 0.18]))
    grain = fine_noise(rng, h, w)
    if kind == "paint":
        base = hsv(rng.random(), rng.uniform(0.0, 0.25), rng.uniform(0.6, 0.95))
        lum = 1 + grain * F32(0.015) + smooth_noise(rng, h, w, w / 3) * F32(0.02)
    elif kind == "siding":
        base = hsv(rng.random(), rng.uniform(0.0, 0.3), rng.uniform(0.5, 0.95))
        lum = 1 + grain * F32(0.02) - _lines(wb, rng.uniform(0.1, 0.2), 0.01, fp) * F32(0.35)
    else:
        base = hsv(rng.uniform(0.0, 0.07), rng.uniform(0.3, 0.6), rng.uniform(0.35, 0.65))
        bh = 0.075
        row = np.floor(wb / F32(bh)).astype(np.int64)
        shift = (row % 2) * F32(0.11)
        col = np.floor((wa + shift) / F32(0.22)).astype(np.int64)
        tab = _table(rng)
        g = np.maximum(_lines(wb, bh, 0.01, fp), _lines(wa + shift, 0.22, 0.01, fp))
        lum = (1 + tab[(row * 31 + col * 17) % 64] * F32(0.08) + grain * F32(0.06)) * (
            1 - g * F32(0.2)
        ) + g * F32(0.3)
    rgb = base * lum[..., None]
    if rng.random() < 0.45:
        a0 = rng.uniform(-1.2, 0.4)
        door = (wa > a0) & (wa < a0 + 0.9) & (wb < 2.05)
        dcol = hsv(rng.random(), rng.uniform(0, 0.5), rng.uniform(0.2, 0.9))
        frame = door & ((wa < a0 + 0.05) | (wa > a0 + 0.85) | (wb > 2.0))
        dl = 1 + grain * F32(0.02) - _lines(wa - F32(a0), 0.3, 0.01, fp) * F32(0.2)
        rgb = np.where(door[..., None], dcol * dl[..., None], rgb)
        rgb = np.where(frame[..., None], rgb * F32(0.8), rgb)
    if kind == "paint" and rng.random() < 0.75:
        sk = rng.uniform(0.05, 0.14)
        scol = (
            np.array([0.92, 0.91, 0.88], F32)
            if rng.random() < 0.6
            else hsv(rng.uniform(0.05, 0.1), 0.5, rng.uniform(0.3, 0.7))
        )
        board = np.clip((sk - wb) / fp + 0.5, 0, 1)
        edge = _lines(wb - F32(sk), 10.0, 0.006, fp)
        rgb = rgb * (1 - board[..., None]) + scol * board[..., None]
        rgb = rgb * (1 - edge[..., None] * F32(0.3))
    return rgb.astype(F32)
