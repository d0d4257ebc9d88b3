"""Path samplers for single-path supernet training: uniform (SPOS) and GreedyNAS.

A sampler is one part with one interface, assembled by the trainer's loop (pymoo style):
``next_paths(iteration, rng, evaluate) -> list of paths``; the trainer trains one batch per
returned path. ``evaluate(paths) -> losses`` is supplied by the trainer: it runs the paths on
the fixed path-evaluation batch in eval mode without grad (and shares the work across ranks).

Paths are tuples of per-layer choice indices (``SearchSpace.choice_indices``). A
``PathBudget`` restricts sampling to paths under a FLOPs and/or latency budget, judged by the
search's bound and test (``hwnas.latency.bound``), so training and search agree on what fits.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..errors import HwnasError
from ..latency.bound import LatencyModel, within
from ..latency.confidence import DEFAULT_CONFIDENCE
from ..latency.predictor import LatencyPredictor
from ..registry import Registry
from ..space.space import SearchSpace
from .pool import CandidatePool, ChoicePath

Evaluate = Callable[[list[ChoicePath]], list[float]]


# ---- budget -----------------------------------------------------------------------------------
class PathBudget:
    """Which paths may be sampled: FLOPs <= ``max_flops`` and latency <= ``max_latency_ms``, judged
    by the search's own bound and test (``latency.bound``): with ``confidence`` c the latency a
    path stays under with probability c (the search's default 0.9), so the supernet trains the
    paths the search can return."""

    def __init__(self, space: SearchSpace, max_flops: int | None = None, table: Any = None,
                 max_latency_ms: float | None = None, confidence: float = DEFAULT_CONFIDENCE) -> None:
        self.space, self.max_flops, self.table, self.max_latency_ms = space, max_flops, table, max_latency_ms
        self.confidence = confidence
        self.predictor: LatencyPredictor | None = None
        self.bound: LatencyModel | None = None
        if max_latency_ms is not None:
            if table is None:
                raise HwnasError("a latency budget needs a latency table; pass --table FILE (build one with `hwnas profile`)")
            self.bound = LatencyModel(table, space, confidence=confidence)
            self.predictor = self.bound.predictor
        if max_flops is not None:
            lo = space.flops_range()[0]
            if max_flops < lo:
                raise HwnasError(f"FLOPs budget {max_flops:,} is below the smallest path of {space.name!r} ({lo:,}); raise it")
        if self.bound is not None and self.min_latency() > max_latency_ms:
            raise HwnasError(f"latency budget {max_latency_ms} ms is below the fastest path of {space.name!r} "
                             f"({self.min_latency():.2f} ms by the table at confidence {confidence:g}); raise it")

    @property
    def active(self) -> bool:
        return self.max_flops is not None or self.max_latency_ms is not None

    def latency_of(self, idx: np.ndarray) -> np.ndarray:
        """The latency (ms) each path is judged by: the search's bound at ``confidence``."""
        assert self.bound is not None
        return self.bound.predict_indices(np.atleast_2d(idx))[0]

    def min_latency(self) -> float:
        assert self.bound is not None
        return self.bound.range()[0]

    def ok(self, idx: np.ndarray) -> np.ndarray:
        idx = np.atleast_2d(idx)
        mask = np.ones(idx.shape[0], dtype=bool)
        if self.max_flops is not None:
            mask &= within(self.space.flops_of_indices(idx), self.max_flops)
        if self.bound is not None:
            mask &= within(self.latency_of(idx), self.max_latency_ms)
        return mask

    def sample_uniform(self, rng: np.random.Generator, n: int = 1, max_tries: int = 1_000_000) -> list[ChoicePath]:
        """``n`` paths uniform over the paths within budget (rejection sampling)."""
        out: list[ChoicePath] = []
        tried = 0
        while len(out) < n:
            if tried >= max_tries:
                raise HwnasError(f"no path within the budget found in {max_tries:,} samples; relax --max-flops/--latency")
            batch = self.space.sample_indices(rng, max(n - len(out), 1) if not self.active else 256)
            tried += len(batch)
            keep = batch[self.ok(batch)] if self.active else batch
            out.extend(tuple(int(i) for i in row) for row in keep[: n - len(out)])
        return out

    def describe(self) -> str:
        parts = []
        if self.max_flops is not None:
            parts.append(f"FLOPs <= {self.max_flops / 1e6:.1f}M")
        if self.max_latency_ms is not None:
            parts.append(f"latency <= {self.max_latency_ms} ms ({self.bound.bound()['label'] if self.bound else 'no table'})")
        return ", ".join(parts) or "no budget"


# ---- samplers ---------------------------------------------------------------------------------
@dataclass
class SamplerStatus:
    epsilon: float = 0.0
    pool_size: int = 0
    pi: float | None = None


class PathSampler(ABC):
    """Decides which paths the next iterations train."""

    name = "base"
    # What the three figures of ``status()`` are, as metrics.csv / TensorBoard name them.
    status_names: tuple[str, str, str] = ("epsilon", "pool_size", "pi")

    def __init__(self, budget: PathBudget) -> None:
        self.budget = budget
        self.total_iters = 1
        self.n_evaluated_paths = 0  # paths run on the evaluation batch so far

    def setup(self, total_iters: int) -> None:
        self.total_iters = max(int(total_iters), 1)

    def next_paths(self, iteration: int, rng: np.random.Generator, evaluate: Evaluate) -> list[ChoicePath]:
        paths = self._next_paths(iteration, rng, evaluate)
        if not paths:
            raise RuntimeError(f"sampler {self.name} returned no path")
        return paths

    @abstractmethod
    def _next_paths(self, iteration: int, rng: np.random.Generator, evaluate: Evaluate) -> list[ChoicePath]: ...

    def should_stop(self, iteration: int) -> str | None:
        """A reason to stop training early, or None."""
        return None

    def status(self, iteration: int) -> SamplerStatus:
        return SamplerStatus()

    def state_dict(self) -> dict[str, Any]:
        return {"n_evaluated_paths": self.n_evaluated_paths}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        self.n_evaluated_paths = int(d.get("n_evaluated_paths", 0))

    def pool_items(self) -> list[tuple[ChoicePath, float]]:
        return []

    def report(self) -> dict[str, Any]:
        """What the run summary shows of this sampler beyond the pool (empty for most)."""
        return {}

    def tensor_state(self) -> dict[str, Any]:
        """Tensors the checkpoint keeps beside the JSON state (a learned path filter's weights)."""
        return {}

    def load_tensor_state(self, d: dict[str, Any]) -> None:
        pass

    def pool_state(self) -> dict[str, Any]:
        return {"size": 0, "n_updates": 0, "entries": []}


SAMPLERS: Registry[PathSampler] = Registry("path sampler")


@SAMPLERS.register("uniform")
class UniformSampler(PathSampler):
    """Single-path one-shot (SPOS): one path per iteration, uniform over the (budgeted) space."""

    name = "uniform"

    def _next_paths(self, iteration: int, rng: np.random.Generator, evaluate: Evaluate) -> list[ChoicePath]:
        return self.budget.sample_uniform(rng, 1)


@SAMPLERS.register("greedy")
class GreedySampler(PathSampler):
    """GreedyNAS (Algorithms 1-2): multi-path sampling with rejection plus a candidate pool.

    After ``warmup`` (a fraction of the planned iterations) of plain uniform training, each
    round samples ``m`` paths from (1-ε)·U(A) + ε·U(P), ranks them by loss on the evaluation
    batch, keeps the top ``k`` (trained one batch each) and offers them to the pool. ε grows
    linearly from 0 to ``eps_max`` over ``anneal`` (a fraction of the planned iterations)
    after the warm-up. Training may stop once the pool is full and its update frequency π
    over ``pi_window`` iterations (default: the pool size) is <= ``alpha``.
    """

    name = "greedy"

    def __init__(self, budget: PathBudget, m: int = 10, k: int = 5, pool_size: int = 1000, eps_max: float = 0.8,
                 warmup: float = 0.2, anneal: float = 0.5, alpha: float = 0.08, pi_window: int | None = None,
                 early_stop: bool = True) -> None:
        super().__init__(budget)
        if not 1 <= k <= m:
            raise HwnasError(f"GreedyNAS needs 1 <= k <= m (got m={m}, k={k}); e.g. m=10, k=5")
        if not 0.0 <= eps_max <= 1.0:
            raise HwnasError(f"ε must lie in [0, 1] (got {eps_max})")
        if not 0.0 <= warmup < 1.0 or not 0.0 < anneal <= 1.0:
            raise HwnasError(f"warm-up must be in [0, 1) and anneal in (0, 1] as fractions of training (got {warmup}, {anneal})")
        self.m, self.k, self.eps_max, self.warmup, self.anneal = m, k, eps_max, warmup, anneal
        self.alpha, self.early_stop = alpha, early_stop
        self.pi_window = pi_window or pool_size
        self.pool = CandidatePool(pool_size)
        self.n_rounds = 0

    @property
    def warmup_iters(self) -> int:
        return int(round(self.warmup * self.total_iters))

    def epsilon(self, iteration: int) -> float:
        if iteration < self.warmup_iters:
            return 0.0
        span = max(self.anneal * self.total_iters, 1.0)
        return self.eps_max * min(1.0, (iteration - self.warmup_iters) / span)

    def _sample_candidates(self, rng: np.random.Generator, eps: float) -> list[ChoicePath]:
        out: list[ChoicePath] = []
        for _ in range(self.m):
            if len(self.pool) and rng.random() < eps:
                out.append(self.pool.sample(rng))
            else:
                out.extend(self.budget.sample_uniform(rng, 1))
        return out

    def _next_paths(self, iteration: int, rng: np.random.Generator, evaluate: Evaluate) -> list[ChoicePath]:
        if iteration < self.warmup_iters:
            return self.budget.sample_uniform(rng, 1)
        cands = self._sample_candidates(rng, self.epsilon(iteration))
        losses = evaluate(cands)
        self.n_evaluated_paths += len(cands)
        self.n_rounds += 1
        order = sorted(range(len(cands)), key=lambda i: (losses[i], i))[: self.k]
        kept = [cands[i] for i in order]
        for i in order:
            self.pool.update(cands[i], losses[i], iteration)
        return kept

    def pi(self, iteration: int) -> float | None:
        if iteration < self.warmup_iters + self.pi_window or not self.pool.full:
            return None
        return self.pool.update_frequency(iteration, self.pi_window)

    def should_stop(self, iteration: int) -> str | None:
        pi = self.pi(iteration)
        if self.early_stop and pi is not None and pi <= self.alpha:
            return f"candidate pool steady: π = {pi:.3f} <= α = {self.alpha}"
        return None

    def status(self, iteration: int) -> SamplerStatus:
        pi = self.pi(iteration)
        if pi is None and len(self.pool) and iteration >= self.warmup_iters:
            pi = self.pool.update_frequency(iteration, self.pi_window)
        return SamplerStatus(self.epsilon(iteration), len(self.pool), pi)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "n_rounds": self.n_rounds}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        super().load_state_dict(d)
        self.n_rounds = int(d.get("n_rounds", 0))

    def pool_items(self) -> list[tuple[ChoicePath, float]]:
        return self.pool.best()

    def pool_state(self) -> dict[str, Any]:
        return self.pool.state_dict()

    def load_pool(self, d: dict[str, Any]) -> None:
        self.pool = CandidatePool.from_state(d)


def create_sampler(name: str, budget: PathBudget, **kwargs: Any) -> PathSampler:
    """``uniform``, ``greedy`` (kwargs: m, k, pool_size, eps_max, warmup, anneal, alpha, pi_window)
    or ``greedy-v2`` (kwargs: warmup, early_stop, filter_args, seed)."""
    from . import greedy_v2  # noqa: F401  (registers greedy-v2)

    if name == "uniform":
        return SAMPLERS.create(name, budget=budget)
    return SAMPLERS.create(name, budget=budget, **kwargs)
