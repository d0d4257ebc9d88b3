"""The one image-file reader and preprocessing, shared by training and int8 calibration.

A network must see the same numbers at calibration time as in training, so both go through
``load_image`` (decode with PIL, RGB, short side resized to the resolution with antialiased
bilinear interpolation, centre crop) and ``normalize`` with the statistics the net was trained
with; ``IMAGENET_MEAN``/``IMAGENET_STD`` are those of image folders (and of the exported
files' sidecars).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np
import torch
import torch.nn.functional as F

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".ppm", ".tif", ".tiff")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def is_image_file(p: Path) -> bool:
    return p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES


def list_images(folder: str | Path) -> list[Path]:
    """Every image file under ``folder`` (recursively), sorted."""
    return sorted(p for p in Path(folder).rglob("*") if is_image_file(p))


def resize_center_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    """Resize the short side to ``size`` (bilinear, antialiased) and center-crop a square."""
    h, w = x.shape[-2:]
    if (h, w) != (size, size):
        s = size / min(h, w)
        nh, nw = max(size, round(h * s)), max(size, round(w * s))
        x = F.interpolate(x, size=(nh, nw), mode="bilinear", align_corners=False, antialias=True)
        top, left = (nh - size) // 2, (nw - size) // 2
        x = x[..., top:top + size, left:left + size]
    return x


def load_image(path: str | Path, resolution: int) -> torch.Tensor:
    """One image file as CHW float in [0, 1] at ``resolution`` (raises PIL's/OS errors if unreadable)."""
    from PIL import Image

    with Image.open(path) as im:
        arr = np.asarray(im.convert("RGB"), dtype=np.uint8)
    x = torch.from_numpy(arr.copy()).permute(2, 0, 1).float().unsqueeze(0) / 255
    return resize_center_crop(x, resolution)[0]


def statistics(mean: Iterable[float], std: Iterable[float]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel (mean, std) shaped to broadcast over NCHW batches."""
    return torch.tensor(list(mean)).view(1, 3, 1, 1), torch.tensor(list(std)).view(1, 3, 1, 1)


def normalize(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """NCHW images in [0, 1] -> what the net is fed."""
    return (x - mean) / std
