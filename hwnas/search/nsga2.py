"""NSGA-II (pymoo) over the integer encoding, as GreedyNAS searches: population 50 x 20 generations.

The parts are pymoo operators, each with one job, assembled by pymoo's NSGA-II:

- ``PoolSampling``: the initial population is the supernet's candidate pool (its best paths
  that meet the budgets, best first), topped up with random feasible archs when the pool is
  short or absent (GreedyNAS Sec. 3.3 / Fig. 3).
- ``LayerwiseCrossover``: uniform crossover of two parents' per-layer choices.
- ``LayerwiseMutation``: each layer redrawn with probability ``p`` among *its own* choices
  (layers may have different choice counts, e.g. no identity in a stage's first layer).
- ``BudgetRepair``: a child over budget is mutated again (then replaced by a random feasible
  arch) -- GreedyNAS "ditches" constraint-violating paths, so evaluations are never spent on them.

Budgets are pymoo inequality constraints (G <= 0, relative excess) as well, so a stray
infeasible arch always loses to a feasible one. Single-objective mode minimises -score (the
``reward.Objective``); multi-objective mode (``multi_objective=True``) minimises
(-accuracy, latency) -- or FLOPs without a table -- and its result carries the Pareto front.

The loop is pymoo's ask/tell so the number of evaluated archs never exceeds the budget and
every evaluation goes through ``SearchProblem.evaluate`` (cache, history, scoring).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.core.crossover import Crossover
from pymoo.core.evaluator import Evaluator as PymooEvaluator
from pymoo.core.mutation import Mutation
from pymoo.core.problem import Problem
from pymoo.core.repair import Repair
from pymoo.core.sampling import Sampling
from pymoo.problems.static import StaticProblem

from .base import SearchProblem, Searcher, register_searcher

BIG = 1e12  # objective value of an arch that was not evaluated (over budget or out of evaluations)


class ArchSpace(Problem):
    """The pymoo view of a ``SearchProblem``: bounds per layer, objectives and constraint count."""

    def __init__(self, problem: SearchProblem, multi_objective: bool, rng: np.random.Generator) -> None:
        self.search = problem
        self.rng = rng
        self.multi_objective = multi_objective
        n_constr = problem.constraint_matrix(problem.encoding.sample(rng, 1)).shape[1]
        super().__init__(n_var=problem.encoding.n_var, n_obj=2 if multi_objective else 1, n_ieq_constr=n_constr,
                         xl=np.zeros(problem.encoding.n_var), xu=(problem.encoding.n_choices - 1).astype(float), vtype=int)


class PoolSampling(Sampling):
    """Top of the candidate pool that meets the budgets, then random feasible archs."""

    def _do(self, problem: ArchSpace, n_samples: int, *args: Any, random_state=None, **kwargs: Any) -> np.ndarray:
        sp = problem.search
        rows: list[np.ndarray] = []
        seen: set[tuple[int, ...]] = set()
        if sp.initial_pool:
            X = np.array([sp.encoding.encode(a) for a in sp.initial_pool], dtype=np.int64)
            for row in X[sp.feasible_mask(X)]:
                t = tuple(int(v) for v in row)
                if t not in seen:
                    seen.add(t)
                    rows.append(row)
                if len(rows) >= n_samples:
                    break
        problem.n_from_pool = len(rows)
        for _ in range(20):  # distinct random feasible archs (fewer if the budget admits fewer)
            if len(rows) >= n_samples:
                break
            for row in sp.sample_feasible(random_state, n_samples - len(rows)):
                t = tuple(int(v) for v in row)
                if t not in seen:
                    seen.add(t)
                    rows.append(row)
        return np.array(rows[:n_samples], dtype=np.int64)


class LayerwiseCrossover(Crossover):
    """Uniform crossover: each layer's choice comes from either parent with equal chance."""

    def __init__(self, prob: float = 0.9) -> None:
        super().__init__(n_parents=2, n_offsprings=2, prob=prob)

    def _do(self, problem: ArchSpace, X: np.ndarray, *args: Any, random_state=None, **kwargs: Any) -> np.ndarray:
        _, n_matings, n_var = X.shape
        swap = random_state.random((n_matings, n_var)) < 0.5
        a, b = X[0], X[1]
        return np.stack([np.where(swap, b, a), np.where(swap, a, b)]).astype(np.int64)


class LayerwiseMutation(Mutation):
    """Each layer redrawn with probability ``prob_layer`` to a *different* one of its own choices."""

    def __init__(self, prob_layer: float = 0.1) -> None:
        super().__init__(prob=1.0)
        self.prob_layer = float(prob_layer)

    def _do(self, problem: ArchSpace, X: np.ndarray, *args: Any, random_state=None, **kwargs: Any) -> np.ndarray:
        return mutate(problem.search, np.asarray(X, dtype=np.int64), self.prob_layer, random_state)


def mutate(problem: SearchProblem, X: np.ndarray, prob_layer: float, rng: np.random.Generator) -> np.ndarray:
    n = problem.encoding.n_choices
    X = X.copy()
    hit = rng.random(X.shape) < prob_layer
    # a shift of 1..n-1 modulo n is a uniform draw among the other choices of that layer
    shift = 1 + np.floor(rng.random(X.shape) * (n - 1)).astype(np.int64)
    X[hit] = ((X + shift) % n)[hit]
    return X


class BudgetRepair(Repair):
    """Children over budget: mutate them again a few times, then replace by random feasible archs."""

    def __init__(self, tries: int = 10, prob_layer: float = 0.25) -> None:
        super().__init__()
        self.tries, self.prob_layer = tries, prob_layer

    def _do(self, problem: ArchSpace, X: np.ndarray, **kwargs: Any) -> np.ndarray:
        sp, rng = problem.search, problem.rng
        X = np.asarray(X, dtype=np.int64).copy()
        bad = ~sp.feasible_mask(X)
        for _ in range(self.tries):
            if not bad.any():
                return X
            X[bad] = mutate(sp, X[bad], self.prob_layer, rng)
            bad = ~sp.feasible_mask(X)
        if bad.any():
            X[bad] = sp.sample_feasible(rng, int(bad.sum()))
        return X


@register_searcher("nsga2")
class NSGA2Search(Searcher):
    """GreedyNAS's search: NSGA-II under the budgets, initialised from the candidate pool."""

    name = "nsga2"
    default_evaluations = 1000
    options = ("population", "generations", "mutation_prob", "crossover_prob", "multi_objective")

    def __init__(self, population: int = 50, generations: int = 20, mutation_prob: float = 0.1,
                 crossover_prob: float = 0.9, multi_objective: bool = False) -> None:
        self.population, self.generations = int(population), int(generations)
        self.mutation_prob, self.crossover_prob = float(mutation_prob), float(crossover_prob)
        self.multi_objective = bool(multi_objective)
        self.default_evaluations = self.population * self.generations

    def _objectives(self, sp: SearchProblem, X: np.ndarray, limit: int) -> tuple[np.ndarray, np.ndarray, int]:
        """F and G of a batch; evaluates feasible rows only, and at most ``limit`` new archs."""
        G = sp.constraint_matrix(X)
        ok = np.all(G <= 0, axis=1) if G.shape[1] else np.ones(len(X), dtype=bool)
        archs = sp.encoding.decode_many(X)
        F = np.full((len(X), 2 if self.multi_objective else 1), BIG)
        new = 0
        scored, asked = [], set()
        for i in np.flatnonzero(ok):
            if sp.record_of(archs[i]) is None and archs[i] not in asked:
                if new >= limit:
                    continue
                new += 1
                asked.add(archs[i])
            scored.append(i)
        # the generation's new archs in one call: the evaluator shares work (and torchrun ranks) over them
        for i, rec in zip(scored, sp.evaluate([archs[i] for i in scored])):
            if self.multi_objective:
                F[i, 0] = -rec.accuracy
                F[i, 1] = rec.latency_ms if rec.latency_ms is not None else rec.flops / 1e6
            else:
                F[i, 0] = -rec.score if np.isfinite(rec.score) else BIG
        return F, G, new

    def _run(self, problem: SearchProblem, max_evaluations: int, rng: np.random.Generator) -> dict[str, Any]:
        space = ArchSpace(problem, self.multi_objective, rng)
        # StaticProblem deep-copies what it wraps: give it a bare problem of the same shape
        shape = Problem(n_var=space.n_var, n_obj=space.n_obj, n_ieq_constr=space.n_ieq_constr, xl=space.xl, xu=space.xu, vtype=int)
        algorithm = NSGA2(pop_size=self.population, sampling=PoolSampling(), crossover=LayerwiseCrossover(self.crossover_prob),
                          mutation=LayerwiseMutation(self.mutation_prob), repair=BudgetRepair(), eliminate_duplicates=True)
        algorithm.setup(space, termination=("n_gen", self.generations), seed=int(rng.integers(2**31 - 1)), verbose=False)
        generations = 0
        while algorithm.has_next() and not self.terminated(problem):
            pop = algorithm.ask()
            X = np.asarray(pop.get("X"), dtype=np.int64)
            F, G, _ = self._objectives(problem, X, max_evaluations - problem.n_evaluations)
            kw = {"F": F}
            if G.shape[1]:
                kw["G"] = G
            PymooEvaluator().eval(StaticProblem(shape, **kw), pop)
            algorithm.tell(infills=pop)
            generations += 1
        final = algorithm.pop.get("X") if algorithm.pop is not None else np.zeros((0, space.n_var))
        return {"generations": generations, "population": self.population, "from_pool": getattr(space, "n_from_pool", 0),
                "multi_objective": self.multi_objective,
                "final_population": [problem.encoding.decode(r).to_dict()["ops"] for r in np.asarray(final, dtype=np.int64)]}
