"""NSGA-II and the baselines on NAS-Bench-Macro (tabular truth) with an in-memory latency table."""

import numpy as np
import pytest

from hwnas.search.base import Budgets, SearchProblem, create_searcher, pareto_front
from hwnas.search.constraints import LatencyModel
from hwnas.search.evaluator import TabularEvaluator
from hwnas.search.nsga2 import BudgetRepair, ArchSpace, LayerwiseCrossover, LayerwiseMutation, PoolSampling, mutate
from hwnas.space import create_space

from .test_constraints import synthetic_table


@pytest.fixture(scope="module")
def macro():
    space = create_space("nas-bench-macro")
    model = LatencyModel(synthetic_table(), space)
    X = np.array([space.choice_indices(a) for a in space.iter_archs()])
    lat = model.predict_indices(X)[0]
    bench = TabularEvaluator().benchmark
    acc = np.array([bench.entries[space.to_compact(space.from_indices(r))].mean_acc for r in X])
    return space, model, X, lat, acc


def problem(macro, q=50, **kw):
    space, model, X, lat, acc = macro
    T = float(np.percentile(lat, q))
    return SearchProblem(space, TabularEvaluator(), latency=model, budgets=Budgets(latency_ms=T), **kw), T


def rank(macro, T, found_acc):
    _, _, _, lat, acc = macro
    return int((acc[lat <= T] > found_acc).sum()) + 1, int((lat <= T).sum())


def test_operators_respect_each_layers_choices():
    space = create_space("proxyless")  # a stage's first layer has 6 choices, the others 7
    prob = SearchProblem(space, TabularEvaluator.__new__(TabularEvaluator))
    rng = np.random.default_rng(0)
    n = prob.encoding.n_choices
    assert n.min() == 6 and n.max() == 7
    X = prob.encoding.sample(rng, 500)
    M = mutate(prob, X, 0.3, rng)
    changed = M != X
    assert 0.25 < changed.mean() < 0.35  # each layer redrawn to a *different* choice with p = 0.3
    assert (M >= 0).all() and (M < n).all()
    for row in M[:50]:
        space.from_indices(row)  # valid arch (raises otherwise)
    pym = ArchSpace(prob, False, rng)
    kids = LayerwiseCrossover()._do(pym, np.stack([X[:100], M[:100]]), random_state=rng)
    assert kids.shape == (2, 100, space.num_layers)
    assert ((kids[0] == X[:100]) | (kids[0] == M[:100])).all()
    assert ((kids[0] == X[:100]) ^ (kids[1] == X[:100]) | (X[:100] == M[:100])).all()  # complementary children
    assert (LayerwiseMutation(0.0)._do(pym, X, random_state=rng) == X).all()


def test_repair_makes_children_feasible(macro):
    prob, T = problem(macro, q=25)
    rng = np.random.default_rng(1)
    X = prob.encoding.sample(rng, 300)
    assert not prob.feasible_mask(X).all()
    R = BudgetRepair()._do(ArchSpace(prob, False, rng), X)
    assert prob.feasible_mask(R).all()
    assert (R == X)[prob.feasible_mask(X)].all()  # feasible children are left alone


def test_pool_sampling_takes_feasible_pool_archs_first(macro):
    space, model, X, lat, acc = macro
    order = np.argsort(-acc)
    pool = [space.from_indices(X[i]) for i in order[:300]]  # best archs first, many over budget
    prob, T = problem(macro, q=75, initial_pool=pool)
    pym = ArchSpace(prob, False, np.random.default_rng(0))
    init = PoolSampling()._do(pym, 50, random_state=np.random.default_rng(0))
    expected = [r for r in X[order[:300]] if model.predict_indices(r[None])[0][0] <= T]
    assert 0 < len(expected) < 300
    k = min(50, len(expected))
    assert pym.n_from_pool == k
    assert (init[:k] == np.array(expected[:k])).all()
    assert len({tuple(r) for r in init}) == 50 and prob.feasible_mask(init).all()


@pytest.mark.parametrize("q", [25, 75])
def test_nsga2_finds_a_top_arch_and_never_violates(macro, q):
    prob, T = problem(macro, q=q)
    res = create_searcher("nsga2").run(prob, seed=q)
    r, n_feasible = rank(macro, T, res.best.accuracy)
    assert res.n_evaluations <= 1000
    assert r <= max(1, n_feasible // 100)  # top 1% of the feasible archs
    assert all(rec.latency_ms <= T for rec in res.history)  # no evaluation spent over budget
    assert res.best.latency_ms <= T and res.info["generations"] == 20


def test_nsga2_stops_at_the_evaluation_budget_and_is_reproducible(macro):
    a = create_searcher("nsga2").run(problem(macro)[0], max_evaluations=137, seed=5)
    b = create_searcher("nsga2").run(problem(macro)[0], max_evaluations=137, seed=5)
    assert a.n_evaluations == 137
    assert [r.arch for r in a.history] == [r.arch for r in b.history]


def test_pool_initialisation_beats_random_initialisation(macro):
    space, model, X, lat, acc = macro
    prob, T = problem(macro)
    ok = np.flatnonzero(lat <= T)
    pool = [space.from_indices(X[i]) for i in ok[np.argsort(-acc[ok])][:200]]
    pooled, randomly = [], []
    for seed in range(3):
        pooled.append(create_searcher("nsga2", generations=1).run(problem(macro, initial_pool=pool)[0], seed=seed).best.accuracy)
        randomly.append(create_searcher("nsga2", generations=1).run(problem(macro)[0], seed=seed).best.accuracy)
    assert min(pooled) > max(randomly)


def test_multi_objective_front(macro):
    prob, T = problem(macro, q=75)
    res = create_searcher("nsga2", multi_objective=True).run(prob, seed=0)
    front = res.front
    assert len(front) >= 5
    assert front == pareto_front(res.history)
    for f in front:  # nothing evaluated dominates a front member
        assert not any(r.accuracy > f.accuracy and r.latency_ms < f.latency_ms for r in res.history)
    lats = [f.latency_ms for f in front]
    assert max(lats) <= T and min(lats) < 0.6 * T  # it spans the latency axis, not just the top


def test_nsga2_beats_random_at_equal_evaluations(macro):
    wins = 0
    for seed in range(4):
        prob, T = problem(macro, q=50)
        n = create_searcher("nsga2", population=20, generations=8).run(prob, seed=seed)
        rnd = create_searcher("random").run(problem(macro, q=50)[0], max_evaluations=n.n_evaluations, seed=seed)
        assert rnd.n_evaluations == n.n_evaluations
        wins += n.best.accuracy >= rnd.best.accuracy
    assert wins >= 3


@pytest.mark.parametrize("alg", ["random", "evolution"])
def test_baselines_respect_budget(macro, alg):
    prob, T = problem(macro, q=25)
    res = create_searcher(alg).run(prob, max_evaluations=300, seed=0)
    assert res.n_evaluations == 300 and all(r.latency_ms <= T for r in res.history)


def test_mnas_objective_may_pick_an_arch_over_budget_but_hard_never(macro):
    from hwnas.search.reward import Objective

    space, model, X, lat, acc = macro
    T = float(np.percentile(lat, 5))
    soft = SearchProblem(space, TabularEvaluator(), latency=model, budgets=Budgets(latency_ms=T), objective=Objective("mnas", T))
    res = create_searcher("nsga2").run(soft, seed=0)
    assert any(r.latency_ms > T for r in res.history)
    assert res.best.score == pytest.approx(res.best.accuracy * (res.best.latency_ms / T) ** -0.07)
