"""Representative images for int8 calibration and for the parity check of fp16/int8 files.

Post-training quantization picks each tensor's range from the activations these images
produce, so they must be what the deployed net saw in training: a user folder of images goes
through the training reader and preprocessing (``hwnas.train.images``: same file types,
resize, crop and ImageNet normalization as ``folder:DIR`` training data); without a folder,
the built-in training data, normalized with the built-in training set's statistics.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from ..errors import HwnasError


def representative_images(resolution: int, n: int = 64, folder: str | Path | None = None, seed: int = 0) -> np.ndarray:
    """``n`` normalized NCHW float32 images: from ``folder`` if given, else the built-in data."""
    if folder is not None:
        return folder_images(folder, resolution, n)
    return builtin_images(resolution, n, seed)


def folder_images(folder: str | Path, resolution: int, n: int = 64, offset: int = 0) -> np.ndarray | None:
    """Up to ``n`` images of a folder (searched recursively, sorted), preprocessed as in training,
    starting at the ``offset``-th; None when the folder has no images from there on."""
    import torch  # noqa: PLC0415

    from ..train.images import IMAGENET_MEAN, IMAGENET_STD, list_images, load_image, normalize, statistics  # noqa: PLC0415

    d = Path(folder)
    if not d.is_dir():
        raise HwnasError(f"calibration folder {str(d)!r} does not exist; give a folder of images (.jpg/.png)")
    files = list_images(d)
    if not files:
        raise HwnasError(f"calibration folder {str(d)!r} has no images (.jpg/.png/...); add some or leave out --calibration-data to use the built-in data")
    if offset >= len(files):
        return None
    from PIL import UnidentifiedImageError  # noqa: PLC0415

    out = []
    for p in files[offset:offset + n]:
        try:
            out.append(load_image(p, resolution))
        except (UnidentifiedImageError, OSError) as e:
            raise HwnasError(f"calibration image {str(p)!r} cannot be read ({e}); remove or replace it") from None
    mean, std = statistics(IMAGENET_MEAN, IMAGENET_STD)
    return normalize(torch.stack(out), mean, std).numpy().astype(np.float32)


def builtin_images(resolution: int, n: int = 64, seed: int = 0) -> np.ndarray:
    """The training code's built-in 10-class set (32x32, resized for larger inputs), normalized
    with the statistics ``hwnas train`` normalizes it with (see ``builtin_statistics``)."""
    from ..train.data import make_builtin  # noqa: PLC0415
    from ..train.images import resize_center_crop  # noqa: PLC0415

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
