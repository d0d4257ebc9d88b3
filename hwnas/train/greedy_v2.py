"""The GreedyNASv2 sampler (Algorithm 1): uniform paths, minus those a learned filter calls weak.

After a uniform warm-up, every ``every`` of the planned iterations the sampler evaluates ``m``
uniform paths on the path-evaluation batch, labels the worst q of them weak (q annealed
0.5 -> 0.99), refits the path filter (positive-unlabelled, ``path_filter``), merges the ops
whose learned embeddings agree (cosine > 0.8; the cheaper op is kept) and measures the
agreement u of the new filter with the previous one on random paths (Eq. 7). Between refreshes
each trained path is drawn uniformly from the allowed paths (merged ops removed, within the
budget) and redrawn while the filter calls it weak. Once u > β the filter is frozen -- no more
paths are evaluated -- and training stops (unless ``early_stop`` is off).

Checkpoint: the JSON state holds the schedule, merges, agreement history and the queue of
accepted paths; the filter's weights go with the tensors (``tensor_state``), so a resumed run
continues bit-for-bit.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from ..errors import HwnasError
from .path_filter import FilterConfig, PathFilter, agreement, merge_ops, q_schedule
from .pool import ChoicePath
from .samplers import SAMPLERS, Evaluate, PathBudget, PathSampler, SamplerStatus

_DRAW = 256  # candidate paths drawn (and scored by the filter) at a time


def op_costs(budget: PathBudget) -> tuple[list[np.ndarray], str]:
    """Per layer, each op's cost for the merge rule: the latency the budget judges paths by
    (``latency.bound``) when the run has a table, else FLOPs; the path cost with only that layer changed."""
    space = budget.space
    model = budget.bound  # the latency the budget judges paths by (latency.bound)
    if model is None and budget.table is not None:
        from ..latency.bound import LatencyModel

        model = LatencyModel(budget.table, space, confidence=budget.confidence)
    n = [len(layer.choices) for layer in space.layers]
    base = np.zeros(len(n), dtype=np.int64)
    out = []
    for j, k in enumerate(n):
        X = np.tile(base, (k, 1))
        X[:, j] = np.arange(k)
        out.append(np.asarray(model.predict_indices(X)[0] if model is not None else space.flops_of_indices(X), dtype=float))
    return out, "latency" if model is not None else "flops"


@SAMPLERS.register("greedy-v2")
class GreedyV2Sampler(PathSampler):
    """GreedyNASv2: filter-rejected uniform sampling with operation merging (see module doc)."""

    name = "greedy-v2"
    status_names = ("q", "pool_size", "u")  # weak-path share and the filter's agreement

    def __init__(self, budget: PathBudget, warmup: float = 0.2, early_stop: bool = True,
                 filter_args: dict[str, Any] | None = None, seed: int = 0) -> None:
        super().__init__(budget)
        if not 0.0 <= warmup < 1.0:
            raise HwnasError(f"warm-up must be a fraction of training in [0, 1) (got {warmup})")
        self.cfg = FilterConfig.from_dict(filter_args)
        self.warmup, self.early_stop, self.seed = warmup, early_stop, int(seed)
        self.n_choices = [len(layer.choices) for layer in budget.space.layers]
        self.filter = PathFilter(self.n_choices, self.cfg, seed=self.seed)
        self.active = [np.ones(n, dtype=bool) for n in self.n_choices]
        self.merges: list[tuple[int, int, int, float]] = []
        self.agreements: list[tuple[int, float]] = []  # (iteration, u) after each refresh but the first
        self.n_refreshes = 0
        self.frozen = False
        self.queue: list[ChoicePath] = []
        self.filter_seconds = 0.0  # fitting and scoring, measured
        self.n_scored = 0
        self.cost_kind = ""

    # ---- schedule -------------------------------------------------------------------------
    @property
    def warmup_iters(self) -> int:
        return int(round(self.warmup * self.total_iters))

    @property
    def refresh_every(self) -> int:
        return max(1, int(round(self.cfg.every * self.total_iters)))

    def q(self, iteration: int) -> float:
        return q_schedule(iteration, self.warmup_iters, self.total_iters, self.cfg)

    def refresh_due(self, iteration: int) -> bool:
        return (not self.frozen and iteration >= self.warmup_iters
                and (iteration - self.warmup_iters) % self.refresh_every == 0)

    # ---- sampling -------------------------------------------------------------------------
    def allowed_mask(self, X: np.ndarray) -> np.ndarray:
        """Rows that use no merged op and are within the budget."""
        X = np.atleast_2d(X)
        ok = np.ones(len(X), dtype=bool)
        for j, act in enumerate(self.active):
            ok &= act[X[:, j]]
        if self.budget.active:
            ok &= self.budget.ok(X)
        return ok

    def sample_allowed(self, rng: np.random.Generator, n: int, max_tries: int = 1_000_000) -> np.ndarray:
        """``n`` paths uniform over the allowed paths (merged ops removed, within budget)."""
        out, got, tried = [], 0, 0
        choices = [np.flatnonzero(a) for a in self.active]
        while got < n:
            if tried >= max_tries:
                raise HwnasError(f"no path within the budget found in {max_tries:,} samples; relax --max-flops/--latency")
            X = np.stack([c[rng.integers(len(c), size=max(_DRAW, n - got))] for c in choices], axis=1)
            tried += len(X)
            X = X[self.budget.ok(X)] if self.budget.active else X
            out.append(X[: n - got])
            got += len(out[-1])
        return np.concatenate(out).astype(np.int64)

    def _draw_accepted(self, rng: np.random.Generator, max_batches: int = 8) -> list[ChoicePath]:
        """Accepted paths (not weak by the filter) from one or more candidate batches."""
        best_x, best_s = None, np.inf
        for _ in range(max_batches):
            X = self.sample_allowed(rng, _DRAW)
            if not self.filter.n_fits:
                return [tuple(int(i) for i in r) for r in X]
            t0 = time.perf_counter()
            s = self.filter.weak_score(X)
            self.filter_seconds += time.perf_counter() - t0
            self.n_scored += len(X)
            keep = X[s <= 0.5]
            if len(keep):
                return [tuple(int(i) for i in r) for r in keep]
            i = int(np.argmin(s))
            if s[i] < best_s:
                best_x, best_s = X[i], float(s[i])
        return [tuple(int(i) for i in best_x)]  # everything looked weak: the least weak seen

    def _next_paths(self, iteration: int, rng: np.random.Generator, evaluate: Evaluate) -> list[ChoicePath]:
        if iteration < self.warmup_iters:
            return [tuple(int(i) for i in self.sample_allowed(rng, 1)[0])]
        if self.refresh_due(iteration):
            self.refresh(iteration, rng, evaluate)
        if not self.queue:
            self.queue = self._draw_accepted(rng)
        return [self.queue.pop(0)]

    # ---- refresh ----------------------------------------------------------------------------
    def refresh(self, iteration: int, rng: np.random.Generator, evaluate: Evaluate) -> None:
        """Evaluate m paths, refit the filter on their worst q, merge ops, measure u."""
        cfg = self.cfg
        cands = self.sample_allowed(rng, cfg.m)
        losses = np.asarray(evaluate([tuple(int(i) for i in r) for r in cands]), dtype=float)
        self.n_evaluated_paths += len(cands)
        q = self.q(iteration)
        n_pos = min(len(cands), max(1, int(round(q * len(cands)))))
        order = np.lexsort((np.arange(len(losses)), -losses))  # highest loss first, ties by index
        positives = cands[order[:n_pos]]
        unlabelled = self.sample_allowed(rng, max(1, int(round(cfg.unlabelled_factor * q * cfg.m))))
        previous = None
        if self.filter.n_fits:
            previous = PathFilter(self.n_choices, cfg)
            previous.load_state_tensors(self.filter.state_tensors())
        t0 = time.perf_counter()
        self.filter.fit(positives, unlabelled, seed=self.seed * 100_003 + self.n_refreshes)
        if previous is not None:
            u = agreement(previous, self.filter, self.sample_allowed(rng, cfg.agreement_paths))
            self.agreements.append((int(iteration), u))
            if u > cfg.beta:
                self.frozen = True
        self.filter_seconds += time.perf_counter() - t0
        self.n_refreshes += 1
        if cfg.merge:
            self.merge()
        self.queue = []

    def merge(self) -> list[tuple[int, int, int, float]]:
        """Apply the merge rule to the current embeddings; returns the new merges."""
        costs, self.cost_kind = op_costs(self.budget)
        sims = [self.filter.similarity(j) for j in range(len(self.n_choices))]
        new = merge_ops(sims, costs, self.active, self.cfg.merge_threshold)
        self.merges.extend(new)
        return new

    def merged_ops(self) -> list[tuple[int, str, str, float]]:
        """(layer, removed op id, kept op id, cosine) of every merge so far."""
        layers = self.budget.space.layers
        return [(j, layers[j].choices[d].id, layers[j].choices[k].id, s) for j, d, k, s in self.merges]

    # ---- stop rule and status ---------------------------------------------------------------
    def scheduled_refreshes(self) -> int:
        """Refreshes the schedule plans over the whole run (one at the end of warm-up, then every
        ``refresh_every`` iterations)."""
        span = self.total_iters - self.warmup_iters
        return -(-span // self.refresh_every) if span > 0 else 0

    def evaluations_saved(self) -> int:
        """Path evaluations the stop rule saved: the m paths of every planned refresh not run
        because u exceeded β (the filter froze; with early stop the training ends there too)."""
        return max(0, self.scheduled_refreshes() - self.n_refreshes) * self.cfg.m if self.frozen else 0

    @property
    def u(self) -> float | None:
        return self.agreements[-1][1] if self.agreements else None

    def should_stop(self, iteration: int) -> str | None:
        if self.early_stop and self.frozen:
            return f"path filter steady: u = {self.u:.3f} > β = {self.cfg.beta}"
        return None

    def status(self, iteration: int) -> SamplerStatus:
        return SamplerStatus(epsilon=self.q(iteration) if iteration >= self.warmup_iters else 0.0, pool_size=0, pi=self.u)

    def report(self) -> dict[str, Any]:
        return {"refreshes": self.n_refreshes, "u": self.u, "agreements": [list(a) for a in self.agreements],
                "frozen": self.frozen, "merged_ops": [list(m) for m in self.merged_ops()], "merge_cost": self.cost_kind,
                "filter_seconds": round(self.filter_seconds, 3), "paths_scored": self.n_scored,
                "evaluated_paths": self.n_evaluated_paths, "evaluations_saved_paths": self.evaluations_saved()}

    # ---- state -----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "kind": self.name, "filter_config": self.cfg.to_dict(),
                "active": [a.tolist() for a in self.active], "merges": [list(m) for m in self.merges],
                "merged_ops": [list(m) for m in self.merged_ops()], "agreements": [list(a) for a in self.agreements],
                "n_refreshes": self.n_refreshes, "frozen": self.frozen, "queue": [list(p) for p in self.queue],
                "filter_fits": self.filter.n_fits, "filter_seconds": self.filter_seconds, "n_scored": self.n_scored,
                "merge_cost": self.cost_kind}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        super().load_state_dict(d)
        if "active" in d:
            self.active = [np.asarray(a, dtype=bool) for a in d["active"]]
        self.merges = [(int(a), int(b), int(c), float(s)) for a, b, c, s in d.get("merges", [])]
        self.agreements = [(int(i), float(u)) for i, u in d.get("agreements", [])]
        self.n_refreshes = int(d.get("n_refreshes", 0))
        self.frozen = bool(d.get("frozen", False))
        self.queue = [tuple(int(i) for i in p) for p in d.get("queue", [])]
        self.filter.n_fits = int(d.get("filter_fits", 0))
        self.filter_seconds = float(d.get("filter_seconds", 0.0))
        self.n_scored = int(d.get("n_scored", 0))
        self.cost_kind = str(d.get("merge_cost", ""))

    def tensor_state(self) -> dict[str, torch.Tensor]:
        return self.filter.state_tensors()

    def load_tensor_state(self, d: dict[str, torch.Tensor]) -> None:
        if d:
            self.filter.load_state_tensors(d)
