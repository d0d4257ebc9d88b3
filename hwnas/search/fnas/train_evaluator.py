"""Short train-from-scratch evaluation: the proxy task where the knowledge pool pays off.

Each candidate is built as a standalone ``hwnas.nn.Network``, trained for a fixed number of SGD
iterations and scored on a held-out split. With a ``KnowledgePool`` its blocks start from the
most similar trained blocks instead of random weights, and its own checkpoint joins the pool.
The data is hwnas's built-in synthetic image set (``hwnas.train.data.make_builtin``) so the
evaluator runs anywhere without downloads; any (x, y) tensors can be passed instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import nn

from ...nn.network import Network
from ...space.arch import Arch
from ..evaluator import Evaluator
from .knowledge_pool import KnowledgePool


@dataclass
class Split:
    x: torch.Tensor
    y: torch.Tensor


def synthetic_images(n_train: int = 2048, n_val: int = 512, classes: int = 10, size: int = 32,
                     noise: float = 2.0, seed: int = 0) -> tuple[Split, Split]:
    """A seeded image task: each class is a smooth random colour template, seen under random shifts and noise."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.randn(classes, 3, 4, 4, generator=g)
    templates = nn.functional.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)

    def make(n: int) -> Split:
        y = torch.randint(0, classes, (n,), generator=g)
        x = templates[y].clone()
        shifts = torch.randint(-4, 5, (n, 2), generator=g)
        for i in range(n):
            x[i] = torch.roll(x[i], shifts=(int(shifts[i, 0]), int(shifts[i, 1])), dims=(1, 2))
        x += noise * torch.randn(x.shape, generator=g)
        return Split(x.contiguous(), y)

    return make(n_train), make(n_val)


def builtin_data(seed: int = 0, n_train: int = 2048, n_val: int = 512) -> tuple[Split, Split]:
    """Train/val splits of the built-in image set (disjoint seeds), as whole tensors."""
    try:
        from ...train.data import make_builtin
    except ImportError:  # an install without the training package: the self-contained task
        return synthetic_images(n_train, n_val, seed=seed)
    tr, va = make_builtin(n_train, 2 * seed), make_builtin(n_val, 2 * seed + 1)
    return Split(*tr.batch(torch.arange(len(tr)))), Split(*va.batch(torch.arange(len(va))))


@torch.no_grad()
def accuracy(net: nn.Module, data: Split, batch: int = 512) -> float:
    net.eval()
    correct = 0
    for i in range(0, len(data.y), batch):
        correct += int((net(data.x[i:i + batch]).argmax(1) == data.y[i:i + batch]).sum())
    return 100.0 * correct / len(data.y)


def train(net: nn.Module, data: Split, iterations: int, batch: int = 32, lr: float = 0.05, seed: int = 0,
          val: Split | None = None, checkpoints: Sequence[int] = ()) -> dict[int, float]:
    """SGD (momentum 0.9, cosine decay) for ``iterations`` steps; val accuracy at each checkpoint."""
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9, weight_decay=4e-5, nesterov=True)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, iterations)
    loss_fn = nn.CrossEntropyLoss()
    out: dict[int, float] = {}
    for it in range(1, iterations + 1):
        net.train()
        idx = torch.randint(0, len(data.y), (batch,), generator=g)
        loss = loss_fn(net(data.x[idx]), data.y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if val is not None and it in checkpoints:
            out[it] = accuracy(net, val)
    return out


class TrainEvaluator(Evaluator):
    """Accuracy (%) after ``iterations`` SGD steps from scratch, or from the knowledge pool when given."""

    def __init__(self, iterations: int = 40, pool: KnowledgePool | None = None, data: tuple[Split, Split] | None = None,
                 batch: int = 32, lr: float = 0.05, seed: int = 0) -> None:
        super().__init__()
        if pool is not None and pool.iterations != iterations:
            raise ValueError(f"pool holds {pool.iterations}-iteration checkpoints; train for the same ({iterations})")
        self.iterations = iterations
        self.pool = pool
        self.train_data, self.val_data = data or builtin_data(seed)
        self.batch = batch
        self.lr = lr
        self.seed = seed
        self.details: dict[Arch, dict] = {}

    def _evaluate(self, archs: Sequence[Arch]) -> Sequence[float]:
        out = []
        for arch in archs:
            space = arch.get_space()
            torch.manual_seed(self.seed)
            net = Network(space, arch)
            info = self.pool.initialize(net, space, arch) if self.pool is not None else {}
            train(net, self.train_data, self.iterations, self.batch, self.lr, self.seed)
            acc = accuracy(net, self.val_data)
            if self.pool is not None:
                self.pool.store(net, space, arch, self.iterations)
            self.details[arch] = {"accuracy": acc, **info}
            out.append(acc)
        return out
