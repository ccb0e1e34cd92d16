"""Train and eval presets: what happens to a decoded photo before `models.preprocessing.to_input`.

The eval preset is exactly serving: the whole frame resized to the input size. The train preset
imitates what differs between our training photos and customers' phone photos: framing and
aspect ratio, perspective, white balance and exposure, focus, and JPEG quality.
"""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image, ImageFilter
from torchvision.transforms import v2

from models.preprocessing import INPUT_SIZE, to_input


class RandomJpeg:
    """Re-encode at a random quality: messaging apps and phone galleries recompress photos."""

    def __init__(self, p: float = 0.3, quality: tuple[int, int] = (35, 95)) -> None:
        self.p, self.quality = p, quality

    def __call__(self, img: Image.Image) -> Image.Image:
        if torch.rand(()) >= self.p:
            return img
        q = int(torch.randint(self.quality[0], self.quality[1] + 1, ()))
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=q)
        buf.seek(0)
        return Image.open(buf).convert("RGB")


class RandomBlur:
    """Phone photos are often slightly out of focus or shaken."""

    def __init__(self, p: float = 0.2, radius: tuple[float, float] = (0.3, 1.6)) -> None:
        self.p, self.radius = p, radius

    def __call__(self, img: Image.Image) -> Image.Image:
        if torch.rand(()) >= self.p:
            return img
        r = float(torch.empty(()).uniform_(*self.radius))
        return img.filter(ImageFilter.GaussianBlur(r))


class TrainPreset:
    def __init__(self, size: int = INPUT_SIZE) -> None:
        self.size = size
        # Mild crops only: a tight crop can cut the damage out of a "damaged" photo.
        self.geometry = v2.Compose(
            [
                v2.RandomPerspective(distortion_scale=0.2, p=0.3, fill=(128, 128, 128)),
                v2.RandomResizedCrop(size, scale=(0.6, 1.0), ratio=(0.7, 1.45), antialias=True),
                v2.RandomHorizontalFlip(),
            ]
        )
        self.photometric = v2.Compose(
            [
                v2.ColorJitter(brightness=0.35, contrast=0.35, saturation=0.3, hue=0.04),
                v2.RandomGrayscale(p=0.03),
            ]
        )
        self.blur = RandomBlur()
        self.jpeg = RandomJpeg()

    def __call__(self, img: Image.Image) -> np.ndarray:
        img = self.geometry(img)
        img = self.photometric(img)
        img = self.jpeg(self.blur(img))
        return to_input(img, self.size)


class EvalPreset:
    """Identical to serving: `to_input` on the decoded photo."""

    def __init__(self, size: int = INPUT_SIZE) -> None:
        self.size = size

    def __call__(self, img: Image.Image) -> np.ndarray:
        return to_input(img, self.size)
