"""Baselines the NSGA-II search is judged against.

- ``random``: uniformly random archs among those meeting the budgets (checking a budget is a
  table lookup, so only feasible archs are evaluated -- the same rule NSGA-II plays by).
- ``evolution``: SPOS-style single-objective evolution (top-k parents, uniform crossover,
  per-layer mutation, infeasible children redrawn) with a random feasible initial population,
  i.e. evolution *without* the candidate-pool initialisation GreedyNAS adds.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import SearchProblem, Searcher, register_searcher


@register_searcher("random")
class RandomSearch(Searcher):
    name = "random"
    default_evaluations = 1000
    options = ("batch_size",)

    def __init__(self, batch_size: int = 50) -> None:
        self.batch_size = int(batch_size)

    def _run(self, problem: SearchProblem, max_evaluations: int, rng: np.random.Generator) -> dict[str, Any]:
        stale = 0
        while not self.terminated(problem):
            n = min(self.batch_size, max_evaluations - problem.n_evaluations)
            before = problem.n_evaluations
            problem.evaluate(problem.encoding.decode_many(problem.sample_feasible(rng, n)))
            stale = stale + 1 if problem.n_evaluations == before else 0
            if stale >= 20:  # every feasible arch has been evaluated already
                break
        return {}


@register_searcher("evolution")
class Evolution(Searcher):
    name = "evolution"
    default_evaluations = 1000
    options = ("population", "parents", "mutation_prob", "crossover_share")

    def __init__(self, population: int = 50, parents: int = 10, mutation_prob: float = 0.1,
                 crossover_share: float = 0.5) -> None:
        self.population = int(population)
        self.parents = int(parents)
        self.mutation_prob = float(mutation_prob)
        self.crossover_share = float(crossover_share)

    def _children(self, problem: SearchProblem, parents: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
        enc = problem.encoding
        out: list[np.ndarray] = []
        seen = {tuple(r) for r in parents}
        for _ in range(200):
            k = max(n, 16)
            a = parents[rng.integers(0, len(parents), size=k)]
            b = parents[rng.integers(0, len(parents), size=k)]
            cross = rng.random(k) < self.crossover_share
            mask = rng.random(a.shape) < 0.5
            child = np.where(cross[:, None] & mask, b, a)
            mut = rng.random(child.shape) < self.mutation_prob
            child = np.where(mut, enc.sample(rng, k), child)
            child = child[problem.feasible_mask(child)]
            for row in child:
                t = tuple(row)
                if t not in seen:
                    seen.add(t)
                    out.append(row)
            if len(out) >= n:
                break
        if len(out) < n:  # the parents' neighbourhood is exhausted: fill with random feasible archs
            out.extend(problem.sample_feasible(rng, n - len(out)))
        return np.array(out[:n], dtype=np.int64)

    def _run(self, problem: SearchProblem, max_evaluations: int, rng: np.random.Generator) -> dict[str, Any]:
        enc = problem.encoding
        pop = problem.sample_feasible(rng, min(self.population, max_evaluations))
        recs = problem.evaluate(enc.decode_many(pop))
        generations = 1
        stale = 0
        while not self.terminated(problem):
            order = np.argsort([-r.score for r in recs], kind="stable")
            parents = pop[order[: self.parents]]
            n = min(self.population, max_evaluations - problem.n_evaluations)
            before = problem.n_evaluations
            kids = self._children(problem, parents, n, rng)
            kid_recs = problem.evaluate(enc.decode_many(kids))
            stale = stale + 1 if problem.n_evaluations == before else 0
            if stale >= 20:
                break
            pool = np.concatenate([pop, kids])
            pool_recs = recs + kid_recs
            keep = np.argsort([-r.score for r in pool_recs], kind="stable")[: self.population]
            pop, recs = pool[keep], [pool_recs[i] for i in keep]
            generations += 1
        return {"generations": generations}
