"""The one place that turns (accuracy, latency, budget) into a score.

The hard objective scores an arch by its accuracy; its budget is a constraint, judged by
``budgets.Constraints`` (an arch over it scores -inf there). FNAS's MnasNet reward comes
from here, so there is exactly one implementation of the MnasNet formula R = ACC x (LAT / T)^w (Tan et al., CVPR 2019):
w = alpha when LAT <= T, beta otherwise. The soft variant is alpha = beta = -0.07; the hard
variant is alpha = 0, beta = -1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MNAS_W = -0.07


def mnas_reward(acc, lat, target: float, alpha: float = MNAS_W, beta: float = MNAS_W):
    """R = ACC * (LAT/T)^w, vectorized over numpy arrays; R == ACC exactly at LAT == T."""
    acc = np.asarray(acc, dtype=float)
    ratio = np.asarray(lat, dtype=float) / float(target)
    w = np.where(ratio <= 1.0, alpha, beta)
    out = acc * np.power(ratio, w)
    return float(out) if out.ndim == 0 else out


@dataclass(frozen=True)
class Objective:
    """How a search scores a feasible arch: ``hard`` (its accuracy) or ``mnas``/``mnas-hard`` (MnasNet reward)."""

    kind: str = "hard"
    target: float | None = None  # latency budget T in ms (None: no latency term)
    alpha: float = MNAS_W
    beta: float = MNAS_W

    def __post_init__(self) -> None:
        if self.kind not in ("hard", "mnas", "mnas-hard"):
            raise ValueError(f"unknown objective {self.kind!r}; use hard, mnas or mnas-hard")

    def score(self, acc, lat=None):
        if self.target is None or lat is None:
            return acc
        if self.kind == "hard":  # the budget is a constraint (budgets.Constraints), not part of the score
            return acc
        if self.kind == "mnas-hard":
            return mnas_reward(acc, lat, self.target, 0.0, -1.0)
        return mnas_reward(acc, lat, self.target, self.alpha, self.beta)
