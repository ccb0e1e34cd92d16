"""Geometry for synthetic parcel photos: a pinhole camera, plane homographies, the light, cuboid
boxes and their faces, shadows and the displacement warp used for crushed board.

Why 3D at all: the features that separate "brown box" from "damaged box" in real photos are
geometric. A real photo shows two or three faces of a box, each shaded differently by the light,
under perspective, standing on a floor that recedes to a wall, casting a soft shadow. A model
trained on flat rectangles would learn "flat rectangle = synthetic". Here every flat texture (a
face with its tape, labels and damage, the floor, the wall) is a plane in one world, projected by
one camera (`Camera.plane_to_pixel` gives the homography), so perspective, shading and shadows
agree with each other the way they do in a photo.

Units are metres; z is up; the main box stands on the floor (z = 0) centred at the origin.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from training.synthetic import damage as dmg
from training.synthetic.tex import F32, hsv, smooth_noise

Z = np.array([0.0, 0.0, 1.0])


def unit_vector(v: np.ndarray) -> np.ndarray:
    return v / (np.linalg.norm(v) + 1e-12)


@dataclass
class Camera:
    pos: np.ndarray
    right: np.ndarray
    up: np.ndarray
    fwd: np.ndarray
    scale: float = 1.0  # focal length in pixels
    ox: float = 0.0
    oy: float = 0.0

    @staticmethod
    def look_at(pos: np.ndarray, target: np.ndarray) -> Camera:
        fwd = unit_vector(target - pos)
        right = np.cross(fwd, Z)
        right = unit_vector(right) if np.linalg.norm(right) > 1e-6 else np.array([1.0, 0.0, 0.0])
        return Camera(pos, right, np.cross(right, fwd), fwd)

    def project(self, pts: np.ndarray) -> np.ndarray:
        rel = np.atleast_2d(pts) - self.pos
        z = np.maximum(rel @ self.fwd, 1e-6)
        return np.stack(
            [self.ox + self.scale * (rel @ self.right) / z, self.oy - self.scale * (rel @ self.up) / z], 1
        )

    def depth(self, pts: np.ndarray) -> np.ndarray:
        return (np.atleast_2d(pts) - self.pos) @ self.fwd

    def plane_to_pixel(self, origin: np.ndarray, au: np.ndarray, av: np.ndarray) -> np.ndarray:
        """Homography taking plane coordinates (u, v) of origin + u*au + v*av to pixels."""
        rel = origin - self.pos
        m = np.array(
            [
                [au @ self.right, av @ self.right, rel @ self.right],
                [au @ self.up, av @ self.up, rel @ self.up],
                [au @ self.fwd, av @ self.fwd, rel @ self.fwd],
            ]
        )
        k = np.array([[self.scale, 0, self.ox], [0, -self.scale, self.oy], [0, 0, 1.0]])
        return k @ m


def homography(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 3x3 projective map taking four src points to four dst points."""
    a, b = [], []
    for (x, y), (u, v) in zip(src, dst, strict=True):
        a.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        a.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        b += [u, v]
    h = np.linalg.solve(np.array(a, float), np.array(b, float))
    return np.append(h, 1.0).reshape(3, 3)


def apply_h(h: np.ndarray, pts: np.ndarray | Sequence[tuple[float, float]]) -> np.ndarray:
    pts = np.atleast_2d(np.asarray(pts, float))
    q = np.c_[pts, np.ones(len(pts))] @ h.T
    return q[:, :2] / q[:, 2:3]


def warp_to(
    img: Image.Image, h_tex_to_pix: np.ndarray, bbox: tuple[int, int, int, int], pad: int
) -> Image.Image:
    """Warp a (padded) texture into the pixel bbox with Pillow's C perspective transform."""
    x0, y0, x1, y1 = bbox
    inv = np.linalg.inv(h_tex_to_pix)
    m = (
        np.array([[1, 0, pad], [0, 1, pad], [0, 0, 1.0]])
        @ inv
        @ np.array([[1, 0, x0], [0, 1, y0], [0, 0, 1.0]])
    )
    m = m / m[2, 2]
    coeffs = tuple(m.flatten()[:8])
    fill = img.getpixel((img.width // 2, img.height // 2))
    return img.transform(
        (x1 - x0, y1 - y0), Image.Transform.PERSPECTIVE, coeffs, Image.Resampling.BILINEAR, fillcolor=fill
    )


def convex_hull(pts: np.ndarray) -> list[int]:
    """Indices of the convex hull (monotone chain), counter-clockwise."""
    order = sorted(range(len(pts)), key=lambda i: (pts[i][0], pts[i][1]))

    def cross(o: int, a: int, b: int) -> float:
        return (pts[a][0] - pts[o][0]) * (pts[b][1] - pts[o][1]) - (pts[a][1] - pts[o][1]) * (
            pts[b][0] - pts[o][0]
        )

    lower: list[int] = []
    for i in order:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], i) <= 0:
            lower.pop()
        lower.append(i)
    upper: list[int] = []
    for i in reversed(order):
        while len(upper) >= 2 and cross(upper[-2], upper[-1], i) <= 0:
            upper.pop()
        upper.append(i)
    return lower[:-1] + upper[:-1]


@dataclass
class Light:
    direction: np.ndarray  # unit vector pointing towards the light
    ambient: float
    diffuse: float
    amb_col: np.ndarray
    sun_col: np.ndarray
    shadow_blur: float  # fraction of image size
    shadow_strength: float
    mode: str


def sample_light(rng: np.random.Generator, cam: Camera) -> Light:
    """Doorstep photos are taken under ceiling lamps, low sun, overcast sky or the phone's flash:
    each gives a different balance of soft ambient to hard directional light, a different shadow
    and a different colour cast between lit and shaded faces."""
    mode = str(rng.choice(["indoor", "sun", "overcast", "flash"], p=[0.42, 0.2, 0.26, 0.12]))
    az = rng.uniform(0, 2 * np.pi)
    warm = hsv(rng.uniform(0.07, 0.12), rng.uniform(0.0, 0.22), 1.0) * F32(1.05)
    if mode == "indoor":
        el = math.radians(rng.uniform(45, 85))
        amb, dif, blur_f, strength = (
            rng.uniform(0.5, 0.72),
            rng.uniform(0.3, 0.55),
            rng.uniform(0.03, 0.09),
            0.6,
        )
        amb_col, sun_col = np.array([1.0, 0.98, 0.95], F32), warm
    elif mode == "sun":
        el = math.radians(rng.uniform(22, 65))
        amb, dif, blur_f, strength = (
            rng.uniform(0.32, 0.46),
            rng.uniform(0.65, 0.9),
            rng.uniform(0.004, 0.012),
            0.85,
        )
        amb_col, sun_col = np.array([0.88, 0.95, 1.1], F32), np.array([1.06, 1.0, 0.9], F32)
    elif mode == "overcast":
        el = math.radians(rng.uniform(60, 89))
        amb, dif, blur_f, strength = (
            rng.uniform(0.7, 0.9),
            rng.uniform(0.12, 0.3),
            rng.uniform(0.07, 0.14),
            0.5,
        )
        amb_col, sun_col = np.array([0.97, 0.99, 1.04], F32), np.array([1.0, 1.0, 1.0], F32)
    else:
        back = unit_vector(cam.pos - np.array([0, 0, 0.1]))
        d = unit_vector(back + rng.normal(0, 0.08, 3) + cam.up * 0.15)
        amb, dif = rng.uniform(0.12, 0.3), rng.uniform(0.75, 1.0)
        return Light(
            d,
            amb,
            dif,
            np.array([1, 1, 1], F32),
            np.array([1, 1, 1.03], F32),
            rng.uniform(0.008, 0.02),
            0.7,
            mode,
        )
    d = np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])
    return Light(d, amb, dif, amb_col, sun_col, blur_f, strength, mode)


LOCAL = np.array(
    [
        [-0.5, -0.5, 0],
        [0.5, -0.5, 0],
        [0.5, 0.5, 0],
        [-0.5, 0.5, 0],
        [-0.5, -0.5, 1],
        [0.5, -0.5, 1],
        [0.5, 0.5, 1],
        [-0.5, 0.5, 1],
    ]
)


# Corner vertex ids in texture order (0,0), (W,0), (W,H), (0,H); side faces have v = 0 at the top.
FACES = {
    "top": (7, 6, 5, 4),
    "front": (4, 5, 1, 0),
    "right": (5, 6, 2, 1),
    "back": (6, 7, 3, 2),
    "left": (7, 4, 0, 3),
}


SEAM_END_FACES = {True: ("left", "right"), False: ("front", "back")}


@dataclass
class Box:
    w: float
    d: float
    h: float
    rot: float = 0.0
    pos: tuple[float, float] = (0.0, 0.0)
    kind: str = "box"  # box | mailer
    verts: np.ndarray = field(default=None)  # type: ignore[arg-type]  # set by __post_init__

    def __post_init__(self) -> None:
        if self.verts is None:
            self.verts = self.rest_verts()

    def rest_verts(self) -> np.ndarray:
        c, s = math.cos(self.rot), math.sin(self.rot)
        rz = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])
        return (LOCAL * np.array([self.w, self.d, self.h])) @ rz.T + np.array([self.pos[0], self.pos[1], 0.0])


@dataclass
class Face:
    name: str
    corners: np.ndarray  # (4, 3) world
    vids: tuple[int, ...] | None
    tex_w: int
    tex_h: int
    role: str  # outer | inner | flap | contents
    surf: dmg.Surface | None = None
    h_tex: np.ndarray | None = None  # texture -> pixel homography
    shape: list | None = None  # polygon in texture coords (default: rectangle)

    @property
    def surface(self) -> dmg.Surface:
        """The face's paintable surface; only outer faces being painted have one, and callers
        choose those (`surf is not None`) before painting."""
        assert self.surf is not None, f"face {self.name} has no surface"
        return self.surf

    @property
    def homography(self) -> np.ndarray:
        """Texture -> pixel homography; set for every face once the camera has projected it."""
        assert self.h_tex is not None, f"face {self.name} is not projected"
        return self.h_tex

    @property
    def axes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        c = self.corners
        u = unit_vector((c[1] - c[0]) + (c[2] - c[3]))
        v = unit_vector((c[3] - c[0]) + (c[2] - c[1]))
        n = unit_vector(np.cross(v, u))
        return u, v, n

    def tex_corners(self) -> np.ndarray:
        return np.array([[0, 0], [self.tex_w, 0], [self.tex_w, self.tex_h], [0, self.tex_h]], float)

    def edge_of(self, a: int, b: int) -> tuple[int, bool] | None:
        """Texture edge index (0 top, 1 right, 2 bottom, 3 left) for the 3D edge a-b, and whether
        the edge's parameter runs from a to b."""
        if self.vids is None:
            return None
        c = self.vids
        edges = [(c[0], c[1]), (c[1], c[2]), (c[3], c[2]), (c[0], c[3])]
        for i, (p, q) in enumerate(edges):
            if (p, q) == (a, b):
                return i, True
            if (p, q) == (b, a):
                return i, False
        return None


def displacement_mesh(
    size: int,
    bbox: tuple[int, int, int, int],
    comps: list[tuple],
    rng: np.random.Generator,
    weight: np.ndarray | None = None,
) -> list:
    """A Pillow MESH for an inverse warp: each output cell samples from its displaced corners.
    Components: ("bump", cx, cy, sigma, vx, vy) pushes material at (cx, cy) (crushed corners and
    edges, sagging tops), ("jitter", ...) wrinkles an outline, ("noise", amp, feature) buckles a
    whole box. `weight` (an image-sized array) scales the displacement per pixel."""
    x0, y0, x1, y1 = bbox
    step = 10 if any(c[0] == "jitter" for c in comps) else 16
    nx_, ny_ = max(1, (x1 - x0 + step - 1) // step), max(1, (y1 - y0 + step - 1) // step)
    gx = x0 + np.arange(nx_ + 1) * step
    gy = y0 + np.arange(ny_ + 1) * step
    xx, yy = np.meshgrid(gx.astype(float), gy.astype(float))
    dx, dy = np.zeros_like(xx), np.zeros_like(yy)
    for c in comps:
        if c[0] == "bump":
            _, cx, cy, sigma, vx, vy = c
            g = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma * sigma))
            dx += vx * g
            dy += vy * g
        elif c[0] == "jitter":
            # Wrinkled outline near crushed board: small-scale noise under a Gaussian window.
            _, cx, cy, sigma, amp, feature = c
            g = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma * sigma))
            for arr in (dx, dy):
                arr += smooth_noise(rng, ny_ + 1, nx_ + 1, max(1.0, feature / step)) * amp * g
        elif c[0] == "noise":
            _, amp, feature = c
            for arr in (dx, dy):
                n = smooth_noise(rng, ny_ + 1, nx_ + 1, max(1.0, feature / step))
                arr += n * amp
    if weight is not None:
        wy = np.clip(yy.astype(int), 0, weight.shape[0] - 1)
        wx = np.clip(xx.astype(int), 0, weight.shape[1] - 1)
        wgt = weight[wy, wx]
        dx, dy = dx * wgt, dy * wgt
    sx, sy = xx + dx, yy + dy
    mesh = []
    for j in range(ny_):
        for i in range(nx_):
            box = (int(gx[i]), int(gy[j]), int(gx[i + 1]), int(gy[j + 1]))
            quad = (
                sx[j, i],
                sy[j, i],
                sx[j + 1, i],
                sy[j + 1, i],
                sx[j + 1, i + 1],
                sy[j + 1, i + 1],
                sx[j, i + 1],
                sy[j, i + 1],
            )
            mesh.append((box, quad))
    return mesh


def shadow_masks(cam: Camera, verts: np.ndarray, light: Light, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Cast shadow (verts projected along the light onto the floor, blurred by the light's size)
    and contact shadow (the footprint, slightly grown and blurred: ambient occlusion)."""
    hg = cam.plane_to_pixel(np.zeros(3), np.array([1.0, 0, 0]), np.array([0, 1.0, 0]))
    ld = light.direction
    lz = max(ld[2], 0.12)
    pts = verts[:, :2] - verts[:, 2:3] / lz * ld[None, :2]
    pts = np.vstack([pts, verts[:4, :2]])
    img_pts = apply_h(hg, pts)
    hull = convex_hull(img_pts)
    sh = Image.new("L", (size, size), 0)
    ImageDraw.Draw(sh).polygon([tuple(img_pts[i]) for i in hull], fill=255)
    cast = np.asarray(sh.filter(ImageFilter.GaussianBlur(max(0.6, light.shadow_blur * size))), F32) * F32(
        1 / 255
    )
    foot = verts[:4, :2]
    c = foot.mean(0)
    grown = c + (foot - c) * 1.06
    fp = apply_h(hg, grown)
    ao = Image.new("L", (size, size), 0)
    ImageDraw.Draw(ao).polygon([tuple(p) for p in fp], fill=255)
    contact = np.asarray(ao.filter(ImageFilter.GaussianBlur(max(1.0, size * 0.012))), F32) * F32(1 / 255)
    return cast, contact


def top_share(cam: Camera, verts: np.ndarray) -> float:
    """Fraction of the box's image area taken by its top face."""
    p = cam.project(verts)
    hull = convex_hull(p)

    def area(q: np.ndarray) -> float:
        return 0.5 * abs(float(np.dot(q[:, 0], np.roll(q[:, 1], 1)) - np.dot(q[:, 1], np.roll(q[:, 0], 1))))

    return area(p[list(FACES["top"])]) / max(area(p[hull]), 1e-6)
