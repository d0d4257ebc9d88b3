"""Evaluators: ``evaluate(archs) -> accuracies`` behind one interface (pymoo-style do/_do).

The base class does the shared bookkeeping (cache, count of real evaluations) and calls a
subclass's ``_evaluate``; searchers only ever see ``evaluate`` and ``n_evaluations``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Sequence

import numpy as np

from ..space.arch import Arch


class Evaluator(ABC):
    """Accuracy (percent) of archs. Cached: asking twice for an arch costs one evaluation."""

    def __init__(self) -> None:
        self.cache: dict[Arch, float] = {}
        self.n_evaluations = 0

    def evaluate(self, archs: Sequence[Arch]) -> np.ndarray:
        todo = [a for a in dict.fromkeys(archs) if a not in self.cache]
        if todo:
            scores = self._evaluate(todo)
            for a, s in zip(todo, scores):
                self.cache[a] = float(s)
            self.n_evaluations += len(todo)
        return np.array([self.cache[a] for a in archs], dtype=float)

    @abstractmethod
    def _evaluate(self, archs: Sequence[Arch]) -> Sequence[float]:
        """Accuracy of each arch (none of them cached)."""


class TabularEvaluator(Evaluator):
    """Accuracy looked up in a tabular benchmark (NAS-Bench-Macro): the truth, for validating searchers."""

    def __init__(self, benchmark=None) -> None:
        super().__init__()
        if benchmark is None:
            from ..space.tabular import load_nas_bench_macro

            benchmark = load_nas_bench_macro()
        self.benchmark = benchmark

    def _evaluate(self, archs: Sequence[Arch]) -> Sequence[float]:
        return [self.benchmark.accuracy(a) for a in archs]
