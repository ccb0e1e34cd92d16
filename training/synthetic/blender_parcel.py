"""Blender scene for 3D parcel renders; runs inside Blender, not in the project's Python.

Why 3D: the procedural generator (`training/synthetic/procedural.py`) paints damage in 2.5D, and the real
photos tie "brown board in a phone scene" to "damaged". A path-traced box with true geometry, a
dent or a crushed corner that catches the light and throws its own shadow, tape and a label that
follow the board, on a floor under one sun, lamp or flash, is a second, independent look at the
same thing: intact and damaged kraft parcels that differ only in their damage.

Invoked by `training/synthetic/render3d.py` as
`blender -b --factory-startup -noaudio -P training/synthetic/blender_parcel.py -- JOBS.json`; each job is
`{"seed", "grade", "png", "size", "samples", "label"}` (label: a PNG drawn by the driver). Only
`bpy`, `bmesh`, `mathutils` and the standard library: Blender's Python has no numpy here.
Every random choice comes from `random.Random(seed)`, so a job always renders the same scene.
"""

from __future__ import annotations

import json
import math
import random
import sys
from dataclasses import dataclass

import bmesh
import bpy
from mathutils import Euler, Vector, noise

CUTS = 36  # grid resolution of every box face: dents and stains need vertices to live on


# --------------------------------------------------------------------------------------------
# Materials
# --------------------------------------------------------------------------------------------


def _node(nt, kind: str, **inputs):
    n = nt.nodes.new(kind)
    for k, v in inputs.items():
        n.inputs[k].default_value = v
    return n


def board_material(rng: random.Random, name: str = "board"):
    """Kraft (or sometimes white) corrugated board: mottled colour, fibre bump, faint flutes, and
    the damage attribute `dmg` painted per vertex (R stain/soak, G torn or scuffed fibre, B hole)."""
    mat = bpy.data.materials.new(name)
    mat.use_nodes = True
    nt = mat.node_tree
    bsdf = nt.nodes["Principled BSDF"]
    kind = rng.random()
    if kind < 0.78:
        h = rng.uniform(0.06, 0.09)
        base = _hsv(h, rng.uniform(0.45, 0.65), rng.uniform(0.45, 0.7))
    elif kind < 0.92:
        base = _hsv(rng.uniform(0.08, 0.12), rng.uniform(0.05, 0.15), rng.uniform(0.8, 0.92))
    else:
        base = _hsv(rng.random(), rng.uniform(0.2, 0.6), rng.uniform(0.35, 0.8))
    tex = nt.nodes.new("ShaderNodeTexNoise")
    tex.inputs["Scale"].default_value = rng.uniform(20, 60)
    tex.inputs["Detail"].default_value = 8
    ramp = nt.nodes.new("ShaderNodeValToRGB")
    ramp.color_ramp.elements[0].color = _scale(base, 0.88)
    ramp.color_ramp.elements[1].color = _scale(base, 1.08)
    nt.links.new(tex.outputs["Fac"], ramp.inputs["Fac"])

    attr = nt.nodes.new("ShaderNodeAttribute")
    attr.attribute_name = "dmg"
    sep = nt.nodes.new("ShaderNodeSeparateColor")
    nt.links.new(attr.outputs["Color"], sep.inputs["Color"])
    # Stain: darker, more saturated board.
    stain = _node(nt, "ShaderNodeMix", Factor=0.0)
    stain.data_type = "RGBA"
    stain.blend_type = "MULTIPLY"
    stain.inputs[7].default_value = _hsv(0.07, 0.7, rng.uniform(0.35, 0.55))
    nt.links.new(sep.outputs["Red"], stain.inputs["Factor"])
    nt.links.new(ramp.outputs["Color"], stain.inputs[6])
    # Torn or scuffed fibre: the pale inner paper and flute.
    fibre = nt.nodes.new("ShaderNodeMix")
    fibre.data_type = "RGBA"
    fibre.inputs[7].default_value = _hsv(0.09, rng.uniform(0.25, 0.4), rng.uniform(0.75, 0.9))
    nt.links.new(sep.outputs["Green"], fibre.inputs["Factor"])
    nt.links.new(stain.outputs[2], fibre.inputs[6])
    # Hole: the dark inside of the box (or its contents) through the wall.
    hole = nt.nodes.new("ShaderNodeMix")
    hole.data_type = "RGBA"
    hole.inputs[7].default_value = _hsv(rng.uniform(0.05, 0.1), 0.5, rng.uniform(0.03, 0.1))
    nt.links.new(sep.outputs["Blue"], hole.inputs["Factor"])
    nt.links.new(fibre.outputs[2], hole.inputs[6])
    nt.links.new(hole.outputs[2], bsdf.inputs["Base Color"])
    bsdf.inputs["Roughness"].default_value = rng.uniform(0.7, 0.9)
    bsdf.inputs["Specular"].default_value = 0.3

    bump_tex = nt.nodes.new("ShaderNodeTexNoise")
    bump_tex.inputs["Scale"].default_value = rng.uniform(150, 400)
    flutes = nt.nodes.new("ShaderNodeTexWave")
    flutes.inputs["Scale"].default_value = rng.uniform(60, 120)
    add = nt.nodes.new("ShaderNodeMath")
    add.operation = "ADD"
    nt.links.new(bump_tex.outputs["Fac"], add.inputs[0])
    nt.links.new(flutes.outputs["Fac"], add.inputs[1])
    bump = _node(nt, "ShaderNodeBump", Strength=rng.uniform(0.05, 0.15), Distance=0.002)
    nt.links.new(add.outputs[0], bump.inputs["Height"])
    nt.links.new(bump.outputs["Normal"], bsdf.inputs["Normal"])
    return mat


def plain_material(name: str, color, roughness: float, specular: float = 0.5, transmission: float = 0.0):
    mat = bpy.data.materials.new(name)
    mat.use_nodes = True
    bsdf = mat.node_tree.nodes["Principled BSDF"]
    bsdf.inputs["Base Color"].default_value = color
    bsdf.inputs["Roughness"].default_value = roughness
    bsdf.inputs["Specular"].default_value = specular
    bsdf.inputs["Transmission"].default_value = transmission
    return mat


def image_material(name: str, path: str, roughness: float):
    mat = bpy.data.materials.new(name)
    mat.use_nodes = True
    nt = mat.node_tree
    img = nt.nodes.new("ShaderNodeTexImage")
    img.image = bpy.data.images.load(path)
    bsdf = nt.nodes["Principled BSDF"]
    nt.links.new(img.outputs["Color"], bsdf.inputs["Base Color"])
    bsdf.inputs["Roughness"].default_value = roughness
    return mat


def floor_material(rng: random.Random):
    """Doorstep and hallway floors: planks, tiles, pavers, concrete, carpet."""
    mat = bpy.data.materials.new("floor")
    mat.use_nodes = True
    nt = mat.node_tree
    bsdf = nt.nodes["Principled BSDF"]
    kind = rng.choice(["planks", "tiles", "pavers", "concrete", "carpet"])
    coord = nt.nodes.new("ShaderNodeTexCoord")
    mapping = nt.nodes.new("ShaderNodeMapping")
    mapping.inputs["Rotation"].default_value[2] = rng.uniform(0, math.pi)
    nt.links.new(coord.outputs["Object"], mapping.inputs["Vector"])
    if kind in ("planks", "tiles", "pavers"):
        tex = nt.nodes.new("ShaderNodeTexBrick")
        if kind == "planks":
            h = rng.uniform(0.06, 0.11)
            c1 = _hsv(h, rng.uniform(0.35, 0.7), rng.uniform(0.25, 0.7))
            tex.inputs["Brick Width"].default_value = rng.uniform(0.8, 1.6)
            tex.inputs["Row Height"].default_value = rng.uniform(0.1, 0.2)
            tex.inputs["Mortar Size"].default_value = 0.003
            mortar = _scale(c1, 0.5)
        elif kind == "tiles":
            c1 = _hsv(rng.random(), rng.uniform(0, 0.25), rng.uniform(0.4, 0.9))
            side = rng.uniform(0.2, 0.6)
            tex.inputs["Brick Width"].default_value = side
            tex.inputs["Row Height"].default_value = side
            tex.offset = 0.0
            tex.inputs["Mortar Size"].default_value = 0.004
            mortar = _hsv(0.1, 0.05, rng.uniform(0.3, 0.8))
        else:
            c1 = _hsv(rng.uniform(0.02, 0.12), rng.uniform(0.05, 0.35), rng.uniform(0.3, 0.6))
            tex.inputs["Brick Width"].default_value = rng.uniform(0.15, 0.3)
            tex.inputs["Row Height"].default_value = rng.uniform(0.08, 0.15)
            tex.inputs["Mortar Size"].default_value = 0.008
            mortar = _scale(c1, 0.6)
        tex.inputs["Color1"].default_value = c1
        tex.inputs["Color2"].default_value = _scale(c1, rng.uniform(0.8, 0.95))
        tex.inputs["Mortar"].default_value = mortar
        tex.inputs["Scale"].default_value = 1.0
        nt.links.new(mapping.outputs["Vector"], tex.inputs["Vector"])
        grain = _node(nt, "ShaderNodeTexNoise", Scale=rng.uniform(5, 40), Detail=6)
        mix = nt.nodes.new("ShaderNodeMix")
        mix.data_type = "RGBA"
        mix.blend_type = "OVERLAY"
        mix.inputs["Factor"].default_value = rng.uniform(0.15, 0.4)
        nt.links.new(tex.outputs["Color"], mix.inputs[6])
        nt.links.new(grain.outputs["Color"], mix.inputs[7])
        nt.links.new(mix.outputs[2], bsdf.inputs["Base Color"])
        bsdf.inputs["Roughness"].default_value = rng.uniform(0.25, 0.7) if kind != "pavers" else 0.9
    else:
        c1 = (
            _hsv(0.1, rng.uniform(0, 0.08), rng.uniform(0.35, 0.7))
            if kind == "concrete"
            else _hsv(rng.random(), rng.uniform(0.1, 0.5), rng.uniform(0.2, 0.6))
        )
        tex = _node(
            nt, "ShaderNodeTexNoise", Scale=rng.uniform(3, 12) if kind == "concrete" else 400, Detail=10
        )
        nt.links.new(mapping.outputs["Vector"], tex.inputs["Vector"])
        ramp = nt.nodes.new("ShaderNodeValToRGB")
        ramp.color_ramp.elements[0].color = _scale(c1, 0.75)
        ramp.color_ramp.elements[1].color = _scale(c1, 1.2)
        nt.links.new(tex.outputs["Fac"], ramp.inputs["Fac"])
        nt.links.new(ramp.outputs["Color"], bsdf.inputs["Base Color"])
        bsdf.inputs["Roughness"].default_value = rng.uniform(0.7, 1.0)
    return mat


def _hsv(h: float, s: float, v: float):
    import colorsys

    r, g, b = colorsys.hsv_to_rgb(h % 1.0, min(max(s, 0), 1), min(max(v, 0), 1))
    # Blender colours are linear; the choices above are in display (sRGB) terms.
    return (_lin(r), _lin(g), _lin(b), 1.0)


def _lin(c: float) -> float:
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4


def _scale(c, k: float):
    return (min(c[0] * k, 1.0), min(c[1] * k, 1.0), min(c[2] * k, 1.0), 1.0)


# --------------------------------------------------------------------------------------------
# The box and its damage
# --------------------------------------------------------------------------------------------


class Parcel:
    """A closed box as one subdivided mesh, centred on the origin before it is set on the floor."""

    def __init__(self, rng: random.Random, a: float, b: float, c: float) -> None:
        self.rng, self.a, self.b, self.c = rng, a, b, c
        self.bm = bmesh.new()
        bmesh.ops.create_cube(self.bm, size=1.0)
        bmesh.ops.scale(self.bm, vec=Vector((2 * a, 2 * b, 2 * c)), verts=self.bm.verts)
        bmesh.ops.subdivide_edges(self.bm, edges=self.bm.edges[:], cuts=CUTS, use_grid_fill=True)
        self.bm.verts.ensure_lookup_table()
        self.dmg = self.bm.verts.layers.float_color.new("dmg")
        for v in self.bm.verts:
            v[self.dmg] = (0.0, 0.0, 0.0, 1.0)
        # The outward face direction of each vertex (edges and corners: the sum), fixed before
        # any deformation so dents push along the board, not along an already-bent normal.
        self.normals = [self._box_normal(v.co) for v in self.bm.verts]
        self.rest = [v.co.copy() for v in self.bm.verts]

    def _box_normal(self, p: Vector) -> Vector:
        n = Vector((0, 0, 0))
        for i, h in enumerate((self.a, self.b, self.c)):
            if abs(abs(p[i]) - h) < 1e-5:
                n[i] = 1.0 if p[i] > 0 else -1.0
        return n.normalized()

    def paint(self, i: int, channel: int, value: float) -> None:
        col = list(self.bm.verts[i][self.dmg])
        col[channel] = max(col[channel], min(value, 1.0))
        self.bm.verts[i][self.dmg] = col

    def surface_point(self, face_normal: Vector, margin: float = 0.15) -> Vector:
        """A random point on the face with outward normal `face_normal`, away from its edges."""
        r = self.rng
        half = (self.a, self.b, self.c)
        p = Vector((0, 0, 0))
        for i in range(3):
            if face_normal[i] != 0:
                p[i] = half[i] * face_normal[i]
            else:
                p[i] = r.uniform(-1 + margin, 1 - margin) * half[i]
        return p

    # Each damage is a deformation and/or paint, weighted by distance on the rest shape.

    def dent(self, centre: Vector, normal: Vector, radius: float, depth: float, crumple: float) -> None:
        seed = Vector((self.rng.uniform(-99, 99), self.rng.uniform(-99, 99), self.rng.uniform(-99, 99)))
        for i, v in enumerate(self.bm.verts):
            d = (self.rest[i] - centre).length
            if d > 2.2 * radius:
                continue
            w = math.exp(-((d / radius) ** 2))
            n = self.normals[i]
            wobble = 1 + crumple * noise.noise(self.rest[i] * (8 / radius) + seed)
            v.co -= n * depth * w * wobble
            if crumple > 0.3 and w > 0.2:
                self.paint(i, 1, 0.25 * w * max(noise.noise(self.rest[i] * (14 / radius) + seed), 0))

    def crush_corner(self, corner: Vector, radius: float, depth: float) -> None:
        seed = Vector((self.rng.uniform(-99, 99), self.rng.uniform(-99, 99), 7.0))
        centre = Vector((0, 0, 0))
        for i, v in enumerate(self.bm.verts):
            d = (self.rest[i] - corner).length
            if d > radius:
                continue
            w = (1 - d / radius) ** 2
            inward = (centre - self.rest[i]).normalized()
            buckle = noise.noise(self.rest[i] * (10 / radius) + seed)
            v.co += inward * depth * w * (1 + 0.6 * buckle) + self.normals[i] * depth * 0.25 * w * buckle
            if w > 0.15:
                self.paint(i, 1, 0.5 * w * (0.5 + 0.5 * buckle))
                self.paint(i, 0, 0.2 * w)

    def stain(self, centre: Vector, radius: float, strength: float, below: float | None = None) -> None:
        """A water stain with a darker tide line; `below`: soak everything under this height."""
        seed = Vector((self.rng.uniform(-99, 99), 3.0, self.rng.uniform(-99, 99)))
        for i, _v in enumerate(self.bm.verts):
            p = self.rest[i]
            wob = noise.noise(p * (3 / max(radius, 0.05)) + seed) * 0.35
            if below is not None:
                edge = (below + wob * self.c * 0.4) - p.z
                scale = self.c * 0.1
            else:
                edge = radius * (1 + wob) - (p - centre).length
                scale = radius * 0.12
            if edge <= 0:
                continue
            inside = min(edge / scale, 1.0)
            tide = math.exp(-((edge / scale - 0.6) ** 2) * 3)
            self.paint(i, 0, strength * (0.65 * inside + 0.45 * tide))

    def tear(self, centre: Vector, radius: float) -> None:
        """A tear or hole: the dark inside through the wall, a pale ragged fibre rim, the flap
        edges pushed in."""
        seed = Vector((self.rng.uniform(-99, 99), self.rng.uniform(-99, 99), 1.0))
        stretch = Vector((self.rng.uniform(0.5, 1.6), self.rng.uniform(0.5, 1.6), self.rng.uniform(0.5, 1.6)))
        for i, v in enumerate(self.bm.verts):
            q = self.rest[i] - centre
            q = Vector((q.x * stretch.x, q.y * stretch.y, q.z * stretch.z))
            d = q.length
            rr = radius * (1 + 0.45 * noise.noise(self.rest[i] * (5 / radius) + seed))
            if d > rr * 1.5:
                continue
            if d < rr:
                self.paint(i, 2, 1.0)
                v.co -= self.normals[i] * radius * 0.3 * (1 - d / rr)
            else:
                self.paint(i, 1, 0.9 * (1.5 - d / rr) * 2)

    def scuff(self, centre: Vector, normal: Vector, length: float, strength: float) -> None:
        """A scrape: a streak of roughed-up, paler board along one direction of the face."""
        seed = Vector((self.rng.uniform(-99, 99), 5.0, 2.0))
        axes = [Vector(a) for a in ((1, 0, 0), (0, 1, 0), (0, 0, 1)) if abs(Vector(a).dot(normal)) < 0.5]
        ang = self.rng.uniform(0, math.pi)
        along = axes[0] * math.cos(ang) + axes[1] * math.sin(ang)
        width = length * self.rng.uniform(0.12, 0.3)
        for i, _v in enumerate(self.bm.verts):
            q = self.rest[i] - centre
            t = q.dot(along)
            across = (q - along * t - normal * q.dot(normal)).length
            if abs(t) > length or across > width:
                continue
            n = noise.noise(self.rest[i] * (6 / width) + seed)
            if n > -0.3:
                fade = (1 - abs(t) / length) ** 0.5 * (1 - across / width)
                self.paint(i, 1, strength * fade * min(1.0, 0.6 + n))

    def squash(self, factor: float, bulge: float) -> None:
        """Crushed flat: the height drops and the walls bulge and fold."""
        seed = Vector((self.rng.uniform(-99, 99), 9.0, 4.0))
        for i, v in enumerate(self.bm.verts):
            p = self.rest[i]
            t = 1 - abs(p.z) / self.c  # 1 at mid-height
            side = Vector((p.x, p.y, 0))
            nz = noise.noise(p * (1.5 / max(self.a, self.b)) + seed)
            v.co.z = p.z * factor
            if side.length > 1e-6:
                v.co += side.normalized() * bulge * t * (1 + 0.5 * nz)
            v.co += self.normals[i] * bulge * 0.25 * nz * t
            if t > 0.6 and nz > 0.35:
                self.paint(i, 1, 0.3 * nz)

    def to_object(self, mat, name: str = "parcel"):
        mesh = bpy.data.meshes.new(name)
        self.bm.to_mesh(mesh)
        self.bm.free()
        for p in mesh.polygons:
            p.use_smooth = True
        mesh.materials.append(mat)
        obj = bpy.data.objects.new(name, mesh)
        bpy.context.scene.collection.objects.link(obj)
        obj.modifiers.new("solid", "SOLIDIFY").thickness = 0.004
        return obj


def _add_box(name: str, size: Vector, loc: Vector, mat, rot_z: float = 0.0):
    bm = bmesh.new()
    bmesh.ops.create_cube(bm, size=1.0)
    bmesh.ops.scale(bm, vec=size, verts=bm.verts)
    mesh = bpy.data.meshes.new(name)
    bm.to_mesh(mesh)
    bm.free()
    mesh.materials.append(mat)
    obj = bpy.data.objects.new(name, mesh)
    obj.location = loc
    obj.rotation_euler[2] = rot_z
    bpy.context.scene.collection.objects.link(obj)
    return obj


def _plane(name: str, w: float, h: float, mat):
    bm = bmesh.new()
    bm.loops.layers.uv.new("UVMap")
    bmesh.ops.create_grid(bm, x_segments=1, y_segments=1, size=0.5, calc_uvs=True)
    bmesh.ops.scale(bm, vec=Vector((w, h, 1)), verts=bm.verts)
    mesh = bpy.data.meshes.new(name)
    bm.to_mesh(mesh)
    bm.free()
    mesh.materials.append(mat)
    obj = bpy.data.objects.new(name, mesh)
    bpy.context.scene.collection.objects.link(obj)
    return obj


def damage(p: Parcel, grade: int, visible: list[tuple[Vector, float]], eye: Vector) -> None:
    """Grade-true damage where the camera sees it (grade definitions: `models/grades.py`):
    `visible` holds the faces' outward normals with how face-on each is, `eye` the camera in
    the parcel's frame."""
    r = p.rng
    size = min(p.a, p.b, p.c)
    normals = [n for n, _ in visible]
    weights = [w for _, w in visible]

    def somewhere() -> tuple[Vector, Vector]:
        n = r.choices(normals, weights)[0]
        return p.surface_point(n), n

    def corner() -> Vector:
        corners = [
            Vector((sx * p.a, sy * p.b, sz * p.c)) for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)
        ]
        corners.sort(key=lambda c: (c - eye).length)
        return r.choice(corners[:3])

    if grade == 0:
        for _ in range(r.randint(0, 2)):  # normal wear: faint handling marks only
            c, n = somewhere()
            p.scuff(c, n, size * r.uniform(0.1, 0.25), r.uniform(0.1, 0.2))
        return
    if grade == 1:
        # Cosmetic, but visible in the photo (a grade is what a person can see): deep enough
        # dents, clear scrapes, a bumped corner; the box keeps its shape.
        for _ in range(r.randint(1, 3)):
            kind = r.random()
            c, n = somewhere()
            if kind < 0.45:
                p.dent(c, n, size * r.uniform(0.2, 0.4), size * r.uniform(0.06, 0.12), 0.45)
            elif kind < 0.8:
                p.scuff(c, n, size * r.uniform(0.3, 0.7), r.uniform(0.6, 0.9))
            else:
                p.crush_corner(corner(), size * r.uniform(0.2, 0.35), size * r.uniform(0.06, 0.12))
        return
    if grade == 2:
        kinds = r.sample(["corner", "cave", "tear", "stain"], r.choice([1, 1, 2]))
        for kind in kinds:
            c, n = somewhere()
            if kind == "corner":
                p.crush_corner(corner(), size * r.uniform(0.6, 1.1), size * r.uniform(0.3, 0.55))
            elif kind == "cave":
                p.dent(c, n, size * r.uniform(0.5, 0.9), size * r.uniform(0.25, 0.5), 0.6)
            elif kind == "tear":
                p.tear(c, size * r.uniform(0.1, 0.22))
            else:
                p.stain(c, size * r.uniform(0.3, 0.7), r.uniform(0.6, 0.9))
        return
    kinds = r.sample(["flat", "bigtear", "soaked", "burst"], r.choice([1, 2]))
    for kind in kinds:
        c, n = somewhere()
        if kind == "flat":
            p.squash(r.uniform(0.35, 0.6), size * r.uniform(0.08, 0.2))
            p.crush_corner(corner(), size * r.uniform(0.4, 0.8), size * r.uniform(0.2, 0.4))
        elif kind == "bigtear":
            p.tear(c, size * r.uniform(0.25, 0.45))
        elif kind == "soaked":
            p.stain(c, 0, r.uniform(0.8, 1.0), below=r.uniform(0.0, 0.6) * p.c)
            p.dent(c, n, size * 0.6, size * 0.12, 0.8)
        else:
            p.tear(Vector((0, 0, p.c)), min(p.a, p.b) * r.uniform(0.5, 0.8))
            p.crush_corner(corner(), size * r.uniform(0.3, 0.6), size * r.uniform(0.15, 0.3))


# --------------------------------------------------------------------------------------------
# Scene
# --------------------------------------------------------------------------------------------


def build(job: dict) -> None:
    """The whole scene of one job, from its seed alone (the order of the random draws is the
    scene's identity: reordering them changes every image)."""
    rng = random.Random(job["seed"])
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    a = rng.uniform(0.09, 0.3)
    b = a * rng.uniform(0.45, 1.0)
    c = a * rng.uniform(0.3, 1.0)
    if rng.random() < 0.5:
        a, b = b, a
    rot = rng.uniform(0, math.pi)
    cam_pos, az, dist = _phone_camera(rng, scene, a, b, c)
    visible, local_cam = _visible_faces(cam_pos, rot, a, b, c)

    parcel = Parcel(rng, a, b, c)
    grade = int(job["grade"])
    damage(parcel, grade, visible, local_cam)
    zmin = min(v.co.z for v in parcel.bm.verts)
    zmax = max(v.co.z for v in parcel.bm.verts)
    obj = parcel.to_object(board_material(rng))
    obj.location = (0, 0, -zmin)
    obj.rotation_euler[2] = rot
    size = Extent(a, b, c, zmax)
    _tape(rng, obj, size, grade)
    if job.get("label") and rng.random() < 0.85:
        _label(rng, obj, job["label"], visible, size)
    _floor_and_wall(rng, az, a, b)
    _light(rng, scene, cam_pos, dist)
    _render_settings(rng, scene, job)


def _phone_camera(rng: random.Random, scene, a: float, b: float, c: float) -> tuple[Vector, float, float]:
    """A phone held above the parcel, 2-3 faces visible, roughly centred; returns its position,
    azimuth and distance."""
    az = rng.uniform(0, 2 * math.pi)
    el = math.radians(rng.uniform(20, 75))
    diag = math.sqrt(a * a + b * b + c * c) * 2
    lens = rng.uniform(24, 30)
    fill = rng.uniform(0.45, 0.9)
    fov = 2 * math.atan(18 / lens)
    dist = diag / (2 * math.tan(fov / 2) * fill) * 1.1
    target = Vector((rng.gauss(0, 0.1) * a, rng.gauss(0, 0.1) * b, c * rng.uniform(0.5, 1.0)))
    cam_pos = target + dist * Vector((math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)))
    cam_data = bpy.data.cameras.new("phone")
    cam_data.lens = lens
    cam_data.sensor_width = 36
    cam = bpy.data.objects.new("phone", cam_data)
    scene.collection.objects.link(cam)
    cam.location = cam_pos
    cam.rotation_euler = (target - cam_pos).to_track_quat("-Z", "Y").to_euler()
    cam.rotation_euler.rotate_axis("Z", math.radians(rng.gauss(0, 4)))
    scene.camera = cam
    return cam_pos, az, dist


def _visible_faces(
    cam_pos: Vector, rot: float, a: float, b: float, c: float
) -> tuple[list[tuple[Vector, float]], Vector]:
    """The faces the camera sees (outward normal, how face-on) and the camera, in the parcel's
    own frame (centred, unrotated)."""
    local_cam = Vector(cam_pos)
    local_cam.rotate(Euler((0, 0, -rot)))
    local_cam.z -= c
    visible: list[tuple[Vector, float]] = []
    for n, h in (
        (Vector((1, 0, 0)), a),
        (Vector((-1, 0, 0)), a),
        (Vector((0, 1, 0)), b),
        (Vector((0, -1, 0)), b),
        (Vector((0, 0, 1)), c),
    ):
        facing = (local_cam - n * h).normalized().dot(n)
        if facing > 0.05:
            visible.append((n, facing))
    return visible, local_cam


@dataclass(frozen=True)
class Extent:
    """Where the parcel's panels are, in its own frame: the box's half-extents `a` (x), `b` (y) and
    `c` (z), and `zmax`, the top of the mesh once damaged. Tape and label are placed from these
    four together, so they travel as one value rather than four loose floats."""

    a: float
    b: float
    c: float
    zmax: float


def _tape(rng: random.Random, obj, size: Extent, grade: int) -> None:
    """Tape along the top seam and down the two ends (in the parcel's frame, parented to it);
    a crushed or burst box has lost it half the time."""
    a, b, c, zmax = size.a, size.b, size.c, size.zmax
    tape_col = (
        _hsv(0.08, rng.uniform(0.5, 0.7), rng.uniform(0.55, 0.75))
        if rng.random() < 0.75
        else _hsv(rng.random(), rng.uniform(0, 0.3), rng.uniform(0.6, 0.85))
    )
    tape = plain_material("tape", tape_col, rng.uniform(0.15, 0.35), 0.7)
    tw = rng.uniform(0.04, 0.06)
    t = 0.0015
    if grade == 3 and rng.random() >= 0.5:
        return
    along_x = rng.random() < 0.5
    length = (a if along_x else b) * 2
    down = rng.uniform(0.2, 0.6) * 2 * c
    parts = [(Vector((length, tw, t)) if along_x else Vector((tw, length, t)), Vector((0, 0, zmax + t / 2)))]
    for sgn in (-1, 1):
        if along_x:
            parts.append((Vector((t, tw, down)), Vector((sgn * (a + t / 2), 0, c - down / 2))))
        else:
            parts.append((Vector((tw, t, down)), Vector((0, sgn * (b + t / 2), c - down / 2))))
    for k, (sz, loc) in enumerate(parts):
        _add_box(f"tape{k}", sz, loc, tape).parent = obj


def _label(rng: random.Random, obj, image: str, visible: list[tuple[Vector, float]], size: Extent) -> None:
    """A courier label on the top or a side face the camera sees, parented to the parcel."""
    a, b, c, zmax = size.a, size.b, size.c, size.zmax
    n = rng.choices([v for v, _ in visible], [w for _, w in visible])[0]
    off = 0.003
    if n.z > 0:
        lw = min(a, b) * rng.uniform(0.6, 1.1)
        lh = lw * rng.uniform(0.6, 0.8)
        plane = _plane("label", lw, lh, image_material("label", image, 0.45))
        px = rng.uniform(-0.4, 0.4) * max(a - lw / 2, 0)
        py = max(b - lh / 2, 0) * rng.choice([-0.6, 0.6])
        plane.location = Vector((px, py, zmax + off))
        plane.rotation_euler = (0, 0, rng.gauss(0, 0.08))
    else:
        half = b if n.x != 0 else a  # half-width of that side panel
        lw = min(2 * half * rng.uniform(0.4, 0.8), 0.2)
        lh = min(lw * rng.uniform(0.6, 0.8), 1.6 * c)
        # The plane's x axis ends up vertical on a side panel.
        plane = _plane("label", lh, lw, image_material("label", image, 0.45))
        pos = n * ((a if n.x != 0 else b) + off)
        pos.z = c * rng.uniform(-0.3, 0.3)
        plane.location = pos
        plane.rotation_euler = (rng.gauss(0, 0.05), math.pi / 2, math.atan2(n.y, n.x))
    plane.parent = obj


def _floor_and_wall(rng: random.Random, az: float, a: float, b: float) -> None:
    """The floor, and sometimes a wall behind the parcel (seen from the camera's azimuth)."""
    _plane("floor", 12, 12, floor_material(rng))
    if rng.random() < 0.45:
        wall_col = _hsv(rng.uniform(0.05, 0.15), rng.uniform(0, 0.2), rng.uniform(0.5, 0.9))
        wall = _plane("wall", 12, 4, plain_material("wall", wall_col, 0.8))
        back = -Vector((math.cos(az), math.sin(az), 0)) * (max(a, b) + rng.uniform(0.2, 1.2))
        wall.location = back + Vector((0, 0, 2))
        wall.rotation_euler = (math.pi / 2, 0, az + math.pi / 2)


def _light(rng: random.Random, scene, cam_pos: Vector, dist: float) -> None:
    """Sun, indoor ceiling lamp, overcast sky or the phone's flash, with a sky to match."""
    world = bpy.data.worlds.new("sky")
    world.use_nodes = True
    bg = world.node_tree.nodes["Background"]
    mode = rng.choice(["sun", "indoor", "indoor", "overcast", "flash"])
    if mode == "sun":
        bg.inputs["Color"].default_value = _hsv(0.58, rng.uniform(0.2, 0.5), 0.9)
        bg.inputs["Strength"].default_value = rng.uniform(0.4, 1.0)
        sun = bpy.data.lights.new("sun", "SUN")
        sun.energy = rng.uniform(2.5, 5.0)
        sun.angle = math.radians(rng.uniform(0.5, 8))
        so = bpy.data.objects.new("sun", sun)
        so.rotation_euler = (math.radians(rng.uniform(15, 60)), 0, rng.uniform(0, 2 * math.pi))
        scene.collection.objects.link(so)
    elif mode == "overcast":
        bg.inputs["Color"].default_value = _hsv(0.6, 0.05, 0.95)
        bg.inputs["Strength"].default_value = rng.uniform(1.0, 2.0)
    else:
        bg.inputs["Color"].default_value = _hsv(0.08, rng.uniform(0.1, 0.3), 0.8)
        bg.inputs["Strength"].default_value = rng.uniform(0.1, 0.4) if mode == "indoor" else 0.05
        lamp = bpy.data.lights.new("lamp", "AREA" if mode == "indoor" else "POINT")
        lo = bpy.data.objects.new("lamp", lamp)
        if mode == "indoor":
            lamp.size = rng.uniform(0.3, 1.5)
            lamp.energy = rng.uniform(150, 500)
            lamp.color = _hsv(0.09, rng.uniform(0.05, 0.35), 1.0)[:3]
            lo.location = (rng.uniform(-1.5, 1.5), rng.uniform(-1.5, 1.5), rng.uniform(2.2, 2.8))
        else:
            lamp.energy = rng.uniform(8, 30) * dist * dist
            lamp.shadow_soft_size = 0.01
            lo.location = cam_pos + Vector((0, 0, 0.02))
        scene.collection.objects.link(lo)
    scene.world = world


def _render_settings(rng: random.Random, scene, job: dict) -> None:
    """Cycles on the CPU, few bounces (a parcel on a floor needs no more), the phone's tone curve."""
    s = int(job["size"])
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = int(job["samples"])
    scene.cycles.use_denoising = False
    scene.cycles.sample_clamp_indirect = 1.0  # no fireflies: bright specks a phone never shows
    scene.cycles.max_bounces = 4
    scene.cycles.diffuse_bounces = 2
    scene.cycles.glossy_bounces = 1
    scene.cycles.transmission_bounces = 1
    scene.cycles.transparent_max_bounces = 2
    scene.cycles.seed = rng.randint(0, 2**16)
    scene.render.threads_mode = "FIXED"
    scene.render.threads = int(job.get("threads", 1))
    scene.render.resolution_x = s
    scene.render.resolution_y = s
    scene.render.resolution_percentage = 100
    scene.render.film_transparent = False
    scene.view_settings.view_transform = "Filmic"
    scene.view_settings.look = rng.choice(["Medium High Contrast", "High Contrast", "Medium Contrast"])
    scene.view_settings.exposure = rng.uniform(-0.3, 0.5)
    scene.render.image_settings.file_format = "PNG"
    scene.render.filepath = job["png"]


def main() -> None:
    argv = sys.argv[sys.argv.index("--") + 1 :]
    with open(argv[0]) as f:
        jobs = json.load(f)
    for job in jobs:
        build(job)
        bpy.ops.render.render(write_still=True)
        print(f"CLAIMLANE_RENDERED {job['png']}", flush=True)  # render3d.RENDERED


if __name__ == "__main__":
    main()
