"""GreedyNASv2 on NAS-Bench-Macro: Table 4 (path filter, PU vs PN), a Figure-5 analogue and filter cost.

Table 4: top 10% by mean accuracy = good, the rest weak; the filter trained PU (weak archs of a
1/10/50/100% sample + uniformly drawn unlabelled archs) and PN (weak vs good of the sample);
precision and recall of "weak" over all 6,561 archs, mean ± std and a bootstrap 90% interval
over seeds (``hwnas.train.path_filter_eval``).

Figure 5 analogue: the real samplers (uniform, GreedyNAS, GreedyNASv2 from ``hwnas.train``)
run on the benchmark's space with the supernet's path evaluation *simulated*: the loss of a
path is -(its benchmark accuracy + Gaussian noise), a fresh draw at every evaluation, with the
noise's standard deviation calibrated so that Kendall's tau between noisy and true accuracy
over the whole space is 0.5 (``calibrate_noise`` + ``noisy_path_loss``, importable by other
benchmarks as the one noise model). Reported: the average percentile rank (0% = the best arch) of
the paths each sampler trains, after the warm-up and overall.

Top-10% Kendall tau, a *model*: a path's final supernet evaluation is its accuracy plus noise
whose variance scales with how little its ops were trained, sd = sd0 * sqrt(mean over layers of
(uniform expected count / count of trained paths using that op)); sd0 is the same calibration,
so uniform sampling gives tau 0.5 over the space. The tau among the true top 10% then follows
from where each sampler spends its training. The paper measures real supernets; this only
shows what the training distribution alone implies.

Filter cost: seconds to score 10,000 paths, at the paper's size (128) and the size used here.

The filter runs at a reduced size here (``--dim``, ``--batch``, ``--iterations``): at the
paper's 128-d, batch 1024, one training iteration takes seconds on the shared 2-core CPU, so
3000 iterations x 40 runs is out of reach; ``--sensitivity`` measures on one seed how the
figures move with the iteration count.

    python benchmarks/path_filter_bench.py [--parts cost,table4,figure5] [--seeds 5] [--iterations 300]
        [--sim-iters 10000] [--sim-seeds 3] [--quick]
"""

from __future__ import annotations

import argparse
import time
import json
from typing import Any, Callable, Sequence

import numpy as np
from scipy import stats

from common import RESULTS, print_table, write_results  # noqa: I001  (benchmarks/ on sys.path)

from hwnas.train.path_filter import FilterConfig, PathFilter
from hwnas.train.path_filter_eval import benchmark_matrix, evaluate_filter

PAPER_T4 = {("pu", 0.01): (97.21, 97.08), ("pu", 0.1): (98.37, 98.34), ("pu", 0.5): (98.30, 98.19), ("pu", 1.0): (98.81, 98.62),
            ("pn", 0.01): (79.52, 85.82), ("pn", 0.1): (78.74, 93.14), ("pn", 0.5): (88.45, 85.21), ("pn", 1.0): (85.55, 90.24)}
PAPER_RANK = {"uniform": 50.6, "greedy": 18.1, "greedy-v2": 6.4}
PAPER_TAU10 = {"uniform": 23.9, "greedy": 41.5, "greedy-v2": 50.3}


def interval(x: np.ndarray) -> tuple[float, float]:
    if len(x) < 2 or np.ptp(x) == 0:
        return float(np.mean(x)), float(np.mean(x))
    r = stats.bootstrap((x,), np.mean, confidence_level=0.9, n_resamples=2000, random_state=0)
    return float(r.confidence_interval.low), float(r.confidence_interval.high)


# ---- Figure 5 simulation --------------------------------------------------------------------
def calibrate_noise(acc: np.ndarray, target_tau: float = 0.5, seed: int = 0) -> float:
    """sd of Gaussian noise whose noisy accuracy has Kendall tau ``target_tau`` with the truth."""
    z = np.random.default_rng(seed).standard_normal(len(acc))
    lo, hi = 0.0, 10.0 * float(acc.std())
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        tau = stats.kendalltau(acc, acc + mid * z).statistic
        lo, hi = (mid, hi) if tau > target_tau else (lo, mid)
    return 0.5 * (lo + hi)


def noisy_path_loss(X: np.ndarray, acc: np.ndarray, sd: float, seed: int) -> Callable[[Sequence[Sequence[int]]], list[float]]:
    """The simulated supernet evaluation (the noise model): loss of a path = -(its benchmark
    accuracy + N(0, sd²)), a fresh draw at every call; ``sd`` from ``calibrate_noise``."""
    row = {tuple(int(i) for i in r): j for j, r in enumerate(X)}
    noise = np.random.default_rng([seed, 7])

    def evaluate(paths: Sequence[Sequence[int]]) -> list[float]:
        return [-(acc[row[tuple(int(i) for i in p)]] + sd * noise.standard_normal()) for p in paths]

    return evaluate


def simulate(sampler_name: str, X: np.ndarray, acc: np.ndarray, sd: float, iters: int, seed: int,
             v2_filter: dict[str, Any]) -> dict[str, Any]:
    from hwnas.space import create_space
    from hwnas.train.samplers import PathBudget, create_sampler

    space = create_space("nas-bench-macro")
    row = {tuple(int(i) for i in r): j for j, r in enumerate(X)}
    evaluate = noisy_path_loss(X, acc, sd, seed)

    kw: dict[str, Any] = {}
    if sampler_name == "greedy":
        kw = dict(m=10, k=5, pool_size=1000, eps_max=0.8, warmup=0.2, anneal=0.5, early_stop=False)
    elif sampler_name == "greedy-v2":
        kw = dict(warmup=0.2, early_stop=False, filter_args=v2_filter, seed=seed)
    s = create_sampler(sampler_name, PathBudget(space), **kw)
    s.setup(iters)
    rng = np.random.default_rng([seed, 1])
    trained: list[int] = []
    pending: list[tuple[int, ...]] = []
    t0 = time.perf_counter()
    for it in range(iters):
        if not pending:
            pending = list(s.next_paths(it, rng, evaluate))
        trained.append(row[tuple(pending.pop(0))])
    out = {"trained": np.array(trained), "seconds": time.perf_counter() - t0, "evaluated_paths": s.n_evaluated_paths}
    if sampler_name == "greedy-v2":
        out["report"] = s.report()
    return out


def exposure_tau10(X: np.ndarray, acc: np.ndarray, trained: np.ndarray, sd0: float, seed: int, draws: int = 20) -> float:
    """Top-10% Kendall tau under the exposure noise model (see the module doc)."""
    T, L = len(trained), X.shape[1]
    n_ch = X.max(0) + 1
    ratio = np.zeros(len(X))
    for j in range(L):
        counts = np.bincount(X[trained, j], minlength=n_ch[j]).astype(float) + 1.0
        ratio += (T / n_ch[j]) / counts[X[:, j]]
    sd = sd0 * np.sqrt(ratio / L)
    top = acc >= np.quantile(acc, 0.9)
    rng = np.random.default_rng([seed, 11])
    taus = [stats.kendalltau(acc[top], acc[top] + sd[top] * rng.standard_normal(top.sum())).statistic for _ in range(draws)]
    return float(np.mean(taus))


def scoring_seconds(n_choices: list[int], dim: int, n: int = 10_000) -> dict[str, float]:
    """CPU and wall seconds to score n paths (the shared machine's wall time includes waiting)."""
    f = PathFilter(n_choices, FilterConfig(dim=dim))
    X = np.random.default_rng(0).integers(0, min(n_choices), (n, len(n_choices)))
    f.log_phi(X[:100])
    c0, t0 = time.process_time(), time.perf_counter()
    f.is_weak(X)
    return {"cpu": time.process_time() - c0, "wall": time.perf_counter() - t0}


def _kept_parts(path) -> dict[str, Any]:
    """The results of an earlier run, without its stamp (``write_results`` stamps this run)."""
    if not path.exists():
        return {}
    return {k: v for k, v in json.loads(path.read_text()).items() if k not in ("benchmark", "when", "machine")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--fractions", default="0.01,0.1,0.5,1")
    ap.add_argument("--iterations", type=int, default=300)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--dim", type=int, default=16)
    ap.add_argument("--sensitivity", default="", help="iteration counts to compare on seed 0 (e.g. 100,300,1000)")
    ap.add_argument("--sim-seeds", type=int, default=3)
    ap.add_argument("--sim-iters", type=int, default=2000)
    ap.add_argument("--sim-filter-iters", type=int, default=150, help="filter iterations per refresh in the simulation")
    ap.add_argument("--parts", default="cost,table4,figure5",
                    help="which parts to run; the others are kept from the existing results file")
    ap.add_argument("--quick", action="store_true", help="a smoke run: 1 seed, few iterations")
    ap.add_argument("--out-name", default="", help="results file name (default path_filter_bench)")
    a = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    if a.quick:
        a.seeds, a.iterations, a.sim_seeds, a.sim_iters, a.fractions, a.sim_filter_iters = 1, 20, 1, 300, "0.1", 20
    fractions = [float(x) for x in a.fractions.split(",")]
    cfg = FilterConfig(dim=a.dim, batch=a.batch, iterations=a.iterations)
    parts = set(a.parts.split(","))
    out_name = a.out_name or ("path_filter_bench_quick" if a.quick else "path_filter_bench")
    old = RESULTS / f"{out_name}.json"
    payload: dict[str, Any] = _kept_parts(old) if parts != {"cost", "table4", "figure5"} else {}
    payload["paper_table4"] = {f"{m} {f}": v for (m, f), v in PAPER_T4.items()}

    X, acc, n_choices = benchmark_matrix("nas-bench-macro")
    # ---- filter cost
    if "cost" in parts:
        cost = {f"dim {d}": scoring_seconds(n_choices, d) for d in sorted({128, a.dim})}
        payload["score_10k_paths_seconds"] = cost
        print_table(["filter size", "CPU s to score 10,000 paths", "wall s"], [[k, v["cpu"], v["wall"]] for k, v in cost.items()],
                    "filter cost (1 thread)")

    # ---- Table 4
    if "table4" in parts:
        payload["filter"] = cfg.to_dict()
        t4 = evaluate_filter("nas-bench-macro", fractions, range(a.seeds), ("pu", "pn"), cfg=cfg,
                             progress=lambda r: print(f"  {r['method']} {r['fraction']:g} seed {r['seed']}: "
                                                      f"P {r['precision']:.2f} R {r['recall']:.2f} ({r['fit_seconds']}s)", flush=True))
        rows = []
        for s in t4["summary"]:
            rs = [r for r in t4["runs"] if (r["method"], r["fraction"]) == (s["method"], s["fraction"])]
            pi = interval(np.array([r["precision"] for r in rs]))
            ri = interval(np.array([r["recall"] for r in rs]))
            s["precision_90ci"], s["recall_90ci"] = pi, ri
            paper = PAPER_T4.get((s["method"], s["fraction"]), (None, None))
            rows.append([s["method"].upper(), f"{100 * s['fraction']:g}%", f"{s['precision']:.2f} ± {s['precision_std']:.2f}",
                         f"{s['recall']:.2f} ± {s['recall_std']:.2f}", f"{paper[0]} / {paper[1]}"])
        print_table(["method", "data", "precision (weak)", "recall (weak)", "paper P / R"], rows,
                    f"Table 4 on NAS-Bench-Macro, {a.seeds} seeds, filter {a.dim}-d, batch {a.batch}, {a.iterations} iterations")
        payload["table4"] = t4
    if a.sensitivity:
        sens = []
        for its in [int(x) for x in a.sensitivity.split(",")]:
            c = FilterConfig(dim=a.dim, batch=a.batch, iterations=its)
            r = evaluate_filter("nas-bench-macro", (0.01, 1.0), (0,), ("pu", "pn"), cfg=c)
            sens += [dict(s, iterations=its) for s in r["summary"]]
        print_table(["iterations", "method", "data", "precision", "recall"],
                    [[s["iterations"], s["method"], f"{100 * s['fraction']:g}%", s["precision"], s["recall"]] for s in sens],
                    "sensitivity to the filter's training length (seed 0)")
        payload["sensitivity"] = sens

    # ---- Figure 5 analogue and top-10% tau
    if "figure5" in parts:
        sd = calibrate_noise(acc)
        z = np.random.default_rng(1).standard_normal(len(acc))
        check_tau = float(stats.kendalltau(acc, acc + sd * z).statistic)
        pct = 100.0 * stats.rankdata(-acc, method="average") / len(acc)
        v2_filter = dict(dim=a.dim, batch=a.batch, iterations=a.sim_filter_iters, m=200, every=0.1, agreement_paths=2000)
        sim: dict[str, Any] = {"noise_sd": sd, "noise_tau_check": check_tau, "iterations": a.sim_iters, "v2_filter": v2_filter, "runs": []}
        for name in ("uniform", "greedy", "greedy-v2"):
            for seed in range(a.sim_seeds):
                r = simulate(name, X, acc, sd, a.sim_iters, seed, v2_filter)
                w = int(round(0.2 * a.sim_iters))
                rec = {"sampler": name, "seed": seed, "rank_all": float(pct[r["trained"]].mean()),
                       "rank_after_warmup": float(pct[r["trained"][w:]].mean()),
                       "tau_top10_model": exposure_tau10(X, acc, r["trained"], sd, seed),
                       "evaluated_paths": r["evaluated_paths"], "seconds": round(r["seconds"], 1)}
                if "report" in r:
                    rec["v2"] = {k: r["report"][k] for k in ("refreshes", "u", "merged_ops", "frozen")}
                sim["runs"].append(rec)
                print(f"  {name} seed {seed}: rank {rec['rank_all']:.1f}% (after warm-up {rec['rank_after_warmup']:.1f}%), "
                      f"top-10% tau {rec['tau_top10_model']:.3f}", flush=True)
        rows = []
        for name in ("uniform", "greedy", "greedy-v2"):
            rs = [r for r in sim["runs"] if r["sampler"] == name]
            ra, rw, tt = (np.array([r[k] for r in rs]) for k in ("rank_all", "rank_after_warmup", "tau_top10_model"))
            lo, hi = interval(rw)
            rows.append([name, f"{ra.mean():.1f}", f"{rw.mean():.1f} ({lo:.1f}-{hi:.1f})", PAPER_RANK[name],
                         f"{100 * tt.mean():.1f}", PAPER_TAU10[name]])
        print_table(["sampler", "avg pct rank, all (%)", "after warm-up (90% CI)", "paper", "top-10% tau, model (%)", "paper"], rows,
                    f"Figure 5 analogue: noise sd {sd:.3f} (tau {check_tau:.3f}), {a.sim_iters} iterations, {a.sim_seeds} seeds")
        payload["figure5"] = sim
    if old.exists():  # another part may have been written meanwhile: keep its keys, replace this run's
        payload = {**_kept_parts(old), **payload}
    print(write_results(out_name, payload))


if __name__ == "__main__":
    main()
