"""The searcher contract: problem bookkeeping, registry, result files, history resume."""

import json
import math

import numpy as np
import pytest

from hwnas.errors import HwnasError
from hwnas.search.base import (Budgets, Record, SEARCHERS, SearchProblem, Searcher, create_searcher,
                               list_searchers, pareto_front, read_history, append_history)
from hwnas.search.evaluator import TabularEvaluator
from hwnas.search.reward import Objective
from hwnas.search.results import write_results
from hwnas.space import Arch, create_space


@pytest.fixture(scope="module")
def macro():
    return create_space("nas-bench-macro")


def test_encoding_costs_match_space(macro):
    prob = SearchProblem(macro, TabularEvaluator())
    X = prob.encoding.sample(np.random.default_rng(0), 200)
    flops, params = prob.encoding.flops_params(X)
    for row, f, p in zip(X, flops, params):
        assert macro.flops_params(prob.encoding.decode(row)) == (f, p)


def test_problem_counts_distinct_evaluations_and_scores_hard_budget(macro):
    lo, hi = macro.flops_range()
    budget = (lo + hi) // 2
    ev = TabularEvaluator()
    prob = SearchProblem(macro, ev, budgets=Budgets(flops=budget))
    small, big = macro.from_compact("11111111"), macro.from_compact("22222222")
    recs = prob.evaluate([small, big, small])
    assert prob.n_evaluations == 2 and ev.n_evaluations == 2
    assert [r.evaluation for r in recs] == [1, 2, 1]
    assert recs[0].feasible and recs[0].score == pytest.approx(ev.benchmark.accuracy(small))
    assert not recs[1].feasible and recs[1].score == -math.inf and recs[1].violations["flops"] > 0
    assert prob.best() == recs[0]


def test_latency_objective_mnas_is_soft(macro):
    lat = lambda a: (float(macro.flops(a)) / 1e6, 0.1)  # noqa: E731  a FLOPs-proportional toy predictor
    big = macro.from_compact("22222222")
    T = macro.flops(big) / 1e6 / 2
    prob = SearchProblem(macro, TabularEvaluator(), latency=lat, budgets=Budgets(latency_ms=T), objective=Objective("mnas", T))
    r = prob.evaluate([big])[0]
    assert r.feasible and r.violations["latency"] == pytest.approx(1.0)  # soft: over T stays eligible
    assert r.score == pytest.approx(r.accuracy * 2.0 ** -0.07)


def test_sample_feasible_respects_budget_and_errors_when_impossible(macro):
    lo, hi = macro.flops_range()
    prob = SearchProblem(macro, TabularEvaluator(), budgets=Budgets(flops=int(lo + 0.2 * (hi - lo))))
    X = prob.sample_feasible(np.random.default_rng(0), 64)
    assert len(X) == 64 and prob.feasible_mask(X).all()
    assert (prob.encoding.flops_params(X)[0] <= prob.budgets.flops).all()
    tight = SearchProblem(macro, TabularEvaluator(), budgets=Budgets(flops=lo))  # only the all-identity arch fits
    X = tight.sample_feasible(np.random.default_rng(0), 5, max_draws=1000)
    assert (X == tight.cheapest_row()).all() and tight.feasible_mask(X).all()
    both = SearchProblem(macro, TabularEvaluator(), budgets=Budgets(flops=lo, params=1000))
    with pytest.raises(HwnasError, match="raise a budget"):
        both.sample_feasible(np.random.default_rng(0), 5, max_draws=1000)


def test_sampling_a_sliver_of_a_huge_space():
    space = create_space("proxyless")  # ~5e17 archs; a budget just above the smallest admits a tiny share
    prob = SearchProblem(space, TabularEvaluator.__new__(TabularEvaluator))
    lo = int(prob.encoding.flops_params(prob.cheapest_row()[None])[0][0])
    prob.budgets = Budgets(flops=int(lo * 1.15))
    X = prob.sample_feasible(np.random.default_rng(0), 40, max_draws=5000)
    assert prob.feasible_mask(X).all() and len({tuple(r) for r in X}) >= 30  # feasible and diverse


def test_pareto_front_is_non_dominated():
    sp = create_space("nas-bench-macro")
    a = [sp.from_compact(c) for c in ("00000000", "11111111", "22222222", "12121212")]
    recs = [Record(x, acc, lat, 0.0, 1, 1, acc, True, i + 1) for i, (x, acc, lat) in
            enumerate(zip(a, [90.0, 92.0, 93.0, 91.0], [1.0, 2.0, 3.0, 2.5]))]
    front = pareto_front(recs)
    assert [r.accuracy for r in front] == [90.0, 92.0, 93.0]  # 91% at 2.5 ms is dominated by 92% at 2 ms


def test_registry_names_and_unknown(macro):
    assert {"random", "evolution"} <= set(list_searchers())
    with pytest.raises(HwnasError, match="unknown search algorithm 'nope'"):
        create_searcher("nope")


def test_results_files_roundtrip_and_history_resume(tmp_path, macro):
    lo, hi = macro.flops_range()
    budgets = Budgets(flops=(lo + hi) // 2)
    prob = SearchProblem(macro, TabularEvaluator(), budgets=budgets, on_record=lambda r: append_history(tmp_path / "history.jsonl", r))
    res = create_searcher("random").run(prob, max_evaluations=60, seed=3)
    assert res.n_evaluations == 60 and res.best is not None
    paths = write_results(res, tmp_path, history=False)
    best = Arch.load(paths["best"])  # the same JSON format `hwnas export --arch` reads
    assert best == res.best.arch
    d = json.loads(paths["best"].read_text())
    assert d["flops"] == macro.flops(best) and d["accuracy"] == res.best.accuracy
    assert paths["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    front = json.loads(paths["front"].read_text())["front"]
    assert len(front) == len(res.front) >= 1
    # a torn last line (crash mid-write) is skipped; the rest resumes without new evaluations
    with open(tmp_path / "history.jsonl", "a") as f:
        f.write('{"space": "nas-bench-macro", "ops": ["k3')
    old = read_history(tmp_path / "history.jsonl")
    assert [r.arch for r in old] == [r.arch for r in res.history]
    ev = TabularEvaluator()
    prob2 = SearchProblem(macro, ev, budgets=budgets)
    assert prob2.preload(old) == 60
    res2 = create_searcher("random").run(prob2, max_evaluations=60, seed=3)
    assert ev.n_evaluations == 0 and res2.best.arch == res.best.arch
