"""The integer encoding searchers work in: one choice index per layer, with vectorized costs.

FLOPs, params and (through ``hwnas.latency.predictor``) latency are sums of per-layer terms,
so the cost of a whole (n, layers) matrix of candidates is a gather and a sum: checking the
budgets of thousands of candidates costs microseconds, and only accuracy is expensive.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..space.arch import Arch
from ..space.cost import slot_cost
from ..space.space import SearchSpace


class IntegerEncoding:
    def __init__(self, space: SearchSpace) -> None:
        self.space = space
        self.n_choices = np.array([len(layer.choices) for layer in space.layers], dtype=np.int64)
        fixed = np.zeros(2, dtype=np.int64)
        for s in space.fixed_slots():
            fixed += np.array(slot_cost(s), dtype=np.int64)
        self.fixed_cost = fixed
        width = int(self.n_choices.max())
        # (layers, max choices, 2): FLOPs and params of each choice; padding is never indexed
        self.layer_cost = np.zeros((space.num_layers, width, 2), dtype=np.int64)
        for j, layer in enumerate(space.layers):
            for i, op in enumerate(layer.choices):
                self.layer_cost[j, i] = slot_cost(layer.slot(op))

    @property
    def n_var(self) -> int:
        return self.space.num_layers

    def encode(self, arch: Arch) -> np.ndarray:
        return np.array(self.space.choice_indices(arch), dtype=np.int64)

    def decode(self, row: Sequence[int]) -> Arch:
        return self.space.from_indices([int(i) for i in row])

    def decode_many(self, X: np.ndarray) -> list[Arch]:
        return [self.decode(row) for row in np.asarray(X)]

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """n uniformly random encodings (each layer's index uniform over its own choices)."""
        return np.floor(rng.random((n, self.n_var)) * self.n_choices).astype(np.int64)

    def flops_params(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        X = np.atleast_2d(np.asarray(X, dtype=np.int64))
        cols = np.arange(self.n_var)
        c = self.layer_cost[cols[None, :], X].sum(axis=1) + self.fixed_cost
        return c[:, 0], c[:, 1]
