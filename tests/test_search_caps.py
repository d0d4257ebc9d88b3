"""Every searcher judges feasibility through the problem's one constraint object.

A hard FLOPs or params cap is never spent on an arch over it: NAS-Bench-Macro (tabular
accuracy), 200 evaluations, 3 seeds, each searcher.
"""

import numpy as np
import pytest

from hwnas.search.base import Budgets, SearchProblem, create_searcher
from hwnas.search.evaluator import TabularEvaluator
from hwnas.space import create_space

# FNAS trains a controller and a critic per update: its 3 seeds x 2 caps take minutes (slow suite);
# the default suite runs it on one seed and one cap below
SEARCHERS = ("nsga2", "evolution", "random", pytest.param("fnas", marks=pytest.mark.slow))
OPTIONS = {"nsga2": {"population": 20, "generations": 10}, "evolution": {"population": 20}, "fnas": {"steps": 2, "explore_new_only": True}}
# (the paper-faithful FNAS settles on known archs and stops after ~65 evaluations here, see
# benchmarks/results/fnas_bench.json; exploring new archs only keeps it spending the 200 this test
# needs to show that none goes over the cap)


@pytest.fixture(scope="module")
def macro():
    space = create_space("nas-bench-macro")
    X = np.array([space.choice_indices(a) for a in space.iter_archs()])
    return space, X, TabularEvaluator().benchmark


@pytest.mark.parametrize("algorithm", SEARCHERS)
@pytest.mark.parametrize("cap", ("flops", "params"))
def test_no_evaluation_is_spent_over_a_hard_cap(macro, algorithm, cap):
    _check_caps(macro, algorithm, cap, seeds=range(3))


def test_fnas_spends_no_evaluation_over_a_flops_cap(macro):
    _check_caps(macro, "fnas", "flops", seeds=[0])


def _check_caps(macro, algorithm, cap, seeds):
    space, X, bench = macro
    enc = SearchProblem(space, TabularEvaluator(bench)).encoding
    cost = enc.flops_params(X)[0 if cap == "flops" else 1]
    limit = int(np.percentile(cost, 30))  # 30% of the space fits: a random policy is mostly over it
    assert 0.2 < float(np.mean(cost <= limit)) < 0.4
    for seed in seeds:
        problem = SearchProblem(space, TabularEvaluator(bench), budgets=Budgets(**{cap: limit}))
        result = create_searcher(algorithm, **OPTIONS.get(algorithm, {})).run(problem, max_evaluations=200, seed=seed)
        over = [r for r in result.history if getattr(r, cap) > limit]
        assert len(over) == 0, f"{algorithm} seed {seed}: {len(over)} of {len(result.history)} evaluations over the {cap} cap"
        assert 100 <= result.n_evaluations <= 200
        assert result.best is not None and getattr(result.best, cap) <= limit
