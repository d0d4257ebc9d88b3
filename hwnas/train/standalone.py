"""The one train-from-scratch loop: a standalone network trained with SGD on an ``ImageSet``.

Used by the scratch evaluator of ``hwnas search`` (no supernet), FNAS's proxy task (short
training, optionally warm-started from the knowledge pool) and the benchmarks' ground truth.
What differs between them is data, not code: the batch order (a batch sampler from
``loader.py``: epochs of seeded permutations, or uniform draws), the recipe (``SGDRecipe``)
and whether batches are augmented (crop + flip from a seed per iteration). The learning rate
follows a cosine from ``lr`` to 0 over the sampler's steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Sampler

from .data import ImageSet, augment_batch
from .loader import batch_loader


@dataclass(frozen=True)
class SGDRecipe:
    """SGD with (Nesterov) momentum and weight decay, cosine learning rate, optional label smoothing."""

    lr: float = 0.05
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 4e-5
    label_smoothing: float = 0.0


def train_from_scratch(net: nn.Module, data: ImageSet, batches: Sampler[list[int]], recipe: SGDRecipe = SGDRecipe(), *,
                       augment_seed: Callable[[int], int] | None = None, workers: int = 0,
                       on_step: Callable[[int], None] | None = None) -> int:
    """Train ``net`` in place on the batches of ``batches`` (one SGD step each); returns the steps taken.

    ``augment_seed(step)`` seeds the random crop and flip of step ``step`` (None: no
    augmentation); ``on_step(steps_done)`` runs after every step (e.g. to score checkpoints).
    """
    steps = len(batches)  # type: ignore[arg-type]
    opt = torch.optim.SGD(net.parameters(), lr=recipe.lr, momentum=recipe.momentum, nesterov=recipe.nesterov,
                          weight_decay=recipe.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, steps))
    done = 0
    for x, y in batch_loader(data, batches, workers):
        if augment_seed is not None:
            x = augment_batch(x, torch.Generator().manual_seed(augment_seed(done)))
        net.train()
        loss = F.cross_entropy(net(x), y, label_smoothing=recipe.label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        done += 1
        if on_step is not None:
            on_step(done)
    return done


@torch.no_grad()
def accuracy(net: nn.Module, data: ImageSet, batch_size: int = 500) -> float:
    """Top-1 accuracy in percent over a whole image set, eval mode."""
    net.eval()
    correct = 0
    for x, y in data.iter_batches(batch_size):
        correct += int((net(x).argmax(1) == y).sum())
    return 100.0 * correct / max(1, len(data))
