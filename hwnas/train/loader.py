"""Batches for training: a ``torch.utils.data.DataLoader`` over an ``ImageSet`` with a
deterministic batch sampler, so worker processes decode ahead while the batch order stays a
pure function of (seed, iteration).

``EpochBatchSampler`` yields, for iterations ``start..stop``, the slice of each epoch's seeded
permutation that the iteration trains on (and of that, the rows of this process under
torchrun). A resumed run builds it with ``start`` = the resumed iteration and gets the same
batches as the uninterrupted run; the number of workers never changes a batch.
"""

from __future__ import annotations

from typing import Callable, Iterator

import torch
from torch.utils.data import DataLoader, Sampler

from .data import ImageSet


class EpochBatchSampler(Sampler[list[int]]):
    """Iteration ``it`` trains on images ``perm(epoch)[pos*B:(pos+1)*B][rows]`` with
    ``epoch, pos = divmod(it, n // B)``; ``perm(epoch)`` is ``randperm(n)`` seeded with
    ``epoch_seed(epoch)`` (the tail of an epoch that does not fill a batch is skipped)."""

    def __init__(self, n: int, batch_size: int, epoch_seed: Callable[[int], int], start: int = 0, stop: int | None = None,
                 rows: slice = slice(None)) -> None:
        if n < batch_size:
            raise ValueError(f"{n} images are fewer than one batch of {batch_size}")
        self.n, self.batch_size, self.epoch_seed, self.rows = n, batch_size, epoch_seed, rows
        self.iters_per_epoch = n // batch_size
        self.start, self.stop = start, stop

    def batch_indices(self, it: int, perm: torch.Tensor | None = None) -> list[int]:
        epoch, pos = divmod(it, self.iters_per_epoch)
        if perm is None:
            perm = self.permutation(epoch)
        return perm[pos * self.batch_size:(pos + 1) * self.batch_size][self.rows].tolist()

    def permutation(self, epoch: int) -> torch.Tensor:
        return torch.randperm(self.n, generator=torch.Generator().manual_seed(self.epoch_seed(epoch)))

    def __iter__(self) -> Iterator[list[int]]:
        it, epoch, perm = self.start, -1, None
        while self.stop is None or it < self.stop:
            if it // self.iters_per_epoch != epoch:
                epoch = it // self.iters_per_epoch
                perm = self.permutation(epoch)
            yield self.batch_indices(it, perm)
            it += 1

    def __len__(self) -> int:
        if self.stop is None:
            raise TypeError("an endless batch sampler has no length")
        return max(0, self.stop - self.start)


class RandomBatchSampler(Sampler[list[int]]):
    """``steps`` batches of ``batch_size`` indices drawn uniformly with replacement from one
    generator seeded ``seed`` (the FNAS proxy task's order)."""

    def __init__(self, n: int, batch_size: int, steps: int, seed: int) -> None:
        self.n, self.batch_size, self.steps, self.seed = n, batch_size, steps, seed

    def __iter__(self) -> Iterator[list[int]]:
        g = torch.Generator().manual_seed(self.seed)
        for _ in range(self.steps):
            yield torch.randint(0, self.n, (self.batch_size,), generator=g).tolist()

    def __len__(self) -> int:
        return self.steps


def _whole_batch(batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """``ImageSet.__getitems__`` already returns the batch as tensors: nothing to collate."""
    return batch


def batch_loader(data: ImageSet, batch_sampler: Sampler[list[int]], workers: int = 0) -> DataLoader:
    """A DataLoader yielding ``(images, labels)`` per batch of ``batch_sampler``, decoded by
    ``workers`` processes (0: in this process)."""
    return DataLoader(data, batch_sampler=batch_sampler, num_workers=workers, collate_fn=_whole_batch,
                      persistent_workers=False, prefetch_factor=2 if workers else None)
