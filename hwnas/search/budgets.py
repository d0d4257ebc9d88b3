"""The budgets of a search and the one object that judges archs against them.

``Constraints`` is owned by the ``SearchProblem``; every searcher (NSGA-II, evolution, random,
FNAS) asks it, never the budgets directly, whether an arch may be evaluated and how it scores:

- vectorized view over an (n, layers) index matrix: ``matrix`` (pymoo's G, relative excess,
  <= 0 satisfied) and ``feasible_mask`` -- checking thousands of candidates is a gather and a sum;
- scalar view for one arch: ``costs``, ``violations`` (every budget exceeded, soft latency
  included) and ``judge`` (score and feasibility of an evaluated arch).

FLOPs and params budgets are always hard. The latency budget is hard under the ``hard``
objective; under the MnasNet reward (``mnas``, ``mnas-hard``) it is the reward's target, so
an arch over it stays eligible with a lower score -- the one case where the objective says a
budget may be exceeded. A searcher whose policy needs a reward for every arch it proposes
(RL) gives an arch over a hard budget ``INFEASIBLE_REWARD`` without evaluating it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..latency.bound import excess
from ..space.arch import Arch
from ..space.space import SearchSpace
from .encoding import IntegerEncoding
from .reward import Objective

# A latency predictor: arch -> (predicted ms used for the constraint, uncertainty in ms).
LatencyFn = Callable[[Arch], tuple[float, float]]

# The reward of an arch proposed over a hard budget (never evaluated): that of a net with 0% accuracy.
INFEASIBLE_REWARD = 0.0


@dataclass(frozen=True)
class Budgets:
    """Hard limits of the search; ``None`` means no limit on that quantity."""

    latency_ms: float | None = None
    flops: int | None = None
    params: int | None = None

    def describe(self) -> str:
        parts = []
        if self.latency_ms is not None:
            parts.append(f"latency <= {self.latency_ms:g} ms")
        if self.flops is not None:
            parts.append(f"FLOPs <= {self.flops / 1e6:g}M")
        if self.params is not None:
            parts.append(f"params <= {self.params / 1e6:g}M")
        return ", ".join(parts) or "no budget"

    def to_dict(self) -> dict[str, Any]:
        return {"latency_ms": self.latency_ms, "flops": self.flops, "params": self.params}


class Constraints:
    """Feasibility and score of archs under a problem's budgets, latency predictor and objective."""

    def __init__(self, space: SearchSpace, budgets: Budgets | None = None, latency: LatencyFn | None = None,
                 objective: Objective | None = None, encoding: IntegerEncoding | None = None, admission: Any = None) -> None:
        self.space, self.latency = space, latency
        # Paths the supernet rules out (a GreedyNASv2 filter's weak paths and merged ops):
        # an object with ``rejected_mask(X) -> bool array``; a rejected arch is infeasible.
        self.admission = admission
        self.budgets = budgets or Budgets()
        self.objective = objective or Objective("hard", self.budgets.latency_ms)
        self.latency_is_hard = self.objective.kind == "hard"
        self.encoding = encoding or IntegerEncoding(space)
        self._cost_cache: dict[Arch, tuple[float | None, float | None, int, int]] = {}

    def for_objective(self, objective: Objective) -> "Constraints":
        """The same budgets and predictor judged under another objective (an RL searcher's reward:
        under a MnasNet reward the latency budget is soft). Shares the cost cache."""
        other = Constraints(self.space, self.budgets, self.latency, objective, self.encoding, self.admission)
        other._cost_cache = self._cost_cache
        return other

    # ---- the budgets, once, for scalars and arrays -----------------------------------------
    def _excess(self, latency: Any, flops: Any, params: Any, soft: bool) -> list[tuple[str, np.ndarray]]:
        """(budget, relative excess) per active budget; the latency one only when hard, or ``soft``."""
        b = self.budgets
        cols = []
        if b.latency_ms is not None and latency is not None and (soft or self.latency_is_hard):
            cols.append(("latency", excess(latency, b.latency_ms)))
        if b.flops is not None:
            cols.append(("flops", excess(flops, b.flops)))
        if b.params is not None:
            cols.append(("params", excess(params, b.params)))
        return cols

    # ---- vectorized view -------------------------------------------------------------------
    def latency_of_indices(self, X: np.ndarray) -> np.ndarray | None:
        """Predicted latency of each row (None without a predictor)."""
        if self.latency is None:
            return None
        X = np.atleast_2d(np.asarray(X, dtype=np.int64))
        fast = getattr(self.latency, "predict_indices", None)
        if fast is not None:
            return np.asarray(fast(X)[0], dtype=float)
        return np.array([self.costs(a)[0] for a in self.encoding.decode_many(X)], dtype=float)

    def matrix(self, X: np.ndarray) -> np.ndarray:
        """(n, hard budgets) relative excess, pymoo's G (<= 0 is satisfied)."""
        X = np.atleast_2d(np.asarray(X, dtype=np.int64))
        flops, params = self.encoding.flops_params(X)
        lat = self.latency_of_indices(X) if self.latency_is_hard and self.budgets.latency_ms is not None else None
        cols = [c for _, c in self._excess(lat, flops, params, soft=False)]
        if self.admission is not None:
            cols.append(np.where(self.admission.rejected_mask(X), 1.0, -1.0))
        return np.stack(cols, axis=1) if cols else np.zeros((X.shape[0], 0))

    def feasible_mask(self, X: np.ndarray) -> np.ndarray:
        """Rows meeting every hard budget: the only archs a searcher may spend an evaluation on."""
        G = self.matrix(X)
        return np.all(G <= 0, axis=1) if G.shape[1] else np.ones(G.shape[0], dtype=bool)

    # ---- scalar view -----------------------------------------------------------------------
    def costs(self, arch: Arch) -> tuple[float | None, float | None, int, int]:
        """(latency ms, latency uncertainty, FLOPs, params): analytic and table-predicted, cached."""
        c = self._cost_cache.get(arch)
        if c is None:
            flops, params = self.space.flops_params(arch)
            lat, std = self.latency(arch) if self.latency is not None else (None, None)
            c = (None if lat is None else float(lat), None if std is None else float(std), int(flops), int(params))
            self._cost_cache[arch] = c
        return c

    def violations(self, arch: Arch) -> dict[str, float]:
        """Every budget the arch exceeds (relative excess > 0), a soft latency target included."""
        lat, _, flops, params = self.costs(arch)
        return {k: float(v) for k, v in self._excess(lat, flops, params, soft=True) if v > 0}

    def judge(self, arch: Arch, accuracy: float) -> tuple[float, bool, dict[str, float]]:
        """(score, feasible, violations) of an evaluated arch: -inf over a hard budget, else the objective's score."""
        viol = self.violations(arch)
        if self.admission is not None and self.admission.rejected_mask(self.encoding.encode(arch)[None])[0]:
            viol["path filter"] = 1.0
        hard = {k: v for k, v in viol.items() if k != "latency" or self.latency_is_hard}
        lat = self.costs(arch)[0]
        if hard:
            score = -math.inf
        elif lat is not None:
            score = float(self.objective.score(accuracy, lat))
        else:
            score = float(accuracy)
        return score, not hard, viol
