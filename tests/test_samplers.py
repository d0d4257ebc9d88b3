"""GreedyNAS parts: candidate pool, multi-path sampling with rejection, ε schedule, stop rule, budgets."""

import numpy as np
import pytest

from hwnas.errors import HwnasError
from hwnas.latency.keys import arch_keys, space_slots
from hwnas.latency.table import LatencyTable
from hwnas.space import create_space
from hwnas.train.pool import CandidatePool
from hwnas.train.samplers import GreedySampler, PathBudget, UniformSampler


def test_pool_keeps_the_lowest_losses_and_evicts_the_worst():
    pool = CandidatePool(3)
    for i, loss in enumerate([5.0, 1.0, 3.0, 2.0, 4.0, 0.5]):
        pool.update((i,), loss, iteration=i)
    assert [p for p, _ in pool.best()] == [(5,), (1,), (3,)]
    assert pool.update((1,), 9.0, iteration=7)  # a known path gets its latest loss
    assert pool.best()[-1] == ((1,), 9.0)
    assert not pool.update((9,), 10.0, iteration=8)  # worse than the worst kept: rejected
    assert pool.update((8,), 0.1, iteration=8) and (1,) not in pool
    restored = CandidatePool.from_state(pool.state_dict())
    assert restored.best() == pool.best() and restored.update_frequency(8, 2) == pool.update_frequency(8, 2)


def test_pool_update_frequency_is_the_share_of_new_paths():
    pool = CandidatePool(4)
    for i in range(4):
        pool.update((i,), float(i), iteration=i * 10)  # entered at 0, 10, 20, 30
    assert pool.update_frequency(30, window=15) == pytest.approx(0.5)  # 20 and 30 are new
    assert pool.update_frequency(100, window=15) == 0.0


def quality(path):
    """A fixed loss landscape: more of op index 0 is better."""
    return float(sum(path)) + 0.001 * path[0]


def test_greedy_trains_the_top_k_of_m_by_loss_and_fills_the_pool():
    space = create_space("tiny")
    s = GreedySampler(PathBudget(space), m=10, k=5, pool_size=8, warmup=0.0, eps_max=0.0)
    s.setup(100)
    seen = []

    def evaluate(paths):
        seen.append(list(paths))
        return [quality(p) for p in paths]

    rng = np.random.default_rng(0)
    kept = s.next_paths(0, rng, evaluate)
    assert len(seen[0]) == 10 and len(kept) == 5
    assert sorted(quality(p) for p in kept) == sorted(quality(p) for p in seen[0])[:5]
    assert len(s.pool) == 5 and s.n_evaluated_paths == 10
    for it in range(1, 6):
        s.next_paths(it * 5, rng, evaluate)
    assert s.pool.full
    everything = sorted({p for batch in seen for p in batch}, key=quality)
    assert [p for p, _ in s.pool.best()] == everything[:8]  # the pool holds the best paths ever kept


def test_warmup_is_uniform_without_evaluation_then_epsilon_rises_linearly():
    space = create_space("tiny")
    s = GreedySampler(PathBudget(space), warmup=0.2, anneal=0.5, eps_max=0.8)
    s.setup(1000)
    calls = []
    rng = np.random.default_rng(1)
    assert len(s.next_paths(10, rng, lambda ps: calls.append(ps) or [0.0] * len(ps))) == 1 and not calls
    assert s.epsilon(0) == 0.0 and s.epsilon(199) == 0.0
    assert s.epsilon(200) == 0.0 and s.epsilon(450) == pytest.approx(0.4) and s.epsilon(700) == pytest.approx(0.8)
    assert s.epsilon(999) == pytest.approx(0.8)


def test_candidates_come_from_the_pool_with_probability_epsilon():
    space = create_space("tiny")
    s = GreedySampler(PathBudget(space), m=10, k=5, pool_size=50, warmup=0.0, anneal=1e-9, eps_max=0.8)
    s.setup(100)
    rng = np.random.default_rng(2)
    for i, p in enumerate(space.sample_indices(rng, 20)):
        s.pool.update(tuple(int(v) for v in p), float(i), 0)
    members = set(s.pool.paths_in_order())
    cands = []
    for _ in range(100):
        cands += s._sample_candidates(rng, s.epsilon(50))
    share = np.mean([c in members for c in cands])
    assert 0.74 < share < 0.86  # 0.8 from the pool (+ a negligible chance of a uniform hit)


def test_stop_rule_fires_when_the_pool_is_steady():
    space = create_space("tiny")
    s = GreedySampler(PathBudget(space), m=4, k=2, pool_size=4, warmup=0.0, eps_max=0.0, alpha=0.08, pi_window=10)
    s.setup(10_000)
    fixed = [tuple([0] * 6), tuple([1] * 6), tuple([0, 1, 0, 1, 0, 1]), tuple([1, 0, 1, 0, 1, 0])]
    for i, p in enumerate(fixed):
        s.pool.update(p, -1.0 - i, 0)  # unbeatable paths
    assert s.should_stop(5) is None  # window not elapsed yet
    rng = np.random.default_rng(0)
    for it in range(0, 30, 2):
        s.next_paths(it, rng, lambda ps: [quality(p) for p in ps])
    reason = s.should_stop(30)
    assert reason is not None and "π = 0.000" in reason
    s2 = GreedySampler(PathBudget(space), m=4, k=2, pool_size=4, warmup=0.0, eps_max=0.0, pi_window=10, early_stop=False)
    s2.setup(100)
    s2.pool = s.pool
    assert s2.should_stop(30) is None


def test_flops_budget_is_respected_by_both_samplers():
    space = create_space("tiny")
    lo, hi = space.flops_range()
    bound = lo + (hi - lo) // 4
    budget = PathBudget(space, max_flops=bound)
    rng = np.random.default_rng(0)
    u = UniformSampler(budget)
    paths = [u.next_paths(i, rng, lambda ps: [])[0] for i in range(50)]
    g = GreedySampler(budget, warmup=0.0)
    g.setup(100)
    paths += g.next_paths(0, rng, lambda ps: [quality(p) for p in ps])
    assert max(space.flops(space.from_indices(p)) for p in paths) <= bound
    with pytest.raises(HwnasError, match="below the smallest path"):
        PathBudget(space, max_flops=lo - 1)


def _table(space):
    entries = {}
    for key, slot in space_slots(space).items():
        ms = 0.01 * (1 + getattr(slot.op, "kernel", 1) * getattr(slot.op, "expand", 1))
        entries[key] = {"median_ms": ms, "p90_ms": ms * 1.1, "mean_ms": ms, "std_ms": 0.0, "n": 5}
    return LatencyTable(device={"model": "test"}, backend="onnxruntime-fp32-1thread", space=space.name, entries=entries,
                        calibration={"overhead_ms": 0.05, "scale": 1.1, "per_block_ms": 0.004})


def test_latency_budget_uses_the_table_and_agrees_with_its_prediction():
    space = create_space("tiny")
    table = _table(space)
    rng = np.random.default_rng(3)
    idx = space.sample_indices(rng, 30)
    budget = PathBudget(space, table=table, max_latency_ms=1e9)
    for row in idx:
        arch = space.from_indices(row)
        assert budget.latency_of(row)[0] == pytest.approx(table.predict(arch)[0], abs=1e-9)
        assert len(arch_keys(space, arch)) > 0
    lats = sorted(budget.latency_of(idx))
    tight = PathBudget(space, table=table, max_latency_ms=float(lats[5]))
    paths = UniformSampler(tight).next_paths(0, rng, lambda ps: [])
    paths += tight.sample_uniform(rng, 20)
    assert all(table.predict(space.from_indices(p))[0] <= lats[5] + 1e-9 for p in paths)
    with pytest.raises(HwnasError, match="below the fastest path"):
        PathBudget(space, table=table, max_latency_ms=0.001)
    with pytest.raises(HwnasError, match="needs a latency table"):
        PathBudget(space, max_latency_ms=5.0)


def test_training_and_search_judge_a_latency_budget_alike():
    """The path budget of `hwnas train` and the search's constraints: one bound (the 0.9 quantile by
    default), one comparison -- the same paths fit in both, including those whose median fits but
    whose bound does not."""
    from hwnas.search.budgets import Budgets, Constraints
    from hwnas.search.constraints import LatencyModel

    from .test_constraints import synthetic_table

    space = create_space("nas-bench-macro")
    table = synthetic_table("nas-bench-macro")
    table.calibration.update(residual_log_mean=0.01, residual_log_std=0.05, residual_n=30, drift_log_std=0.04, drift_n=20)
    X = np.array([space.choice_indices(a) for a in space.iter_archs()])
    median = LatencyModel(table, space, confidence=0.5).predict_indices(X)[0]
    T = float(np.percentile(median, 50))
    for conf in (0.9, 0.5, 0.99):
        search = Constraints(space, Budgets(latency_ms=T), latency=LatencyModel(table, space, confidence=conf)).feasible_mask(X)
        train = PathBudget(space, table=table, max_latency_ms=T, confidence=conf).ok(X)
        assert np.array_equal(search, train)
    # by default training uses the search's default bound: paths whose median fits but whose 0.9 bound does not are out
    default = PathBudget(space, table=table, max_latency_ms=T)
    edge = (median <= T) & ~default.ok(X)
    assert edge.sum() > 100
    assert np.array_equal(default.ok(X), Constraints(space, Budgets(latency_ms=T),
                                                     latency=LatencyModel(table, space, confidence=0.9)).feasible_mask(X))
    assert "0.9 quantile" in default.describe()
