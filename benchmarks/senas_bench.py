"""SE-NAS shrinking: does the best arch survive (NAS-Bench-Macro), and does each step raise Kendall tau (tiny)?

Part 1, ``--phase tabular`` (the paper's Fig. 6 comparison). The evaluator is NAS-Bench-Macro's
accuracy plus Gaussian noise sized so that Kendall's tau with the truth over the whole space is
0.5 (the calibration of ``path_filter_bench.py``'s Figure-5 simulation, imported from there). A
shrinking stage stands for one trained supernet, so each arch's noise is drawn once per stage and
held for that stage; the next stage draws anew. Each stage runs the library's own stage decision
(``hwnas.search.senas.shrink.score_and_drop``: SI over ``--samples`` archs per op, SC, the score,
the >= 1-op rule) and ``hwnas shrink``'s stop rule (no stage once the space holds <= 50 archs),
with three operator scores: SE-NAS (Eq. 7), accuracy only (SI, the "accuracy-based" metric of
Fig. 6) and random. Reported over ``--seeds`` seeds: how often the space's best arch survives (two
archs tie for the best accuracy; either counts; Wilson interval), the shrunk space's size, the
true rank (1 = best of 6,561) of the best arch left, and the share of the ground-truth top ops
kept (an op's ground truth = the mean accuracy of the archs containing it, as in the paper).
Three conditions, none chosen by its outcome:

- pre-registered: 2 stages x 4 ops of 24, 1,000 samples (the paper's count), one supernet's
  noise. Fixed before any run; seeds 0..9 were the first run, 10..29 were added later.
- eq4-idealised: the same with the noise sd divided by sqrt(K), K = ``--snapshots``: what Eq. 4
  would buy if its K weight snapshots of the last epoch were K independent supernets (the
  paper's motivation). An upper bound on Eq. 4's effect, not a measurement; part 2 measures it.
- paper-share: 8 ops of 24 per stage, the paper's share (10 of 30 on NAS-Bench-201).

Part 2, ``--phase tiny --work DIR`` (resumes from DIR): a real ``tiny`` supernet on the built-in
data, shrunk in two stages (stage 0: uniform training of the full space; then ``--tiny-drop``
ops per stage by ``hwnas shrink``'s scores with Eq. 4 snapshots), then the final space trained
with ``--expand`` (and, as a control, without). Against the standalone ground truth of
``supernet_bench.py`` (its committed 24 archs, same data and recipe) plus ``--tiny-gt`` new archs
of the final space trained the same way, Kendall tau (all, top half; 90% bootstrap intervals over
archs, paired differences to the uniform supernet) of each step's supernet and of a uniform
supernet of the full space trained for the same total iterations.

    python benchmarks/senas_bench.py [--seeds 30] [--stages 2] [--drop 4] [--samples 1000]
    python benchmarks/senas_bench.py --phase tiny --work runs/senas-bench-tiny
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from common import RESULTS, bootstrap_distribution, percentile_range, print_table, write_results  # noqa: I001  (benchmarks/ on sys.path)
from path_filter_bench import calibrate_noise

from hwnas.search.senas.scores import METRICS
from hwnas.search.senas.shrink import ShrinkConfig, score_and_drop, shrink_space
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
    stages_run = 0
    for s in range(stages):
        if space.size <= cfg.max_archs:  # hwnas shrink's stop rule: a space this small is left to the expanded supernet
            break
        stages_run += 1
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
    return {"metric": metric, "seed": seed, "stages_run": stages_run, "best_survives": bool(kept[rank == 1].any()), "archs": int(kept.sum()),
            "best_rank_left": int(rank[kept].min()), "ops_kept": n_kept_ops,
            "gt_top_ops_kept": float(alive[top].mean()), "kept": [list(layer.choice_ids) for layer in space.layers]}


def interval(values: list[float]) -> list[float]:
    v = np.asarray(values, dtype=float)
    if np.ptp(v) == 0:
        return [float(v[0]), float(v[0])]
    r = bootstrap_distribution([v], np.mean, paired=False)
    return [float(r.confidence_interval.low), float(r.confidence_interval.high)]



# ---- part 2: a real ``tiny`` supernet against the standalone ground truth -----------------------------
TINY = {"n_train": 2000, "n_val": 400, "n_path_eval": 100, "data_seed": 0, "batch": 64, "lr": 0.12, "gt_epochs": 2.0,
        "seed": 0, "recal_images": 256}  # supernet_bench's data, recipe and ground truth settings (its committed truth is reused)
STAGE_NAMES = {"A": "before shrinking (stage 0: uniform, full space)", "B": "after shrinking stage 1 (space S1)",
               "C": "after shrinking stage 2 (space S2, shared weights)", "D": "after expanding (space S2, --expand)",
               "U": "uniform supernet, full space, same iterations"}


def tiny_train_config(iters: int, **over: Any):
    from hwnas.train.trainer import TrainConfig

    return TrainConfig(space="tiny", data="builtin", n_train=TINY["n_train"], n_val=TINY["n_val"], n_path_eval=TINY["n_path_eval"],
                       data_seed=TINY["data_seed"], sampler="uniform", batch_size=TINY["batch"], lr=TINY["lr"], seed=TINY["seed"],
                       early_stop=False, ckpt_every=25, max_iters=iters, **over)


def _map_to(space, base, idx: list[int]) -> list[int] | None:
    """Base-space choice indices as indices of the shrunk ``space``; None if an op was dropped."""
    out = []
    for j, i in enumerate(idx):
        op = base.layers[j].choice_ids[i]
        if op not in space.layers[j].choice_ids:
            return None
        out.append(space.layers[j].choice_ids.index(op))
    return out


def supernet_accuracies(net, space, base, archs: list[list[int]], datasets, cache: Path) -> list[float]:
    """Supernet val accuracy of base-space archs, BN recalibrated per arch (as ``supernet_bench.py``);
    kept in ``cache`` (one JSON file per supernet), so a later report reuses them."""
    from hwnas.io import atomic_write_json
    from hwnas.train.evaluate import evaluate_path, recalibrate_bn

    known = json.loads(cache.read_text()) if cache.is_file() else {}
    out = []
    for idx in archs:
        key = "".join(str(i) for i in idx)
        if key not in known:
            path = _map_to(space, base, idx)
            recalibrate_bn(net, path, datasets.train, n_images=TINY["recal_images"], batch_size=TINY["recal_images"], seed=TINY["seed"])
            known[key] = evaluate_path(net, path, datasets.val, batch_size=250)[1]
            atomic_write_json(cache, known)
        out.append(known[key])
    return out


def tau_table(preds: dict[str, list[float]], truth: list[float], ref: str = "U") -> dict[str, Any]:
    """Kendall tau of each predictor with the truth, all archs and the top half (by truth): value,
    90% bootstrap interval over archs, and the paired interval of its difference to ``ref``."""
    from supernet_bench import kendall

    t = np.asarray(truth, dtype=float)
    top = np.argsort(-t)[: max(2, len(t) // 2)]
    out: dict[str, Any] = {}
    for subset, sel in (("all", np.arange(len(t))), ("top_half", np.sort(top))):
        names = list(preds)
        cols = [np.asarray(preds[n], dtype=float)[sel] for n in names] + [t[sel]]

        def taus(*c):
            v = [kendall(p, c[-1]) for p in c[:-1]]
            return np.array([np.nan if x is None else x for x in v])

        dist = bootstrap_distribution(cols, taus, paired=True, seed=TINY["seed"]).bootstrap_distribution
        r = {"n_archs": int(len(sel))}
        for k, n in enumerate(names):
            r[n] = {"tau": kendall(cols[k], cols[-1]), "tau_90ci": percentile_range(dist[k])}
            if ref in names and n != ref:
                d = dist[k] - dist[names.index(ref)]
                r[n][f"minus_{ref}_90ci"] = percentile_range(d)
                r[n][f"share_better_than_{ref}"] = float(np.mean(d[np.isfinite(d)] > 0))
        out[subset] = r
    return out


def train_uniform_job(iters: int, out: str) -> dict[str, Any]:
    """The uniform supernet of the full space (run in a worker process beside the SE-NAS stages)."""
    import torch

    from hwnas.train.trainer import train_supernet

    torch.set_num_threads(1)
    return train_supernet(tiny_train_config(iters), out)[1]


def train_final_job(kept: list[list[str]], expand: int | None, iters: int, prev_run: str, out: str) -> dict[str, Any]:
    """The final space trained on from the last stage's weights (with ``expand``: the expanded supernet)."""
    import torch

    from hwnas.nn.expanded import inherit_weights
    from hwnas.train.checkpoint import load_checkpoint
    from hwnas.train.trainer import train_supernet

    torch.set_num_threads(1)

    def inherit(trainer) -> None:
        if trainer.counters.iteration == 0:
            inherit_weights(trainer.supernet, load_checkpoint(prev_run).supernet)

    return train_supernet(tiny_train_config(iters, space_args={"choices": kept}, expand=expand), out, on_start=inherit)[1]


def tiny_phase(a: argparse.Namespace) -> None:
    """Shrink and expand a real ``tiny`` supernet; Kendall tau at each step vs. a uniform supernet of equal iterations."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    import supernet_bench as sb

    work = Path(a.work)
    t0 = time.perf_counter()
    base = create_space("tiny")
    stage_iters = [a.tiny_iters[0], a.tiny_iters[1]]
    final_iters = a.tiny_iters[2]
    total = sum(a.tiny_iters)
    cfg0 = tiny_train_config(stage_iters[0])
    ex = ProcessPoolExecutor(max_workers=a.workers, mp_context=get_context("spawn"))
    uniform_job = ex.submit(train_uniform_job, total, str(work / "uniform"))  # beside the stages: same iterations, another process
    iters_per_epoch = TINY["n_train"] // TINY["batch"]
    shrink_cfg = ShrinkConfig(stages=2, drop=a.tiny_drop, samples=a.tiny_samples, snapshots=a.snapshots, eval_images=TINY["n_path_eval"],
                              stage_epochs=stage_iters[1] / iters_per_epoch, seed=TINY["seed"])
    print(f"SE-NAS stages: {stage_iters} iterations, drop {a.tiny_drop}/stage, {a.tiny_samples} samples/op", flush=True)
    _, records = shrink_space(cfg0, work / "shrink", shrink_cfg, callback=None)
    if len(records) < 2:
        raise SystemExit(f"shrinking stopped after {len(records)} stage(s) (the space fell to <= {shrink_cfg.max_archs} archs); use a smaller --tiny-drop")
    spaces = [base] + [create_space("tiny", choices=r["kept"]) for r in records]  # S0, S1, S2
    # the final step, in workers: S2 trained from stage 1's weights, expanded (D) and, as a control, shared (C)
    prev = str(work / "shrink" / f"stage-{len(records) - 1}" / "run")
    finals = [ex.submit(train_final_job, records[-1]["kept"], expand, final_iters, prev, str(work / f"final-{name}"))
              for name, expand in (("D", a.expand), ("C", None))]
    print(f"SE-NAS stages done in {time.perf_counter() - t0:.0f} s; S1 {spaces[1].size} archs, S2 {spaces[2].size} archs", flush=True)
    # ground truth: supernet_bench's 24 archs of the full space + --tiny-gt new archs drawn from S2
    full_gt = json.loads((RESULTS / "supernet_bench.json").read_text())["ground_truth"]
    rng = np.random.default_rng([TINY["seed"], 23])
    n_new = min(a.tiny_gt, spaces[2].size - sum(_map_to(spaces[2], base, g["indices"]) is not None for g in full_gt))
    new_idx: list[list[int]] = []
    while len(new_idx) < n_new:
        row = spaces[2].sample_indices(rng, 1)[0]
        full = [base.layers[j].choice_ids.index(spaces[2].layers[j].choice_ids[i]) for j, i in enumerate(row)]
        if full not in new_idx and full not in [g["indices"] for g in full_gt]:
            new_idx.append(full)
    gt_args = {**TINY, "work": str(work)}
    with ex:
        list(ex.map(sb.train_standalone, [{"args": gt_args, "indices": idx, "seed": TINY["seed"]} for idx in new_idx]))
        uniform_job.result()
        for f in finals:
            f.result()
    tiny_report(a)


def _summary(run: Path) -> dict[str, Any] | None:
    """A finished training run's summary, None while it is unfinished."""
    f = run / "summary.json"
    return json.loads(f.read_text()) if f.is_file() else None


def tiny_report(a: argparse.Namespace) -> None:
    """Kendall tau of every supernet of the work folder that has finished, on the ground truth that exists.

    Run by the tiny phase at its end; ``--tiny-report-only`` runs it on a folder whose training
    has not finished (the steps not reached are listed as such)."""
    import supernet_bench as sb
    from hwnas.search.senas.shrink import averaged_state
    from hwnas.train.checkpoint import load_checkpoint
    from hwnas.train.data import build_datasets

    work = Path(a.work)
    t0 = time.perf_counter()
    base = create_space("tiny")
    records = []
    for st in range(2):
        f = work / "shrink" / f"stage-{st}" / "scores.json"
        if f.is_file():
            records.append(json.loads(f.read_text()))
    spaces = [base] + [create_space("tiny", choices=r["kept"]) for r in records]
    runs = {"A": (work / "shrink" / "stage-0" / "run", 0), "B": (work / "shrink" / "stage-1" / "run", 1),
            "C": (work / "final-C", 2), "D": (work / "final-D", 2), "U": (work / "uniform", 0)}
    done = {n: (r, k) for n, (r, k) in runs.items() if _summary(r) is not None and k < len(spaces)}
    committed = json.loads((RESULTS / "supernet_bench.json").read_text())
    assert all(committed["settings"][k] == TINY[k] for k in ("n_train", "n_val", "n_path_eval", "data_seed", "batch", "lr", "gt_epochs"))
    full_gt = committed["ground_truth"]
    sigma = committed["truth"]["seed_noise_std"]  # one standalone run's seed-to-seed noise: caps any predictor's tau
    new_gt = [json.loads(f.read_text()) for f in sorted((work / "ground_truth").glob("*.json"))]
    ds = build_datasets("builtin", n_train=TINY["n_train"], n_val=TINY["n_val"], n_path_eval=TINY["n_path_eval"], seed=TINY["data_seed"])
    nets = {n: (load_checkpoint(r).supernet, spaces[k]) for n, (r, k) in done.items()}
    for n, k in (("A", 0), ("B", 1)):
        if n in done:
            snaps = sorted((work / "shrink" / f"stage-{k}" / "snapshots").glob("iter-*.pt"))
            net = load_checkpoint(done[n][0]).supernet
            net.load_state_dict(averaged_state(snaps))
            nets[f"{n}-eq4"] = (net, spaces[k])
    sets = {"full space (supernet_bench's 24 archs)": (0, full_gt, ("A", "A-eq4", "U")), "S1": (1, None, ("A", "B", "B-eq4", "U")),
            "S2 (the final space)": (2, None, ("A", "B", "C", "D", "U"))}
    ranking, rows = {}, []
    for label, (k, gts, which) in sets.items():
        if k >= len(spaces):
            continue
        if gts is None:
            gts = [g for g in full_gt + new_gt if _map_to(spaces[k], base, g["indices"]) is not None]
        which = [n for n in which if n in nets]
        if len(gts) < 4 or not which:
            continue
        archs = [g["indices"] for g in gts]
        preds = {n: supernet_accuracies(nets[n][0], nets[n][1], base, archs, ds, work / "supernet_acc" / f"{n}.json") for n in which}
        r = tau_table(preds, [g["val_acc"] for g in gts])
        truth = [g["val_acc"] for g in gts]
        top = sorted(np.argsort(-np.asarray(truth))[: max(2, len(truth) // 2)].tolist())
        r["truth_std"] = float(np.std(truth, ddof=1))
        r["tau_ceiling"] = {"all": sb.noise_ceiling(truth, sigma), "top_half": sb.noise_ceiling(truth, sigma, top)}
        ranking[label] = {"archs": archs, "truth": truth, "supernet_acc": preds, "tau": r}
        for n in which:
            cells = []
            for sub in ("all", "top_half"):
                v = r[sub][n]
                ci = v["tau_90ci"]
                cells.append("undef" if v["tau"] is None or ci is None else f"{v['tau']:.2f} [{ci[0]:.2f}, {ci[1]:.2f}]")
            diff = r["all"][n].get("minus_U_90ci")
            rows.append([label, f"{r['all']['n_archs']} (truth sd {r['truth_std']:.1f}, tau ceiling {r['tau_ceiling']['all']:.2f})",
                         n + ": " + STAGE_NAMES.get(n, STAGE_NAMES[n[0]] + ", Eq. 4 average"), *cells,
                         "" if diff is None else f"[{diff[0]:+.2f}, {diff[1]:+.2f}]"])
    stage_iters, final_iters = a.tiny_iters[:2], a.tiny_iters[2]
    print_table(["archs with truth", "n", "supernet", "tau all (90% CI)", "tau top half (90% CI)", "tau - U, all (90% CI)"], rows,
                f"tiny: SE-NAS {stage_iters}+{final_iters} iterations vs uniform {sum(a.tiny_iters)}")
    missing = [f"{n}: {STAGE_NAMES[n]}" for n in runs if n not in done]
    if missing:
        print("not reached: " + "; ".join(missing))
    path = write_results(a.out_name, {
        "settings": {**vars(a), **{f"tiny_{k}": v for k, v in TINY.items()}}, "complete": not missing, "not_reached": missing,
        "training_cost": {"senas_iterations": {"stage0": stage_iters[0], "stage1": stage_iters[1], "final": final_iters},
                          "uniform_iterations": sum(a.tiny_iters), "images_per_iteration": TINY["batch"],
                          "senas_score_evaluations": [r["archs_evaluated"] for r in records],
                          "note": "training cost = optimisation iterations (batch 64 each); SE-NAS's op scoring is extra, "
                                  "counted in senas_score_evaluations (archs evaluated on 100 val images each)"},
        "spaces": {f"S{k + 1}": {"archs": spaces[k + 1].size, "kept": r["kept"], "dropped": r["dropped"]} for k, r in enumerate(records)},
        "new_ground_truth": new_gt, "ranking": ranking,
        "train_summaries": {n: _summary(r) for n, (r, _) in done.items()},
        "report_seconds": round(time.perf_counter() - t0, 1)})
    print(f"wrote {path}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=30, help="seeds 0..N-1 (0..9 were the pre-registered ones)")
    ap.add_argument("--stages", type=int, default=2)
    ap.add_argument("--drop", type=int, default=4)
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--out-name", default=None, help="results file name [default: senas_bench_<phase>]")
    ap.add_argument("--phase", choices=("tabular", "tiny"), default="tabular")
    ap.add_argument("--work", default="runs/senas-bench-tiny", help="tiny: folder of the runs; the same folder resumes")
    ap.add_argument("--tiny-iters", type=int, nargs=3, default=[150, 50, 50], metavar=("STAGE0", "STAGE1", "FINAL"),
                    help="tiny: iterations of stage 0, stage 1 and the final (expanded) training; the uniform supernet gets their sum")
    ap.add_argument("--tiny-drop", type=int, default=13, help="tiny: ops dropped per stage (13 of 39: the paper's 10 of 30 on NAS-Bench-201)")
    ap.add_argument("--tiny-samples", type=int, default=4, help="tiny: sampled archs per op for SI (the paper: 1,000)")
    ap.add_argument("--snapshots", type=int, default=5, help="tiny: weight snapshots averaged for the op scores (Eq. 4)")
    ap.add_argument("--expand", type=int, default=6, help="tiny: merge threshold T of the final training (the paper's example: 6)")
    ap.add_argument("--tiny-gt", type=int, default=6, help="tiny: new archs of the final space trained standalone as ground truth")
    ap.add_argument("--tiny-report-only", action="store_true", help="tiny: only evaluate the finished supernets of --work")
    ap.add_argument("--workers", type=int, default=4, help="tiny: worker processes (the uniform supernet, then the ground-truth archs)")
    a = ap.parse_args()
    a.out_name = a.out_name or f"senas_bench_{a.phase}"
    if a.phase == "tiny":
        tiny_report(a) if a.tiny_report_only else tiny_phase(a)
        return
    X, acc, _ = benchmark_matrix("nas-bench-macro")
    sd = calibrate_noise(acc)
    check = float(stats.kendalltau(acc, acc + sd * np.random.default_rng(1).standard_normal(len(acc))).statistic)
    k = a.snapshots
    conditions = [  # (name, what it is, ops dropped per stage, noise sd); none was chosen by its outcome
        ("pre-registered", f"{a.drop} ops/stage, one supernet's noise (tau {check:.2f})", a.drop, sd),
        ("eq4-idealised", f"{a.drop} ops/stage, noise sd/sqrt({k}): Eq. 4 as if {k} snapshots were {k} independent supernets",
         a.drop, sd / np.sqrt(k)),
        ("paper-share", f"{round(24 * 10 / 30)} ops/stage (the paper's 10 of 30 on NAS-Bench-201), one supernet's noise",
         round(24 * 10 / 30), sd),
    ]
    runs = []
    t0 = time.perf_counter()
    for cond, _, drop, noise in conditions:
        for metric in METRICS:
            for seed in range(a.seeds):
                r = shrink_tabular(X, acc, noise, metric, seed, a.stages, drop, a.samples)
                runs.append({"condition": cond, **r})
    rows, summary = [], []
    for cond, what, drop, noise in conditions:
        by = {m: [r for r in runs if r["condition"] == cond and r["metric"] == m] for m in METRICS}
        for metric in METRICS:
            rs = by[metric]
            surv = [float(r["best_survives"]) for r in rs]
            size, rank, gt = ([r[key] for r in rs] for key in ("archs", "best_rank_left", "gt_top_ops_kept"))
            ci = stats.binomtest(int(sum(surv)), len(rs)).proportion_ci(confidence_level=0.90, method="wilson")
            sm = {"condition": cond, "what": what, "drop": drop, "noise_sd": float(noise), "metric": metric,
                  "best_survives": int(sum(surv)), "seeds": len(rs), "survival_90ci_wilson": [float(ci.low), float(ci.high)],
                  "archs_mean": float(np.mean(size)), "archs_90ci": interval(size), "best_rank_left_median": float(np.median(rank)),
                  "best_rank_left_mean": float(np.mean(rank)), "best_rank_left_90ci": interval(rank),
                  "gt_top_ops_kept_mean": float(np.mean(gt)), "gt_top_ops_kept_90ci": interval(gt)}
            if metric != "senas":  # paired over seeds: SE-NAS's survival minus this score's
                sm["senas_minus_this_survival_90ci"] = interval([float(x["best_survives"]) - float(y["best_survives"])
                                                                 for x, y in zip(by["senas"], rs)])
            summary.append(sm)
            rows.append([cond, LABEL[metric], f"{sm['best_survives']}/{len(rs)} [{ci.low:.2f}, {ci.high:.2f}]",
                         f"{sm['archs_mean']:.0f} [{sm['archs_90ci'][0]:.0f}, {sm['archs_90ci'][1]:.0f}]",
                         f"{sm['best_rank_left_mean']:.1f} [{sm['best_rank_left_90ci'][0]:.1f}, {sm['best_rank_left_90ci'][1]:.1f}]",
                         f"{100 * sm['gt_top_ops_kept_mean']:.0f}% [{100 * sm['gt_top_ops_kept_90ci'][0]:.0f}, {100 * sm['gt_top_ops_kept_90ci'][1]:.0f}]"])
    print_table(["condition", "operator score", "best arch survives (90% CI)", "archs left (90% CI)", "rank of best left (90% CI)",
                 "GT-top ops kept (90% CI)"], rows,
                f"NAS-Bench-Macro, {a.stages} stages, {a.samples} samples/op, noise sd {sd:.3f} (tau {check:.3f}), {a.seeds} seeds")
    for cond, what, _, _ in conditions:
        print(f"  {cond}: {what}")
    path = write_results(a.out_name, {"settings": vars(a), "noise_sd": sd, "noise_tau_check": check, "archs_total": len(acc),
                                      "conditions": [{"name": c, "what": w, "drop": d, "noise_sd": float(n)} for c, w, d, n in conditions],
                                      "seconds": round(time.perf_counter() - t0, 1), "summary": summary, "runs": runs})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
