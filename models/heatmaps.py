"""Where the model saw damage: a heatmap layer for the adjusters' console.

The exported model has an output `damage_map` (N, h, w): the damage score's class activation map.
The head is linear on globally averaged features, so the score is exactly the mean over locations
of w . F(x, y) plus a bias; each location's share is w . F(x, y). That is what Grad-CAM computes
for such a head (its gradient weights are w / (h*w)), but it needs no gradients, so ONNX Runtime
serves it and torch stays out of serving.

`render_heatmap` turns one map into a transparent RGBA PNG, stretched over the whole photo (the
model sees the whole frame resized), meant to be laid over the photo: warm and opaque where the
evidence for damage is strongest, clear where there is none.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

# Colour ramp from yellow (weak) to red (strong) evidence.
_LOW = np.array([255, 220, 0], dtype=np.float32)
_HIGH = np.array([230, 0, 0], dtype=np.float32)
MAX_ALPHA = 170


def heatmap_layer(damage_map: np.ndarray, size: tuple[int, int]) -> Image.Image:
    """An RGBA layer of `size` (width, height). Only positive evidence is shown (Grad-CAM's ReLU),
    scaled to the map's own maximum; a map with no positive evidence is fully transparent."""
    evidence = np.maximum(np.asarray(damage_map, dtype=np.float32), 0.0)
    top = float(evidence.max()) if evidence.size else 0.0
    strength = evidence / top if top > 1e-6 else np.zeros_like(evidence)
    small = Image.fromarray((strength * 255).astype(np.uint8), mode="L")
    s = np.asarray(small.resize(size, Image.Resampling.BICUBIC), dtype=np.float32) / 255.0
    rgb = _LOW + (_HIGH - _LOW) * s[..., None]
    alpha = (MAX_ALPHA * np.clip(s, 0, 1) ** 1.5)[..., None]
    return Image.fromarray(np.concatenate([rgb, alpha], axis=-1).astype(np.uint8), mode="RGBA")


def render_heatmap(damage_map: np.ndarray, size: tuple[int, int], max_side: int = 512) -> bytes:
    """PNG bytes of the layer, at most `max_side` pixels a side (the console scales it to the photo)."""
    width, height = size
    scale = min(1.0, max_side / max(width, height))
    layer = heatmap_layer(damage_map, (max(1, round(width * scale)), max(1, round(height * scale))))
    buf = io.BytesIO()
    layer.save(buf, format="PNG", optimize=True)
    return buf.getvalue()
