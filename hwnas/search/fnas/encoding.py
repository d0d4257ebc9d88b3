"""The one-hot arch encoding that the critic reads (FNAS Sec. 3.1, after Liu et al. [21]).

Every layer's choice becomes a one-hot block, concatenated over layers, so two archs that share
sub-architectures share coordinates: that is what lets the value network generalise.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ...space.space import SearchSpace


class ArchEncoder:
    """Choice indices (n, layers) <-> flat one-hot vectors (n, sum of choices per layer)."""

    def __init__(self, space: SearchSpace) -> None:
        self.n_choices = [len(layer.choices) for layer in space.layers]
        self.offsets = np.concatenate([[0], np.cumsum(self.n_choices)[:-1]]).astype(np.int64)
        self.dim = int(sum(self.n_choices))

    def one_hot(self, indices: Sequence[Sequence[int]] | np.ndarray) -> np.ndarray:
        idx = np.asarray(indices, dtype=np.int64)
        if idx.ndim == 1:
            idx = idx[None, :]
        if idx.shape[1] != len(self.n_choices):
            raise ValueError(f"expected {len(self.n_choices)} choice indices per arch, got {idx.shape[1]}")
        out = np.zeros((idx.shape[0], self.dim), dtype=np.float32)
        rows = np.repeat(np.arange(idx.shape[0]), idx.shape[1])
        out[rows, (idx + self.offsets).ravel()] = 1.0
        return out
