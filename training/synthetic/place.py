"""Placing a damage plan on a rendered box: which visible face, where in the frame, how big, and
what it does to the silhouette (displacement components for crushed corners, edges, sagging).

Damage is only useful if it is in the photo: every instance goes on a face the camera sees, at a
point that projects inside the frame, sized relative to what is visible.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from training.synthetic import damage as dmg
from training.synthetic.geom import Box, Camera, Face, apply_h, top_share
from training.synthetic.tex import Ellipse


@dataclass(frozen=True)
class Shot:
    """A rendered box as the camera sees it: everything a damage plan needs to land in the photo
    (one value instead of a dozen positional arguments threaded through every placement helper)."""

    faces: list[Face]
    cam: Camera
    box: Box
    verts: np.ndarray  # the box's 3D vertices
    proj: np.ndarray  # the vertices projected into the photo (pixels)
    hull: list[int]  # vertex indices of the silhouette
    ppm: float  # texture pixels per metre of board (also pixels per metre at the box)
    size: int  # the photo's side in pixels
    seam_along_x: bool
    open_flaps: bool


def _in_frame(p: np.ndarray, size: int, margin: float = 0.06) -> bool:
    return bool(margin * size <= p[0] <= (1 - margin) * size and margin * size <= p[1] <= (1 - margin) * size)


def _face_point(
    rng: np.random.Generator, f: Face, size: int, lo: float = 0.2, hi: float = 0.8
) -> tuple[float, float]:
    """A texture point on the face that lands inside the frame (damage must be in the photo)."""
    for _ in range(12):
        u, v = rng.uniform(lo, hi) * f.tex_w, rng.uniform(lo, hi) * f.tex_h
        if _in_frame(apply_h(f.homography, [(u, v)])[0], size):
            return u, v
    return f.tex_w / 2, f.tex_h / 2


def _pick_face(rng: np.random.Generator, faces: list[Face], size: int, prefer_side: bool = False) -> Face:
    """A face chosen by its in-frame area: damage on a sliver of a grazing face is invisible."""
    weights = []
    for f in faces:
        p = apply_h(f.homography, f.tex_corners())
        p = np.clip(p, 0, size)
        a = 0.5 * abs(np.dot(p[:, 0], np.roll(p[:, 1], 1)) - np.dot(p[:, 1], np.roll(p[:, 0], 1)))
        if prefer_side and f.name != "top":
            a *= 2.5
        weights.append(a + 1.0)
    w = np.array(weights) / sum(weights)
    return faces[int(rng.choice(len(faces), p=w))]


def apply_plan(rng: np.random.Generator, plan: list[tuple[str, int]], shot: Shot, comps: list) -> None:
    """Paint each (kind, grade) of `plan` onto the visible outer faces' surfaces and append the
    silhouette displacements it implies to `comps`. Strength grows with grade so a cosmetic scuff
    stays subtler than structural damage of the same kind of mark."""
    faces, cam, box, verts, proj, hull = shot.faces, shot.cam, shot.box, shot.verts, shot.proj, shot.hull
    ppm, size, seam_along_x = shot.ppm, shot.size, shot.seam_along_x
    open_flaps = shot.open_flaps
    outer = [f for f in faces if f.role == "outer" and f.surf is not None]
    if not outer:
        return
    centre_px = proj[hull].mean(0)
    px_per_m = ppm
    mailer = box.kind == "mailer"
    if mailer:
        outer = [f for f in outer if f.name == "top"] or outer
    for kind, g in plan:
        strength = float(rng.uniform(0.65, 1.0) if g == 1 else rng.uniform(0.75, 1.0) if g == 2 else 1.0)
        if kind in ("crushed_corner",) or (kind == "crushed_edge" and rng.random() < 0.3):
            _crush_corner(rng, outer, shot, centre_px, strength, comps)
            continue
        if kind == "crushed_edge":
            _crush_edge(rng, outer, shot, centre_px, strength, comps)
            continue
        if kind == "crushed_flat":
            for f in outer:
                dmg.crumple(f.surface, rng, rng.uniform(1.0, 2.0), 1.0)
            comps.append(
                (
                    "noise",
                    px_per_m * max(box.w, box.d) * rng.uniform(0.02, 0.045),
                    px_per_m * max(box.w, box.d) * 0.4,
                )
            )
            for _ in range(int(rng.integers(1, 3))):
                _crush_corner(rng, outer, shot, centre_px, 1.0, comps)
            continue
        if kind == "soaked":
            for f in outer:
                if f.name == "top":
                    if rng.random() < 0.6:
                        dmg.soak(
                            f.surface, rng, rng.uniform(0.5, 1.0), rng.uniform(0.8, 1.0), from_bottom=False
                        )
                else:
                    dmg.soak(
                        f.surface,
                        rng,
                        rng.uniform(0.45, 1.0) if not mailer else 1.0,
                        rng.uniform(0.8, 1.0),
                        from_bottom=True,
                    )
                dmg.crumple(f.surface, rng, rng.uniform(0.2, 0.6), rng.uniform(0.3, 0.6))
            top_c = cam.project(verts[4:].mean(0)[None])[0]
            comps.append(
                (
                    "bump",
                    top_c[0],
                    top_c[1],
                    px_per_m * max(box.w, box.d) * 0.35,
                    0.0,
                    -px_per_m * box.h * rng.uniform(0.05, 0.12),
                )
            )
            comps.append(("noise", px_per_m * max(box.w, box.d) * 0.015, px_per_m * max(box.w, box.d) * 0.5))
            continue
        if kind == "burst_open":
            if open_flaps:
                continue
            tops = [f for f in outer if f.name == "top"]
            if tops and not mailer and top_share(cam, verts) > 0.25:
                f = tops[0]
                dim = f.tex_h if seam_along_x else f.tex_w
                dmg.split_seam(f.surface, rng, seam_along_x, dim * rng.uniform(0.18, 0.45), 1.0)
                comps.append(
                    ("noise", px_per_m * max(box.w, box.d) * 0.012, px_per_m * max(box.w, box.d) * 0.4)
                )
                continue
            kind = "large_tear"
        f = _pick_face(rng, outer, size, prefer_side=kind in ("caved_side", "hole", "tear"))
        s = f.surface
        m = min(f.tex_w, f.tex_h) if not mailer else min(f.tex_w, f.tex_h) * 0.8
        # In close-ups the face is bigger than the frame: size damage by what is in the photo.
        m = min(m, 0.75 * size * ppm / px_per_m)
        u, v = _face_point(rng, f, size)
        if kind == "scuff":
            dmg.scuff(s, rng, u, v, m * rng.uniform(0.25, 0.55), strength)
        elif kind == "scrape":
            dmg.scrape(s, rng, u, v, m * rng.uniform(0.15, 0.35), strength)
        elif kind == "dent":
            dmg.dent(s, rng, u, v, m * rng.uniform(0.2, 0.4), strength)
        elif kind == "fray":
            edge = int(rng.integers(0, 4))
            dmg.fray(s, rng, edge, rng.uniform(0.2, 0.8), m * rng.uniform(0.2, 0.45), strength)
        elif kind == "caved_side":
            dmg.caved_side(s, rng, u, v, m * rng.uniform(0.55, 0.9), strength)
            # A caved panel also drags its nearest edge inwards a little.
            _edge_bump(f, (u, v), centre_px, px_per_m * m / ppm * 0.5, comps, rng.uniform(0.12, 0.25))
        elif kind == "hole":
            rx = max(3.0, m * rng.uniform(0.06, 0.14))
            dmg.hole(
                s,
                rng,
                Ellipse(u, v, rx, rx * rng.uniform(0.6, 1.0), rng.uniform(0, np.pi)),
                0.3,
                f.name != "top",
            )
        elif kind == "tear":
            rx = max(5.0, m * rng.uniform(0.14, 0.28))
            dmg.hole(
                s,
                rng,
                Ellipse(u, v, rx, max(2.0, rx * rng.uniform(0.2, 0.45)), rng.uniform(0, np.pi)),
                0.25,
                f.name != "top",
            )
        elif kind == "water_stain":
            dmg.water_stain(s, rng, u, v, m * rng.uniform(0.22, 0.42), strength * rng.uniform(0.85, 1.0))
        elif kind == "large_tear":
            u, v = _face_point(rng, f, size, 0.3, 0.7)
            rx = m * rng.uniform(0.2, 0.38)
            dmg.hole(
                s,
                rng,
                Ellipse(u, v, rx, rx * rng.uniform(0.5, 1.0), rng.uniform(0, np.pi)),
                0.92,
                f.name != "top",
            )
            lines = [
                [
                    (u + math.cos(a) * rx * 0.9, v + math.sin(a) * rx * 0.9),
                    (u + math.cos(a) * rx * 1.8, v + math.sin(a) * rx * 1.8),
                ]
                for a in rng.uniform(0, 2 * np.pi, int(rng.integers(3, 7)))
            ]
            dmg.creases(s, rng, lines, depth=max(1.5, rx * 0.06), width=1.0, crack=0.4)


def _local_px_per_m(proj: np.ndarray, verts: np.ndarray, vid: int) -> float:
    """Pixels per metre near a vertex: the least foreshortened of its three box edges."""
    best = 1.0
    for e in ((0, 1), (1, 2), (2, 3), (3, 0), (4, 5), (5, 6), (6, 7), (7, 4), (0, 4), (1, 5), (2, 6), (3, 7)):
        if vid in e:
            a, b = e
            wl = float(np.linalg.norm(verts[a] - verts[b]))
            if wl > 0.02:
                best = max(best, float(np.linalg.norm(proj[a] - proj[b])) / wl)
    return best


def _crush_corner(
    rng: np.random.Generator,
    outer: list[Face],
    shot: Shot,
    centre_px: np.ndarray,
    strength: float,
    comps: list[tuple],
) -> None:
    """A crushed corner: the corner vertex is pushed into the box (silhouette bitten in, with a
    wrinkled outline) and the faces meeting there get the folded, darkened texture."""
    verts, proj, hull, box, ppm, size = shot.verts, shot.proj, shot.hull, shot.box, shot.ppm, shot.size
    visible_v = {v for f in outer for v in (f.vids or ())}
    cands = [v for v in hull if v in visible_v and v >= 4 and _in_frame(proj[v], size, 0.04)]
    if not cands:
        cands = [v for v in visible_v if _in_frame(proj[v], size, 0.02)] or list(visible_v)
    if box.kind == "box" and rng.random() < 0.2:
        low = [v for v in hull if v in visible_v and v < 4 and _in_frame(proj[v], size, 0.04)]
        cands = low or cands
    vid = int(rng.choice(cands))
    ext = float(max(proj[hull].max(0) - proj[hull].min(0)))
    r_px = ext * rng.uniform(0.13, 0.24) * (0.75 + 0.25 * strength)
    r_m = r_px / _local_px_per_m(proj, verts, vid)
    for f in outer:
        if f.vids is None or vid not in f.vids:
            continue
        i = f.vids.index(vid)
        corner = f.tex_corners()[i]
        r = min(r_m * ppm, 0.9 * max(f.tex_w, f.tex_h))
        dmg.crushed_corner(f.surface, rng, (float(corner[0]), float(corner[1])), max(3.0, r), strength)
    p = proj[vid]
    d = p - centre_px
    d = d / (np.linalg.norm(d) + 1e-9)
    mag = r_px * rng.uniform(0.5, 0.8) * strength
    comps.append(("bump", p[0], p[1], r_px * 0.6, d[0] * mag, d[1] * mag))
    comps.append(("jitter", p[0], p[1], r_px * 0.9, r_px * rng.uniform(0.03, 0.06), max(15.0, r_px * 0.25)))


def _crush_edge(
    rng: np.random.Generator,
    outer: list[Face],
    shot: Shot,
    centre_px: np.ndarray,
    strength: float,
    comps: list[tuple],
) -> None:
    """A crushed edge: a stretch of a silhouette edge pushed in, with buckling creases."""
    verts, proj, hull, box, ppm, size = shot.verts, shot.proj, shot.hull, shot.box, shot.ppm, shot.size
    edges = []
    for f in outer:
        if f.vids is None:
            continue
        c = f.vids
        for a, b in ((c[0], c[1]), (c[1], c[2]), (c[2], c[3]), (c[3], c[0])):
            if a in hull and b in hull and _in_frame((proj[a] + proj[b]) / 2, size, 0.05):
                edges.append((a, b))
    if not edges:
        edges = [(f.vids[0], f.vids[1]) for f in outer if f.vids is not None]
    # Drops and stacking crush the long horizontal edges, mostly the top ones.
    horizontal = [(a, b) for a, b in edges if (a >= 4) == (b >= 4)]
    top = [(a, b) for a, b in horizontal if a >= 4]
    edges = (top if top and rng.random() < 0.75 else horizontal) or edges
    a, b = edges[int(rng.integers(len(edges)))]
    t = rng.uniform(0.25, 0.75)
    length = float(np.linalg.norm(verts[a] - verts[b]))
    edge_px = float(np.linalg.norm(proj[a] - proj[b]))
    size_m = max(length * rng.uniform(0.3, 0.55), max(box.w, box.d) * 0.2)
    for f in outer:
        e = f.edge_of(a, b)
        if e is None:
            continue
        idx, forward = e
        tt = t if forward else 1 - t
        dmg.crushed_edge(f.surface, rng, idx, tt, size_m * ppm, strength)
    p = proj[a] * (1 - t) + proj[b] * t
    d = p - centre_px
    d = d / (np.linalg.norm(d) + 1e-9)
    r_px = max(size_m / max(length, 1e-6) * edge_px, 0.15 * float(max(proj[hull].max(0) - proj[hull].min(0))))
    mag = r_px * rng.uniform(0.3, 0.45) * strength
    comps.append(("bump", p[0], p[1], r_px * 0.5, d[0] * mag, d[1] * mag))
    comps.append(("jitter", p[0], p[1], r_px * 0.8, r_px * rng.uniform(0.02, 0.05), max(15.0, r_px * 0.25)))


def _edge_bump(
    f: Face, uv: tuple[float, float], centre_px: np.ndarray, r_px: float, comps: list[tuple], k: float
) -> None:
    """Drag the face edge nearest to texel `uv` towards the box centre (a caved panel's sagging
    rim)."""
    u, v = uv
    d_edges = [v, f.tex_w - u, f.tex_h - v, u]
    e = int(np.argmin(d_edges))
    pt = [(u, 0), (f.tex_w, v), (u, f.tex_h), (0, v)][e]
    p = apply_h(f.homography, [pt])[0]
    d = p - centre_px
    d = d / (np.linalg.norm(d) + 1e-9)
    comps.append(("bump", p[0], p[1], r_px, d[0] * r_px * k, d[1] * r_px * k))
