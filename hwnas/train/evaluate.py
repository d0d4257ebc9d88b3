"""Evaluating one path of a supernet: loss/accuracy in eval mode, and BN recalibration.

The GreedyNAS sampler ranks paths with ``batch_loss`` (eval mode, no grad, one fixed batch);
searchers score archs with ``recalibrate_bn`` followed by ``evaluate_path`` on the val split.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .data import ImageSet

PathLike = Sequence[int]


BN_MODES = ("running", "batch")


@contextmanager
def bn_batch_statistics(module: nn.Module) -> Iterator[None]:
    """Inside: every BN normalises with the statistics of the batch it sees and updates no
    running statistic. A supernet's running statistics are averages over the many paths trained
    lately, so a path's eval-mode output measures how far its own statistics lie from that
    average as much as its quality; the batch's own statistics remove that term."""
    bns = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(m.training, m.track_running_stats) for m in bns]
    for m in bns:
        m.train()
        m.track_running_stats = False
    try:
        yield
    finally:
        for m, (tr, track) in zip(bns, saved):
            m.train(tr)
            m.track_running_stats = track


@torch.no_grad()
def batch_loss(supernet: nn.Module, path: PathLike, x: torch.Tensor, y: torch.Tensor, bn: str = "running") -> tuple[float, int]:
    """(mean cross-entropy, number correct) of one path on one batch, eval mode, no grad; with
    ``bn="batch"`` the BN layers use the batch's statistics (``bn_batch_statistics``)."""
    if bn not in BN_MODES:
        raise ValueError(f"bn must be one of {BN_MODES}, got {bn!r}")
    was = supernet.training
    supernet.eval()
    try:
        if bn == "batch":
            with bn_batch_statistics(supernet):
                out = supernet(x, list(path))
        else:
            out = supernet(x, list(path))
        return float(F.cross_entropy(out, y)), int((out.argmax(1) == y).sum())
    finally:
        supernet.train(was)


@torch.no_grad()
def evaluate_path(supernet: nn.Module, path: PathLike, data: ImageSet, batch_size: int = 500) -> tuple[float, float]:
    """(mean loss, accuracy in percent) of one path over a whole image set."""
    total_loss, correct, n = 0.0, 0, 0
    for x, y in data.iter_batches(batch_size):
        loss, c = batch_loss(supernet, path, x, y)
        total_loss += loss * len(y)
        correct += c
        n += len(y)
    return total_loss / max(n, 1), 100.0 * correct / max(n, 1)


def path_bn_modules(supernet: nn.Module, path: PathLike) -> list[nn.modules.batchnorm._BatchNorm]:
    mods: list[nn.Module] = supernet.path_modules(list(path))
    return [m for mod in mods for m in mod.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@contextmanager
def recalibrating(supernet: nn.Module, bns: Sequence[nn.modules.batchnorm._BatchNorm]):
    """Inside: ``bns`` have fresh statistics and accumulate a cumulative average (momentum None)
    of every batch they see in train mode, the rest of the net is in eval mode; after: the
    modes and momenta are restored (the new statistics stay)."""
    saved = [(m.momentum, m.training) for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    was = supernet.training
    supernet.eval()
    for m in bns:
        m.train()
    try:
        yield
    finally:
        for m, (mom, tr) in zip(bns, saved):
            m.momentum = mom
            m.train(tr)
        supernet.train(was)


def recalibration_indices(n: int, n_images: int, seed: int) -> torch.Tensor:
    """The training images BN statistics are re-estimated on: the same for every path of a search."""
    g = torch.Generator().manual_seed(seed)
    return torch.randperm(n, generator=g)[:n_images]


@torch.no_grad()
def recalibrate_bn(supernet: nn.Module, path: PathLike, data: ImageSet, n_images: int = 1000, batch_size: int = 100,
                   seed: int = 0) -> None:
    """Reset the BN statistics of the path's modules and re-estimate them (cumulative average)
    on ``n_images`` training images drawn with ``seed``: the standard fix for inherited weights
    whose running statistics were averaged over many paths."""
    idx = recalibration_indices(len(data), n_images, seed)
    with recalibrating(supernet, path_bn_modules(supernet, path)):
        for s in range(0, len(idx), batch_size):
            x, _ = data.batch(idx[s:s + batch_size])
            supernet(x, list(path))
