"""SE-NAS operator scores (Sec. 3.3, Eq. 5-7) and which ops a shrinking stage drops.

Scores are computed from any path accuracy ``P(a)``: a supernet with snapshot-averaged weights
(Eq. 4, ``shrink.py``) or, in the benchmark, a tabular accuracy plus noise. Archs are choice-index
rows (one column per layer), as everywhere in ``hwnas.space``.

- SI (Eq. 5): the mean accuracy of ``n_samples`` archs drawn uniformly among the (budget-feasible)
  archs that contain the op.
- SC (Eq. 6): the variance of SI over the ops of the op's layer: a layer whose ops differ a lot is
  a layer where dropping the weakest is a confident decision.
- S (Eq. 7): normalize(SI) / normalize(SC), with "mean normalization" read as division by the
  mean over the scored ops. (The other textbook reading, (x - mean) / (max - min), makes both
  terms change sign and the ratio meaningless: a strong op in a low-variance layer would score
  below every other op.) An op with low SI in a high-variance layer scores lowest and goes first.

``metric`` "si" (accuracy-based, SI only) and "random" are the paper's Fig. 6 comparisons.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from ...errors import HwnasError
from ...space.space import SearchSpace

METRICS = ("senas", "si", "random")
AccuracyFn = Callable[[np.ndarray], np.ndarray]  # (n, layers) choice indices -> (n,) accuracy
MaskFn = Callable[[np.ndarray], np.ndarray]  # (n, layers) choice indices -> (n,) bool: within the budgets


@dataclass
class OpScores:
    """Per layer, one value per remaining choice (the layer's order)."""

    si: list[np.ndarray]
    sc: list[float]
    score: list[np.ndarray]
    samples: list[np.ndarray]  # feasible archs the SI of each op averages

    def to_dict(self, space: SearchSpace) -> list[dict[str, Any]]:
        return [{"layer": layer.index, "ops": list(layer.choice_ids), "si": _json(si), "sc": _json(sc), "score": _json(s),
                 "samples": n.tolist()}
                for layer, si, sc, s, n in zip(space.layers, self.si, self.sc, self.score, self.samples)]


def _json(x: Any) -> Any:
    arr = np.atleast_1d(np.asarray(x, dtype=float))
    out = [None if not np.isfinite(v) else float(v) for v in arr]
    return out if np.ndim(x) else out[0]


def selection_importance(space: SearchSpace, accuracy: AccuracyFn, n_samples: int, rng: np.random.Generator,
                         feasible: MaskFn | None = None, max_draws: int = 20) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(SI per op, number of feasible sampled archs per op), Eq. 5.

    Archs that break the budgets are not counted (the paper drops archs outside its FLOPs
    constraint); up to ``max_draws`` times ``n_samples`` draws are made to find ``n_samples``
    feasible ones. An op none of whose draws is feasible has SI nan.
    """
    if n_samples < 1:
        raise HwnasError(f"the operator score needs >= 1 sampled arch per op, not {n_samples}")
    si, counts = [], []
    for j, layer in enumerate(space.layers):
        layer_si, layer_n = np.full(len(layer.choices), np.nan), np.zeros(len(layer.choices), dtype=int)
        for i in range(len(layer.choices)):
            rows = _feasible_rows(space, j, i, n_samples, rng, feasible, max_draws)
            layer_n[i] = len(rows)
            if len(rows):
                layer_si[i] = float(np.mean(accuracy(rows)))
        si.append(layer_si)
        counts.append(layer_n)
    return si, counts


def _feasible_rows(space: SearchSpace, j: int, i: int, n: int, rng: np.random.Generator, feasible: MaskFn | None,
                   max_draws: int) -> np.ndarray:
    kept: list[np.ndarray] = []
    have = 0
    for _ in range(max_draws if feasible is not None else 1):
        rows = space.sample_indices(rng, n)
        rows[:, j] = i
        if feasible is not None:
            rows = rows[feasible(rows)]
        kept.append(rows)
        have += len(rows)
        if have >= n:
            break
    return np.concatenate(kept)[:n]


def operator_scores(si: Sequence[np.ndarray], metric: str = "senas", rng: np.random.Generator | None = None) -> tuple[list[float], list[np.ndarray]]:
    """(SC per layer, score per op) from SI (Eq. 6-7).

    Only layers with >= 2 ops are scored (a layer's last op is never dropped) and only ops with
    an SI enter the means; unscored ops get score nan. A layer whose ops all have the same SI
    (SC 0) gives no confident decision: its ops score +inf.
    """
    if metric not in METRICS:
        raise HwnasError(f"unknown operator score {metric!r}; use one of {', '.join(METRICS)}")
    sc = [float(np.nanvar(s)) if len(s) > 1 and np.isfinite(s).sum() > 1 else float("nan") for s in si]
    scored = [np.isfinite(s) & (len(s) > 1) for s in si]
    scores = [np.full(len(s), np.nan) for s in si]
    if not any(m.any() for m in scored):
        return sc, scores
    if metric == "random":
        rng = rng or np.random.default_rng(0)
        for s, m in zip(scores, scored):
            s[m] = rng.random(int(m.sum()))
        return sc, scores
    all_si = np.concatenate([s[m] for s, m in zip(si, scored)])
    all_sc = np.concatenate([np.full(int(m.sum()), c) for c, m in zip(sc, scored)])
    mean_si, mean_sc = float(np.mean(all_si)), float(np.mean(all_sc))
    for s, layer_si, c, m in zip(scores, si, sc, scored):
        norm_si = layer_si[m] / mean_si
        if metric == "si":
            s[m] = norm_si
        else:
            norm_sc = c / mean_sc if mean_sc > 0 else 0.0
            s[m] = norm_si / norm_sc if norm_sc > 0 else np.inf
    return sc, scores


def ops_to_drop(space: SearchSpace, scores: Sequence[np.ndarray], k: int,
                infeasible: Sequence[np.ndarray] | None = None) -> list[tuple[int, str]]:
    """The (layer position, op id) pairs one stage removes: ``k`` of them at most, lowest score first.

    Ops that no arch within the budgets contains go before any scored op (they can never be
    chosen, so the paper's stages would never keep them). Each layer keeps at least one op; an op
    without a score (nan) is dropped only when infeasible.
    """
    if k < 0:
        raise HwnasError(f"--drop must be >= 0, not {k}")
    order: list[tuple[int, float, int, int]] = []
    for j, (layer, s) in enumerate(zip(space.layers, scores)):
        for i in range(len(layer.choices)):
            bad = infeasible is not None and bool(infeasible[j][i])
            if bad:
                order.append((0, 0.0, j, i))
            elif np.isfinite(s[i]) or s[i] == np.inf:
                order.append((1, float(s[i]), j, i))
    order.sort()
    left = [len(layer.choices) for layer in space.layers]
    out: list[tuple[int, str]] = []
    for _, _, j, i in order:
        if len(out) >= k:
            break
        if left[j] > 1:
            left[j] -= 1
            out.append((j, space.layers[j].choices[i].id))
    return out


def infeasible_ops(space: SearchSpace, budgets: Sequence[tuple[Callable[[np.ndarray], np.ndarray], float]]) -> list[np.ndarray]:
    """Per layer, which ops every arch containing them breaks a budget with.

    ``budgets``: (cost of choice-index rows, limit) pairs of costs that add up over layers
    (FLOPs; the latency table's calibrated median). The cheapest arch with the op fixed is
    built per cost, so the answer is exact for each budget on its own.
    """
    out = [np.zeros(len(layer.choices), dtype=bool) for layer in space.layers]
    for cost, limit in budgets:
        ref = np.zeros(space.num_layers, dtype=int)
        base = float(cost(ref[None])[0])
        terms = []
        for j, layer in enumerate(space.layers):
            rows = np.repeat(ref[None], len(layer.choices), axis=0)
            rows[:, j] = np.arange(len(layer.choices))
            terms.append(cost(rows) - base)  # each choice's cost relative to choice 0
        cheapest = sum(float(t.min()) for t in terms)
        for j, t in enumerate(terms):
            out[j] |= base + cheapest - float(t.min()) + t > limit * (1 + 1e-9)
    return out


def drop_ops(space: SearchSpace, drops: Sequence[tuple[int, str]]) -> list[list[str]]:
    """The kept op ids per layer after ``drops``."""
    gone = set(drops)
    return [[o for o in layer.choice_ids if (j, o) not in gone] for j, layer in enumerate(space.layers)]
