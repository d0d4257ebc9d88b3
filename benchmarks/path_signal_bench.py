"""Is the sampler's path signal informative? Kendall tau of path-evaluation signals with the truth,
tracked through supernet training (why GreedyNAS loses on small supernets).

GreedyNAS and GreedyNASv2 rank candidate paths by their loss on a small evaluation batch, in
eval mode, so every BN layer normalises with running statistics averaged over all the paths
trained lately. This benchmark trains ``tiny`` supernets on the built-in data and, every
``--every`` iterations, scores the ground-truth archs of ``supernet_bench`` with each signal:

- ``running/first64``: the trainer's signal (eval-mode loss on the first ``eval_batch``
  path-eval images, unbalanced: 3-12 images per class);
- ``running/balanced``: eval-mode loss on a class-balanced set (``--per-class`` images of each
  class from the val split);
- ``batch/first64`` and ``batch/balanced``: the same with BN normalising by the batch's own
  statistics (``hwnas.train.evaluate.bn_batch_statistics``), no extra images;
- ``recal/balanced``: per-path BN re-estimation on ``--recal-images`` training images, then
  eval-mode loss on the balanced set (what search does before it scores an arch).

Kendall tau is taken between -loss and the archs' standalone val accuracy (the ground truth
committed in ``results/supernet_bench_1000it.json``: 24 archs, 2 epochs, seed noise 1.6 points
from 4 pairs -- a weak truth; its ceiling tau is 0.81). Also measured: seconds per path for each
signal relative to one training iteration, and the images each forwards (the cost charged to
a sampler: images / 3.33 optimisation images).

    python benchmarks/path_signal_bench.py [--samplers uniform,greedy,greedy-v2] [--iters 250] [--seeds 0]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from common import print_table, write_results  # noqa: I001  (benchmarks/ on sys.path)

REPO = Path(__file__).resolve().parents[1]
TRUTH = REPO / "benchmarks" / "results" / "supernet_bench_1000it.json"
SIGNALS = ("running/first64", "running/balanced", "batch/first64", "batch/balanced", "recal/balanced")


def balanced_indices(labels: np.ndarray, per_class: int) -> np.ndarray:
    """The first ``per_class`` indices of each class (in split order)."""
    return np.concatenate([np.flatnonzero(labels == c)[:per_class] for c in np.unique(labels)])


def score_archs(supernet, archs: list[list[int]], sets: dict[str, Any], train, recal_images: int) -> dict[str, Any]:
    """Loss of each arch under each signal, and seconds per arch per signal."""
    import torch

    from hwnas.train.evaluate import batch_loss, recalibrate_bn

    out: dict[str, Any] = {s: [] for s in SIGNALS}
    secs = {s: 0.0 for s in SIGNALS}
    state = {k: v.clone() for k, v in supernet.state_dict().items()}
    for idx in archs:
        for name in ("running/first64", "running/balanced", "batch/first64", "batch/balanced"):
            bn, which = name.split("/")
            t0 = time.perf_counter()
            out[name].append(batch_loss(supernet, idx, *sets[which], bn=bn)[0])
            secs[name] += time.perf_counter() - t0
        t0 = time.perf_counter()
        recalibrate_bn(supernet, idx, train, n_images=recal_images, batch_size=recal_images, seed=0)
        out["recal/balanced"].append(batch_loss(supernet, idx, *sets["balanced"])[0])
        secs["recal/balanced"] += time.perf_counter() - t0
    supernet.load_state_dict(state)  # recalibration rewrote running statistics: restore the training state
    return {"loss": out, "seconds_per_arch": {k: v / len(archs) for k, v in secs.items()}}


def tau(loss: list[float], truth: np.ndarray) -> float:
    return float(stats.kendalltau(-np.asarray(loss), truth).statistic)


def run_condition(sampler: str, seed: int, a, archs, truth) -> dict[str, Any]:
    import torch

    from hwnas.train.data import build_datasets
    from hwnas.train.trainer import SupernetTrainer, TrainConfig

    torch.set_num_threads(1)
    ds = build_datasets("builtin", n_train=a.n_train, n_val=a.n_val, n_path_eval=a.n_path_eval, seed=0)
    bal = balanced_indices(ds.val.labels.numpy(), a.per_class)
    sets = {"first64": ds.path_eval.batch(torch.arange(min(a.eval_batch, len(ds.path_eval)))),
            "balanced": ds.val.batch(torch.from_numpy(bal))}
    kw: dict[str, Any] = {}
    if sampler == "greedy-v2":
        kw["filter_args"] = {"dim": 16, "batch": 128, "iterations": 150, "m": 40, "every": 0.1, "agreement_paths": 2000}
    cfg = TrainConfig(space="tiny", data="builtin", n_train=a.n_train, n_val=a.n_val, n_path_eval=a.n_path_eval, data_seed=0,
                      sampler=sampler, max_iters=a.iters, batch_size=64, eval_batch=a.eval_batch, lr=0.12, seed=seed,
                      pool_size=100, m=10, k=5, eps_max=0.8, warmup=0.2, anneal=0.5, alpha=0.08, early_stop=False, ckpt_every=0,
                      **kw)
    tr = SupernetTrainer(cfg, None, datasets=ds)
    track = []
    warm = int(round(0.2 * a.iters))
    t_train = 0.0
    while tr.counters.iteration < tr.total_iters:
        t0 = time.perf_counter()
        tr.step()
        t_train += time.perf_counter() - t0
        it = tr.counters.iteration
        if it % a.every == 0 or it == tr.total_iters:
            sc = score_archs(tr.supernet, archs, sets, ds.train, a.recal_images)
            rec = {"iteration": it, "filtering": sampler != "uniform" and it > warm,
                   "tau": {s: tau(sc["loss"][s], truth) for s in SIGNALS}, "seconds_per_arch": sc["seconds_per_arch"]}
            track.append(rec)
            print(f"  {sampler} seed {seed} it {it}: " + ", ".join(f"{s} {v:+.2f}" for s, v in rec["tau"].items()), flush=True)
    k = tr.counters
    it_s = (k.train_seconds) / max(k.iteration, 1)
    return {"sampler": sampler, "seed": seed, "track": track, "seconds_per_iteration": it_s,
            "eval_seconds_per_iteration": k.eval_seconds / max(k.iteration, 1), "n_eval_images": k.n_eval_images,
            "n_opt_images": k.n_opt_images, "balanced_images": int(len(bal)), "first_images": int(len(sets["first64"][1])),
            "balanced_class_counts": np.bincount(ds.val.labels.numpy()[bal]).tolist(),
            "first_class_counts": np.bincount(sets["first64"][1].numpy()).tolist()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--samplers", default="uniform,greedy,greedy-v2")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--iters", type=int, default=250)
    ap.add_argument("--every", type=int, default=50)
    ap.add_argument("--n-train", type=int, default=2000)
    ap.add_argument("--n-val", type=int, default=400)
    ap.add_argument("--n-path-eval", type=int, default=100)
    ap.add_argument("--eval-batch", type=int, default=64)
    ap.add_argument("--per-class", type=int, default=10)
    ap.add_argument("--recal-images", type=int, default=256)
    ap.add_argument("--out-name", default="path_signal_bench")
    a = ap.parse_args()
    sys.path.insert(0, str(REPO))
    gt = json.loads(TRUTH.read_text())
    settings = gt["settings"]
    if (settings["n_train"], settings["n_val"], settings["n_path_eval"], settings["data_seed"]) != (a.n_train, a.n_val, a.n_path_eval, 0):
        raise SystemExit("error: the committed ground truth was trained on other data splits; use its n_train/n_val/n_path_eval")
    archs = [g["indices"] for g in gt["ground_truth"]]
    truth = np.array([g["val_acc"] for g in gt["ground_truth"]])
    runs: list[dict[str, Any]] = []
    payload = {"settings": vars(a), "truth": {"source": "results/supernet_bench_1000it.json", "archs": len(archs),
                                               "gt_epochs": settings["gt_epochs"], "seed_pairs": len(gt["seed_replicas"])},
               "signals": list(SIGNALS), "runs": runs}
    for sampler in a.samplers.split(","):
        for seed in (int(s) for s in a.seeds.split(",")):
            runs.append(run_condition(sampler, seed, a, archs, truth))
            write_results(a.out_name, payload)  # each finished condition is kept
    rows = []
    for r in runs:
        for t in r["track"]:
            rows.append([r["sampler"], r["seed"], t["iteration"], "yes" if t["filtering"] else "no"] + [f"{t['tau'][s]:+.2f}" for s in SIGNALS])
    print_table(["sampler", "seed", "iteration", "filtering", *SIGNALS], rows,
                f"Kendall tau of -loss with the standalone truth ({len(archs)} archs, 2 epochs)")
    cost = [[r["sampler"], r["seed"], f"{r['seconds_per_iteration']:.3f}"] +
            [f"{np.mean([t['seconds_per_arch'][s] for t in r['track']]) / r['seconds_per_iteration']:.3f}" for s in SIGNALS] for r in runs]
    print_table(["sampler", "seed", "s / training iteration", *[f"{s} (x iteration)" for s in SIGNALS]], cost,
                "seconds to score one path, relative to one training iteration (measured in the same process)")
    print(write_results(a.out_name, payload))


if __name__ == "__main__":
    main()
