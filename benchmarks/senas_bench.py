"""SE-NAS shrinking on NAS-Bench-Macro (part 1): does the best arch survive? (the paper's Fig. 6 comparison)

The evaluator is the benchmark's accuracy plus Gaussian noise sized so that Kendall's tau with
the truth over the whole space is 0.5 (the calibration of ``path_filter_bench.py``'s Figure-5
simulation, imported from there). A shrinking stage stands for one trained supernet, so each
arch's noise is drawn once per stage and held for that stage (the supernet scores an arch the
same way every time it is asked); the next stage draws anew. Eq. 4's snapshot averaging has no
counterpart here (there are no weights): the noise *is* what is left after it.

Each stage runs the library's own stage decision (``hwnas.search.senas.shrink.score_and_drop``:
SI over ``--samples`` archs per op, SC, the score, the >= 1-op rule) with three operator
scores: SE-NAS (Eq. 7), accuracy only (SI, the "accuracy-based" metric of Fig. 6) and random.
Reported over ``--seeds`` seeds: how often the space's best arch survives (two archs tie
for the best accuracy; either one counts), the shrunk space's
size, the true rank (1 = best of all 6,561) of the best arch left, and the share of the
ground-truth top ops kept (an op's ground truth = the mean accuracy of the archs containing it,
as in the paper). The settings (2 stages x 4 ops of 24, 1,000 samples) were fixed before any
run; seeds 0..9 are the only ones run.

    python benchmarks/senas_bench.py [--seeds 10] [--stages 2] [--drop 4] [--samples 1000]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
from scipy import stats

from common import bootstrap_distribution, print_table, write_results  # noqa: I001  (benchmarks/ on sys.path)
from path_filter_bench import calibrate_noise

from hwnas.search.senas.scores import METRICS
from hwnas.search.senas.shrink import ShrinkConfig, score_and_drop
from hwnas.space import create_space
from hwnas.train.path_filter_eval import benchmark_matrix

LABEL = {"senas": "SE-NAS (Eq. 7)", "si": "accuracy only (SI)", "random": "random"}


def shrink_tabular(X: np.ndarray, acc: np.ndarray, sd: float, metric: str, seed: int, stages: int, drop: int,
                   samples: int) -> dict[str, Any]:
    """Shrink NAS-Bench-Macro with noisy tabular accuracy; the outcome for one seed and metric."""
    base = create_space("nas-bench-macro")
    radix = np.cumprod([1] + [len(layer.choices) for layer in base.layers[::-1]])[:-1][::-1]
    row_of = np.empty(len(X), dtype=np.int64)
    row_of[X @ radix] = np.arange(len(X))
    space = base
    cfg = ShrinkConfig(stages=stages, drop=drop, samples=samples, metric=metric, seed=seed)
    for s in range(stages):
        noise = sd * np.random.default_rng([seed, s, 1]).standard_normal(len(X))  # this stage's supernet
        # rows of the shrunk space are indices into its own choices: map them to the base's
        to_base = [np.array([layer.choice_ids.index(o) for o in sl.choice_ids]) for layer, sl in zip(base.layers, space.layers)]

        def accuracy(rows: np.ndarray, to_base=to_base, noise=noise) -> np.ndarray:
            full = np.stack([to_base[j][rows[:, j]] for j in range(rows.shape[1])], axis=1)
            r = row_of[full @ radix]
            return acc[r] + noise[r]

        rec = score_and_drop(space, accuracy, cfg, np.random.default_rng([seed, s, 2]))
        space = create_space("nas-bench-macro", choices=rec["kept"])
    kept = np.ones(len(X), dtype=bool)
    for j, layer in enumerate(space.layers):
        allowed = [base.layers[j].choice_ids.index(o) for o in layer.choice_ids]
        kept &= np.isin(X[:, j], allowed)
    # ties share the best rank: two archs share the top accuracy of NAS-Bench-Macro (layers 6 and 7 swapped)
    rank = 1 + np.searchsorted(np.sort(-acc), -acc, side="left")
    gt = np.array([acc[X[:, j] == i].mean() for j, layer in enumerate(base.layers) for i in range(len(layer.choices))])
    alive = np.array([base.layers[j].choice_ids[i] in space.layers[j].choice_ids
                      for j, layer in enumerate(base.layers) for i in range(len(layer.choices))])
    n_kept_ops = int(alive.sum())
    top = np.argsort(-gt)[:n_kept_ops]
    return {"metric": metric, "seed": seed, "best_survives": bool(kept[rank == 1].any()), "archs": int(kept.sum()),
            "best_rank_left": int(rank[kept].min()), "ops_kept": n_kept_ops,
            "gt_top_ops_kept": float(alive[top].mean()), "kept": [list(layer.choice_ids) for layer in space.layers]}


def interval(values: list[float]) -> list[float]:
    v = np.asarray(values, dtype=float)
    if np.ptp(v) == 0:
        return [float(v[0]), float(v[0])]
    r = bootstrap_distribution([v], np.mean, paired=False)
    return [float(r.confidence_interval.low), float(r.confidence_interval.high)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--stages", type=int, default=2)
    ap.add_argument("--drop", type=int, default=4)
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--out-name", default="senas_bench_tabular")
    a = ap.parse_args()
    X, acc, _ = benchmark_matrix("nas-bench-macro")
    sd = calibrate_noise(acc)
    check = float(stats.kendalltau(acc, acc + sd * np.random.default_rng(1).standard_normal(len(acc))).statistic)
    runs = []
    t0 = time.perf_counter()
    for metric in METRICS:
        for seed in range(a.seeds):
            r = shrink_tabular(X, acc, sd, metric, seed, a.stages, a.drop, a.samples)
            runs.append(r)
            print(f"  {metric} seed {seed}: best survives {r['best_survives']}, {r['archs']} archs, best left rank {r['best_rank_left']}",
                  flush=True)
    rows, summary = [], []
    for metric in METRICS:
        rs = [r for r in runs if r["metric"] == metric]
        surv = [float(r["best_survives"]) for r in rs]
        size, rank, gt = ([r[k] for r in rs] for k in ("archs", "best_rank_left", "gt_top_ops_kept"))
        s = {"metric": metric, "best_survives": int(sum(surv)), "seeds": len(rs), "survival_90ci": interval(surv),
             "archs_mean": float(np.mean(size)), "archs_90ci": interval(size), "best_rank_left_median": float(np.median(rank)),
             "best_rank_left_mean": float(np.mean(rank)), "best_rank_left_90ci": interval(rank),
             "gt_top_ops_kept_mean": float(np.mean(gt)), "gt_top_ops_kept_90ci": interval(gt)}
        summary.append(s)
        rows.append([LABEL[metric], f"{s['best_survives']}/{len(rs)}", f"{s['archs_mean']:.0f} [{s['archs_90ci'][0]:.0f}, {s['archs_90ci'][1]:.0f}]",
                     f"{s['best_rank_left_mean']:.1f} [{s['best_rank_left_90ci'][0]:.1f}, {s['best_rank_left_90ci'][1]:.1f}]",
                     f"{100 * s['gt_top_ops_kept_mean']:.0f}% [{100 * s['gt_top_ops_kept_90ci'][0]:.0f}, {100 * s['gt_top_ops_kept_90ci'][1]:.0f}]"])
    print_table(["operator score", "best arch survives", "archs left (90% CI)", "rank of best left (90% CI)", "GT-top ops kept (90% CI)"],
                rows, f"NAS-Bench-Macro, {a.stages} stages x {a.drop} ops, {a.samples} samples/op, noise sd {sd:.3f} (tau {check:.3f}), {a.seeds} seeds")
    path = write_results(a.out_name, {"settings": vars(a), "noise_sd": sd, "noise_tau_check": check, "archs_total": len(acc),
                                      "seconds": round(time.perf_counter() - t0, 1), "summary": summary, "runs": runs})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
