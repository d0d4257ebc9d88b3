"""Short train-from-scratch evaluation: the proxy task where the knowledge pool pays off.

Each candidate is built as a standalone ``hwnas.nn.Network``, trained for a fixed number of SGD
iterations (``hwnas.train.standalone``, batches drawn uniformly with replacement) and scored on
a held-out split. With a ``KnowledgePool`` its blocks start from the most similar trained
blocks instead of random weights, and its own checkpoint joins the pool. The data is hwnas's
built-in image set (``hwnas.train.data.make_builtin``) so the evaluator runs anywhere without
downloads; any pair of ``ImageSet``s can be passed instead.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ...nn.network import Network
from ...space.arch import Arch
from ...train.data import ImageSet, make_builtin
from ...train.loader import RandomBatchSampler
from ...train.standalone import SGDRecipe, accuracy, train_from_scratch
from ..evaluator import Evaluator
from .knowledge_pool import KnowledgePool

ACCURACY_BATCH = 512


def builtin_data(seed: int = 0, n_train: int = 2048, n_val: int = 512) -> tuple[ImageSet, ImageSet]:
    """Train/val sets of the built-in images (disjoint seeds: 2*seed and 2*seed + 1)."""
    return make_builtin(n_train, 2 * seed), make_builtin(n_val, 2 * seed + 1)


def train(net: nn.Module, data: ImageSet, iterations: int, batch: int = 32, lr: float = 0.05, seed: int = 0,
          val: ImageSet | None = None, checkpoints: Sequence[int] = ()) -> dict[int, float]:
    """``iterations`` SGD steps (momentum 0.9, Nesterov, cosine decay) on batches drawn with
    replacement from a generator seeded ``seed``; val accuracy at each checkpoint."""
    out: dict[int, float] = {}

    def score(step: int) -> None:
        if val is not None and step in checkpoints:
            out[step] = accuracy(net, val, ACCURACY_BATCH)

    train_from_scratch(net, data, RandomBatchSampler(len(data), batch, iterations, seed), SGDRecipe(lr=lr), on_step=score)
    return out


class TrainEvaluator(Evaluator):
    """Accuracy (%) after ``iterations`` SGD steps from scratch, or from the knowledge pool when given."""

    def __init__(self, iterations: int = 40, pool: KnowledgePool | None = None, data: tuple[ImageSet, ImageSet] | None = None,
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
        self._trained: list[tuple[Arch, dict]] = []
        self._mine: list[Arch] = []

    def _spread(self) -> bool:
        return self.dist is not None and self.dist.enabled

    def _evaluate(self, archs: Sequence[Arch]) -> Sequence[float]:
        out = []
        for arch in archs:
            space = arch.get_space()
            torch.manual_seed(self.seed)
            net = Network(space, arch)
            info = self.pool.initialize(net, space, arch) if self.pool is not None else {}
            train(net, self.train_data, self.iterations, self.batch, self.lr, self.seed)
            acc = accuracy(net, self.val_data, ACCURACY_BATCH)
            if self.pool is not None and self._spread():
                self._trained.append((arch, net.state_dict()))
            elif self.pool is not None:
                self.pool.store(net, space, arch, self.iterations)
            self.details[arch] = {"accuracy": acc, **info}
            self._mine.append(arch)
            out.append(acc)
        return out

    def _evaluate_batch(self, archs: Sequence[Arch]) -> Sequence[float]:
        """Under torchrun each rank trains its share of the batch from the pool as it stood at the
        batch's start; then every rank stores all the batch's trained nets, in batch order, so the
        ranks' pools stay equal (one process stores each net as soon as it is trained)."""
        self._trained: list[tuple[Arch, dict]] = []
        self._mine: list[Arch] = []
        out = super()._evaluate_batch(archs)
        if self._spread():
            parts = self.dist.all_gather_object((self._trained, {a: self.details[a] for a in self._mine}))
            trained = dict(t for part, _ in parts for t in part)
            for _, details in parts:
                self.details.update(details)
            for arch in archs:
                if arch in trained:
                    space = arch.get_space()
                    net = Network(space, arch)
                    net.load_state_dict(trained[arch])
                    self.pool.store(net, space, arch, self.iterations)
        return out
