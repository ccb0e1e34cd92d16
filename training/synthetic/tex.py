"""Texture and drawing helpers for the synthetic parcel renderer (`training.synthetic.procedural`).

Everything here paints in *texture space*: a flat image of one box face (or of a floor, a label,
the contents of a box) whose texels have a known size in metres (`ppm`, texels per metre). The
scene renderer later warps these flat images onto perspective-projected planes, so anything drawn
here (tape, labels, printed logos, tears) follows the face's perspective for free.

Conventions: colour arrays are float32 in [0, 1] (display-referred sRGB), shape (h, w, 3); masks
and height maps are float32 (h, w). All randomness comes from the `numpy.random.Generator` that is
passed in, so a render is a pure function of its seed.
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

F32 = np.float32
Pt = tuple[float, float]


@dataclass(frozen=True)
class Ellipse:
    """An oriented ellipse in texture coordinates: centre (cx, cy), radii (rx, ry) along its own
    axes, turned by `angle` radians.

    Holes, tears, stains and dents are each placed by one; as one value it travels through
    `ragged_polygon`, `damage.hole` and the dent helpers instead of five loose floats that are
    easy to pass in the wrong order.
    """

    cx: float
    cy: float
    rx: float
    ry: float
    angle: float = 0.0


@dataclass(frozen=True)
class TapeSpec:
    """One box's packing tape apart from where it runs: strip width (texels) and style (`clear`,
    `brown`, `white`, `printed`).

    Every strip on a box shares these, so `tape_strip` takes them as one value and its call sites
    differ only in the endpoints (the board's scale never mattered to the tape: width is in texels).
    """

    width: float
    style: str


# --------------------------------------------------------------------------------------------
# Noise, blur, masks
# --------------------------------------------------------------------------------------------


def smooth_noise(rng: np.random.Generator, h: int, w: int, feature: float, aniso: float = 1.0) -> np.ndarray:
    """Band-limited noise with blobs about `feature` texels wide (unit-ish std).

    Upsampling a small random grid with bicubic interpolation is the cheapest smooth noise Pillow
    offers; `aniso` > 1 stretches blobs along x (paper fibres, wood grain, brushed streaks).
    """
    gy = max(2, int(math.ceil(h / max(feature, 1.0))) + 1)
    gx = max(2, int(math.ceil(w / max(feature * aniso, 1.0))) + 1)
    small = rng.standard_normal((gy, gx)).astype(F32)
    out = np.asarray(Image.fromarray(small, "F").resize((max(w, 1), max(h, 1)), Image.Resampling.BICUBIC))
    return out * F32(1.6)


_BANK_SIZE = 512
_BANK = np.random.default_rng(20240917).standard_normal((_BANK_SIZE, _BANK_SIZE), dtype=F32)


def fine_noise(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Per-texel white noise (paper grain, carpet pile, sensor-scale detail).

    Drawing fresh Gaussian noise is the single biggest cost of a render, so this takes a random
    crop (random offset, flip and transpose chosen by `rng`) of a fixed, seeded noise bank;
    white noise has no structure for a model to memorise at that scale."""
    if h > _BANK_SIZE or w > _BANK_SIZE:
        return rng.standard_normal((h, w), dtype=F32)
    t = bool(rng.integers(2))
    hh, ww = (w, h) if t else (h, w)
    y0 = int(rng.integers(0, _BANK_SIZE - hh + 1))
    x0 = int(rng.integers(0, _BANK_SIZE - ww + 1))
    crop = _BANK[y0 : y0 + hh, x0 : x0 + ww]
    if t:
        crop = crop.T
    if rng.integers(2):
        crop = crop[::-1]
    return crop.copy()


def blur(a: np.ndarray, r: float) -> np.ndarray:
    """Gaussian-like blur of a float array (Pillow cannot blur mode "F").

    Small radii use two box passes via cumulative sums; large radii downsample then upsample, which
    is close enough to a Gaussian for shading and far cheaper.
    """
    if r <= 0.3:
        return a
    h, w = a.shape[:2]
    if r >= 3.0 and a.ndim == 2:
        f = r / 1.2
        sw, sh = max(2, int(w / f)), max(2, int(h / f))
        small = Image.fromarray(a.astype(F32), "F").resize((sw, sh), Image.Resampling.BOX)
        return np.asarray(small.resize((w, h), Image.Resampling.BICUBIC))
    k = max(1, int(round(r)))
    out = a.astype(F32)
    for _ in range(2):
        c = np.cumsum(np.pad(out, ((k + 1, k), (0, 0)) + ((0, 0),) * (a.ndim - 2), mode="edge"), axis=0)
        out = (c[2 * k + 1 :] - c[: -2 * k - 1]) / (2 * k + 1)  # type: ignore[assignment]  # numpy scalar vs float reuse
        c = np.cumsum(np.pad(out, ((0, 0), (k + 1, k)) + ((0, 0),) * (a.ndim - 2), mode="edge"), axis=1)
        out = (c[:, 2 * k + 1 :] - c[:, : -2 * k - 1]) / (2 * k + 1)  # type: ignore[assignment]  # numpy scalar vs float reuse
    return out.astype(F32)


class Mask:
    """An 8-bit drawing canvas that turns into a float mask; Pillow draws polygons/lines fast."""

    def __init__(self, w: int, h: int) -> None:
        self.img = Image.new("L", (max(1, w), max(1, h)), 0)
        self.draw = ImageDraw.Draw(self.img)

    def array(self, blur_radius: float = 0.0) -> np.ndarray:
        if blur_radius <= 0:
            return np.asarray(self.img, dtype=F32) * F32(1 / 255)
        box = self.img.getbbox()
        out = np.zeros((self.img.height, self.img.width), F32)
        if box is None:
            return out
        # Blur only around what was drawn: most masks are small marks on a large face.
        m = int(math.ceil(blur_radius * 3)) + 1
        x0, y0 = max(0, box[0] - m), max(0, box[1] - m)
        x1, y1 = min(self.img.width, box[2] + m), min(self.img.height, box[3] + m)
        crop = self.img.crop((x0, y0, x1, y1)).filter(ImageFilter.GaussianBlur(blur_radius))
        out[y0:y1, x0:x1] = np.asarray(crop, dtype=F32) * F32(1 / 255)
        return out


def ragged_polygon(
    rng: np.random.Generator, shape: Ellipse, n: int = 28, rough: float = 0.2, lobes: float = 0.25
) -> list[Pt]:
    """A closed blob with a torn/irregular outline around `shape`: low harmonics give the lobes,
    per-vertex jitter the ragged fibre edge. Used for tears, stains and wet patches, none of which
    are ellipses."""
    cx, cy, rx, ry, angle = shape.cx, shape.cy, shape.rx, shape.ry, shape.angle
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    r = np.ones(n)
    for k in (2, 3, 5):
        r += lobes / k * rng.uniform(0.3, 1.0) * np.cos(k * t + rng.uniform(0, 2 * np.pi))
    r += rough * rng.uniform(-1, 1, n)
    r = np.clip(r, 0.35, 2.0)
    ca, sa = math.cos(angle), math.sin(angle)
    x = rx * r * np.cos(t)
    y = ry * r * np.sin(t)
    return [(cx + ca * a - sa * b, cy + sa * a + ca * b) for a, b in zip(x, y, strict=True)]


def jagged_line(rng: np.random.Generator, p0: Pt, p1: Pt, n: int, amp: float) -> list[Pt]:
    """A polyline from p0 to p1 with sideways kinks: creases and tear lines are never straight."""
    x0, y0 = p0
    x1, y1 = p1
    dx, dy = x1 - x0, y1 - y0
    length = math.hypot(dx, dy) + 1e-6
    nx, ny = -dy / length, dx / length
    pts = []
    for i in range(n + 1):
        t = i / n
        off = 0.0 if i in (0, n) else rng.normal(0, amp)
        pts.append((x0 + dx * t + nx * off, y0 + dy * t + ny * off))
    return pts


# --------------------------------------------------------------------------------------------
# Colour
# --------------------------------------------------------------------------------------------


def hsv(h: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(h % 1.0, s, v), dtype=F32)


def kraft_colour(rng: np.random.Generator) -> np.ndarray:
    """Corrugated kraft from pale tan to dark chocolate brown: hue, saturation and value all vary
    between mills and with age, and customers' parcels span the whole range."""
    v = rng.uniform(0.5, 0.9) if rng.random() < 0.8 else rng.uniform(0.38, 0.55)
    return hsv(rng.uniform(0.07, 0.105), rng.uniform(0.34, 0.6), v)


def white_board_colour(rng: np.random.Generator) -> np.ndarray:
    """White-top board and white mailers: near-neutral, slightly off-white."""
    g = rng.uniform(0.82, 0.96)
    return np.clip(np.array([g, g, g], F32) + rng.normal(0, 0.015, 3).astype(F32), 0, 1)


def retail_colour(rng: np.random.Generator) -> np.ndarray:
    """Any saturated print colour (retail packaging, product boxes inside parcels)."""
    return hsv(rng.random(), rng.uniform(0.35, 0.9), rng.uniform(0.35, 0.95))


INKS = (
    np.array([0.1, 0.1, 0.11], F32),
    np.array([0.22, 0.14, 0.08], F32),
    np.array([0.1, 0.16, 0.38], F32),
    np.array([0.08, 0.3, 0.16], F32),
    np.array([0.72, 0.1, 0.08], F32),
)


def pick_ink(rng: np.random.Generator) -> np.ndarray:
    return INKS[int(rng.choice(len(INKS), p=[0.5, 0.15, 0.15, 0.08, 0.12]))]


def paint(rgb: np.ndarray, mask: np.ndarray, colour: np.ndarray, opacity: float = 1.0) -> None:
    """Opaque paint/paper over the surface (labels, stickers, tape)."""
    m = (mask * F32(opacity))[..., None]
    rgb *= 1 - m
    rgb += m * colour


def ink(rgb: np.ndarray, mask: np.ndarray, colour: np.ndarray, opacity: float = 1.0) -> None:
    """Printing ink absorbs light, so it multiplies: the board's texture shows through the print."""
    m = (mask * F32(opacity))[..., None]
    rgb *= 1 - m * (1 - colour)


def blit(rgb: np.ndarray, patch: np.ndarray, alpha: np.ndarray, x0: int, y0: int) -> None:
    """Alpha-composite a small patch into a texture with clipping at the borders."""
    h, w = rgb.shape[:2]
    ph, pw = patch.shape[:2]
    xa, ya = max(0, x0), max(0, y0)
    xb, yb = min(w, x0 + pw), min(h, y0 + ph)
    if xa >= xb or ya >= yb:
        return
    p = patch[ya - y0 : yb - y0, xa - x0 : xb - x0]
    a = alpha[ya - y0 : yb - y0, xa - x0 : xb - x0, None]
    region = rgb[ya:yb, xa:xb]
    region *= 1 - a
    region += a * p


def to_u8(a: np.ndarray) -> np.ndarray:
    return (np.clip(a, 0, 1) * 255 + 0.5).astype(np.uint8)


# --------------------------------------------------------------------------------------------
# Board and paper surfaces
# --------------------------------------------------------------------------------------------


def board_albedo(
    rng: np.random.Generator,
    h: int,
    w: int,
    base: np.ndarray,
    ppm: float,
    material: str,
    flutes_along_x: bool,
) -> np.ndarray:
    """The bare surface colour of one face.

    Real kraft liner is not a flat colour: recycled fibre gives blotchy mottling a few cm across,
    fine grain and short fibre streaks, and under light the corrugation flutes inside the board
    show through as faint parallel lines ~4-8 mm apart. White and printed boards are smoother.
    """
    tex = {"kraft": 1.0, "mailer": 0.7, "white": 0.45, "printed": 0.3}[material]
    mott = smooth_noise(rng, h, w, 0.06 * ppm) * F32(0.02 * tex)
    mott += smooth_noise(rng, h, w, 0.25 * ppm) * F32(0.018 * tex)
    if rng.random() < 0.5:
        fib = smooth_noise(rng, h, w, 2.0, aniso=rng.uniform(2, 4))
    else:
        fib = smooth_noise(rng, w, h, 2.0, aniso=rng.uniform(2, 4)).T
    fib = fib * F32(0.01 * tex)
    grain = fine_noise(rng, h, w) * F32(0.014 * tex + 0.004)
    # Recycled board has scattered dark fibre specks.
    specks = (fine_noise(rng, h, w) < F32(-2.65 - 0.3 * (1 - tex))) * F32(-0.12)
    lum = 1 + mott + fib + grain + specks
    if material in ("kraft", "white") and rng.random() < 0.85:
        period = rng.uniform(0.0045, 0.009) * ppm
        if period >= 2.4:
            coord = np.arange(h if not flutes_along_x else w, dtype=F32)
            stripes = np.sin(coord * F32(2 * np.pi / period)) * F32(rng.uniform(0.008, 0.022))
            stripes = stripes[:, None] if not flutes_along_x else stripes[None, :]
            lum = lum + stripes * (1 + 0.7 * smooth_noise(rng, h, w, 0.1 * ppm))
    rgb = base[None, None, :] * lum[..., None]
    # Slight hue drift: recycled board has greyer and redder patches.
    drift = smooth_noise(rng, h, w, 0.2 * ppm) * F32(0.012 * tex)
    rgb[..., 0] += drift
    rgb[..., 2] -= drift
    return rgb.astype(F32)


def normal_wear(rng: np.random.Generator, rgb: np.ndarray, ppm: float, amount: float) -> None:
    """Handling grime that every delivered parcel has (grade 0 too): faint dirty smudges from
    hands and conveyor belts and slightly darker edges. Kept far weaker than a scuff."""
    h, w = rgb.shape[:2]
    if amount <= 0:
        return
    m = Mask(w, h)
    for _ in range(rng.integers(0, 5)):
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        r = rng.uniform(0.01, 0.05) * ppm
        m.draw.ellipse([cx - r, cy - r * rng.uniform(0.3, 1), cx + r, cy + r], fill=int(rng.uniform(60, 255)))
    grime = m.array(blur_radius=max(1.0, 0.012 * ppm))
    edge = np.minimum(
        np.minimum(np.arange(w, dtype=F32)[None, :], np.arange(w, dtype=F32)[::-1][None, :]),
        np.minimum(np.arange(h, dtype=F32)[:, None], np.arange(h, dtype=F32)[::-1][:, None]),
    )
    rim = np.exp(-edge / max(1.0, 0.01 * ppm))
    dark = F32(0.07 * amount) * grime + F32(0.05 * amount) * rim
    rgb *= (1 - dark)[..., None]
    rgb[..., 2] *= 1 - dark * F32(0.3)


# --------------------------------------------------------------------------------------------
# Printed marks, labels, tape
# --------------------------------------------------------------------------------------------


def text_blocks(
    rng: np.random.Generator,
    d: ImageDraw.ImageDraw,
    x: float,
    y: float,
    width: float,
    lh: float,
    fill: int = 255,
) -> None:
    """A line of 'words': at phone-photo resolution text reads as rows of small blocks."""
    cx = x
    while cx < x + width:
        ww = lh * rng.uniform(1.2, 5.0)
        ww = min(ww, x + width - cx)
        if ww > lh * 0.4:
            d.rectangle([cx, y, cx + ww, y + lh], fill=fill)
        cx += ww + lh * rng.uniform(0.4, 0.9)


def draw_pictogram(rng: np.random.Generator, d: ImageDraw.ImageDraw, x: float, y: float, s: float) -> None:
    """Handling marks printed on shipping cartons: this-way-up arrows, fragile glass, keep dry."""
    kind = rng.integers(0, 4)
    lw = max(1, int(s * 0.07))
    if rng.random() < 0.5:
        d.rectangle([x - s * 0.6, y - s * 0.1, x + s * 0.6, y + s * 1.08], outline=255, width=lw)
    if kind == 0:
        for k in (-1, 1):
            c = x + k * s * 0.28
            d.polygon(
                [
                    (c, y),
                    (c - s * 0.22, y + s * 0.35),
                    (c - s * 0.08, y + s * 0.35),
                    (c - s * 0.08, y + s * 0.8),
                    (c + s * 0.08, y + s * 0.8),
                    (c + s * 0.08, y + s * 0.35),
                    (c + s * 0.22, y + s * 0.35),
                ],
                fill=255,
            )
        d.rectangle([x - s * 0.5, y + s * 0.88, x + s * 0.5, y + s * 0.98], fill=255)
    elif kind == 1:
        d.polygon(
            [
                (x - s * 0.3, y),
                (x + s * 0.3, y),
                (x + s * 0.22, y + s * 0.42),
                (x + s * 0.05, y + s * 0.5),
                (x + s * 0.05, y + s * 0.85),
                (x + s * 0.25, y + s * 0.97),
                (x - s * 0.25, y + s * 0.97),
                (x - s * 0.05, y + s * 0.85),
                (x - s * 0.05, y + s * 0.5),
                (x - s * 0.22, y + s * 0.42),
            ],
            fill=255,
        )
    elif kind == 2:
        d.pieslice([x - s * 0.5, y + s * 0.1, x + s * 0.5, y + s * 0.9], 180, 360, fill=255)
        d.line([(x, y + s * 0.5), (x, y + s * 0.92)], fill=255, width=lw)
        for k in range(3):
            xx = x - s * 0.4 + k * s * 0.4
            d.line([(xx, y - s * 0.15), (xx - s * 0.05, y + s * 0.02)], fill=255, width=lw)
    else:
        d.ellipse([x - s * 0.5, y, x + s * 0.5, y + s], outline=255, width=lw)
        d.ellipse(
            [x - s * 0.33, y + s * 0.17, x + s * 0.33, y + s * 0.83], outline=255, width=max(1, lw // 2)
        )
        for k in range(3):
            text_blocks(rng, d, x - s * 0.22, y + s * (0.32 + 0.14 * k), s * 0.44, s * 0.06)


def draw_brand(rng: np.random.Generator, d: ImageDraw.ImageDraw, x: float, y: float, s: float) -> None:
    """A retailer/courier logo: a bold word and often a swoosh or smile underneath."""
    cx = x
    n = int(rng.integers(3, 8))
    for _ in range(n):
        lw = s * rng.uniform(0.45, 0.75)
        d.rectangle([cx, y, cx + lw, y + s], fill=255)
        if rng.random() < 0.4:
            d.rectangle([cx + lw * 0.3, y + s * 0.3, cx + lw * 0.7, y + s * 0.7], fill=0)
        cx += lw + s * 0.14
    if rng.random() < 0.6:
        width = cx - x
        d.arc([x, y + s * 0.2, x + width, y + s * 1.9], 25, 155, fill=255, width=max(1, int(s * 0.16)))


def draw_scribble(rng: np.random.Generator, d: ImageDraw.ImageDraw, x: float, y: float, s: float) -> None:
    """Marker handwriting (names, order numbers, 'x2'): rows of looping cursive strokes along a
    baseline, letter heights varying. Loops, not jagged lines, so it never resembles a crack."""
    wd = max(1, int(s * rng.uniform(0.07, 0.13)))
    slope = rng.normal(0, 0.08)
    for row in range(int(rng.integers(1, 3))):
        cx = x
        by = y + row * s * 1.8
        for _ in range(int(rng.integers(1, 4))):
            n = int(rng.integers(2, 7))
            heights = rng.uniform(0.35, 1.0, n) * s
            heights[rng.random(n) < 0.25] *= 1.7
            pts = []
            for k in range(n * 8 + 1):
                t = k / 8
                li = min(int(t), n - 1)
                px = cx + t * s * 0.55 - math.sin(2 * math.pi * t) * s * 0.16
                py = by - (0.5 - 0.5 * math.cos(2 * math.pi * t)) * heights[li] + (px - x) * slope
                pts.append((px, py))
            d.line(pts, fill=255, width=wd, joint="curve")
            cx += n * s * 0.55 + s * rng.uniform(0.4, 0.8)


def make_label(rng: np.random.Generator, w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    """A thermal shipping label (RGB, alpha): barcode bars, a 2D code, rows of grey text, rules.

    Courier labels are the commonest thing on an intact parcel, so the model must see plenty of
    them on undamaged boxes and not read white rectangles as torn paper.
    """
    w, h = max(w, 6), max(h, 6)
    paper = np.array([rng.uniform(0.88, 0.98)] * 3, F32) - np.array([0, 0, rng.uniform(0, 0.04)], F32)
    if rng.random() < 0.1:
        paper = hsv(rng.uniform(0.1, 0.2), rng.uniform(0.25, 0.5), rng.uniform(0.85, 0.97))
    img = Image.new("L", (w, h), 0)
    d = ImageDraw.Draw(img)
    lh = max(1.0, h * rng.uniform(0.018, 0.03))
    y = h * 0.05
    for _ in range(int(rng.integers(2, 5))):
        text_blocks(rng, d, w * 0.06, y, w * rng.uniform(0.3, 0.85), lh, fill=int(rng.uniform(70, 160)))
        y += lh * 2.0
    d.line([(0, y), (w, y)], fill=230, width=max(1, int(lh * 0.6)))
    y += lh * 1.5
    if rng.random() < 0.6:
        d.rectangle([w * 0.06, y, w * 0.3, y + w * 0.24], fill=240)
        text_blocks(rng, d, w * 0.35, y + lh, w * 0.5, lh * 1.6, fill=200)
        y += w * 0.28
    bh = h * rng.uniform(0.16, 0.28)
    bx = w * 0.08
    while bx < w * 0.92:
        bw = rng.choice([0.5, 1.0, 1.5, 2.5]) * max(1.0, w / 120)
        if rng.random() < 0.55:
            d.rectangle([bx, y, bx + bw, y + bh], fill=250)
        bx += bw
    y += bh + lh
    if rng.random() < 0.5 and y + w * 0.25 < h:
        code = rng.random((9, 9)) < 0.5
        code_img = Image.fromarray((code * 250).astype(np.uint8)).resize(
            (int(w * 0.25), int(w * 0.25)), Image.Resampling.NEAREST
        )
        img.paste(code_img, (int(w * 0.06), int(y)))
        for k in range(4):
            text_blocks(rng, d, w * 0.38, y + k * lh * 2, w * 0.5, lh, fill=200)
        y += w * 0.28
    while y < h * 0.92:
        text_blocks(rng, d, w * 0.06, y, w * rng.uniform(0.3, 0.88), lh, fill=int(rng.uniform(60, 150)))
        y += lh * 2.0
    if rng.random() < 0.7:
        d.rectangle([0, 0, w - 1, h - 1], outline=150, width=max(1, int(lh * 0.4)))
    m = np.asarray(img, F32) * F32(1 / 255)
    rgb = paper[None, None, :] * (1 - m[..., None] * F32(0.93))
    rgb = rgb * (1 + fine_noise(rng, h, w)[..., None] * F32(0.01))
    return rgb.astype(F32), np.ones((h, w), F32)


def place_label(rng: np.random.Generator, rgb: np.ndarray, ppm: float, cx: float, cy: float) -> tuple:
    """Stick a label at (cx, cy), slightly skewed as people apply them. Returns its bbox."""
    lw, lh = (0.1, 0.15) if rng.random() < 0.7 else (0.075, 0.1)
    if rng.random() < 0.2:
        lw, lh = rng.uniform(0.05, 0.09), rng.uniform(0.03, 0.06)
    w, h = int(lw * ppm), int(lh * ppm)
    if w < 4 or h < 4:
        return (cx, cy, cx, cy)
    lab, alpha = make_label(rng, w, h)
    ang = rng.normal(0, 4) + (90 if rng.random() < 0.35 else 0)
    if abs(ang) > 0.5:
        rgba = np.dstack([lab, alpha])
        im = Image.fromarray(to_u8(rgba), "RGBA").rotate(ang, resample=Image.Resampling.BILINEAR, expand=True)
        arr = np.asarray(im, F32) * F32(1 / 255)
        lab, alpha = arr[..., :3], arr[..., 3]
    ph, pw = lab.shape[:2]
    x0, y0 = int(cx - pw / 2), int(cy - ph / 2)
    blit(rgb, lab, alpha, x0, y0)
    return (x0, y0, x0 + pw, y0 + ph)


def tape_strip(
    rng: np.random.Generator, rgb: np.ndarray, p0: Pt, p1: Pt, tape: TapeSpec, ragged_end: bool = True
) -> None:
    """Packing tape from p0 to p1 (texture coords).

    Clear tape darkens and warms the board slightly and shows glossy streaks and bright edges;
    brown and printed tape are nearly opaque. Dispenser-cut ends are serrated.
    """
    # Work on the view around the strip only: tape is thin and faces are large.
    h, w = rgb.shape[:2]
    m = tape.width * 0.6 + 2
    bx0, bx1 = max(0, int(min(p0[0], p1[0]) - m)), min(w, int(max(p0[0], p1[0]) + m) + 1)
    by0, by1 = max(0, int(min(p0[1], p1[1]) - m)), min(h, int(max(p0[1], p1[1]) + m) + 1)
    if bx0 >= bx1 or by0 >= by1:
        return
    q0, q1 = (p0[0] - bx0, p0[1] - by0), (p1[0] - bx0, p1[1] - by0)
    _tape_strip(rng, rgb[by0:by1, bx0:bx1], q0, q1, tape, ragged_end)


def _tape_strip(
    rng: np.random.Generator, rgb: np.ndarray, p0: Pt, p1: Pt, tape: TapeSpec, ragged_end: bool
) -> None:
    width, style = tape.width, tape.style
    h, w = rgb.shape[:2]
    (x0, y0), (x1, y1) = p0, p1
    length = math.hypot(x1 - x0, y1 - y0) + 1e-6
    ux, uy = (x1 - x0) / length, (y1 - y0) / length
    nx, ny = -uy * width / 2, ux * width / 2
    poly = [(x0 + nx, y0 + ny), (x1 + nx, y1 + ny)]
    if ragged_end:
        k = 6
        for i in range(k + 1):
            t = i / k
            jag = (i % 2) * width * 0.08
            poly.append((x1 + nx * (1 - 2 * t) + ux * jag, y1 + ny * (1 - 2 * t) + uy * jag))
    poly += [(x1 - nx, y1 - ny), (x0 - nx, y0 - ny)]
    m = Mask(w, h)
    m.draw.polygon(poly, fill=255)
    mask = m.array()
    if not mask.any():
        return
    edge = Mask(w, h)
    edge.draw.line([(x0 + nx, y0 + ny), (x1 + nx, y1 + ny)], fill=255, width=1)
    edge.draw.line([(x0 - nx, y0 - ny), (x1 - nx, y1 - ny)], fill=255, width=1)
    edges = edge.array()
    # Gloss varies along the tape (it is never perfectly flat) and depends on the view.
    yy, xx = np.mgrid[0:h, 0:w].astype(F32)
    along = (xx - x0) * ux + (yy - y0) * uy
    across = (xx - x0) * (-uy) + (yy - y0) * ux
    gloss_amp = rng.uniform(0.0, 0.35) if rng.random() < 0.8 else 0.0
    f1, f2 = rng.uniform(0.5, 3) / max(length, 1), rng.uniform(0.02, 0.2) * 2 / max(width, 1)
    gloss = np.clip(np.sin(along * F32(2 * np.pi * f1) + rng.uniform(0, 6)), 0, 1) ** 3
    gloss = gloss * (0.6 + 0.4 * np.cos(across * F32(2 * np.pi * f2)))
    if style == "clear":
        tint = np.array([0.93, 0.91, 0.84], F32) * F32(rng.uniform(0.92, 1.0))
        rgb *= 1 - mask[..., None] * (1 - tint)
        rgb += (edges * F32(0.1))[..., None]
    else:
        if style == "brown":
            colour = hsv(rng.uniform(0.07, 0.1), rng.uniform(0.5, 0.75), rng.uniform(0.45, 0.72))
        elif style == "white":
            colour = np.array([0.92, 0.92, 0.9], F32)
        else:
            colour = hsv(rng.choice([0.0, 0.13, 0.6, 0.3]), rng.uniform(0.5, 0.9), rng.uniform(0.6, 0.95))
        paint(rgb, mask, colour, opacity=0.92 if style == "brown" else 0.96)
        if style == "printed":
            pm = Mask(w, h)
            step = width * rng.uniform(1.5, 3.0)
            t = rng.uniform(0, step)
            while t < length:
                cx, cy = x0 + ux * t, y0 + uy * t
                seg = width * 0.9
                pm.draw.line(
                    [(cx - nx * 0.5, cy - ny * 0.5), (cx - nx * 0.5 + ux * seg, cy - ny * 0.5 + uy * seg)],
                    fill=255,
                    width=max(1, int(width * 0.35)),
                )
                t += step
            ink(rgb, pm.array() * mask, pick_ink(rng), 0.9)
        rgb -= (edges * F32(0.06))[..., None]
    rgb += (mask * gloss * F32(gloss_amp))[..., None]
    if rng.random() < 0.5:
        wr = Mask(w, h)
        for _ in range(int(rng.integers(1, 5))):
            t = rng.uniform(0, length)
            cx, cy = x0 + ux * t, y0 + uy * t
            sk = rng.uniform(-0.5, 0.5)
            wr.draw.line(
                [(cx - nx + ux * sk * width, cy - ny + uy * sk * width), (cx + nx, cy + ny)],
                fill=255,
                width=1,
            )
        rgb += (wr.array() * mask * F32(0.12))[..., None]


# --------------------------------------------------------------------------------------------
# What is inside a box (seen through tears and open flaps)
# --------------------------------------------------------------------------------------------


def contents_patch(rng: np.random.Generator, h: int, w: int, ppm: float) -> np.ndarray:
    """The contents of a parcel, as seen through a tear: bubble wrap, crumpled paper fill,
    air pillows, foam peanuts or a brightly printed product box, often several together."""
    h, w = max(h, 2), max(w, 2)
    out = np.zeros((h, w, 3), F32)
    kinds = rng.choice(["bubble", "paper", "item", "pillows", "peanuts"], size=int(rng.integers(1, 4)))
    regions = [np.ones((h, w), F32)]
    if len(kinds) > 1:
        regions = []
        split = Mask(w, h)
        split.draw.polygon(
            ragged_polygon(rng, Ellipse(rng.uniform(0, w), rng.uniform(0, h), w * 0.5, h * 0.5), rough=0.1),
            fill=255,
        )
        m = split.array(blur_radius=0.7)
        regions = [m, 1 - m]
    for kind, region in zip(kinds, regions, strict=False):
        out += region[..., None] * _content(rng, str(kind), h, w, ppm)
    return out


def _content(rng: np.random.Generator, kind: str, h: int, w: int, ppm: float) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(F32)
    if kind == "bubble":
        base = np.array([0.84, 0.87, 0.88], F32) * F32(rng.uniform(0.85, 1.1))
        pitch = max(3.0, rng.uniform(0.008, 0.014) * ppm)
        gx = (xx / pitch) % 1 - 0.5
        gy = ((yy / pitch + 0.5 * (np.floor(xx / pitch) % 2)) % 1) - 0.5
        r = np.sqrt(gx * gx + gy * gy)
        bub = np.clip(1 - r / 0.42, 0, 1)
        hl = np.clip(1 - np.hypot(gx + 0.15, gy + 0.15) / 0.12, 0, 1)
        lum = 0.75 + 0.25 * bub + 0.5 * hl - 0.25 * ((r > 0.38) & (r < 0.46))
        return base * lum[..., None]
    if kind == "paper":
        base = kraft_colour(rng) * F32(1.1) if rng.random() < 0.6 else white_board_colour(rng)
        cr = Mask(w, h)
        for _ in range(int(8 + (h * w) ** 0.5 / 4)):
            p0 = (rng.uniform(0, w), rng.uniform(0, h))
            a = rng.uniform(0, 2 * np.pi)
            ln = rng.uniform(0.02, 0.08) * ppm
            cr.draw.line([p0, (p0[0] + math.cos(a) * ln, p0[1] + math.sin(a) * ln)], fill=255, width=1)
        hgt = cr.array(blur_radius=1.2) * F32(6) + smooth_noise(rng, h, w, 0.02 * ppm) * F32(2)
        gy_, gx_ = np.gradient(hgt)
        lum = np.clip(0.85 + 0.35 * (gx_ - gy_), 0.3, 1.3)
        return np.clip(base, 0, 1) * lum[..., None]
    if kind == "item":
        colour = retail_colour(rng)
        img = np.empty((h, w, 3), F32)
        img[:] = colour
        m = Mask(w, h)
        s = max(3.0, rng.uniform(0.01, 0.03) * ppm)
        for k in range(int(rng.integers(2, 6))):
            text_blocks(rng, m.draw, rng.uniform(0, w * 0.5), rng.uniform(0, h), w * 0.5, s * (1 + k % 2))
        paint(img, m.array(), np.array([0.95, 0.95, 0.93], F32) if colour.mean() < 0.6 else INKS[0], 0.9)
        lum = 0.8 + 0.3 * (xx / w) + smooth_noise(rng, h, w, 0.05 * ppm) * F32(0.04)
        return img * lum[..., None]
    if kind == "pillows":
        base = np.array([0.86, 0.88, 0.9], F32)
        pitch = max(6.0, rng.uniform(0.06, 0.1) * ppm)
        gx = np.abs((xx / pitch) % 1 - 0.5)
        gy = np.abs((yy / (pitch * 0.7)) % 1 - 0.5)
        lum = 0.95 - 0.5 * np.maximum(gx, gy) ** 3 * 8
        return base * np.clip(lum, 0.4, 1.1)[..., None]
    base = np.array([0.92, 0.9, 0.86], F32) if rng.random() < 0.7 else np.array([0.55, 0.75, 0.55], F32)
    img = np.empty((h, w, 3), F32)
    img[:] = base * F32(0.35)
    m = Mask(w, h)
    size = max(2.0, 0.012 * ppm)
    for _ in range(int(h * w / (size * size * 1.5)) + 1):
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        m.draw.ellipse(
            [cx - size, cy - size * 0.6, cx + size, cy + size * 0.6], fill=int(rng.uniform(150, 255))
        )
    paint(img, m.array(blur_radius=0.6), base, 1.0)
    return img
