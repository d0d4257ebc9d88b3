"""Representative images for int8 calibration and for the parity check of fp16/int8 files.

Post-training quantization picks each tensor's range from the activations these images
produce, so they should look like what the deployed net will see: a user folder of images
when given, otherwise the built-in data.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from ..errors import HwnasError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".ppm", ".gif")
# ImageNet statistics: what the mobile nets of the spaces are trained with.
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def representative_images(resolution: int, n: int = 64, folder: str | Path | None = None, seed: int = 0) -> np.ndarray:
    """``n`` normalized NCHW float32 images: from ``folder`` if given, else the built-in data."""
    if folder is not None:
        return folder_images(folder, resolution, n)
    return builtin_images(resolution, n, seed)


def folder_images(folder: str | Path, resolution: int, n: int = 64, offset: int = 0) -> np.ndarray | None:
    """Up to ``n`` images of a folder (searched recursively, sorted), resized and centre-cropped,
    starting at the ``offset``-th; None when the folder has no images from there on."""
    d = Path(folder)
    if not d.is_dir():
        raise HwnasError(f"calibration folder {str(d)!r} does not exist; give a folder of images (.jpg/.png)")
    files = sorted(p for p in d.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise HwnasError(f"calibration folder {str(d)!r} has no images (.jpg/.png/...); add some or leave out --calibration-data to use the built-in data")
    if offset >= len(files):
        return None
    from PIL import Image, UnidentifiedImageError  # noqa: PLC0415

    out = []
    for p in files[offset:offset + n]:
        try:
            with Image.open(p) as im:
                out.append(_prepare(im.convert("RGB"), resolution))
        except (UnidentifiedImageError, OSError) as e:
            raise HwnasError(f"calibration image {str(p)!r} cannot be read ({e}); remove or replace it") from None
    return np.stack(out)


def _prepare(im, resolution: int) -> np.ndarray:
    """Resize the short side to ``resolution`` and centre-crop a square; normalize; HWC -> CHW."""
    from PIL import Image  # noqa: PLC0415

    w, h = im.size
    s = resolution / min(w, h)
    im = im.resize((max(resolution, round(w * s)), max(resolution, round(h * s))), Image.BILINEAR)
    w, h = im.size
    left, top = (w - resolution) // 2, (h - resolution) // 2
    a = np.asarray(im.crop((left, top, left + resolution, top + resolution)), dtype=np.float32) / 255.0
    return ((a - MEAN) / STD).transpose(2, 0, 1)


def builtin_images(resolution: int, n: int = 64, seed: int = 0) -> np.ndarray:
    """The built-in data: the training set's images when ``hwnas.train.data`` provides them,
    else seeded synthetic natural-looking images (smooth colour fields with edges and texture)."""
    imgs = _train_builtin(resolution, n, seed)
    if imgs is not None:
        return imgs
    return synthetic_images(resolution, n, seed)


def _train_builtin(resolution: int, n: int, seed: int) -> np.ndarray | None:
    """The training code's built-in 10-class set (32x32), resized for larger inputs, normalized
    with the statistics ``hwnas train`` normalizes it with (see ``builtin_statistics``)."""
    try:
        from ..train.data import make_builtin, resize_center_crop  # noqa: PLC0415
    except ImportError:
        return None
    images = make_builtin(n, seed, name="builtin-calibration")
    images.mean, images.std = builtin_statistics()
    x = images.batch(list(range(n)))[0]
    if resolution != x.shape[-1]:
        x = resize_center_crop(x, resolution)
    return x.numpy().astype(np.float32)


@functools.lru_cache(maxsize=1)
def builtin_statistics():
    """Per-channel (mean, std) tensors of the built-in training set, with which ``hwnas train``
    normalizes every built-in image (train and val alike).

    Calibration and parity images must be normalized exactly as the net's inputs were in
    training: a small set normalized with its own statistics is shifted by a few hundredths of
    a standard deviation, which moves every activation range the int8 file is calibrated on.
    """
    from ..train.data import build_datasets  # noqa: PLC0415

    train = build_datasets("builtin", n_val=1, n_path_eval=1).train
    return train.mean.clone(), train.std.clone()


def synthetic_images(resolution: int, n: int = 64, seed: int = 0) -> np.ndarray:
    """Seeded images with the low-frequency structure of photos: coarse colour noise upsampled,
    a few hard-edged discs and fine texture, in [0, 1] and then normalized like real images."""
    import torch  # noqa: PLC0415
    import torch.nn.functional as F  # noqa: PLC0415

    rng = np.random.default_rng(seed)
    coarse = torch.from_numpy(rng.random((n, 3, 4, 4), dtype=np.float32))
    x = F.interpolate(coarse, size=(resolution, resolution), mode="bicubic", align_corners=False).numpy()
    yy, xx = np.mgrid[0:resolution, 0:resolution].astype(np.float32) / resolution
    for i in range(n):
        for _ in range(rng.integers(1, 4)):
            cy, cx, r = rng.random(3) * np.array([1, 1, 0.4]) + np.array([0, 0, 0.1])
            mask = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
            x[i][:, mask] = rng.random((3, 1), dtype=np.float32)
    x += rng.normal(0, 0.04, x.shape).astype(np.float32)
    x = np.clip(x, 0, 1)
    return ((x - MEAN[:, None, None]) / STD[:, None, None]).astype(np.float32)
