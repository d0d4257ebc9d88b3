"""GreedyNASv2's path filter and sampler: VPU loss, q schedule, stop rule u, op merging, resume."""

import math

import numpy as np
import pytest
import torch

from hwnas.errors import HwnasError
from hwnas.space import create_space
from hwnas.train.greedy_v2 import GreedyV2Sampler, op_costs
from hwnas.train.path_filter import FilterConfig, PathFilter, agreement, merge_ops, q_schedule, vpu_loss
from hwnas.train.samplers import PathBudget, create_sampler

SMALL = dict(dim=8, iterations=20, batch=64, m=40, agreement_paths=500, every=0.1)


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """The filter's LSTM is slow under oversubscribed threads on the shared cores."""


def test_vpu_loss_matches_a_hand_computed_value():
    log_u = torch.log(torch.tensor([0.2, 0.6]))
    log_p = torch.log(torch.tensor([0.5, 0.8]))
    # log mean_U Φ = log 0.4; mean_P log Φ = (log 0.5 + log 0.8) / 2 = log 0.4 / 2
    var = math.log(0.4) - 0.5 * (math.log(0.5) + math.log(0.8))
    assert float(vpu_loss(log_u, log_p)) == pytest.approx(var, abs=1e-6)
    assert var == pytest.approx(-0.458145, abs=1e-6)
    # MixUp term: (log 0.6 - log 0.3)² = (log 2)², weighted 0.5
    mix = vpu_loss(log_u, log_p, torch.log(torch.tensor([0.3])), torch.tensor([0.6]), mix_weight=0.5)
    assert float(mix) == pytest.approx(var + 0.5 * math.log(2) ** 2, abs=1e-6)


def test_q_is_annealed_from_half_to_099_after_the_warm_up():
    cfg = FilterConfig()
    assert (cfg.q_start, cfg.q_end, cfg.q_anneal) == (0.5, 0.99, 0.75)
    assert q_schedule(0, 100, 1000, cfg) == 0.5
    assert q_schedule(100, 100, 1000, cfg) == 0.5
    assert q_schedule(475, 100, 1000, cfg) == pytest.approx(0.5 + 0.49 * 0.5)
    assert q_schedule(850, 100, 1000, cfg) == pytest.approx(0.99)
    assert q_schedule(5000, 100, 1000, cfg) == pytest.approx(0.99)


def test_merge_keeps_the_cheaper_op_most_similar_pair_first():
    S = np.array([[1.0, 0.9, 0.5], [0.9, 1.0, 0.85], [0.5, 0.85, 1.0]])
    active = [np.ones(3, dtype=bool)]
    out = merge_ops([S], [np.array([3.0, 1.0, 2.0])], active, threshold=0.8)
    assert [(l, d, k) for l, d, k, _ in out] == [(0, 0, 1), (0, 2, 1)]
    assert active[0].tolist() == [False, True, False]
    # below the threshold nothing merges; an op already removed merges no further
    active = [np.ones(3, dtype=bool)]
    assert merge_ops([S], [np.array([1.0, 3.0, 2.0])], active, threshold=0.95) == []
    out = merge_ops([S], [np.array([1.0, 3.0, 2.0])], active, threshold=0.8)
    assert [(d, k) for _, d, k, _ in out] == [(1, 0)]  # (1,2) is skipped: op 1 is gone
    assert active[0].tolist() == [True, False, True]


def test_filter_learns_weak_paths_positive_unlabelled():
    """Weak = many expensive ops (index sum >= 7 of 8 layers x 3 ops, 74% of the paths); trained on
    300 weak + 3000 uniform paths only, it beats the 74% precision of calling paths weak at random."""
    rng = np.random.default_rng(0)
    X = np.array(np.meshgrid(*[np.arange(3)] * 8, indexing="ij")).reshape(8, -1).T
    weak = X.sum(1) >= 7
    f = PathFilter([3] * 8, FilterConfig(dim=16, batch=128, iterations=250), seed=0)
    f.fit(X[weak][rng.choice(weak.sum(), 300)], X[rng.choice(len(X), 3000)], seed=0)
    pred = f.is_weak(X)
    precision, recall = (pred & weak).sum() / pred.sum(), (pred & weak).sum() / weak.sum()
    assert weak.mean() == pytest.approx(0.74, abs=0.01)
    assert precision > 0.9 and recall > 0.75, (precision, recall)


def test_filter_does_not_collapse_when_weak_paths_are_the_large_majority():
    """GreedyNASv2's setting: 90% of paths are weak (Table 4: top 10% good). VPU's loss is
    scale-invariant and its gain over a constant Φ is only -log 0.9 = 0.105 nats here, so
    Adam's coupled L2 decay (5e-3 added to tiny gradients) used to shrink the net to a constant
    Φ, which the max-normalised rule calls weak everywhere: precision = the 90% base rate,
    recall 100%. With the paper's decay applied decoupled (AdamW) the filter separates them."""
    rng = np.random.default_rng(0)
    X = np.array(np.meshgrid(*[np.arange(3)] * 8, indexing="ij")).reshape(8, -1).T
    score = np.random.default_rng(1).normal(size=(8, 3))[np.arange(8), X].sum(1)
    weak = score < np.quantile(score, 0.9)
    f = PathFilter([3] * 8, FilterConfig(dim=16, batch=128, iterations=250), seed=0)
    assert f.cfg.weight_decay == 5e-3
    f.fit(X[weak][rng.choice(weak.sum(), 300)], X[rng.choice(len(X), 3000)], seed=0)
    pred = f.is_weak(X)
    precision, recall = (pred & weak).sum() / pred.sum(), (pred & weak).sum() / weak.sum()
    assert weak.mean() == pytest.approx(0.9, abs=0.01)
    assert precision > 0.97 and recall > 0.75, (precision, recall)


def test_agreement_is_the_share_of_equal_labels():
    X = np.random.default_rng(0).integers(0, 3, (1000, 8))
    a = PathFilter([3] * 8, FilterConfig(dim=8), seed=0)
    b = PathFilter([3] * 8, FilterConfig(dim=8), seed=0)
    assert agreement(a, b, X) == 1.0
    b.net.log_max_phi.fill_(-100.0)  # every path now scores above half the max: all weak
    assert agreement(a, b, X) == pytest.approx(float(np.mean(a.is_weak(X))))


def _quality_eval(log):
    def evaluate(paths):
        log.append(len(paths))
        return [float(sum(p)) for p in paths]  # loss grows with the op index: op 0 is best
    return evaluate


def _run(sampler, iters, seed=0):
    rng = np.random.default_rng(seed)
    calls: list[int] = []
    ev = _quality_eval(calls)
    trained = []
    for it in range(iters):
        trained += sampler.next_paths(it, rng, ev)
        if sampler.should_stop(it + 1):
            break
    return trained, calls


def test_u_above_beta_stops_and_freezes_the_filter():
    space = create_space("tiny")
    s = GreedyV2Sampler(PathBudget(space), warmup=0.2, filter_args=dict(SMALL, beta=0.0, merge=False))
    s.setup(50)
    trained, calls = _run(s, 50)
    # warm-up 10, refresh at 10 (first fit, no u), at 15 (u > 0 = β: frozen, stop)
    assert calls == [40, 40] and len(s.agreements) == 1 and s.frozen
    assert s.should_stop(16).startswith("path filter steady: u =") and len(trained) == 16
    # without early stop training goes on but no path is evaluated any more
    s2 = GreedyV2Sampler(PathBudget(space), warmup=0.2, early_stop=False, filter_args=dict(SMALL, beta=0.0, merge=False))
    s2.setup(50)
    trained, calls = _run(s2, 50)
    assert len(trained) == 50 and calls == [40, 40] and s2.should_stop(50) is None
    # the saved evaluations: 8 refreshes planned (10, 15, ..., 45), 2 run, 6 x m = 240 paths not evaluated
    assert s2.scheduled_refreshes() == 8 and s2.report()["evaluations_saved_paths"] == 6 * 40
    # β = 1 is never exceeded: every scheduled refresh happens (10, 15, ..., 45)
    s3 = GreedyV2Sampler(PathBudget(space), warmup=0.2, filter_args=dict(SMALL, beta=1.0, merge=False))
    s3.setup(50)
    _, calls = _run(s3, 50)
    assert len(calls) == 8 and len(s3.agreements) == 7 and not s3.frozen
    assert s3.scheduled_refreshes() == 8 and s3.evaluations_saved() == 0


def test_filtered_sampling_prefers_good_paths():
    space = create_space("tiny")
    s = GreedyV2Sampler(PathBudget(space), warmup=0.0, filter_args=dict(SMALL, iterations=150, every=1.0, m=200, merge=False))
    s.setup(300)
    trained, _ = _run(s, 300)
    uniform = space.sample_indices(np.random.default_rng(1), 2000)
    assert np.mean([sum(p) for p in trained]) < uniform.sum(1).mean() - 1.0


def test_a_merged_op_is_never_sampled_and_the_cheaper_one_is_kept():
    space = create_space("tiny")
    s = GreedyV2Sampler(PathBudget(space), warmup=0.0, filter_args=dict(SMALL, every=1.0))
    s.setup(400)
    costs, kind = op_costs(s.budget)
    assert kind == "flops"
    ids = space.layers[1].choice_ids
    a, b = ids.index("k5e6"), ids.index("k3e1")
    with torch.no_grad():  # make two ops of layer 1 look alike to the filter
        w = s.filter.net.embedding.weight
        w[1 * s.filter.net.width + a] = w[1 * s.filter.net.width + b]
    new = s.merge()
    assert (1, a, b) in [(l, d, k) for l, d, k, _ in new] and costs[1][b] < costs[1][a]
    assert not s.active[1][a]
    trained, _ = _run(s, 400)
    assert all(p[1] != a for p in trained) and {p[1] for p in trained} <= set(np.flatnonzero(s.active[1]).tolist())


def test_merge_cost_is_the_latency_tables_prediction_when_a_budget_has_one():
    from hwnas.latency.table import LatencyTable

    from .conftest import REPO

    space = create_space("tiny")
    table = LatencyTable.load(REPO / "latency_tables" / "host-tiny-litert.json", space="tiny")
    budget = PathBudget(space, table=table, max_latency_ms=1e9)
    costs, kind = op_costs(budget)
    assert kind == "latency"
    X = np.zeros((1, space.num_layers), dtype=np.int64)
    X[0, 2] = 4
    assert costs[2][4] == pytest.approx(float(budget.latency_of(X)[0]))
    costs_no_budget, kind = op_costs(PathBudget(space, table=table))  # a table without a latency budget still decides
    assert kind == "latency" and np.allclose(costs_no_budget[2], costs[2])


def test_sampler_state_round_trips():
    space = create_space("tiny")
    s = GreedyV2Sampler(PathBudget(space), warmup=0.0, filter_args=dict(SMALL, beta=1.0))
    s.setup(40)
    _run(s, 12)
    r = create_sampler("greedy-v2", PathBudget(space), warmup=0.0, filter_args=dict(SMALL, beta=1.0))
    r.setup(40)
    r.load_state_dict(s.state_dict())
    r.load_tensor_state(s.tensor_state())
    X = space.sample_indices(np.random.default_rng(3), 500)
    assert np.array_equal(r.filter.log_phi(X), s.filter.log_phi(X))
    assert [a.tolist() for a in r.active] == [a.tolist() for a in s.active] and r.queue == s.queue
    assert r.agreements == s.agreements and r.n_refreshes == s.n_refreshes == 3


def test_bad_filter_options_are_clear_errors():
    with pytest.raises(HwnasError, match="unknown path-filter option"):
        FilterConfig.from_dict({"itrations": 5})
    with pytest.raises(HwnasError, match="q_start"):
        FilterConfig.from_dict({"q_start": 0.9, "q_end": 0.5})
    with pytest.raises(HwnasError, match="must be of type int"):
        FilterConfig.from_dict({"iterations": "many"})


V2_FILTER = ["dim=8", "iterations=10", "batch=32", "m=8", "every=0.25", "agreement_paths=200", "beta=1.0"]


def test_train_greedy_v2_end_to_end_then_kill_and_resume_bit_for_bit(hwnas_cli, tmp_path):
    from hwnas.train.checkpoint import load_checkpoint, read_checkpoint
    from hwnas.train.trainer import TrainConfig, train_supernet

    args = ["--space", "tiny", "--n-train", "96", "--n-val", "48", "--n-path-eval", "32", "--batch", "16", "--eval-batch", "16",
            "--threads", "1", "--quiet", "--sampler", "greedy-v2", "--max-iters", "12", "--warmup", "0.25", "--ckpt-every", "4"]
    for a in V2_FILTER:
        args += ["--filter-arg", a]
    cfg = TrainConfig(space="tiny", n_train=96, n_val=48, n_path_eval=32, batch_size=16, eval_batch=16, sampler="greedy-v2",
                      max_iters=12, warmup=0.25, ckpt_every=4,
                      filter_args={k: v for k, v in (a.split("=") for a in V2_FILTER)})
    train_supernet(cfg, tmp_path / "ref")
    run = tmp_path / "killed"
    killed = hwnas_cli("7", "train", *args, "--out", str(run), module="tests.kill_after")
    assert killed.returncode == -9
    resumed = hwnas_cli("train", *args, "--out", str(run), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "path filter: 3 refreshes" in resumed.stdout  # refreshes at iterations 3, 6 and 9
    m_ref, t_ref = read_checkpoint(tmp_path / "ref" / "supernet.json")
    m_res, t_res = read_checkpoint(run / "supernet.json")
    timeless = lambda d: {k: v for k, v in d.items() if k != "filter_seconds"}  # noqa: E731
    assert m_res["history"] == m_ref["history"] and timeless(m_res["sampler"]) == timeless(m_ref["sampler"])
    assert m_res["counters"]["n_eval_paths"] == 3 * 8
    for k, v in t_ref["sampler"].items():
        assert torch.equal(v, t_res["sampler"][k]), k
    for k, v in t_ref["model"].items():
        assert torch.equal(v, t_res["model"][k]), k
    ts = load_checkpoint(run)
    assert ts.meta["sampler"]["kind"] == "greedy-v2" and len(ts.meta["sampler"]["agreements"]) == 2


def test_training_summary_counts_the_evaluation_images_the_stop_rule_saved(tmp_path):
    from hwnas.train.trainer import TrainConfig, train_supernet

    f = {k: v for k, v in (a.split("=") for a in V2_FILTER)}
    cfg = TrainConfig(space="tiny", n_train=96, n_val=48, n_path_eval=32, batch_size=16, eval_batch=16, sampler="greedy-v2",
                      max_iters=12, warmup=0.25, early_stop=False, filter_args={**f, "beta": "0.0"})
    trainer, summary = train_supernet(cfg, None)
    rep = summary["path_filter"]
    # refreshes planned at 3, 6, 9; u > 0 at 6 freezes the filter: the one at 9 (8 paths x 16 images) is saved
    assert rep["frozen"] and rep["refreshes"] == 2 and summary["n_eval_images"] == 2 * 8 * 16
    assert rep["evaluations_saved_paths"] == 8 and rep["eval_images_saved"] == 8 * 16


def test_train_rejects_bad_filter_options(hwnas_cli, tmp_path):
    r = hwnas_cli("train", "--space", "tiny", "--sampler", "greedy-v2", "--filter-arg", "bogus=1", "--out", str(tmp_path / "r"))
    assert r.returncode != 0 and r.stderr.startswith("error: unknown path-filter option(s) bogus")
    r = hwnas_cli("train", "--space", "tiny", "--sampler", "greedy-v2", "--filter-arg", "iterations", "--out", str(tmp_path / "r"))
    assert r.returncode != 0 and "--filter-arg 'iterations' must look like name=value" in r.stderr


@pytest.fixture(scope="module")
def v2_run(tmp_path_factory):
    from hwnas.train.trainer import TrainConfig, train_supernet

    out = tmp_path_factory.mktemp("v2") / "run"
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train_supernet(TrainConfig(space="tiny", n_train=96, n_val=48, n_path_eval=32, batch_size=16, eval_batch=16,
                                   sampler="greedy-v2", max_iters=8, warmup=0.25, ckpt_every=0,
                                   filter_args={k: v for k, v in (a.split("=") for a in V2_FILTER)}), out)
    finally:
        torch.set_num_threads(n)
    return out


def test_search_drops_weak_offspring_and_never_proposes_a_merged_op(v2_run, tmp_path, monkeypatch):
    import json

    from hwnas.search.api import run_search
    from hwnas.train.checkpoint import TrainedSupernet, load_checkpoint

    meta = json.loads((v2_run / "supernet.json").read_text())
    meta["sampler"]["active"][0] = [i != 2 for i in range(6)]  # as if layer 0's op 2 had been merged away
    (v2_run / "supernet.json").write_text(json.dumps(meta))
    adm = load_checkpoint(v2_run).path_admission()
    assert adm is not None and adm.filter is not None and not adm.active[0][2]
    X = create_space("tiny").sample_indices(np.random.default_rng(0), 4000)
    # a filter this briefly trained separates little; set its cut at the median score so it rejects half
    adm.filter.net.log_max_phi.fill_(float(np.median(adm.filter.log_phi(X))) - math.log(0.5))
    rejected = adm.rejected_mask(X)
    assert rejected[X[:, 0] == 2].all() and 0.4 < rejected.mean() < 0.7
    monkeypatch.setattr(TrainedSupernet, "path_admission", lambda self: adm)

    out = run_search(flops="1000M", supernet=v2_run, algorithm="nsga2", population=8, generations=3, tables_dir=tmp_path,
                     n_eval=16, bn_batches=1, threads=1, out=tmp_path / "on", plot=False)
    rows = np.array([create_space("tiny").choice_indices(r.arch) for r in out.result.history])
    assert len(rows) >= 8 and not adm.rejected_mask(rows).any()
    assert any("path filter" in n for n in out.notes)
    off = run_search(flops="1000M", supernet=v2_run, algorithm="nsga2", population=8, generations=3, tables_dir=tmp_path,
                     n_eval=16, bn_batches=1, threads=1, out=tmp_path / "off", plot=False, path_filter=False)
    rows = np.array([create_space("tiny").choice_indices(r.arch) for r in off.result.history])
    assert adm.rejected_mask(rows).any()  # without the filter, weak or merged archs are evaluated


def test_precision_recall_of_weak():
    from hwnas.train.path_filter_eval import precision_recall

    pred = np.array([True, True, False, True, False])
    truth = np.array([True, False, False, True, True])
    assert precision_recall(pred, truth) == pytest.approx((100 * 2 / 3, 100 * 2 / 3))


def test_filter_evaluate_cli_runs_table4_and_rejects_bad_input(hwnas_cli):
    import json

    r = hwnas_cli("filter", "evaluate", "--fractions", "0.01", "--seeds", "2", "--methods", "pn", "--iterations", "3", "--dim", "4",
                  "--batch", "16", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["n_archs"] == 6561 and d["weak_share"] == pytest.approx(0.9, abs=0.005)
    assert [(x["method"], x["fraction"], x["seed"]) for x in d["runs"]] == [("pn", 0.01, 0), ("pn", 0.01, 1)]
    assert all(x["n_weak_train"] > 40 for x in d["runs"])  # 66 archs sampled, ~90% weak
    assert d["summary"][0]["seeds"] == 2 and 0 <= d["summary"][0]["precision"] <= 100
    bad = hwnas_cli("filter", "evaluate", "--fractions", "2")
    assert bad.returncode != 0 and bad.stderr.startswith("error: a data fraction must lie in (0, 1]")
    bad = hwnas_cli("filter", "evaluate", "--benchmark", "nas-bench-201")
    assert bad.returncode != 0 and "unknown benchmark 'nas-bench-201'" in bad.stderr
