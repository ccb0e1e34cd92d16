"""Boxes for synthetic parcel photos: what a parcel looks like (board, tape, labels, print) and
rendering it, faces warped by their homographies and lit by the scene's light.

Intact and damaged parcels are drawn by the same code with the same style distribution; only the
damage plan differs, so nothing but damage separates the grades.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from training.synthetic import damage as dmg
from training.synthetic.geom import (
    FACES,
    SEAM_END_FACES,
    Box,
    Camera,
    Face,
    Light,
    Z,
    apply_h,
    convex_hull,
    displacement_mesh,
    homography,
    top_share,
    unit_vector,
    warp_to,
)
from training.synthetic.place import Shot, apply_plan
from training.synthetic.tex import (
    F32,
    Mask,
    TapeSpec,
    board_albedo,
    contents_patch,
    draw_brand,
    draw_pictogram,
    draw_scribble,
    hsv,
    ink,
    kraft_colour,
    normal_wear,
    paint,
    pick_ink,
    place_label,
    retail_colour,
    smooth_noise,
    tape_strip,
    text_blocks,
    to_u8,
    white_board_colour,
)

# Texels per projected pixel on the least foreshortened face: about one, so textures are neither
# wasted work nor visibly blurry before the photo's own blur.
PPM_OVERSAMPLE = 1.0


@dataclass
class BoxStyle:
    material: str
    base: np.ndarray
    tape: str
    tape_w: float
    seam_along_x: bool
    h_tape: bool
    label_faces: tuple[str, ...]
    logo: bool
    logo_ink: np.ndarray
    pictograms: bool
    scribble: bool
    wear: float


def sample_style(rng: np.random.Generator, box: Box) -> BoxStyle:
    """What an intact parcel looks like: mostly brown kraft, taped along the flap seam, one or two
    courier labels, often a printed logo or handling marks, a marker scribble, normal grime."""
    if box.kind == "mailer":
        material = "mailer"
        base = (
            kraft_colour(rng) * F32(rng.uniform(1.0, 1.12))
            if rng.random() < 0.6
            else white_board_colour(rng) * F32(rng.uniform(0.85, 1.0))
        )
        if rng.random() < 0.12:
            base = np.array([0.25, 0.26, 0.28], F32) * F32(rng.uniform(0.8, 1.4))
    else:
        material = str(rng.choice(["kraft", "white", "printed"], p=[0.82, 0.09, 0.09]))
        base = {"kraft": kraft_colour, "white": white_board_colour, "printed": retail_colour}[material](rng)
    tape = str(rng.choice(["clear", "brown", "printed", "white", "none"], p=[0.5, 0.28, 0.1, 0.04, 0.08]))
    labels: tuple[str, ...] = ()
    r = rng.random()
    if r < 0.82:
        labels = (str(rng.choice(["top", "top", "front", "right", "back", "left"])),)
        if rng.random() < 0.2:
            labels += (str(rng.choice(["top", "front", "right", "back", "left"])),)
    return BoxStyle(
        material=material,
        base=np.clip(base, 0, 1).astype(F32),
        tape=tape if box.kind == "box" else ("none" if rng.random() < 0.7 else tape),
        tape_w=float(rng.choice([0.048, 0.05, 0.072]) * rng.uniform(0.9, 1.1)),
        seam_along_x=bool((box.w >= box.d) ^ (rng.random() < 0.15)),
        h_tape=bool(rng.random() < 0.22),
        label_faces=labels,
        logo=bool(rng.random() < (0.45 if material == "kraft" else 0.8)),
        logo_ink=pick_ink(rng) if material != "printed" else np.array([0.95, 0.95, 0.95], F32),
        pictograms=bool(rng.random() < 0.3),
        scribble=bool(rng.random() < 0.25),
        wear=float(rng.uniform(0.2, 1.0)),
    )


def _outer_texture(rng: np.random.Generator, f: Face, style: BoxStyle, box: Box, ppm: float) -> dmg.Surface:
    """Bare board + everything a normal, undamaged parcel carries on this face."""
    tw, th = f.tex_w, f.tex_h
    top = f.name == "top"
    flutes_x = not top if box.kind == "box" else False
    rgb = board_albedo(rng, th, tw, style.base, ppm, style.material, flutes_x)
    height = np.zeros((th, tw), F32)
    # Real faces are never perfectly flat: slight bowing from the contents or from humidity.
    height += smooth_noise(rng, th, tw, max(tw, th) * 0.6) * F32(min(tw, th) * 0.01)
    surf = dmg.Surface(rgb, height, ppm, dmg.fibre_colour(style.base))
    if style.material == "printed":
        _retail_print(rng, surf)
    if rng.random() < 0.7:
        # Box edges are slightly rounded and catch the light: a faint bright rim.
        rim = np.zeros((th, tw), F32)
        k = F32(rng.uniform(0.04, 0.14))
        rim[0, :] = rim[-1, :] = k
        rim[:, 0] = rim[:, -1] = k
        rim[1, 1:-1] = np.maximum(rim[1, 1:-1], k * F32(0.5))
        surf.rgb += rim[..., None] * (1 - surf.rgb)
    seam_x = style.seam_along_x
    if top and box.kind == "box":
        # Flap seam: the dark gap where the two outer flaps meet; flaps bulge or sag a little.
        c = th / 2 if seam_x else tw / 2
        m = Mask(tw, th)
        gap = max(1, int(rng.uniform(0.001, 0.006) * ppm))
        off = rng.normal(0, 0.003) * ppm
        if seam_x:
            m.draw.line([(0, c + off), (tw, c + off + rng.normal(0, 0.004) * ppm)], fill=255, width=gap)
        else:
            m.draw.line([(c + off, 0), (c + off + rng.normal(0, 0.004) * ppm, th)], fill=255, width=gap)
        surf.rgb *= (1 - m.array(0.4) * F32(0.55))[..., None]
        coord = np.arange(th if seam_x else tw, dtype=F32) - F32(c)
        prof = np.exp(-((coord / (0.25 * (th if seam_x else tw))) ** 2)) * F32(
            rng.uniform(-1, 1) * min(tw, th) * 0.02
        )
        surf.height += prof[:, None] if seam_x else prof[None, :]
    if not top and box.kind == "box" and rng.random() < 0.3:
        # Manufacturer's glued joint near one vertical edge.
        x = rng.choice([0.03, 0.97]) * tw
        m = Mask(tw, th)
        m.draw.line([(x, 0), (x, th)], fill=255, width=1)
        surf.rgb *= (1 - m.array(0.5) * F32(0.25))[..., None]
    # Printing: logo, handling pictograms, box maker's text, marker scribbles.
    pm = Mask(tw, th)
    if style.logo and rng.random() < 0.65:
        sz = rng.uniform(0.012, 0.035) * ppm
        draw_brand(rng, pm.draw, rng.uniform(0.1, 0.6) * tw, rng.uniform(0.15, 0.75) * th, sz)
    if style.pictograms and not top and rng.random() < 0.7:
        sz = rng.uniform(0.04, 0.08) * ppm
        draw_pictogram(rng, pm.draw, rng.uniform(0.2, 0.8) * tw, rng.uniform(0.1, 0.6) * th, sz)
    if box.kind == "box" and not top and rng.random() < 0.25:
        for k in range(int(rng.integers(1, 4))):  # type: ignore[assignment]  # numpy scalar vs float reuse
            text_blocks(
                rng,
                pm.draw,
                0.08 * tw,
                th * (0.78 + 0.05 * k),  # type: ignore[arg-type]  # numpy scalar vs float reuse
                tw * rng.uniform(0.2, 0.5),
                max(1, 0.008 * ppm),
            )
    ink(surf.rgb, pm.array(0.4), style.logo_ink, rng.uniform(0.75, 0.95))
    if style.scribble and rng.random() < 0.5:
        sm = Mask(tw, th)
        draw_scribble(
            rng,
            sm.draw,
            rng.uniform(0.1, 0.6) * tw,
            rng.uniform(0.15, 0.8) * th,
            rng.uniform(0.012, 0.03) * ppm,
        )
        ink(surf.rgb, sm.array(0.3), pick_ink(rng), 0.9)
    if rng.random() < 0.12 and box.kind == "box":
        # A red/orange FRAGILE sticker.
        sw, sh = rng.uniform(0.08, 0.15) * ppm, rng.uniform(0.04, 0.07) * ppm
        x, y = rng.uniform(0.1, 0.9) * tw, rng.uniform(0.1, 0.9) * th
        m = Mask(tw, th)
        m.draw.rectangle([x - sw / 2, y - sh / 2, x + sw / 2, y + sh / 2], fill=255)
        paint(surf.rgb, m.array(0.4), hsv(rng.uniform(0.0, 0.07), 0.85, 0.85))
        tm = Mask(tw, th)
        text_blocks(rng, tm.draw, x - sw * 0.4, y - sh * 0.2, sw * 0.8, sh * 0.35)
        paint(surf.rgb, tm.array(0.3), np.array([0.95, 0.95, 0.92], F32))
    tape_first = rng.random() < 0.5
    if not tape_first:
        _labels(rng, surf, f, style, ppm)
    _tape(rng, surf, f, style, box, ppm)
    if tape_first:
        _labels(rng, surf, f, style, ppm)
    normal_wear(rng, surf.rgb, ppm, style.wear)
    return surf


def _labels(rng: np.random.Generator, surf: dmg.Surface, f: Face, style: BoxStyle, ppm: float) -> None:
    """Courier labels on the faces the style chose (mostly the top)."""
    for name in style.label_faces:
        if name == f.name or (f.name == "top" and name == "top"):
            place_label(
                rng, surf.rgb, ppm, rng.uniform(0.25, 0.75) * f.tex_w, rng.uniform(0.25, 0.75) * f.tex_h
            )


def _tape(
    rng: np.random.Generator, surf: dmg.Surface, f: Face, style: BoxStyle, box: Box, ppm: float
) -> None:
    """Tape as packers apply it: along the flap seam and a few cm down the two end panels
    (continuous across faces), sometimes H-taped along the end edges, sometimes re-taped."""
    if style.tape == "none":
        return
    tw, th = f.tex_w, f.tex_h
    width = style.tape_w * ppm
    tape = TapeSpec(width, style.tape)
    seam_x = style.seam_along_x
    tape_rng = np.random.default_rng(int(rng.integers(1 << 30)))
    if box.kind == "mailer":
        if f.name == "top":
            y = rng.uniform(0.05, 0.15) * th
            tape_strip(
                tape_rng, surf.rgb, (-5, y), (tw + 5, y), TapeSpec(width * 0.6, style.tape), ragged_end=False
            )
        return
    if f.name == "top":
        if seam_x:
            tape_strip(tape_rng, surf.rgb, (-5, th / 2), (tw + 5, th / 2), tape, ragged_end=False)
        else:
            tape_strip(tape_rng, surf.rgb, (tw / 2, -5), (tw / 2, th + 5), tape, ragged_end=False)
        if style.h_tape:
            for e in (0.0, 1.0):
                if seam_x:
                    x = e * tw
                    tape_strip(tape_rng, surf.rgb, (x, -5), (x, th + 5), tape, ragged_end=False)
                else:
                    y = e * th
                    tape_strip(tape_rng, surf.rgb, (-5, y), (tw + 5, y), tape, ragged_end=False)
    elif f.name in SEAM_END_FACES[seam_x]:
        tab = rng.uniform(0.04, 0.12) * ppm
        tape_strip(tape_rng, surf.rgb, (tw / 2, -5), (tw / 2, min(th * 0.9, tab)), tape)
        if style.h_tape:
            tape_strip(tape_rng, surf.rgb, (-5, 0), (tw + 5, 0), tape, ragged_end=False)
    elif style.h_tape:
        pass
    if rng.random() < 0.08:
        # Re-taped parcel: an extra strip at an angle.
        y0, y1 = rng.uniform(0, th, 2)
        tape_strip(tape_rng, surf.rgb, (-5, y0), (tw + 5, y1), tape)


def _retail_print(rng: np.random.Generator, surf: dmg.Surface) -> None:
    """Retail packaging: bold colour blocks, a product photo area, white text."""
    h, w = surf.h, surf.w
    for _ in range(int(rng.integers(1, 4))):
        m = Mask(w, h)
        if rng.random() < 0.5:
            y = rng.uniform(0, h)
            m.draw.rectangle([0, y, w, y + rng.uniform(0.1, 0.4) * h], fill=255)
        else:
            cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0.15, 0.4) * min(w, h)
            m.draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
        paint(surf.rgb, m.array(0.5), retail_colour(rng))
    tm = Mask(w, h)
    for k in range(int(rng.integers(2, 6))):
        text_blocks(
            rng,
            tm.draw,
            rng.uniform(0.05, 0.3) * w,
            rng.uniform(0.05, 0.9) * h,
            w * 0.5,
            max(1, h * 0.03 * (1 + k % 2)),
        )
    paint(
        surf.rgb,
        tm.array(0.4),
        np.array([0.96, 0.96, 0.95], F32) if rng.random() < 0.6 else np.array([0.1, 0.1, 0.1], F32),
        0.9,
    )


def _plain_texture(
    rng: np.random.Generator, tw: int, th: int, base: np.ndarray, ppm: float, material: str
) -> dmg.Surface:
    """Bare board (inner walls and flaps of an opened box)."""
    rgb = board_albedo(rng, th, tw, base, ppm, material if material != "printed" else "kraft", True)
    return dmg.Surface(rgb, np.zeros((th, tw), F32), ppm, dmg.fibre_colour(base))


@dataclass
class BoxRender:
    rgb: np.ndarray  # (h, w, 3) colour of the box's bounding-box layer
    alpha: np.ndarray  # (h, w) coverage
    verts: np.ndarray  # world vertices used for the shadow
    offset: tuple[int, int]  # (x, y) of the layer's top-left pixel in the frame


def render_box(
    rng: np.random.Generator,
    cam: Camera,
    box: Box,
    light: Light,
    size: int,
    plan: list[tuple[str, int]],
) -> BoxRender:
    """Render one box (with its damage plan) into an RGBA layer of the full frame."""
    style = sample_style(rng, box)
    kinds = {k for k, _ in plan}
    verts = box.rest_verts()
    comps: list[tuple] = []
    # Bursting shows through the top: only open it where the camera sees enough of the top.
    top_frac = top_share(cam, verts)
    open_flaps = "burst_open" in kinds and box.kind == "box" and top_frac > 0.25 and rng.random() < 0.6
    crushed_flat = "crushed_flat" in kinds
    if crushed_flat:
        top = verts[4:].copy()
        squash = rng.uniform(0.35, 0.7)
        top[:, 2] *= squash * rng.uniform(0.75, 1.2, 4)
        if box.kind == "box":
            top[:, :2] += rng.normal(0, 0.03, (4, 2)) * max(box.w, box.d)
        verts = np.vstack([verts[:4], top])
    # Faces: visibility, ppm.
    faces: list[Face] = []
    dims = {
        "top": (box.w, box.d),
        "front": (box.w, box.h),
        "back": (box.w, box.h),
        "right": (box.d, box.h),
        "left": (box.d, box.h),
    }
    centre = verts.mean(0)
    for name, vids in FACES.items():
        c = verts[list(vids)]
        f = Face(name, c, vids, 1, 1, "outer")
        _, _, n = f.axes
        if (cam.pos - c.mean(0)) @ n > 0:
            faces.append(f)
    proj = cam.project(verts)
    areas = []
    for f in faces:
        p = cam.project(f.corners)
        a = 0.5 * abs(np.dot(p[:, 0], np.roll(p[:, 1], 1)) - np.dot(p[:, 1], np.roll(p[:, 0], 1)))
        wm, hm = dims[f.name]
        areas.append(math.sqrt(a / (wm * hm + 1e-9)))
    ppm = PPM_OVERSAMPLE * max(areas) if areas else 100.0
    ppm = float(np.clip(ppm, 40.0, 1.5 * size / max(box.w, box.d, box.h)))
    for f in faces:
        wm, hm = dims[f.name]
        f.tex_w, f.tex_h = max(4, int(round(wm * ppm))), max(4, int(round(hm * ppm)))
        f.h_tex = homography(f.tex_corners(), cam.project(f.corners))
        f.surf = _outer_texture(rng, f, style, box, ppm)
    if open_flaps:
        faces = [f for f in faces if f.name != "top"]
    extra = _open_box_faces(rng, cam, box, verts, style, ppm) if open_flaps else []
    hull = convex_hull(proj)
    shot = Shot(
        faces=faces,
        cam=cam,
        box=box,
        verts=verts,
        proj=proj,
        hull=hull,
        ppm=ppm,
        size=size,
        seam_along_x=style.seam_along_x,
        open_flaps=open_flaps,
    )
    apply_plan(rng, plan, shot, comps)
    # Shade and composite far-to-near.
    allf = extra + faces
    allf.sort(
        key=lambda f: -float(cam.depth(f.corners.mean(0)[None])[0]) + (1e3 if f.role == "flap_front" else 0)
    )
    ld = light.direction
    fill = unit_vector(cam.pos - centre + np.array([0, 0, 0.3 * np.linalg.norm(cam.pos - centre)])) * (
        0.22 * light.ambient
    )
    # Work in the box's own bounding box (plus room for crushed outlines), not the whole frame.
    polys = [
        apply_h(f.homography, np.array(f.shape, float) if f.shape is not None else f.tex_corners())
        for f in allf
    ]
    pts = np.vstack(polys + [proj])
    margin = 3 + (size // 6 if comps else 0)
    bx0, by0 = (max(0, int(v)) for v in np.floor(pts.min(0)) - margin)
    bx1, by1 = (min(size, int(v)) for v in np.ceil(pts.max(0)) + margin)
    if bx0 >= bx1 or by0 >= by1:
        return BoxRender(np.zeros((1, 1, 3), F32), np.zeros((1, 1), F32), verts, (0, 0))
    bw, bh = bx1 - bx0, by1 - by0
    layer = np.zeros((bh, bw, 3), F32)
    cov = np.zeros((bh, bw), F32)
    sil = Image.new("L", (bw * 2, bh * 2), 0)
    sd = ImageDraw.Draw(sil)
    for f, poly in zip(allf, polys, strict=True):
        u, v, n = f.axes
        if f.role in ("inner", "contents"):
            amb, dif = light.ambient * 0.55, light.diffuse * 0.35
        else:
            amb, dif = light.ambient, light.diffuse
        if f.role in ("flap", "flap_front") and (cam.pos - f.corners.mean(0)) @ n < 0:
            n = -n
        x0, y0 = np.floor(poly.min(0)).astype(int) - 2
        x1, y1 = np.ceil(poly.max(0)).astype(int) + 2
        x0, y0, x1, y1 = max(bx0, x0), max(by0, y0), min(bx1, x1), min(by1, y1)
        if x0 >= x1 or y0 >= y1:
            continue
        lit = dmg.FaceLight(
            ld,
            amb,
            dif,
            light.amb_col,
            light.sun_col,
            ground_ao=0.18 if f.role == "outer" else 0.0,
            fill=fill,
        )
        shaded = dmg.shade(f.surface, n, u, v, lit)
        pad = 8
        tex = Image.fromarray(to_u8(np.pad(shaded, ((pad, pad), (pad, pad), (0, 0)), mode="edge")), "RGB")
        warped = np.asarray(warp_to(tex, f.homography, (x0, y0, x1, y1), pad), F32) * F32(1 / 255)
        # Anti-aliased coverage (drawn at 2x), grown by ~1 px so that a nearer face drawn later
        # covers the seam and no background shows through between adjacent faces.
        mk = Image.new("L", (2 * (x1 - x0), 2 * (y1 - y0)), 0)
        md = ImageDraw.Draw(mk)
        pl = [(2 * (px - x0) - 0.5, 2 * (py - y0) - 0.5) for px, py in poly]
        md.polygon(pl, fill=255, outline=255, width=2)
        m = np.asarray(mk.reduce(2), F32)[..., None] * F32(1 / 255)
        ly0, ly1, lx0, lx1 = y0 - by0, y1 - by0, x0 - bx0, x1 - bx0
        region = layer[ly0:ly1, lx0:lx1]
        region *= 1 - m
        region += warped * m
        cov[ly0:ly1, lx0:lx1] = cov[ly0:ly1, lx0:lx1] * (1 - m[..., 0]) + m[..., 0]
        sd.polygon([((px - bx0) * 2 - 0.5, (py - by0) * 2 - 0.5) for px, py in poly], fill=255)
    alpha_img = sil.reduce(2)
    # Colour where faces only partly covered a pixel is un-premultiplied; the silhouette alpha
    # alone decides how much background shows, so edges are not darkened twice.
    layer = layer / np.maximum(cov, 1e-3)[..., None]  # type: ignore[assignment]  # numpy scalar vs float reuse
    if comps:
        local = [_shift_comp(c, bx0, by0) for c in comps]
        rgba = Image.fromarray(np.dstack([to_u8(layer), np.asarray(alpha_img)]), "RGBA")
        mesh = displacement_mesh(max(bw, bh), (0, 0, bw, bh), local, rng)
        arr = np.asarray(
            rgba.transform((bw, bh), Image.Transform.MESH, mesh, Image.Resampling.BILINEAR), F32
        ) * F32(1 / 255)
        return BoxRender(arr[..., :3], arr[..., 3], verts, (bx0, by0))
    return BoxRender(layer, np.asarray(alpha_img, F32) * F32(1 / 255), verts, (bx0, by0))


def _shift_comp(c: tuple, dx: int, dy: int) -> tuple:
    """Move a displacement component's centre into a layer's local coordinates."""
    if c[0] in ("bump", "jitter"):
        return (c[0], c[1] - dx, c[2] - dy, *c[3:])
    return c


def _open_box_faces(
    rng: np.random.Generator, cam: Camera, box: Box, verts: np.ndarray, style: BoxStyle, ppm: float
) -> list[Face]:
    """Burst-open box: inner walls seen through the open top, the contents, and flaps standing up
    or hanging out at random angles (some torn)."""
    out: list[Face] = []
    inner_base = (
        np.clip(style.base * F32(1.08) + F32(0.04), 0, 1)
        if style.material != "kraft"
        else style.base * F32(1.04)
    )
    dims = {"front": (box.w, box.h), "back": (box.w, box.h), "right": (box.d, box.h), "left": (box.d, box.h)}
    for name in ("front", "right", "back", "left"):
        vids = FACES[name]
        c = verts[list(vids)]
        f = Face(name, c, None, 1, 1, "inner")
        _, _, n = f.axes
        if (cam.pos - c.mean(0)) @ n <= 0:
            # Seen from inside: mirror the texture so it is not back-to-front.
            c2 = c[[1, 0, 3, 2]]
            wm, hm = dims[name]
            g = Face(name + "_in", c2, None, max(4, int(wm * ppm)), max(4, int(hm * ppm)), "inner")
            g.surf = _plain_texture(rng, g.tex_w, g.tex_h, inner_base, ppm, "kraft")
            g.h_tex = homography(g.tex_corners(), cam.project(c2))
            out.append(g)
    fill = rng.uniform(0.55, 0.95)
    base = verts[:4].copy()
    base[:, 2] = box.h * fill
    inset = (base - base.mean(0)) * 0.97 + base.mean(0)
    cw, ch = max(4, int(box.w * ppm)), max(4, int(box.d * ppm))
    cf = Face("contents", inset[[3, 2, 1, 0]], None, cw, ch, "contents")
    rgb = contents_patch(rng, ch, cw, ppm)
    cf.surf = dmg.Surface(
        rgb,
        smooth_noise(rng, ch, cw, min(cw, ch) * 0.3) * F32(min(cw, ch) * 0.05),
        ppm,
        dmg.fibre_colour(style.base),
    )
    cf.h_tex = homography(cf.tex_corners(), cam.project(cf.corners))
    out.append(cf)
    for name in ("front", "right", "back", "left"):
        if rng.random() < 0.2:
            continue  # flap torn off
        vids = FACES[name]
        a, b = verts[vids[0]], verts[vids[1]]
        side = Face(name, verts[list(vids)], None, 1, 1, "outer")
        _, _, n = side.axes
        n = unit_vector(np.array([n[0], n[1], 0.0]))
        length = (box.d if name in ("front", "back") else box.w) / 2 * rng.uniform(0.85, 1.0)
        theta = math.radians(rng.uniform(5, 125))
        dirv = math.cos(theta) * Z + math.sin(theta) * n
        tip_a, tip_b = a + dirv * length, b + dirv * length
        corners = np.array([tip_a, tip_b, b, a])
        wm = float(np.linalg.norm(b - a))
        f = Face(name + "_flap", corners, None, max(4, int(wm * ppm)), max(4, int(length * ppm)), "flap")
        front_facing = (cam.pos - corners.mean(0)) @ n > 0
        f.role = "flap_front" if front_facing and theta > math.radians(60) else "flap"
        surf = _plain_texture(rng, f.tex_w, f.tex_h, style.base, ppm, style.material)
        if style.tape != "none" and rng.random() < 0.6:
            x = rng.uniform(0.3, 0.7) * f.tex_w
            tape_strip(
                rng,
                surf.rgb,
                (x, -3),
                (x, rng.uniform(0.1, 0.3) * f.tex_h),
                TapeSpec(style.tape_w * ppm, style.tape),
            )
        dmg.crumple(surf, rng, rng.uniform(0.2, 0.8), rng.uniform(0.3, 0.8))
        f.surf = surf
        if rng.random() < 0.4:
            # Torn flap: ragged outline.
            pts = [(0.0, 0.0)]
            for i in range(1, 8):
                pts.append((f.tex_w * i / 8, rng.uniform(0, 0.5) * f.tex_h))
            pts += [(float(f.tex_w), 0.0), (float(f.tex_w), float(f.tex_h)), (0.0, float(f.tex_h))]
            f.shape = pts
        f.h_tex = homography(f.tex_corners(), cam.project(corners))
        out.append(f)
    return out
