"""Damage primitives for synthetic parcel photos, painted in a face's texture space.

A `Surface` is an albedo image plus a height map (in texels). Damage edits both: colour changes
for what damage does to the paper (rubbed-off liner is lighter, wet board darker and more
saturated, a hole shows the dark inside or the contents), height changes for what it does to the
shape (dents, creases, caved panels). `shade` then lights the height map with the scene's light,
so a dent or a crease shows the light/dark shading pair a real one shows under a directional
light, and looks different on a sunlit and a shadowed face.

The same primitives are used on real photos of intact boxes (`training.synthetic.compose_damage`),
where the "surface" is the photo itself and `shade_relative` only modulates its existing light.

Severity vocabulary (models/grades.py):
- 1 cosmetic: scuffs, scrapes, shallow dents, a frayed edge.
- 2 structural: crushed corner or edge, caved side, hole or tear through the wall, water stain.
- 3 severe: burst open, crushed flat, large tear exposing contents, soaked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from training.synthetic.tex import (
    F32,
    Ellipse,
    Mask,
    Pt,
    blur,
    contents_patch,
    fine_noise,
    jagged_line,
    ragged_polygon,
    smooth_noise,
)

GRADE_KINDS: dict[int, tuple[str, ...]] = {
    1: ("scuff", "scuff", "scrape", "dent", "dent", "fray"),
    2: ("crushed_corner", "crushed_corner", "crushed_edge", "caved_side", "hole", "tear", "water_stain"),
    3: ("burst_open", "crushed_flat", "large_tear", "soaked"),
}
WHOLE_BOX = frozenset({"burst_open", "crushed_flat", "soaked"})


@dataclass
class Surface:
    rgb: np.ndarray  # (h, w, 3) albedo, float32
    height: np.ndarray  # (h, w) float32, texels; positive = towards the viewer
    ppm: float  # texels per metre
    fibre: np.ndarray  # (3,) colour of rubbed/torn paper fibres for this board

    @property
    def h(self) -> int:
        return self.rgb.shape[0]

    @property
    def w(self) -> int:
        return self.rgb.shape[1]


def fibre_colour(base: np.ndarray) -> np.ndarray:
    """Torn or rubbed kraft exposes paler, greyer fibres below the liner: lighten and desaturate."""
    grey = base.mean()
    pale = base * 0.45 + np.array([0.86, 0.8, 0.7], F32) * 0.55
    return np.clip(pale * 0.85 + grey * 0.15 + 0.05, 0, 1).astype(F32)


def plan_damage(rng: np.random.Generator, grade: int) -> list[tuple[str, int]]:
    """Damage instances for one parcel: one to three of its grade, sometimes plus lesser damage.

    Real damaged parcels rarely show one clean defect: a crushed box is usually scuffed too. The
    grade is the worst instance present, so lesser extras never change the label.
    """
    if grade <= 0:
        return []
    n = int(rng.choice([1, 2, 3], p=[0.45, 0.35, 0.2] if grade == 1 else [0.6, 0.3, 0.1]))
    kinds: list[tuple[str, int]] = []
    whole = False
    for _ in range(n):
        kind = str(rng.choice(GRADE_KINDS[grade]))
        if kind in WHOLE_BOX:
            if whole:
                kind = "large_tear" if grade == 3 else kind
            whole = True
        kinds.append((kind, grade))
    if rng.random() < 0.45 and grade >= 2:
        for _ in range(int(rng.integers(1, 3))):
            g = int(rng.integers(1, grade))
            kind = str(rng.choice(GRADE_KINDS[g]))
            kinds.append((kind, g))
    return kinds


# --------------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------------


def _bump(s: Surface, shape: Ellipse, depth: float) -> None:
    """Add a smooth elliptical Gaussian of the size of `shape` to the height map (negative depth =
    dent)."""
    cx, cy, rx, ry, angle = shape.cx, shape.cy, shape.rx, shape.ry, shape.angle
    r = 3.0 * max(rx, ry)
    x0, x1 = max(0, int(cx - r)), min(s.w, int(cx + r) + 1)
    y0, y1 = max(0, int(cy - r)), min(s.h, int(cy + r) + 1)
    if x0 >= x1 or y0 >= y1:
        return
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(F32)
    dx, dy = xx - cx, yy - cy
    ca, sa = math.cos(angle), math.sin(angle)
    u = (ca * dx + sa * dy) / max(rx, 0.5)
    v = (-sa * dx + ca * dy) / max(ry, 0.5)
    s.height[y0:y1, x0:x1] += F32(depth) * np.exp(-0.5 * (u * u + v * v))


def creases(
    s: Surface,
    rng: np.random.Generator,
    lines: list[list[Pt]],
    depth: float,
    width: float = 1.0,
    crack: float = 0.4,
) -> None:
    """Fold lines. A fold is two facets meeting at a sharp line, so each segment adds a V-shaped
    height profile (a cusp, depth * exp(-|d| / R), fading out at the segment's ends): once lit, one side
    is brighter and the other darker with an abrupt change at the line, as on real crumpled board.
    Where a fold is sharp the liner cracks: a pale fibre line on some of them."""
    if not lines:
        return
    reach = max(2.0, width * 4.0)
    cracked = Mask(s.w, s.h)
    for pts in lines:
        sign = 1.0 if rng.random() < 0.5 else -1.0
        amp = depth * rng.uniform(0.6, 1.2) * sign
        for p0, p1 in zip(pts[:-1], pts[1:], strict=True):
            _fold(s.height, p0, p1, amp, reach)
        if rng.random() < crack:
            cracked.draw.line(pts, fill=int(rng.uniform(90, 200)), width=1)
    c = cracked.array(0.4)
    s.rgb += (c[..., None] * (s.fibre - s.rgb)) * F32(0.5)


def _fold(hmap: np.ndarray, p0: Pt, p1: Pt, amp: float, reach: float) -> None:
    """Add one straight fold segment p0-p1 to a height map, touching only its bounding box."""
    (x0, y0), (x1, y1) = p0, p1
    length = math.hypot(x1 - x0, y1 - y0)
    if length < 1:
        return
    tx, ty = (x1 - x0) / length, (y1 - y0) / length
    m = reach * 4.0
    bx0, bx1 = max(0, int(min(x0, x1) - m)), min(hmap.shape[1], int(max(x0, x1) + m) + 1)
    by0, by1 = max(0, int(min(y0, y1) - m)), min(hmap.shape[0], int(max(y0, y1) + m) + 1)
    if bx0 >= bx1 or by0 >= by1:
        return
    yy, xx = np.mgrid[by0:by1, bx0:bx1].astype(F32)
    dx, dy = xx - F32(x0), yy - F32(y0)
    along = (dx * F32(tx) + dy * F32(ty)) / F32(length)
    dist = np.abs(dx * F32(-ty) + dy * F32(tx))
    win = np.sqrt(np.clip(np.sin(np.clip(along, 0, 1) * F32(math.pi)), 0, 1))
    hmap[by0:by1, bx0:bx1] += F32(amp) * np.exp(-dist / F32(reach)) * win


def _radiating(
    rng: np.random.Generator, centre: Pt, r: float, arc: tuple[float, float], n: int
) -> list[list[Pt]]:
    """`n` crease lines about `r` long fanning out from `centre` between the angles of `arc`, as
    from a point of impact."""
    (x, y), (a0, a1) = centre, arc
    lines = []
    for _ in range(n):
        a = rng.uniform(a0, a1)
        ln = r * rng.uniform(0.5, 1.4)
        start = rng.uniform(0, 0.25) * r
        p0 = (x + math.cos(a) * start, y + math.sin(a) * start)
        p1 = (x + math.cos(a) * ln, y + math.sin(a) * ln)
        lines.append(jagged_line(rng, p0, p1, 3, ln * 0.05))
    return lines


def _random_lines(
    rng: np.random.Generator,
    s: Surface,
    n: int,
    lo: float,
    hi: float,
    box: tuple[float, float, float, float] | None = None,
) -> list[list[Pt]]:
    """n crease lines of length lo..hi starting inside `box` (default: the whole surface)."""
    x0, y0, x1, y1 = box if box is not None else (0, 0, s.w, s.h)
    lines = []
    for _ in range(n):
        p0 = (rng.uniform(x0, x1), rng.uniform(y0, y1))
        a = rng.uniform(0, 2 * np.pi)
        ln = rng.uniform(lo, hi)
        p1 = (p0[0] + math.cos(a) * ln, p0[1] + math.sin(a) * ln)
        lines.append(jagged_line(rng, p0, p1, 3, ln * 0.06))
    return lines


def _darken_blob(s: Surface, rng: np.random.Generator, cx: float, cy: float, r: float, amount: float) -> None:
    m = Mask(s.w, s.h)
    m.draw.polygon(
        ragged_polygon(rng, Ellipse(cx, cy, r, r * rng.uniform(0.6, 1.0), rng.uniform(0, 6))), fill=255
    )
    s.rgb *= (1 - m.array(max(1.0, r * 0.3)) * F32(amount))[..., None]


# --------------------------------------------------------------------------------------------
# Grade 1: cosmetic
# --------------------------------------------------------------------------------------------


def scuff(s: Surface, rng: np.random.Generator, cx: float, cy: float, size: float, strength: float) -> None:
    """Abrasion: bundles of fuzzy parallel streaks where the liner's top fibres were rubbed off
    (lighter), or, less often, grey rubber/dirt marks from conveyor belts (darker)."""
    m = Mask(s.w, s.h)
    a = rng.uniform(0, np.pi)
    for _ in range(int(rng.integers(5, 14))):
        ang = a + rng.normal(0, 0.12)
        ln = size * rng.uniform(0.3, 1.0)
        ox, oy = rng.normal(0, size * 0.2, 2)
        p0 = (cx + ox - math.cos(ang) * ln / 2, cy + oy - math.sin(ang) * ln / 2)
        p1 = (cx + ox + math.cos(ang) * ln / 2, cy + oy + math.sin(ang) * ln / 2)
        m.draw.line(
            [p0, p1], fill=int(rng.uniform(150, 255)), width=max(1, int(size * rng.uniform(0.03, 0.12)))
        )
    mask = m.array(max(0.8, size * 0.03))
    mask *= np.clip(0.6 + 0.6 * blur(fine_noise(rng, s.h, s.w), 0.7), 0, 1.3)
    mask = np.clip(mask * F32(1.3 * strength), 0, 1)[..., None]
    if rng.random() < 0.75:
        s.rgb += mask * (s.fibre - s.rgb)
    else:
        s.rgb *= 1 - mask * np.array([0.45, 0.45, 0.4], F32)
    s.height += mask[..., 0] * fine_noise(rng, s.h, s.w) * F32(0.3)


def scrape(s: Surface, rng: np.random.Generator, cx: float, cy: float, size: float, strength: float) -> None:
    """Small gouges: a thin pale line of torn liner with a darker lip of curled paper beside it."""
    light, dark = Mask(s.w, s.h), Mask(s.w, s.h)
    for _ in range(int(rng.integers(1, 4))):
        a = rng.uniform(0, 2 * np.pi)
        ln = size * rng.uniform(0.4, 1.0)
        p0 = (cx + rng.normal(0, size * 0.2), cy + rng.normal(0, size * 0.2))
        pts = jagged_line(rng, p0, (p0[0] + math.cos(a) * ln, p0[1] + math.sin(a) * ln), 4, ln * 0.04)
        wd = max(1, int(size * rng.uniform(0.03, 0.07)))
        light.draw.line(pts, fill=255, width=wd)
        off = [(x + math.sin(a) * wd, y - math.cos(a) * wd) for x, y in pts]
        dark.draw.line(off, fill=200, width=max(1, wd // 2))
    lm = light.array(0.5)[..., None] * F32(strength)
    s.rgb += lm * (s.fibre * F32(1.05) - s.rgb)
    s.rgb *= 1 - dark.array(0.5)[..., None] * F32(0.35 * strength)
    s.height -= lm[..., 0] * F32(1.0)


def dent(s: Surface, rng: np.random.Generator, cx: float, cy: float, size: float, strength: float) -> None:
    """A shallow dent: a soft depression (visible only through shading), maybe one faint crease."""
    rx = size * rng.uniform(0.35, 0.6)
    ry = rx * rng.uniform(0.5, 1.0)
    _bump(s, Ellipse(cx, cy, rx, ry, rng.uniform(0, np.pi)), -rx * rng.uniform(0.4, 0.75) * strength)
    _darken_blob(s, rng, cx, cy, rx * 0.6, 0.06 * strength)
    if rng.random() < 0.6:
        a = rng.uniform(0, np.pi)
        ln = rx * rng.uniform(0.8, 1.6)
        p0 = (cx - math.cos(a) * ln / 2, cy - math.sin(a) * ln / 2)
        p1 = (cx + math.cos(a) * ln / 2, cy + math.sin(a) * ln / 2)
        creases(s, rng, [jagged_line(rng, p0, p1, 3, ln * 0.05)], depth=1.2 * strength, crack=0.2)


def fray(s: Surface, rng: np.random.Generator, edge: int, t: float, size: float, strength: float) -> None:
    """A slightly frayed or bumped edge: a narrow ragged pale band along a stretch of the box edge
    where the liner has rubbed through, with a few small nicks."""
    h, w = s.h, s.w
    length = size * rng.uniform(0.8, 1.6)
    depth = max(1.5, size * rng.uniform(0.06, 0.14))
    n = 14
    pts_out, pts_in = [], []
    for i in range(n + 1):
        along = (i / n - 0.5) * length
        dep = depth * rng.uniform(0.3, 1.0) * math.sin(math.pi * i / n) ** 0.5
        pts_out.append((along, -1.0))
        pts_in.append((along, dep))
    poly = pts_out + pts_in[::-1]

    def place(p: Pt) -> Pt:
        a, b = p
        if edge == 0:
            return (t * w + a, b)
        if edge == 1:
            return (w - 1 - b, t * h + a)
        if edge == 2:
            return (t * w + a, h - 1 - b)
        return (b, t * h + a)

    m = Mask(w, h)
    m.draw.polygon([place(p) for p in poly], fill=255)
    mask = m.array(0.6) * F32(strength)
    mask *= np.clip(0.6 + 0.5 * fine_noise(rng, h, w), 0, 1.2)
    s.rgb += mask[..., None] * (s.fibre - s.rgb)
    s.height -= mask * F32(1.5)


# --------------------------------------------------------------------------------------------
# Grade 2: structural
# --------------------------------------------------------------------------------------------


def crushed_corner(s: Surface, rng: np.random.Generator, corner: Pt, radius: float, strength: float) -> None:
    """The texture half of a crushed corner (the scene also pushes the silhouette in): the board
    near the corner is folded in on itself, so it is darker (facing away, in its own shadow),
    crumpled into small facets, with long crease lines fanning out into the panel."""
    x, y = corner
    centre = math.atan2(s.h / 2 - y, s.w / 2 - x)
    a0, a1 = centre - 0.95, centre + 0.95
    lines = _radiating(rng, (x, y), radius * 1.2, (a0, a1), int(rng.integers(4, 9)))
    lines += _random_lines(
        rng, s, int(rng.integers(4, 9)), radius * 0.15, radius * 0.5, _box(x, y, radius * 0.55)
    )
    _bump(s, Ellipse(x, y, radius * 0.55, radius * 0.55, 0), -radius * 0.45 * strength)
    creases(
        s, rng, lines, depth=max(1.5, radius * 0.07) * strength, width=max(1.0, radius * 0.035), crack=0.5
    )
    _darken_blob(s, rng, x, y, radius * 0.5, 0.35 * strength)


def _box(x: float, y: float, r: float) -> tuple[float, float, float, float]:
    return (x - r, y - r, x + r, y + r)


def crushed_edge(
    s: Surface, rng: np.random.Generator, edge: int, t: float, size: float, strength: float
) -> None:
    """A crushed edge: a row of short buckling creases perpendicular to the edge and a darker,
    dented band (the scene pushes the silhouette in at the same place)."""
    h, w = s.h, s.w
    lines = []
    depth = size * rng.uniform(0.25, 0.45)
    for _ in range(int(rng.integers(5, 11))):
        a = (rng.uniform(-0.5, 0.5)) * size
        ln = depth * rng.uniform(0.8, 2.0)
        tilt = rng.normal(0, 0.35)
        lines.append([(a, 0.0), (a + tilt * ln, ln)])
    along_line = [[(-size / 2, depth * 0.6), (size / 2, depth * rng.uniform(0.3, 0.9))]]

    def place(p: Pt) -> Pt:
        a, b = p
        if edge == 0:
            return (t * w + a, b)
        if edge == 1:
            return (w - 1 - b, t * h + a)
        if edge == 2:
            return (t * w + a, h - 1 - b)
        return (b, t * h + a)

    lines = [[place(p) for p in ln] for ln in lines + along_line]
    cx, cy = place((0.0, depth * 0.3))
    horizontal = edge in (0, 2)
    _bump(
        s,
        Ellipse(cx, cy, size * 0.5 if horizontal else depth, depth if horizontal else size * 0.5, 0),
        -depth * 0.5 * strength,
    )
    creases(s, rng, lines, depth=max(1.5, size * 0.04) * strength, width=max(1.0, size * 0.02), crack=0.5)
    _darken_blob(s, rng, cx, cy, max(depth, size * 0.3), 0.2 * strength)


def caved_side(
    s: Surface, rng: np.random.Generator, cx: float, cy: float, size: float, strength: float
) -> None:
    """A caved-in panel: a large, deep depression whose walls buckle along a few long creases
    (often an X or a diagonal), darker in its hollow."""
    rx = size * rng.uniform(0.35, 0.55)
    ry = rx * rng.uniform(0.6, 1.0)
    ang = rng.uniform(0, np.pi)
    _bump(s, Ellipse(cx, cy, rx, ry, ang), -rx * rng.uniform(0.5, 0.9) * strength)
    # Board does not dent smoothly: it buckles into large facets along a few long folds.
    major = []
    for _ in range(int(rng.integers(2, 5))):
        a = rng.uniform(0, np.pi)
        ln = rx * rng.uniform(1.4, 2.6)
        ox, oy = rng.normal(0, rx * 0.2, 2)
        p0 = (cx + ox - math.cos(a) * ln / 2, cy + oy - math.sin(a) * ln / 2)
        p1 = (cx + ox + math.cos(a) * ln / 2, cy + oy + math.sin(a) * ln / 2)
        major.append(jagged_line(rng, p0, p1, 3, ln * 0.05))
    creases(
        s,
        rng,
        major,
        depth=rx * rng.uniform(0.08, 0.14) * strength,
        width=rx * rng.uniform(0.05, 0.08),
        crack=0.5,
    )
    minor = _radiating(rng, (cx, cy), rx, (0, 2 * np.pi), int(rng.integers(3, 7)))
    creases(s, rng, minor, depth=max(1.5, rx * 0.05) * strength, width=max(1.0, rx * 0.03), crack=0.4)
    _darken_blob(s, rng, cx, cy, rx * 0.7, 0.2 * strength)


def hole(
    s: Surface, rng: np.random.Generator, shape: Ellipse, show_contents: float, flute_vertical: bool = True
) -> None:
    """A hole or tear through the wall, about `shape` in size: a dark opening (or, with probability
    `show_contents`, the contents, dimly lit inside the box) ringed by a pale, ragged band of torn
    liner with the corrugated flutes exposed, and sometimes a flap of torn liner curling out over
    it. A tear is a long, thin ellipse."""
    cx, cy, rx, ry, angle = shape.cx, shape.cy, shape.rx, shape.ry, shape.angle
    h, w = s.h, s.w
    outer = Mask(w, h)
    k = rng.uniform(1.1, 1.3)
    outer.draw.polygon(
        ragged_polygon(rng, Ellipse(cx, cy, rx * k, ry * k, angle), n=48, rough=0.1, lobes=0.35), fill=255
    )
    inner = Mask(w, h)
    inner_poly = ragged_polygon(rng, shape, n=48, rough=0.12, lobes=0.35)
    inner.draw.polygon(inner_poly, fill=255)
    om = outer.array(0.6)
    im = inner.array(0.5)
    ring = np.clip(om - im, 0, 1)
    # Torn edge: pale fibres with exposed flutes (periodic light/dark) and fibrous speckle.
    period = max(2.2, 0.006 * s.ppm)
    coord = np.arange(w if flute_vertical else h, dtype=F32)
    fl = 0.84 + 0.12 * np.sin(coord * F32(2 * np.pi / period))
    fl = fl[None, :] if flute_vertical else fl[:, None]
    torn = s.fibre[None, None, :] * (fl * (1 + 0.06 * fine_noise(rng, h, w)))[..., None]
    s.rgb += ring[..., None] * (torn - s.rgb)
    # Inside the box: dark, lit only through the hole; darker under the upper rim.
    yy = np.arange(h, dtype=F32)[:, None]
    shade_in = np.clip(0.25 + 0.75 * (yy - (cy - ry)) / max(2 * ry, 1), 0.2, 1.0)
    if rng.random() < show_contents:
        y0, y1 = max(0, int(cy - ry * 1.6)), min(h, int(cy + ry * 1.6) + 1)
        x0, x1 = max(0, int(cx - rx * 1.6)), min(w, int(cx + rx * 1.6) + 1)
        inside = s.rgb.copy()
        if y1 > y0 and x1 > x0:
            inside[y0:y1, x0:x1] = contents_patch(rng, y1 - y0, x1 - x0, s.ppm)
        dim = rng.uniform(0.35, 0.75)
        inside = inside * (shade_in * F32(dim))[..., None]
    else:
        inside = s.rgb * (shade_in * F32(rng.uniform(0.08, 0.2)))[..., None]
    s.rgb += im[..., None] * (inside - s.rgb)
    s.height += ring * F32(1.2) - im * F32(2.0)
    # A flap of liner still attached on one side, bent outward.
    if rng.random() < 0.5 and rx > 3:
        i = int(rng.integers(0, len(inner_poly)))
        p, q = inner_poly[i], inner_poly[(i + int(rng.integers(3, 8))) % len(inner_poly)]
        tip = (
            (p[0] + q[0]) / 2 + (cx - (p[0] + q[0]) / 2) * rng.uniform(0.4, 0.9),
            (p[1] + q[1]) / 2 + (cy - (p[1] + q[1]) / 2) * rng.uniform(0.4, 0.9),
        )
        fm = Mask(w, h)
        fm.draw.polygon([p, tip, q], fill=255)
        f = fm.array(0.5)
        flap_col = s.fibre * F32(rng.uniform(0.75, 1.05))
        s.rgb += f[..., None] * (flap_col - s.rgb)
        s.height += f * F32(2.5)


def water_stain(
    s: Surface, rng: np.random.Generator, cx: float, cy: float, r: float, strength: float
) -> None:
    """A dried water stain: a blotchy darker, more saturated patch with dark tide-mark rings at
    its edges where dissolved dirt was deposited."""
    wet = np.zeros((s.h, s.w), F32)
    tide = np.zeros((s.h, s.w), F32)
    for k in range(int(rng.integers(1, 4))):
        rr = r * (1.0 - 0.25 * k) * rng.uniform(0.8, 1.1)
        ox, oy = rng.normal(0, r * 0.15, 2)
        m = Mask(s.w, s.h)
        m.draw.polygon(
            ragged_polygon(
                rng,
                Ellipse(cx + ox, cy + oy, rr, rr * rng.uniform(0.5, 1.0), rng.uniform(0, 6)),
                n=40,
                rough=0.1,
                lobes=0.5,
            ),
            fill=255,
        )
        soft = m.array(max(1.0, rr * 0.05))
        wet = np.maximum(wet, soft * F32(0.6 + 0.4 * (k == 0)))
        tide += np.exp(-(((soft - 0.5) / 0.22) ** 2)) * (soft > 0.02)
    wet *= np.clip(0.75 + 0.35 * smooth_noise(rng, s.h, s.w, max(2.0, r * 0.3)), 0, 1.2)
    _wet(s, np.clip(wet + tide * 0.6, 0, 1) * F32(strength))


def _wet(s: Surface, m: np.ndarray) -> None:
    """Water darkens paper and deepens its colour (a power curve does both)."""
    wet_col = np.power(np.clip(s.rgb, 1e-3, 1), F32(1.6)) * F32(0.82)
    s.rgb += m[..., None] * (wet_col - s.rgb)


# --------------------------------------------------------------------------------------------
# Grade 3: severe
# --------------------------------------------------------------------------------------------


def crumple(s: Surface, rng: np.random.Generator, density: float, strength: float) -> None:
    """Crushed-flat board: the whole face buckled into irregular facets by many creases, with
    broad undulations, cracked liner along the sharpest folds, and grime in the folds."""
    size = min(s.w, s.h)
    n = int(density * 12) + 4
    lines = _random_lines(rng, s, n, size * 0.2, size * 0.9)
    s.height += smooth_noise(rng, s.h, s.w, size * 0.25) * F32(size * 0.05 * strength)
    creases(s, rng, lines, depth=max(1.5, size * 0.025) * strength, width=max(1.0, size * 0.012), crack=0.5)
    s.rgb *= (1 - np.clip(smooth_noise(rng, s.h, s.w, size * 0.2), 0, 2) * F32(0.07 * strength))[..., None]


def soak(s: Surface, rng: np.random.Generator, level: float, strength: float, from_bottom: bool) -> None:
    """A soaked panel: water wicks up from a wet doorstep (side faces) or pools on top; a large,
    strongly darkened area with a wavy tide line, and soggy wrinkles inside it."""
    h, w = s.h, s.w
    if from_bottom:
        edge = (1 - level) * h + smooth_noise(rng, 1, w, w * 0.15)[0] * F32(h * 0.08)
        yy = np.arange(h, dtype=F32)[:, None]
        m = np.clip((yy - edge[None, :]) / max(1.0, h * 0.03) + 0.5, 0, 1)
    else:
        mk = Mask(w, h)
        mk.draw.polygon(
            ragged_polygon(
                rng,
                Ellipse(
                    rng.uniform(0.3, 0.7) * w,
                    rng.uniform(0.3, 0.7) * h,
                    w * level * 0.7,
                    h * level * 0.7,
                    rng.uniform(0, 6),
                ),
                n=40,
                rough=0.12,
                lobes=0.6,
            ),
            fill=255,
        )
        m = mk.array(max(1.0, min(w, h) * 0.03))
    tide = np.exp(-(((m - 0.5) / 0.2) ** 2)) * (m > 0.03)
    m = m * np.clip(0.85 + 0.25 * smooth_noise(rng, h, w, min(w, h) * 0.2), 0, 1.1)
    _wet(s, np.clip(m * 1.2 + tide * 0.4, 0, 1) * F32(strength))
    s.rgb *= (1 - m * F32(0.15 * strength))[..., None]
    lines = _random_lines(rng, s, int(6 + 10 * level), min(w, h) * 0.05, min(w, h) * 0.3)
    before = s.height.copy()
    creases(s, rng, lines, depth=max(1.0, min(w, h) * 0.012), width=1.0, crack=0.1)
    s.height = before + (s.height - before) * m


def split_seam(s: Surface, rng: np.random.Generator, along_x: bool, width: float, strength: float) -> None:
    """Burst along the flap seam: the two flaps forced apart by the contents, a lens-shaped
    jagged opening showing what is inside, flap edges torn pale and lifted."""
    h, w = s.h, s.w
    L = w if along_x else h
    c = (h if along_x else w) / 2
    n = 18
    t0, t1 = rng.uniform(0.0, 0.25) * L, rng.uniform(0.75, 1.0) * L
    top, bot = [], []
    for i in range(n + 1):
        t = t0 + (t1 - t0) * i / n
        half = width / 2 * math.sin(math.pi * i / n) ** 0.7 * rng.uniform(0.75, 1.15)
        off = rng.normal(0, width * 0.05)
        top.append((t, c - half + off))
        bot.append((t, c + half + off))
    poly = top + bot[::-1]
    if not along_x:
        poly = [(b, a) for a, b in poly]
    inner = Mask(w, h)
    inner.draw.polygon(poly, fill=255)
    outer = Mask(w, h)
    outer.draw.polygon(poly, fill=255)
    outer.draw.line(poly + [poly[0]], fill=255, width=max(2, int(width * 0.12)))
    im, om = inner.array(0.5), outer.array(0.8)
    ring = np.clip(om - im, 0, 1)
    s.rgb += ring[..., None] * (s.fibre - s.rgb)
    y0, y1 = (int(max(0, c - width)), int(min(h, c + width) + 1)) if along_x else (0, h)
    x0, x1 = (0, w) if along_x else (int(max(0, c - width)), int(min(w, c + width) + 1))
    inside = s.rgb * F32(0.15)
    if y1 > y0 and x1 > x0:
        inside[y0:y1, x0:x1] = contents_patch(rng, y1 - y0, x1 - x0, s.ppm) * F32(rng.uniform(0.4, 0.8))
    s.rgb += im[..., None] * (inside - s.rgb)
    s.height += ring * F32(max(2.0, width * 0.15)) * F32(strength) - im * F32(2)
    lines = []
    for x, y in (top + bot)[:: max(1, n // 6)]:
        px, py = (x, y) if along_x else (y, x)
        a = rng.uniform(0, 2 * np.pi)
        ln = width * rng.uniform(0.5, 1.5)
        lines.append(jagged_line(rng, (px, py), (px + math.cos(a) * ln, py + math.sin(a) * ln), 3, ln * 0.05))
    creases(s, rng, lines, depth=max(1.5, width * 0.06), width=1.0, crack=0.4)


# --------------------------------------------------------------------------------------------
# Lighting
# --------------------------------------------------------------------------------------------


def _cavity(height: np.ndarray) -> np.ndarray:
    """Ambient occlusion from the height map at two scales: folds (small) and caved or crushed
    areas (large) see less of the sky, which is what makes dents visible under soft light."""
    if not height.any():
        return np.ones_like(height)
    big = max(8.0, min(height.shape) * 0.2)
    c = 1 + 0.045 * (height - blur(height, 4.0)) + 0.028 * (height - blur(height, big))
    return np.clip(c, 0.5, 1.15)


@dataclass(frozen=True)
class FaceLight:
    """How one box face is lit, as `shade` needs it.

    The scene has one `geom.Light`; the renderer derives a `FaceLight` per face from it (faces
    inside the box get less ambient and direct light, only outer side panels get the floor's
    ambient-occlusion band, all share the soft fill from behind the camera). Grouping these seven
    values keeps `shade`'s signature to the surface, its frame and its light.
    """

    direction: np.ndarray  # unit vector towards the main light (world space)
    ambient: float  # sky / room light strength
    diffuse: float  # main light strength
    amb_col: np.ndarray  # (3,) colour of the ambient light
    sun_col: np.ndarray  # (3,) colour of the main light
    ground_ao: float = 0.0  # darkening towards the floor along v (side panels), 0 = none
    fill: np.ndarray | None = None  # soft fill from behind the photographer, scaled by its strength


def shade(
    s: Surface, normal: np.ndarray, u_axis: np.ndarray, v_axis: np.ndarray, lit: FaceLight
) -> np.ndarray:
    """Light a surface whose texture axes are `u_axis`, `v_axis` with face normal `normal` (world
    space): sky ambient (stronger on upward-facing normals) plus a directional sun/lamp (Lambert),
    both using the normal perturbed by the height map, plus cavity darkening in folds and, for side
    panels, the darker band near the floor where less sky light reaches."""
    light, ambient, diffuse, amb_col, sun_col = (
        lit.direction,
        lit.ambient,
        lit.diffuse,
        lit.amb_col,
        lit.sun_col,
    )
    ground_ao, fill = lit.ground_ao, lit.fill
    gy, gx = np.gradient(s.height)
    inv = 1 / np.sqrt(1 + gx * gx + gy * gy)
    ndl = (float(normal @ light) - gx * float(u_axis @ light) - gy * float(v_axis @ light)) * inv
    nz = (float(normal[2]) - gx * float(u_axis[2]) - gy * float(v_axis[2])) * inv
    sky = F32(ambient) * (0.62 + 0.38 * (0.5 + 0.5 * nz))
    cav = _cavity(s.height)
    sky = sky * cav
    if ground_ao > 0 and normal[2] < 0.5:
        v = np.linspace(0, 1, s.h, dtype=F32)[:, None]
        sky = sky * (1 - F32(ground_ao) * v**3)
    direct = F32(diffuse) * np.clip(ndl, 0, None) * cav
    if fill is not None:
        # Soft fill from behind the photographer (room, sky behind them): makes sideways tilts
        # of facets visible even on faces the main light does not reach.
        ndf = (float(normal @ fill) - gx * float(u_axis @ fill) - gy * float(v_axis @ fill)) * inv
        sky = sky + np.clip(ndf, 0, None) * cav
    light_rgb = sky[..., None] * amb_col + direct[..., None] * sun_col
    return (s.rgb * light_rgb).astype(F32)


def shade_relative(s: Surface, light2d: tuple[float, float], strength: float = 0.9) -> np.ndarray:
    """Relight a photo-derived surface: the photo already carries its own lighting, so only the
    *change* due to new relief is applied (a multiplicative factor around 1)."""
    gy, gx = np.gradient(s.height)
    inv = 1 / np.sqrt(1 + gx * gx + gy * gy)
    lx, ly = light2d
    d = (-(gx * lx + gy * ly)) * inv * F32(strength) + (inv - 1) * F32(0.6)
    cav = _cavity(s.height)
    return (s.rgb * np.clip(1 + d, 0.25, 1.8)[..., None] * cav[..., None]).astype(F32)
