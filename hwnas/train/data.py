"""Image data for supernet training: the built-in synthetic set, CIFAR pickles, image folders.

Contract (used by ``hwnas train`` and ``hwnas search``)::

    ds = build_datasets("builtin")            # or "cifar10:DIR", "cifar100:DIR", "folder:DIR"
    ds.train      # ImageSet: what the supernet is optimized on
    ds.val        # ImageSet: the validation split (never trained on), ranks archs after training
    ds.path_eval  # ImageSet: a fixed subset of ``val`` (1,000 images in the paper) on which the
                  #           GreedyNAS sampler ranks candidate paths; never in ``train``
    ds.test       # ImageSet or None: the official test split when the source has one

An ``ImageSet`` is a ``torch.utils.data.Dataset``: ``len``, ``set[i] -> (image, label)`` and
``set.batch(indices) -> (images NCHW float, labels)`` (also its ``__getitems__``, so a
``DataLoader`` with a batch sampler loads each batch in one call; see ``loader.py``). Images come out normalized (per-channel
mean/std of the source) at the space's resolution; augmentation is *not* done here but on
whole batches by ``augment_batch`` with an explicit generator, so a run's randomness is a
function of (seed, iteration) and resumes bit-for-bit.
"""

from __future__ import annotations

import hashlib
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from ..errors import HwnasError
from .images import IMAGENET_MEAN, IMAGENET_STD, is_image_file, load_image, normalize, statistics

BUILTIN_SIZE = 32  # the built-in images are 32x32, like CIFAR
# Seed salts: each names one random stream, so changing one stream leaves the others as they were.
BUILTIN_STREAM = 7919  # make_builtin's generator is SeedSequence([seed, n, BUILTIN_STREAM])
BUILTIN_VAL_SEED_OFFSET = 1_000_003  # the built-in val images: make_builtin(seed + offset), disjoint from train
TRAIN_SUBSET_SEED_OFFSET = 17  # the seeded subset that --n-train keeps


# ---- image sets ---------------------------------------------------------------------------
class ImageSet(Dataset):
    """``len``, item access and batch access; subclasses supply ``_load(indices)``."""

    name: str = "images"
    num_classes: int = 10
    labels: torch.Tensor  # int64 [N]

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        x, y = self.batch([i])
        return x[0], int(y[0])

    def batch(self, indices: Sequence[int] | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.as_tensor(indices, dtype=torch.long)
        return self._load(idx), self.labels[idx]

    def __getitems__(self, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """A whole batch at once (what ``DataLoader`` calls when the data set has it)."""
        return self.batch(indices)

    def _load(self, idx: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def subset(self, indices: Sequence[int] | torch.Tensor, name: str | None = None) -> "ImageSet":
        return Subset(self, torch.as_tensor(indices, dtype=torch.long), name or self.name)

    def iter_batches(self, batch_size: int):
        for s in range(0, len(self), batch_size):
            yield self.batch(torch.arange(s, min(s + batch_size, len(self))))

    def normalization(self) -> dict[str, list[float]]:
        """The per-channel mean/std this set subtracts and divides by (RGB scaled to [0, 1]).

        Recorded in checkpoints so that an exported net is fed what it was trained on.
        """
        mean, std = getattr(self, "mean"), getattr(self, "std")
        return {"mean": [round(float(v), 6) for v in mean.flatten()], "std": [round(float(v), 6) for v in std.flatten()]}


class TensorImageSet(ImageSet):
    """Images held in memory as uint8 NCHW (built-in, CIFAR), normalized on access."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, num_classes: int, name: str,
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None) -> None:
        self.images = images.contiguous()
        self.labels = labels.long()
        self.num_classes = num_classes
        self.name = name
        x = self.images[:4096].float() / 255
        self.mean = torch.tensor(mean if mean is not None else x.mean((0, 2, 3)).tolist()).view(1, 3, 1, 1)
        self.std = torch.tensor(std if std is not None else x.std((0, 2, 3)).clamp_min(1e-3).tolist()).view(1, 3, 1, 1)

    def _load(self, idx: torch.Tensor) -> torch.Tensor:
        return normalize(self.images[idx].float() / 255, self.mean, self.std)


class Subset(ImageSet):
    def __init__(self, base: ImageSet, indices: torch.Tensor, name: str) -> None:
        self.base, self.indices, self.name = base, indices, name
        self.num_classes = base.num_classes
        self.labels = base.labels[indices]

    def _load(self, idx: torch.Tensor) -> torch.Tensor:
        return self.base._load(self.indices[idx])

    def normalization(self) -> dict[str, list[float]]:
        return self.base.normalization()


class FolderImageSet(ImageSet):
    """A class-per-subfolder image tree decoded on access by ``images.load_image`` (the
preprocessing int8 calibration uses too) and normalized with the ImageNet statistics.

    Files that PIL cannot open are skipped when the folder is scanned and counted in
    ``skipped`` (a bad file is a warning, not a crash).
    """

    def __init__(self, root: str | Path, resolution: int, name: str | None = None, verify: bool = True) -> None:
        from PIL import Image

        root = Path(root)
        if not root.is_dir():
            raise HwnasError(f"image folder {str(root)!r} does not exist; give a folder with one subfolder of images per class")
        classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not classes:
            raise HwnasError(f"image folder {str(root)!r} has no class subfolders; put the images of each class in root/<class>/")
        files: list[Path] = []
        labels: list[int] = []
        self.skipped: list[str] = []
        for ci, c in enumerate(classes):
            for p in sorted((root / c).rglob("*")):
                if not is_image_file(p):
                    continue
                if verify:
                    try:
                        with Image.open(p) as im:
                            im.verify()
                    except Exception:
                        self.skipped.append(str(p))
                        continue
                files.append(p)
                labels.append(ci)
        if not files:
            extra = f" ({len(self.skipped)} failed to decode)" if self.skipped else ""
            raise HwnasError(f"image folder {str(root)!r} holds no readable images{extra}; add .png/.jpg files under root/<class>/")
        self.root, self.files, self.classes = root, files, classes
        self.labels = torch.tensor(labels, dtype=torch.long)
        self.num_classes = len(classes)
        self.resolution = resolution
        self.name = name or root.name
        self.mean, self.std = statistics(IMAGENET_MEAN, IMAGENET_STD)

    def _decode(self, i: int) -> torch.Tensor:
        try:
            return load_image(self.files[i], self.resolution)
        except Exception:  # decoded fine when scanned but not now (truncated data): a black image
            self.skipped.append(str(self.files[i]))
            return torch.zeros(3, self.resolution, self.resolution)

    def _load(self, idx: torch.Tensor) -> torch.Tensor:
        return normalize(torch.stack([self._decode(int(i)) for i in idx]), self.mean, self.std)


# ---- augmentation (torch ops only) -----------------------------------------------------------
def augment_batch(x: torch.Tensor, generator: torch.Generator, pad: int = 4, flip: bool = True,
                  rows: slice | None = None, total: int | None = None) -> torch.Tensor:
    """Random crop with zero padding and random horizontal flip, per image, from ``generator``.

    The draws are made for a batch of ``total`` images (default ``len(x)``) and ``x`` holds the
    ``rows`` of that batch: a rank augmenting its slice of the global batch gets exactly what a
    single process augmenting the whole batch would.
    """
    n, _, h, w = x.shape
    total = n if total is None else total
    offs = torch.randint(0, 2 * pad + 1, (total, 2), generator=generator)
    flips = torch.rand(total, generator=generator) < 0.5
    if rows is not None:
        offs, flips = offs[rows], flips[rows]
    if pad:
        xp = F.pad(x, (pad, pad, pad, pad))
        rr = (offs[:, 0].view(n, 1) + torch.arange(h).view(1, h))  # n, h
        cc = (offs[:, 1].view(n, 1) + torch.arange(w).view(1, w))  # n, w
        x = xp[torch.arange(n).view(n, 1, 1, 1), torch.arange(x.shape[1]).view(1, -1, 1, 1),
               rr.view(n, 1, h, 1), cc.view(n, 1, 1, w)]
    if flip:
        x = torch.where(flips.view(n, 1, 1, 1), x.flip(-1), x)
    return x


# ---- built-in synthetic data -------------------------------------------------------------------
BUILTIN_CLASSES = ("disc", "square", "triangle", "cross", "ring")  # x 2 fill textures = 10 classes


def _render_builtin(rng: np.random.Generator, label: int, size: int = BUILTIN_SIZE) -> np.ndarray:
    """One 32x32 RGB image of class ``label``: a shape (5 kinds, 7-12 px radius, any rotation)
    filled with stripes whose orientation (horizontal or vertical, 2 kinds) is part of the
    class, on a cluttered, noisy, colored background.

    Telling shapes apart needs spatial context at the object's scale (a receptive field of
    15-25 px) and telling the stripes apart needs fine detail under noise, so nets differ in
    accuracy: larger kernels and more depth/width do measurably better. Every class is
    invariant to the training augmentation (random crop, horizontal flip): stripes at +-45
    degrees would swap under a flip and leave half the label unlearnable.
    """
    shape, texture = label % 5, label // 5
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    # background: smooth color gradient + low-frequency blobs
    bg = rng.uniform(0.2, 0.8, 3).astype(np.float32)
    gdir = rng.normal(size=2).astype(np.float32)
    grad = ((xx - size / 2) * gdir[0] + (yy - size / 2) * gdir[1]) / size
    img = bg[:, None, None] + 0.25 * grad[None] * rng.uniform(-1, 1, 3).astype(np.float32)[:, None, None]
    for _ in range(rng.integers(2, 5)):  # distractor blobs
        cy, cx = rng.uniform(0, size, 2)
        r = rng.uniform(2, 5)
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
        img += blob[None] * rng.uniform(-0.4, 0.4, 3).astype(np.float32)[:, None, None]
    # the object
    r = rng.uniform(7, 12)
    cy, cx = rng.uniform(r * 0.8, size - r * 0.8, 2)
    ang = rng.uniform(0, 2 * np.pi)
    dy, dx = yy - cy, xx - cx
    ry = dy * np.cos(ang) - dx * np.sin(ang)
    rx = dy * np.sin(ang) + dx * np.cos(ang)
    if shape == 0:
        mask = dy ** 2 + dx ** 2 <= r ** 2
    elif shape == 1:
        mask = (np.abs(ry) <= r * 0.8) & (np.abs(rx) <= r * 0.8)
    elif shape == 2:
        mask = (ry <= r * 0.6) & (ry >= -r * 0.9 + 1.6 * np.abs(rx))
    elif shape == 3:
        mask = ((np.abs(ry) <= r * 0.3) & (np.abs(rx) <= r)) | ((np.abs(rx) <= r * 0.3) & (np.abs(ry) <= r))
    else:
        d = np.sqrt(dy ** 2 + dx ** 2)
        mask = (d <= r) & (d >= r * 0.55)
    period = rng.uniform(2.5, 4.0)
    theta = (0.0 if texture == 0 else np.pi / 2) + rng.normal(0, 0.15)  # horizontal flip keeps both
    phase = rng.uniform(0, 2 * np.pi)
    stripes = np.sin(2 * np.pi * (xx * np.cos(theta) + yy * np.sin(theta)) / period + phase)
    fg = rng.uniform(0.0, 1.0, 3).astype(np.float32)
    contrast = rng.uniform(0.15, 0.35)
    obj = fg[:, None, None] + contrast * stripes[None]
    img = np.where(mask[None], obj, img)
    img += rng.normal(0, 0.08, img.shape).astype(np.float32)
    return (np.clip(img, 0, 1) * 255).round().astype(np.uint8)


def make_builtin(n: int, seed: int, size: int = BUILTIN_SIZE, name: str = "builtin") -> TensorImageSet:
    """``n`` images with balanced labels, a pure function of (n, seed)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, n, BUILTIN_STREAM]))
    labels = np.arange(n) % 10
    rng.shuffle(labels)
    images = np.stack([_render_builtin(rng, int(c), size) for c in labels])
    return TensorImageSet(torch.from_numpy(images), torch.from_numpy(labels), 10, name)


# ---- CIFAR pickles ---------------------------------------------------------------------------------
# The official batches are pickles of a dict of bytes, lists and numpy arrays. Unpickling may call
# any importable function, so only what rebuilds an array (and Python 2 byte strings) is allowed:
# a crafted ``data_batch_1`` cannot run code.
_CIFAR_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
}


class _CifarUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _CIFAR_GLOBALS:
            raise pickle.UnpicklingError(f"it asks for {module}.{name}; a CIFAR batch holds only dicts, lists, "
                                         "strings, bytes and numpy arrays")
        return super().find_class(module, name)


def _load_cifar_batch(path: Path, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, "rb") as f:
            d = _CifarUnpickler(f, encoding="bytes").load()
        data = np.asarray(d[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        labels = np.asarray(d[label_key.encode()], dtype=np.int64)
    except FileNotFoundError:
        raise
    except pickle.UnpicklingError as e:
        raise HwnasError(f"CIFAR batch {str(path)!r} was refused: {e}; re-download cifar-*-python.tar.gz and extract it") from None
    except Exception as e:
        raise HwnasError(f"CIFAR batch {str(path)!r} is not a CIFAR python pickle ({type(e).__name__}); re-download cifar-*-python.tar.gz and extract it") from None
    if len(labels) != len(data):
        raise HwnasError(f"CIFAR batch {str(path)!r} has {len(data)} images but {len(labels)} labels; re-download cifar-*-python.tar.gz and extract it")
    return data, labels


def load_cifar(root: str | Path, which: str = "cifar10") -> tuple[TensorImageSet, TensorImageSet]:
    """(train, test) from the official python batches (``cifar-10-batches-py`` or ``cifar-100-python``)."""
    root = Path(root)
    if not root.is_dir():
        raise HwnasError(f"CIFAR folder {str(root)!r} does not exist; download and extract the python version of {which} there")
    if which == "cifar10":
        sub = root / "cifar-10-batches-py" if (root / "cifar-10-batches-py").is_dir() else root
        train_files = [sub / f"data_batch_{i}" for i in range(1, 6)]
        test_files, key, nc = [sub / "test_batch"], "labels", 10
    else:
        sub = root / "cifar-100-python" if (root / "cifar-100-python").is_dir() else root
        train_files, test_files, key, nc = [sub / "train"], [sub / "test"], "fine_labels", 100
    missing = [p.name for p in train_files + test_files if not p.is_file()]
    if missing:
        raise HwnasError(f"CIFAR folder {str(sub)!r} lacks {', '.join(missing)}; extract the official python batches of {which} there")
    mean, std = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)

    def load(files: list[Path], name: str) -> TensorImageSet:
        parts = [_load_cifar_batch(p, key) for p in files]
        x = torch.from_numpy(np.concatenate([p[0] for p in parts]))
        y = torch.from_numpy(np.concatenate([p[1] for p in parts]))
        return TensorImageSet(x, y, nc, name, mean, std)

    return load(train_files, f"{which}-train"), load(test_files, f"{which}-test")


# ---- the contract: build_datasets ----------------------------------------------------------------
@dataclass
class Datasets:
    spec: str
    train: ImageSet
    val: ImageSet
    path_eval: ImageSet
    test: ImageSet | None = None
    skipped_files: int = 0

    @property
    def num_classes(self) -> int:
        return self.train.num_classes

    def normalization(self) -> dict[str, object]:
        """What the training images were normalized with: the input contract of a net trained on them."""
        return {"data": self.spec, **self.train.normalization(), "scale": "RGB in [0, 1]"}

    def describe(self) -> str:
        s = f"{self.spec}: {len(self.train)} train, {len(self.val)} val (of which {len(self.path_eval)} path-eval), {self.num_classes} classes"
        if self.test is not None:
            s += f", {len(self.test)} test"
        if self.skipped_files:
            s += f"; {self.skipped_files} undecodable file(s) skipped"
        return s


def parse_data_spec(spec: str) -> tuple[str, str | None]:
    kind, _, arg = spec.partition(":")
    kind = kind.strip().lower()
    if kind == "builtin":
        return kind, arg or None
    if kind in ("cifar10", "cifar100", "folder"):
        if not arg:
            raise HwnasError(f"data spec {spec!r} needs a folder: {kind}:DIR")
        return kind, arg
    raise HwnasError(f"unknown data spec {spec!r}; use builtin, cifar10:DIR, cifar100:DIR or folder:DIR")


def _split(n: int, n_val: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(n, generator=g)
    return perm[n_val:].sort().values, perm[:n_val]


def build_datasets(spec: str = "builtin", *, resolution: int = 32, n_path_eval: int = 1000, n_val: int | None = None,
                   n_train: int | None = None, seed: int = 0) -> Datasets:
    """Train set, validation split and the fixed path-evaluation subset for a data spec.

    - ``builtin`` (or ``builtin:N`` for N training images): the procedurally generated 10-class
      set, 32x32, default 5,000 train and 2,000 val images; a pure function of ``seed``.
    - ``cifar10:DIR`` / ``cifar100:DIR``: the official python pickles; val (default 5,000) is
      split off the training batches, the test batch is ``test``.
    - ``folder:DIR``: class-per-subfolder images (``DIR/train`` + optional ``DIR/val`` as test,
      or DIR itself); val (default 10%) split off training.

    ``path_eval`` is the first ``n_path_eval`` images of the (shuffled) val split: it is part
    of the validation data as in the paper and never enters ``train``. ``n_train`` caps the
    training set (a seeded subset) for quick runs.
    """
    kind, arg = parse_data_spec(spec)
    test: ImageSet | None = None
    skipped = 0
    if kind == "builtin":
        if resolution != BUILTIN_SIZE:
            raise HwnasError(f"the built-in data is 32x32 but the space wants {resolution}x{resolution}; use a 32x32 space (tiny, nas-bench-macro) or real data")
        try:
            total_train = int(arg) if arg else (n_train or 5000)
        except ValueError:
            raise HwnasError(f"builtin:N needs an integer N, got {arg!r}") from None
        nv = 2000 if n_val is None else n_val
        train = make_builtin(total_train, seed, name="builtin-train")
        val = make_builtin(nv, seed + BUILTIN_VAL_SEED_OFFSET, name="builtin-val")
        val.mean, val.std = train.mean, train.std
        n_train = None
    elif kind in ("cifar10", "cifar100"):
        if resolution != BUILTIN_SIZE:
            raise HwnasError(f"CIFAR is 32x32 but the space wants {resolution}x{resolution}; use a 32x32 space (tiny, nas-bench-macro)")
        full, test = load_cifar(arg, kind)  # type: ignore[arg-type]
        nv = 5000 if n_val is None else n_val
        tr_idx, va_idx = _split(len(full), nv, seed)
        train, val = full.subset(tr_idx, f"{kind}-train"), full.subset(va_idx, f"{kind}-val")
    else:
        root = Path(arg)  # type: ignore[arg-type]
        train_root = root / "train" if (root / "train").is_dir() else root
        full_f = FolderImageSet(train_root, resolution, name=root.name)
        skipped += len(full_f.skipped)
        if (root / "val").is_dir() and train_root != root:
            test_f = FolderImageSet(root / "val", resolution, name=f"{root.name}-test")
            if test_f.classes != full_f.classes:
                raise HwnasError(f"{str(root / 'val')!r} has other classes than {str(train_root)!r}; use the same class subfolders")
            skipped += len(test_f.skipped)
            test = test_f
        nv = max(1, len(full_f) // 10) if n_val is None else n_val
        if nv >= len(full_f):
            raise HwnasError(f"image folder {str(root)!r} has {len(full_f)} images, too few for a {nv}-image validation split; add images or lower the split")
        tr_idx, va_idx = _split(len(full_f), nv, seed)
        train, val = full_f.subset(tr_idx, "train"), full_f.subset(va_idx, "val")
    if n_train is not None and n_train < len(train):
        g = torch.Generator().manual_seed(seed + TRAIN_SUBSET_SEED_OFFSET)
        train = train.subset(torch.randperm(len(train), generator=g)[:n_train].sort().values, train.name)
    npe = min(n_path_eval, len(val))
    if npe <= 0:
        raise HwnasError("the path-evaluation subset is empty; give a validation split of at least one image")
    path_eval = val.subset(torch.arange(npe), f"{val.name}-path-eval")
    return Datasets(spec, train, val, path_eval, test, skipped)


def dataset_fingerprint(ds: Datasets) -> str:
    """A short hash of the label vectors: tells a resume that it sees the same data."""
    h = hashlib.sha256()
    for part in (ds.train, ds.val, ds.path_eval):
        h.update(part.labels.numpy().tobytes())
    return h.hexdigest()[:16]
