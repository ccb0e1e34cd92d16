"""Synthetic training photos, one package: what the v1 recipe trains on beside real photos.

- `procedural`: procedural phone photos of graded parcels (its docstring explains why), built from
  `geom` (camera, light, box geometry), `background` (floors and walls), `box` (parcels and what
  is printed or stuck on them), `tex` (board textures and drawing helpers), `damage` and `place`
  (graded damage and where the camera sees it);
- `paste`: real intact studio boxes cut out and pasted on rendered floors;
- `render3d`: path-traced parcels from Debian's Blender (`blender_parcel` is the scene script that
  Blender runs, not imported here).

Modules use each other's public names only. Every generator is a pure function of its seed.
`python -m training.synthetic` runs `procedural`'s CLI; `python -m training.synthetic.render3d`
and `python -m training.synthetic.paste` run theirs.
"""

from training.synthetic.procedural import compose_damage, generate, generate_composites, main, render_parcel

__all__ = ["compose_damage", "generate", "generate_composites", "main", "render_parcel"]
