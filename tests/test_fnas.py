"""FNAS parts: PPO loss, experience buffer, critic and its 50 % cap, knowledge pool, the reward, the loop."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hwnas.latency.keys import space_slots
from hwnas.latency.table import LatencyTable
from hwnas.nn.network import Network
from hwnas.search.base import Budgets, SearchProblem
from hwnas.search.evaluator import TabularEvaluator
from hwnas.search.fnas import (PPO, ArchEncoder, PPOConfig, Controller, CriticConfig, ExperienceBuffer, FNASSearcher,
                               UncertaintyAwareCritic, cap_trusted, ppo_loss)
from hwnas.search.fnas.knowledge_pool import KnowledgePool, copy_overlap, match_uncertainty, network_blocks
from hwnas.search.fnas.searcher import FNASConfig, reward_objective
from hwnas.search.reward import Objective
from hwnas.space.cost import slot_cost
from hwnas.space.registry import create_space


@pytest.fixture(autouse=True)
def _one_thread():
    """Small nets on a shared machine: one intra-op thread (restored afterwards)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def synthetic_table(space_name: str = "nas-bench-macro") -> LatencyTable:
    """An in-memory table: every block costs 1 ms per 10M multiply-adds plus 0.05 ms."""
    space = create_space(space_name)
    entries = {k: {"median_ms": slot_cost(s)[0] / 1e7 + 0.05, "std_ms": 0.01, "n": 5}
               for k, s in space_slots(space).items()}
    return LatencyTable(device={"model": "synthetic"}, backend="test", space=space_name, entries=entries)


# ---- PPO ------------------------------------------------------------------------------
def test_ppo_loss_on_a_hand_built_batch():
    old = torch.full((4,), math.log(0.5))
    ratio = torch.tensor([1.5, 0.5, 1.1, 0.7])
    new = (old + torch.log(ratio)).requires_grad_(True)
    adv = torch.tensor([1.0, 1.0, -1.0, -1.0])
    # per-sample min(r A, clip(r, 0.8, 1.2) A) = 1.2, 0.5, -1.1, -0.8
    loss = ppo_loss(new, old, adv, clip=0.2)
    assert float(loss.detach()) == pytest.approx(-(1.2 + 0.5 - 1.1 - 0.8) / 4)
    loss.backward()
    # clipped terms give no gradient; unclipped ones give -r A / n
    assert new.grad.tolist() == pytest.approx([0.0, -0.5 / 4, 1.1 / 4, 0.0])
    w = torch.tensor([1.0, 0.5, 1.0, 0.5])
    assert float(ppo_loss(new.detach(), old, adv, w, clip=0.2)) == pytest.approx(-(1.2 + 0.25 - 1.1 - 0.4) / 3)


def test_dual_clip_bounds_only_the_negative_advantage_terms_it_is_asked_to():
    old = torch.zeros(3)
    new = torch.log(torch.tensor([5.0, 5.0, 5.0])).requires_grad_(True)  # ratio 5: far from the sampling policy
    adv = torch.tensor([-1.0, -1.0, 1.0])
    # plain PPO: min(5 * -1, 1.2 * -1) = -5 for a negative advantage; the dual clip bounds it at 3 * -1
    assert float(ppo_loss(new, old, adv, clip=0.2)) == pytest.approx(-(-5 - 5 + 1.2) / 3)
    mask = torch.tensor([True, False, True])
    loss = ppo_loss(new, old, adv, clip=0.2, dual_clip=3.0, dual_mask=mask)
    assert float(loss.detach()) == pytest.approx(-(-3 - 5 + 1.2) / 3)
    loss.backward()
    assert new.grad.tolist() == pytest.approx([0.0, 5.0 / 3, 0.0])  # bounded and clipped terms give no gradient


def test_the_baseline_follows_the_policy_not_the_replayed_archs():
    ppo = PPO(Controller([3]), PPOConfig(baseline_decay=0.5))
    rewards = np.array([90.0, 92.0, 99.0, 99.0])
    on_policy = np.array([True, True, False, False])
    assert ppo.advantages(rewards, on_policy).tolist() == pytest.approx([-1.0, 1.0, 8.0, 8.0])  # baseline 91
    assert ppo.baseline == pytest.approx(91.0)
    ppo.advantages(np.array([95.0, 95.0, 50.0]), np.array([True, True, False]))
    assert ppo.baseline == pytest.approx(0.5 * 91 + 0.5 * 95)


def test_replay_against_the_behaviour_policy_cannot_collapse_the_policy():
    """Ten replayed archs better than anything the policy draws, fresh samples carrying no signal: re-scoring a
    replayed arch's old log-prob every update lets the clip allow another +20 % each time, and the policy
    collapses onto the buffer; the ratio to the policy that sampled it stops the push once it is 1 + eps."""
    all_archs = torch.cartesian_prod(*[torch.arange(3)] * 8)

    def entropy_after(ratio: str, updates: int = 25) -> float:
        torch.manual_seed(0)
        ctrl = Controller([3] * 8)
        ppo = PPO(ctrl)
        gen = torch.Generator().manual_seed(0)
        rng = np.random.default_rng(0)
        buf = ExperienceBuffer(10)
        a0, lp0 = ctrl.sample(10, gen)
        for i in range(10):
            assert buf.add(i, a0[i].numpy(), 95.0 + 0.1 * i, float(lp0[i]))
        for _ in range(updates):
            a, lp = ctrl.sample(8, gen)
            bidx, bacts, bw = buf.sample(8, rng, beta=0.0)
            if ratio == "behaviour":
                blp = np.array([buf.logps[i] for i in bidx])
            else:
                with torch.no_grad():
                    blp = ctrl.log_prob(torch.as_tensor(bacts))[0].numpy()
            rewards = np.concatenate([np.full(8, 90.0), [buf.rewards[i] for i in bidx]])
            ppo.update(np.concatenate([a.numpy(), bacts]), np.concatenate([lp.numpy(), blp]), rewards,
                       np.concatenate([np.ones(8), bw]), np.arange(16) < 8, 3.0)
        with torch.no_grad():
            logp = ctrl.log_prob(all_archs)[0]
        return float(-(logp.exp() * logp).sum())

    uniform = 8 * math.log(3)
    assert entropy_after("behaviour") > uniform - 0.3
    assert entropy_after("current") < uniform - 3.0  # the defect this guards against


def test_ppo_update_moves_the_policy_towards_rewarded_archs():
    torch.manual_seed(0)
    ctrl = Controller([3, 3, 3])
    ppo = PPO(ctrl)
    good = np.array([[2, 0, 1]])
    bad = np.array([[0, 1, 2]])
    acts = np.concatenate([good, bad])
    before = ctrl.log_prob(torch.as_tensor(good))[0].item()
    assert before == pytest.approx(3 * math.log(1 / 3), abs=1e-6)  # starts uniform
    for _ in range(5):
        with torch.no_grad():
            old = ctrl.log_prob(torch.as_tensor(acts))[0].numpy()
        ppo.update(acts, old, np.array([95.0, 90.0]))
    assert ctrl.log_prob(torch.as_tensor(good))[0].item() > before
    assert ctrl.log_prob(torch.as_tensor(bad))[0].item() < before


def test_controller_samples_one_valid_choice_per_layer():
    ctrl = Controller([3, 7, 2])
    a, lp = ctrl.sample(64, torch.Generator().manual_seed(0))
    assert a.shape == (64, 3) and lp.shape == (64,)
    assert (a[:, 0] < 3).all() and (a[:, 1] < 7).all() and (a[:, 2] < 2).all()
    assert torch.allclose(lp, torch.full((64,), math.log(1 / 42)), atol=1e-5)


# ---- experience buffer ---------------------------------------------------------------------
def test_buffer_priorities_and_importance_weights():
    buf = ExperienceBuffer(size=3)
    for key, r in [("a", 1.0), ("b", 2.0), ("c", 3.0)]:
        assert buf.add(key, [0], r)
    e = np.exp([1.0, 2.0, 3.0])
    p = e / e.sum()
    assert buf.probabilities() == pytest.approx(p)
    assert buf.weights(0.0) == pytest.approx([1.0, 1.0, 1.0])
    s = (3 * p) ** -1.0
    assert buf.weights(1.0) == pytest.approx(s / s.max())
    s = (3 * p) ** -0.5
    assert buf.weights(0.5) == pytest.approx(s / s.max())
    idx, acts, w = buf.sample(30000, np.random.default_rng(0), beta=1.0)
    freq = np.bincount(idx, minlength=3) / len(idx)
    assert freq == pytest.approx(p, abs=0.01)
    assert w == pytest.approx((s := (3 * p) ** -1.0)[idx] / s.max())
    assert acts.shape == (30000, 1)


def test_buffer_keeps_the_best_distinct_archs_with_their_behaviour_log_probs():
    buf = ExperienceBuffer(size=2)
    assert buf.add("a", [0], 1.0, -1.0) and buf.add("b", [1], 5.0, -2.0)
    assert not buf.add("a", [0], 9.0, -9.0)  # already held
    assert not buf.add("c", [2], 0.5)  # worse than everything held
    assert buf.add("d", [3], 3.0, -3.0)       # replaces the worst
    assert sorted(buf.keys) == ["b", "d"] and sorted(buf.rewards) == [3.0, 5.0]
    assert dict(zip(buf.keys, buf.logps)) == {"b": -2.0, "d": -3.0}


# ---- critic ----------------------------------------------------------------------------------
def test_cap_trusted_keeps_at_most_the_cap_in_arrival_order():
    trusted = np.array([True, False, True, True, True])
    keep, dropped = cap_trusted(trusted, already=1, max_trusted=3)
    assert keep.tolist() == [True, False, True, False, False]
    assert dropped.tolist() == [False, False, False, True, True]


def test_critic_learns_an_additive_reward_and_trusts_only_once_ready():
    space = create_space("nas-bench-macro")
    enc = ArchEncoder(space)
    rng = np.random.default_rng(0)
    w = rng.normal(size=enc.dim)
    idx = space.sample_indices(rng, 400)
    X = enc.one_hot(idx)
    R = X @ w + 90
    critic = UncertaintyAwareCritic(enc.dim, CriticConfig(min_samples=64, steps=30, threshold=0.5), seed=0)
    assert not critic.trusted(np.zeros(3)).any()  # nothing seen: trust nothing
    for i in range(0, 300, 50):
        critic.observe(X[i:i + 50], R[i:i + 50])
    v, u = critic.predict(X[300:])
    err = np.abs(v - R[300:])
    assert err.mean() < 0.25 * np.abs(R[300:] - R[:300].mean()).mean()  # far better than the mean predictor
    assert critic.ready and np.isfinite(u).all()
    # held-out errors recorded before fitting shrink as V learns
    assert np.nanmean(critic.E[-50:]) < 0.5 * np.nanmean(critic.E[50:100])


def test_critic_trusts_from_the_second_batch_once_u_has_learnt_a_held_out_error():
    space = create_space("nas-bench-macro")
    enc = ArchEncoder(space)
    rng = np.random.default_rng(0)
    X = enc.one_hot(space.sample_indices(rng, 16))
    critic = UncertaintyAwareCritic(enc.dim, CriticConfig(threshold=1e9, steps=2), seed=0)
    critic.observe(X[:8], np.arange(8.0))
    # V exists but U has no held-out error to learn from: its untrained output must not buy trust
    assert critic.n_seen == 8 and not critic.ready and not critic.trusted(np.zeros(4)).any()
    critic.observe(X[8:], np.arange(8.0))
    assert critic.ready and np.isfinite(critic.E[8:]).all() and critic.trusted(np.zeros(4)).all()


# the loop tests check budget and trust rules over a whole run: a slowly moving policy keeps sampling new
# archs until the budget is spent (a fast one converges and stops early on patience)
SLOW_PPO = PPOConfig(lr=3.5e-4)


def _problem(max_lat_quantile: float = 0.5, objective: Objective | None = None):
    space = create_space("nas-bench-macro")
    table = synthetic_table()
    ev = TabularEvaluator()
    lats = [table.predict(space.from_indices(i))[0] for i in space.sample_indices(np.random.default_rng(1), 300)]
    T = float(np.quantile(lats, max_lat_quantile))
    return SearchProblem(space, ev, latency=table.predict, budgets=Budgets(latency_ms=T), objective=objective), table, T


def test_trusted_share_never_exceeds_half_of_the_new_samples():
    problem, _, _ = _problem()
    # a critic that trusts nearly everything once it has 16 archs: only the cap limits trust
    s = FNASSearcher(FNASConfig(batch=16, use_aeb=False, verify_new_best=False, ppo=SLOW_PPO,
                                critic=CriticConfig(threshold=1e9, min_samples=16, steps=2)))
    res = s.run(problem, max_evaluations=70, seed=0)
    trusted = [line["trusted"] for line in s.log]
    assert max(trusted) == 8 and all(t <= 0.5 * (line["batch"] - line["replayed"]) for t, line in zip(trusted, s.log))
    assert sum(trusted) > 0 and len(s.trusted_log) == sum(trusted)
    assert res.n_evaluations == 70 == problem.n_evaluations


def test_with_verify_new_best_a_trusted_estimate_never_claims_more_than_the_best_real_reward():
    problem, _, _ = _problem()
    s = FNASSearcher(FNASConfig(batch=16, use_aeb=False, verify_new_best=True, ppo=SLOW_PPO,
                                critic=CriticConfig(threshold=1e9, steps=2)))
    s.run(problem, max_evaluations=80, seed=0)
    assert s.trusted_log  # the permissive critic did trust
    obj = reward_objective(problem)
    for e in s.trusted_log:  # V above every real reward so far is extrapolation: that arch was evaluated instead
        best = max(obj.score(r.accuracy, r.latency_ms) for r in problem.history if r.evaluation <= e["evaluations"])
        assert e["value"] <= best + 1e-9
    loose = FNASSearcher(FNASConfig(batch=16, use_aeb=False, verify_new_best=False, ppo=SLOW_PPO,
                                    critic=CriticConfig(threshold=1e9, steps=2)))
    again, _, _ = _problem()
    loose.run(again, max_evaluations=80, seed=0)
    assert any(e["value"] > max(obj.score(r.accuracy, r.latency_ms) for r in again.history if r.evaluation <= e["evaluations"])
               for e in loose.trusted_log)


def test_with_replay_the_exploring_half_is_the_same_size_from_the_first_batch():
    problem, _, _ = _problem()
    s = FNASSearcher(variant="ppo+uac+aeb", batch=16, steps=2, max_updates=3)
    s.run(problem, max_evaluations=100, seed=0)
    first = s.log[0]
    assert first["replayed"] == 0 and first["batch"] == 8 and first["new"] + first["known"] == 8
    assert all(line["batch"] - line["replayed"] == 8 for line in s.log)
    plain = FNASSearcher(variant="ppo", batch=16, max_updates=1)
    again, _, _ = _problem()
    plain.run(again, max_evaluations=100, seed=0)
    assert plain.log[0]["batch"] == 16


def test_with_replay_the_exploring_part_keeps_asking_for_new_archs():
    """With ``explore_new_only`` (an option, off by default) the buffer replays known archs and the exploring part redraws them, so a sharpening policy keeps evaluating
    its neighbourhood instead of stopping (the AEB variants once converged after ~40 evaluations)."""
    problem, _, _ = _problem()
    s = FNASSearcher(variant="ppo+uac+aeb", steps=5, patience=10, explore_new_only=True)
    s.run(problem, max_evaluations=100, seed=0)
    assert problem.n_evaluations == 100
    assert sum(line["known"] for line in s.log) <= 0.05 * sum(line["batch"] - line["replayed"] for line in s.log)
    old, _, _ = _problem()
    before = FNASSearcher(variant="ppo+uac+aeb", steps=5, patience=10, explore_new_only=False, replay_ratio="current",
                          baseline_on_policy=False)
    before.run(old, max_evaluations=100, seed=0)
    assert old.n_evaluations < 60 and sum(line["known"] for line in before.log) > 0.2 * sum(
        line["batch"] - line["replayed"] for line in before.log)


def test_replay_is_at_most_half_a_batch_and_the_run_respects_the_budget():
    problem, table, T = _problem()
    s = FNASSearcher(variant="ppo+uac+aeb", batch=10, steps=5, lr=SLOW_PPO.lr)
    res = s.run(problem, max_evaluations=60, seed=3)
    assert res.n_evaluations == 60
    assert any(line["replayed"] for line in s.log)
    assert all(line["replayed"] <= line["batch"] // 2 for line in s.log)
    # the best is the most accurate evaluated arch whose table latency meets T, recomputed from the
    # benchmark's accuracies and the table (not from the records' own feasible flags)
    truth = TabularEvaluator().benchmark
    within = [r.arch for r in res.history if table.predict(r.arch)[0] <= T]
    assert within and len(within) < len(res.history)  # the budget really excluded some archs
    assert table.predict(res.best.arch)[0] <= T
    assert res.best.accuracy == max(truth.accuracy(a) for a in within)
    assert res.info["fnas"]["objective"]["kind"] == "mnas"


# ---- reward ----------------------------------------------------------------------------------
def test_reward_at_the_budget_equals_accuracy():
    problem, table, _ = _problem(objective=None)
    arch = problem.space.from_indices([1, 2, 0, 1, 2, 1, 0, 2])
    lat = table.predict(arch)[0]
    at_budget = SearchProblem(problem.space, problem.evaluator, latency=table.predict, budgets=Budgets(latency_ms=lat))
    acc = problem.evaluator.benchmark.accuracy(arch)
    for kind in ("soft", "hard"):
        obj = reward_objective(at_budget, kind)
        assert obj.kind == ("mnas" if kind == "soft" else "mnas-hard") and obj.target == lat
        assert obj.score(acc, lat) == acc
        assert obj.score(acc, 2 * lat) < acc
    soft = reward_objective(at_budget, "soft")
    assert soft.score(acc, 2 * lat) == pytest.approx(acc * 2 ** -0.07)
    assert soft.score(acc, 0.5 * lat) == pytest.approx(acc * 0.5 ** -0.07)


def test_variants_and_bad_options():
    assert FNASSearcher(variant="ppo").config.use_uac is False
    assert FNASSearcher(variant="fnas").config.use_aeb is True
    with pytest.raises(ValueError):
        FNASSearcher(variant="nope")
    with pytest.raises(ValueError):
        FNASSearcher(trust_cap=0.8)
    with pytest.raises(ValueError):
        FNASSearcher(replay_fraction=0.6)
    with pytest.raises(ValueError):
        FNASSearcher(replay_ratio="newest")


# ---- knowledge pool ----------------------------------------------------------------------------
def test_copy_overlap_centres_kernels_and_slices_channels():
    src = torch.arange(2 * 1 * 3 * 3, dtype=torch.float32).reshape(2, 1, 3, 3)
    dst = torch.zeros(4, 1, 5, 5)
    copy_overlap(dst, src)
    assert torch.equal(dst[:2, :, 1:4, 1:4], src)
    assert dst[2:].abs().sum() == 0 and dst[:, :, 0].abs().sum() == 0


def test_knowledge_pool_exact_and_fuzzy_hits():
    space = create_space("tiny")
    pool = KnowledgePool(iterations=5)
    a = space.arch(["k3e3", "k3e3", "k5e6", "k3e1", "k5e3", "k3e6"])
    torch.manual_seed(0)
    net_a = Network(space, a)
    with torch.no_grad():
        for p in net_a.parameters():
            p.add_(1.0)  # "trained": differs from any fresh init
    assert pool.initialize(Network(space, a), space, a)["hits"] == 0  # empty pool: all misses
    with pytest.raises(ValueError):
        pool.store(net_a, space, a, iterations=7)  # fairness: equal-iteration checkpoints only
    pool.store(net_a, space, a, iterations=5)
    same = Network(space, a)
    info = pool.initialize(same, space, a)
    assert info["hits"] == info["exact"] == info["blocks"]
    for b_same, b_a in zip(network_blocks(same), network_blocks(net_a)):
        for (k, t1), t2 in zip(b_same.state_dict().items(), b_a.state_dict().values()):
            assert torch.equal(t1, t2), k
    b = space.arch(["k5e3", "k3e3", "k5e6", "k3e1", "k5e3", "k3e6"])  # layer 0: k3 -> k5, same expansion
    net_b = Network(space, b)
    info = pool.initialize(net_b, space, b)
    assert info["hits"] == info["blocks"] and info["exact"] == info["blocks"] - 1
    dw_b = net_b.layers[0].depthwise[0].weight
    dw_a = net_a.layers[0].depthwise[0].weight
    assert torch.equal(dw_b[:, :, 1:4, 1:4], dw_a)
    assert 0 < pool.hit_rate < 1


def _trained(space, arch, seed):
    torch.manual_seed(seed)
    net = Network(space, arch)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(float(seed))  # "trained": differs from any fresh init and from the other stored net
    return net


def test_uncertainty_matching_retrieves_the_block_that_leaves_least_untrained():
    """Hand-built: a k5e3 query at layer 0, the pool holding k3e3 and k5e6 there.

    k5e3's block has 768 (expand) + 192 (BN) + 1200 (depthwise 48x5x5) + 192 (BN) + 1152 (project)
    + 96 (BN) = 3600 weights. From k3e3 the depthwise ring (48 x (25 - 9) = 768) stays untrained:
    uncertainty 768 / 3600; k5e6 covers every weight (its leading 48 of 96 channels): uncertainty 0.
    Cosine similarity of the embeddings prefers k3e3 (kernel 2/7 away vs expansion 3/6 away)."""
    space = create_space("tiny")
    rest = ["k3e3", "k5e6", "k3e1", "k5e3", "k3e6"]
    net_a, net_c = _trained(space, space.arch(["k3e3", *rest]), 1), _trained(space, space.arch(["k5e6", *rest]), 2)
    q = space.arch(["k5e3", *rest])
    query = Network(space, q).layers[0].state_dict()
    assert match_uncertainty(query, net_a.layers[0].state_dict()) == pytest.approx(768 / 3600)
    assert match_uncertainty(query, net_c.layers[0].state_dict()) == 0.0
    assert match_uncertainty(query, query) == 0.0
    picks = {}
    for matching in ("uncertainty", "cosine"):
        pool = KnowledgePool(iterations=5, matching=matching)
        pool.store(net_a, space, space.arch(["k3e3", *rest]), iterations=5)
        pool.store(net_c, space, space.arch(["k5e6", *rest]), iterations=5)
        net_q = Network(space, q)
        info = pool.initialize(net_q, space, q)
        assert info["hits"] == info["blocks"]
        dw = net_q.layers[0].depthwise[0].weight
        if torch.equal(dw, net_c.layers[0].depthwise[0].weight[:48]):
            picks[matching] = "k5e6"
        elif torch.equal(dw[:, :, 1:4, 1:4], net_a.layers[0].depthwise[0].weight):
            picks[matching] = "k3e3"
        if matching == "uncertainty":
            assert info["uncovered_share"] == 0.0
    assert picks == {"uncertainty": "k5e6", "cosine": "k3e3"}


def test_uncertainty_matching_refuses_a_match_above_its_limit():
    space = create_space("tiny")
    rest = ["k3e3", "k5e6", "k3e1", "k5e3", "k3e6"]
    src = space.arch(["k3e3", *rest])  # layer 0 k3e3 for a k5e6 query: 2832 of its 7104 weights covered
    q = space.arch(["k5e6", *rest])
    q_block = Network(space, q).layers[0].state_dict()
    assert match_uncertainty(q_block, _trained(space, src, 1).layers[0].state_dict()) == pytest.approx(1 - 2832 / 7104)
    strict = KnowledgePool(iterations=5, max_uncertainty=0.5)
    strict.store(_trained(space, src, 1), space, src, iterations=5)
    first = strict.initialize(Network(space, q), space, q)
    assert first["hits"] == first["blocks"] - 1  # every other block is an exact match; layer 0 is refused
    loose = KnowledgePool(iterations=5, max_uncertainty=1.0)
    loose.store(_trained(space, src, 1), space, src, iterations=5)
    assert loose.initialize(Network(space, q), space, q)["hits"] == first["blocks"]
    with pytest.raises(ValueError):
        KnowledgePool(iterations=5, matching="nearest")


def test_rules_outside_the_paper_are_off_by_default():
    cfg = FNASSearcher().config
    assert cfg.verify_new_best is False and cfg.explore_new_only is False
    assert KnowledgePool(iterations=5).matching == "uncertainty"
    for v in ("ppo+uac", "ppo+uac+aeb", "fnas"):
        c = FNASSearcher(variant=v).config
        assert not c.verify_new_best and not c.explore_new_only


def test_train_evaluator_warm_starts_from_the_pool():
    from hwnas.search.fnas.train_evaluator import TrainEvaluator, builtin_data

    space = create_space("tiny")
    pool = KnowledgePool(iterations=2)
    ev = TrainEvaluator(iterations=2, pool=pool, data=builtin_data(0, n_train=64, n_val=32), batch=8)
    a = space.arch(["k3e3", "k3e3", "k5e6", "k3e1", "k5e3", "k3e6"])
    b = space.arch(["k5e3", "id", "k5e6", "k3e1", "k5e3", "id"])
    accs = ev.evaluate([a, b, a])
    assert ev.n_evaluations == 2 and accs[0] == accs[2] and all(0 <= x <= 100 for x in accs)
    assert ev.details[a]["hits"] == 0 and ev.details[b]["hits"] == ev.details[b]["blocks"] > 0
    assert len(pool) > 0
    with pytest.raises(ValueError):
        TrainEvaluator(iterations=3, pool=pool)


def test_resumed_search_teaches_critic_and_buffer_and_transfers_a_critic():
    problem, _, _ = _problem()
    first = FNASSearcher(variant="ppo+uac+aeb", steps=2)
    first.run(problem, max_evaluations=40, seed=0)
    again, _, _ = _problem()
    again.preload(problem.history)
    s = FNASSearcher(variant="ppo+uac+aeb", steps=2, max_updates=1)
    s.run(again, max_evaluations=60, seed=1)
    assert s.critic.n_seen >= 40  # learnt the preloaded evaluations before sampling
    t = FNASSearcher(variant="ppo+uac", steps=2, max_updates=1, critic_state=first.critic.state_dict(), transfer_data=True)
    fresh, _, _ = _problem()
    t.run(fresh, max_evaluations=60, seed=2)
    assert t.critic.n_seen == 40 + fresh.n_evaluations and t.critic.ready


def test_a_critic_transferred_without_its_data_fine_tunes_on_this_search_only():
    problem, _, _ = _problem()
    first = FNASSearcher(variant="ppo+uac", steps=2)
    first.run(problem, max_evaluations=40, seed=0)
    state = first.critic.state_dict()
    t = FNASSearcher(variant="ppo+uac", steps=2, max_updates=2, critic_state=state)  # default: weights only
    fresh, _, _ = _problem()
    enc = ArchEncoder(fresh.space)
    probe = enc.one_hot(fresh.space.sample_indices(np.random.default_rng(5), 8))
    t.run(fresh, max_evaluations=60, seed=2)
    assert t.critic.n_seen == fresh.n_evaluations  # only this search's rows
    assert (t.critic.center, t.critic.scale) == (state["center"], state["scale"])  # the weights' units kept
    assert t.log[0]["trusted"] == 0  # no trust before V's error on this search's archs is known
    assert np.isfinite(t.critic.E).all() and len(t.critic.E) == fresh.n_evaluations  # every row has a held-out error
    before = UncertaintyAwareCritic(enc.dim, CriticConfig())
    before.load_state_dict(state, with_data=False)
    v0, _ = before.predict(probe)
    assert np.allclose(v0, first.critic.predict(probe)[0])  # starts as the earlier critic, not the prior


def test_cli_search_with_fnas_writes_the_result_files(hwnas_cli, tmp_path):
    out = tmp_path / "run"
    table = LatencyTable.load("latency_tables/host-nas-bench-macro-onnxruntime.json")
    # a budget that constrains on the shipped table, whatever host profiled it: the 40th percentile
    # of the space's 0.9 bound (the default the search constrains), rounded as a user would write it
    from hwnas.latency.bound import LatencyModel
    from hwnas.space import create_space

    space = create_space("nas-bench-macro")
    X = np.array([space.choice_indices(a) for a in space.iter_archs()])
    budget = round(float(np.percentile(LatencyModel(table, space, confidence=0.9).predict_indices(X)[0], 40)), 2)
    r = hwnas_cli("search", "--algorithm", "fnas", "--latency", f"{budget}ms", "--benchmark", "nas-bench-macro",
                  "--table", "latency_tables/host-nas-bench-macro-onnxruntime.json", "--max-evaluations", "40",
                  "--out", str(out))
    assert r.returncode == 0, r.stderr
    for name in ("best.json", "front.json", "history.jsonl", "summary.json"):
        assert (out / name).exists(), name
    import json

    summary = json.loads((out / "summary.json").read_text())
    assert summary["algorithm"] == "fnas" and summary["n_evaluations"] == 40
    assert summary["fnas"]["objective"]["kind"] == "mnas" and summary["fnas"]["objective"]["target_ms"] == budget
    assert len((out / "history.jsonl").read_text().splitlines()) == 40
    # the budget, checked against the table and the benchmark's accuracies rather than the files' own flags
    from hwnas.space.arch import Arch

    truth = TabularEvaluator().benchmark
    archs = [Arch.from_dict(json.loads(line)) for line in (out / "history.jsonl").read_text().splitlines()]
    # the default search constrains the 0.9 quantile of the prediction: the table's median and
    # spread put through the table's error model (its arithmetic is checked by hand in test_confidence)
    from hwnas.latency.confidence import LatencyUncertainty

    unc = LatencyUncertainty.from_calibration(table.calibration)

    def bound(a: Arch) -> float:
        median, spread = table.predict(a)
        return float(unc.quantile(median, spread, 0.9))

    within = [a for a in archs if bound(a) <= budget]
    assert within and len(within) < len(archs)  # the budget is a real constraint here
    best = json.loads((out / "best.json").read_text())
    best_arch = Arch.from_dict(best)
    assert best["latency_prediction"]["median_ms"] == pytest.approx(table.predict(best_arch)[0], abs=1e-6)
    assert best["latency_ms"] == pytest.approx(bound(best_arch)) and best["latency_ms"] <= budget
    assert best["accuracy"] == pytest.approx(max(truth.accuracy(a) for a in within))
