"""The latency a budget is judged by, and the one comparison against it: below ``train`` and
``search`` so that training's path budget (``train.samplers.PathBudget``) and the search's
constraints (``search.budgets.Constraints``) agree on which archs fit.

``LatencyModel`` is the one predictor (``latency.predictor``) at a bound: with ``confidence`` c
the latency the file stays under with probability c (``latency.confidence``: the blocks'
spread, the table's validated error and the device's drift); without it, ``quantile`` 0.5 sums
the blocks' medians and 0.9 their p90. ``excess`` is how far a value is over its limit
(relative; <= 0 fits), the one test of a budget of any quantity.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import HwnasError
from ..space.arch import Arch
from ..space.space import SearchSpace
from .confidence import DEFAULT_CONFIDENCE, LatencyUncertainty, check_confidence, prediction_summary
from .confidence import describe as describe_uncertainty
from .predictor import MEDIAN, LatencyPredictor, entry_field
from .table import LatencyTable


def excess(value: Any, limit: float) -> np.ndarray:
    """Relative excess over a budget, elementwise: ``value / limit - 1`` (<= 0: within the budget)."""
    return np.asarray(value, dtype=float) / limit - 1.0


def within(value: Any, limit: float) -> np.ndarray:
    """Which values meet the budget ``limit`` (the same test as the search's constraint matrix)."""
    return excess(value, limit) <= 0


class LatencyModel:
    """The search's view of the one predictor (``latency.predictor``): what the budget constrains.

    ``model(arch) -> (ms, uncertainty)`` and ``predict_indices(X) -> (ms, uncertainty)`` over
    an (n, layers) index matrix. ``ms`` is, with ``confidence`` c, the latency the file stays
    under with probability c (``latency.confidence``: the blocks' spread, the table's validated
    error and the device's drift, combined); without it, ``quantile`` 0.5 predicts with the
    blocks' medians and 0.9 with their p90. The table must hold every block of the space.
    """

    def __init__(self, table: LatencyTable, space: SearchSpace, quantile: float = 0.5, confidence: float | None = None) -> None:
        entry_field(quantile)  # an unstored quantile is an error before any work
        if confidence is not None:
            check_confidence(confidence)
            if quantile != MEDIAN:
                raise HwnasError(f"--confidence and --latency-quantile {quantile} both set the latency bound; give one of them")
        self.table, self.space, self.quantile, self.confidence = table, space, quantile, confidence
        self.predictor = LatencyPredictor(table, space).require_complete()
        self.uncertainty = LatencyUncertainty.from_calibration(table.calibration)

    def predict_indices(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        spread = self.predictor.spread_indices(X)
        if self.confidence is None:
            return self.predictor.predict_indices(X, self.quantile), spread
        return self.uncertainty.quantile(self.predictor.predict_indices(X), spread, self.confidence), spread

    def __call__(self, arch: Arch) -> tuple[float, float]:
        ms, std = self.predict_indices(np.array([self.space.choice_indices(arch)]))
        return float(ms[0]), float(std[0])

    def range(self) -> tuple[float, float]:
        """Fastest and slowest bound of the space (with a confidence: without the blocks' spread,
        which only widens it, so the fastest is a true lower bound for c >= 0.5)."""
        lo, hi = self.predictor.range(self.quantile)
        if self.confidence is None:
            return lo, hi
        return tuple(float(self.uncertainty.quantile(v, 0.0, self.confidence)) for v in (lo, hi))  # type: ignore[return-value]

    def bound(self) -> dict[str, Any]:
        """What a record's ``latency_ms`` is: best.json's and summary.json's ``latency_bound`` and the
        results table's latency column. One field, so a confidence and a block quantile never
        stand side by side as if they were two quantiles of one prediction."""
        if self.confidence is not None:
            return {"kind": "confidence", "confidence": self.confidence, "label": f"{self.confidence:g} quantile",
                    "meaning": f"latency_ms is the latency the file stays under with probability {self.confidence:g} "
                               f"(the {self.confidence:g} quantile of the table's error model: {describe_uncertainty(self.uncertainty)})"}
        label = "blocks' median sum" if self.quantile == MEDIAN else f"blocks' p{round(100 * self.quantile)} sum"
        return {"kind": "block quantile", "block_quantile": self.quantile, "label": label,
                "meaning": f"latency_ms is the sum of the blocks' {label.split()[1]} latencies, calibrated (no error model)"}

    def describe(self, arch: Arch, budget_ms: float | None, confidence: float | None = None) -> dict[str, Any]:
        """What best.json and the summary state of an arch: median, interval, P(within budget)."""
        median, spread = self.predictor.predict_with_spread(arch)
        d = prediction_summary(self.uncertainty, median, spread, budget_ms, confidence or self.confidence or DEFAULT_CONFIDENCE)
        d["constrained"] = self.bound()["label"]
        return d
