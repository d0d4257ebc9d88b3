"""How sure a latency prediction is: its quantiles, interval and the chance it meets a budget.

A median prediction chosen at the edge of a budget goes over whenever the device is a little
slower than when the table was made (a warm phone, a busy host) or the table errs on that arch.
So the search constrains a high quantile of the latency the file will show when timed, with
three independent sources of error combined in log space (latency errors are relative)::

    log L = log median + e_table + e_drift + e_blocks
    e_table  ~ N(mu_t, s_t^2)   the table's validated error: ``hwnas validate --calibrate``'s
                                held-out residuals log(measured / calibrated prediction)
    e_drift  ~ N(0, s_d^2)      the device's speed drift: the spread of log(anchor / reference)
                                of the anchor network's readings while validating (``latency.drift``)
    e_blocks ~ N(0, (spread / median)^2)  the blocks' run-to-run spread (``predictor``), only
                                when the table has no validated residuals: those are errors of
                                whole networks, which already contain the blocks' noise, and a
                                run-to-run spread (8% of the median on the NAS-Bench-Macro host
                                table) is far wider than the spread of a median of thousands of runs

    quantile(q) = median * exp(mu_t + z_q * sqrt(s_t^2 + s_d^2 + (spread / median)^2))

A table without validation statistics and with zero spread gives the median at every quantile.
A validated table's quantile does not depend on the blocks' spread.
The statistics are stored as flat numbers in the table's ``calibration``
(``residual_log_mean``/``_std``/``_n``, ``drift_log_mean``/``_std``/``_n``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Mapping

import numpy as np
from scipy.stats import norm

from ..errors import HwnasError

DEFAULT_CONFIDENCE = 0.9
KEYS = ("residual_log_mean", "residual_log_std", "residual_n", "drift_log_mean", "drift_log_std", "drift_n")


def check_confidence(confidence: float) -> float:
    c = float(confidence)
    if not (0.0 < c < 1.0) or not math.isfinite(c):
        raise HwnasError(f"confidence {confidence} must be between 0 and 1 (exclusive), e.g. 0.9; 0.5 constrains the median")
    return c


def log_stats(log_values: Any) -> tuple[float, float, int]:
    """(mean, sample standard deviation, n) of log ratios; a single value has no spread."""
    v = np.asarray(log_values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return 0.0, 0.0, 0
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0, int(v.size)


def uncertainty_record(measured: Any, predicted: Any, anchor_factors: Any) -> dict[str, float]:
    """What ``hwnas validate --calibrate`` stores in the table: held-out residuals and anchor drift."""
    r_mean, r_std, r_n = log_stats(np.log(np.asarray(measured, float) / np.asarray(predicted, float)))
    f = np.asarray(anchor_factors, float)
    d_mean, d_std, d_n = log_stats(np.log(f[f > 0])) if f.size else (0.0, 0.0, 0)
    return {"residual_log_mean": round(r_mean, 6), "residual_log_std": round(r_std, 6), "residual_n": r_n,
            "drift_log_mean": round(d_mean, 6), "drift_log_std": round(d_std, 6), "drift_n": d_n}


@dataclass(frozen=True)
class LatencyUncertainty:
    """A table's error model (module docstring): quantiles, interval, P(latency <= budget)."""

    residual_log_mean: float = 0.0
    residual_log_std: float = 0.0
    residual_n: int = 0
    drift_log_mean: float = 0.0
    drift_log_std: float = 0.0
    drift_n: int = 0

    @classmethod
    def from_calibration(cls, calibration: Mapping[str, Any] | None) -> "LatencyUncertainty":
        c = calibration or {}
        vals = {}
        for k in KEYS:
            try:
                v = float(c.get(k, 0.0))
            except (TypeError, ValueError):
                v = 0.0
            vals[k] = int(v) if k.endswith("_n") else (v if math.isfinite(v) else 0.0)
        return cls(**vals)

    @property
    def validated(self) -> bool:
        return self.residual_n > 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def log_mean(self) -> float:
        """The shift of the quantiles: the table's held-out bias. The drift's mean is not one: it is
        the device's state while validating (a busy host ran 4x slower than at profiling time),
        which says how much the speed varies (its spread), not where it will be."""
        return self.residual_log_mean

    def log_std(self, median_ms: Any, spread_ms: Any) -> np.ndarray:
        m = np.asarray(median_ms, float)
        rel = np.divide(np.asarray(spread_ms, float), m, out=np.zeros(np.broadcast(m, spread_ms).shape), where=m > 0)
        if self.validated:  # the held-out residuals already hold the blocks' noise (module docstring)
            rel = np.zeros_like(rel)
        return np.sqrt(self.residual_log_std ** 2 + self.drift_log_std ** 2 + rel ** 2)

    def quantile(self, median_ms: Any, spread_ms: Any, q: float) -> np.ndarray:
        """The latency not exceeded with probability ``q`` (arrays or scalars, elementwise)."""
        check_confidence(q)
        return np.asarray(median_ms, float) * np.exp(self.log_mean() + norm.ppf(q) * self.log_std(median_ms, spread_ms))

    def interval(self, median_ms: Any, spread_ms: Any, confidence: float) -> tuple[np.ndarray, np.ndarray]:
        """The central interval holding the latency with probability ``confidence``."""
        c = check_confidence(confidence)
        return self.quantile(median_ms, spread_ms, (1 - c) / 2), self.quantile(median_ms, spread_ms, (1 + c) / 2)

    def p_within(self, median_ms: Any, spread_ms: Any, budget_ms: float) -> np.ndarray:
        """Probability that the latency is at most ``budget_ms`` (0 or 1 without any spread)."""
        m = np.asarray(median_ms, float)
        s = self.log_std(m, spread_ms)
        gap = math.log(budget_ms) - np.log(m) - self.log_mean()
        safe = np.where(s > 0, s, 1.0)
        return np.where(s > 0, norm.cdf(gap / safe), (gap >= 0).astype(float))


def prediction_summary(unc: LatencyUncertainty, median_ms: float, spread_ms: float, budget_ms: float | None,
                       confidence: float = DEFAULT_CONFIDENCE) -> dict[str, Any]:
    """What best.json, the search summary and the export sidecar state of a prediction: the
    median, the central interval at ``confidence`` and the probability of meeting the budget."""
    lo, hi = unc.interval(median_ms, spread_ms, confidence)
    d: dict[str, Any] = {"median_ms": round(float(median_ms), 6), "spread_ms": round(float(spread_ms), 6),
                         "interval_ms": [round(float(lo), 6), round(float(hi), 6)], "interval_confidence": confidence,
                         "error_model": describe(unc)}
    if budget_ms is not None:
        d["p_within_budget"] = round(float(unc.p_within(median_ms, spread_ms, budget_ms)), 4)
    return d


def describe(unc: LatencyUncertainty) -> str:
    """One line on what the quantile is made of (for summaries and the README)."""
    if not unc.validated and unc.drift_n == 0:
        return "blocks' spread only (the table has no `hwnas validate --calibrate` statistics)"
    return (f"table error {100 * unc.residual_log_std:.1f}% (sd of {unc.residual_n} held-out residuals, bias {100 * unc.residual_log_mean:+.1f}%), "
            f"device drift {100 * unc.drift_log_std:.1f}% (sd of {unc.drift_n} anchor readings)")
