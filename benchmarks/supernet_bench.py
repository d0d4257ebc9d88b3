"""Supernet ranking quality and cost: uniform (SPOS) vs. GreedyNAS on the built-in data.

What it measures (GreedyNAS Sec. 5, scaled to a 2-core CPU):

1. Ground truth: ``--archs`` archs of ``tiny`` (seeded, uniform) trained standalone from
   scratch with the supernet recipe; their val accuracy is the truth. The first
   ``--noise-archs`` of them are trained a second time with another seed (init, shuffle,
   augmentation): the seed-to-seed noise of the truth bounds how well any predictor can rank,
   so the report gives the spread across archs, that noise, and the Kendall tau a perfect
   predictor would reach against a truth that noisy (Monte Carlo).
2. A GreedyNAS supernet, and a uniform one given the same *corrected* training cost
   (#optimization + #evaluation/3.33 images, Table 1's accounting).
3. Kendall tau between supernet accuracy (inherited weights, BN recalibrated on training
   images) and the truth, over all archs and over the top half (by truth); FLOPs as a
   zero-cost reference predictor.
4. Table 3 analogue: ``--paths`` random paths ranked by their loss on the path-eval subset vs.
   their accuracy on the whole val split, for a random-init, the uniform and the greedy supernet.
5. Cost: GreedyNAS's evaluation time per trained iteration as a ratio to a uniform iteration,
   and images/s of supernet training vs. training the standalone net of the same path.

Two budgets are committed: the default (``--greedy-iters 250``, about 8 epochs of the built-in
training split, ``results/supernet_bench.json``) and a 4x longer one (``--greedy-iters 1000
--out benchmarks/results/supernet_bench_1000it.json``, about 32 epochs, closer to the paper's
46). Both use the same ground truth: copy ``ground_truth/`` from one ``--work`` folder to the
other's to train the standalone nets once.

Work is spread over ``--workers`` processes (1 torch thread each). With ``--work DIR`` the
run resumes: finished standalone nets (one JSON each) and supernets are reused. Prints a
table and writes ``benchmarks/results/supernet_bench.json``; every scale knob is recorded there.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from multiprocessing import get_context
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
RESULTS = REPO / "benchmarks" / "results" / "supernet_bench.json"

from hwnas.train.trainer import EVAL_COST_RATIO  # noqa: E402  (the trainer's accounting of an evaluation's cost)


def _threads() -> None:
    import torch

    torch.set_num_threads(1)


def _datasets(a):
    from hwnas.train.data import build_datasets

    return build_datasets("builtin", n_train=a["n_train"], n_val=a["n_val"], n_path_eval=a["n_path_eval"], seed=a["data_seed"])


# ---- ground truth: standalone training --------------------------------------------------------------
GT_KEYS = ("n_train", "n_val", "n_path_eval", "data_seed", "batch", "lr", "gt_epochs")
# The standalone nets' random streams: init seed + offset, epoch e's shuffle seed * stride + e,
# iteration i's augmentation seed * stride + i (kept as they were, so cached results stay valid).
GT_INIT_SEED_OFFSET = 11
GT_SHUFFLE_SEED_STRIDE = 1000
GT_AUGMENT_SEED_STRIDE = 100_000


def _gt_path(a, idx, seed) -> Path:
    """Where a standalone result is kept: named by arch, seed and every setting it depends on."""
    import hashlib

    tag = hashlib.sha256(json.dumps([a[k] for k in GT_KEYS]).encode()).hexdigest()[:10]
    return Path(a["work"]) / "ground_truth" / f"{''.join(str(i) for i in idx)}-seed{seed}-{tag}.json"


def train_standalone(job):
    """Train one arch from scratch with the supernet recipe (SGD Nesterov, cosine, label smoothing,
    crop+flip) and return its val accuracy; ``job["seed"]`` sets init, shuffle and augmentation.
    The result is kept in the work folder, so a rerun with the same ``--work`` reuses it."""
    a, idx, seed = job["args"], job["indices"], job["seed"]
    cached = _gt_path(a, idx, seed)
    if cached.is_file():
        return json.loads(cached.read_text())
    _threads()
    import torch

    from hwnas.io import atomic_write_json
    from hwnas.nn import Network
    from hwnas.space import create_space
    from hwnas.train.loader import EpochBatchSampler
    from hwnas.train.standalone import SGDRecipe, accuracy, train_from_scratch

    ds = _datasets(a)
    space = create_space("tiny")
    arch = space.from_indices(idx)
    torch.manual_seed(seed + GT_INIT_SEED_OFFSET)
    net = Network(space, arch)
    B = a["batch"]
    total = max(1, int(round(len(ds.train) // B * a["gt_epochs"])))
    batches = EpochBatchSampler(len(ds.train), B, lambda epoch: seed * GT_SHUFFLE_SEED_STRIDE + epoch, stop=total)
    t0 = time.perf_counter()
    train_from_scratch(net, ds.train, batches, SGDRecipe(lr=a["lr"], label_smoothing=0.1),
                       augment_seed=lambda it: seed * GT_AUGMENT_SEED_STRIDE + it)
    train_s = time.perf_counter() - t0
    out = {"arch": arch.compact(), "indices": list(idx), "seed": seed, "val_acc": accuracy(net, ds.val, 250),
           "flops": space.flops(arch), "train_seconds": train_s, "iterations": total, "images": total * B}
    atomic_write_json(cached, out)
    return out


# ---- supernets ---------------------------------------------------------------------------------------
def train_supernet_job(job):
    _threads()
    from hwnas.train.trainer import TrainConfig, train_supernet

    a = job["args"]
    cfg = TrainConfig(space="tiny", data="builtin", n_train=a["n_train"], n_val=a["n_val"], n_path_eval=a["n_path_eval"],
                      data_seed=a["data_seed"], sampler=job["sampler"], max_iters=job["iters"], batch_size=a["batch"],
                      eval_batch=a["eval_batch"], lr=a["lr"], seed=a["seed"], pool_size=a["pool_size"], m=10, k=5,
                      eps_max=job.get("eps_max", 0.8), warmup=a["warmup"], anneal=a["anneal"], alpha=0.08, early_stop=False,
                      ckpt_every=a["ckpt_every"])
    out = Path(job["out"])
    if (out / "config.json").is_file() and json.loads((out / "config.json").read_text()) != json.loads(json.dumps(cfg.to_dict())):
        raise SystemExit(f"{out} holds a supernet trained with other settings; use another --work")
    if (out / "summary.json").is_file():  # finished in an earlier run with the same --work
        summary = json.loads((out / "summary.json").read_text())
        summary["warmup_iters"] = int(round(a["warmup"] * job["iters"])) if job["sampler"] == "greedy" else 0
        return summary
    from hwnas.train.checkpoint import list_checkpoints

    trainer, summary = train_supernet(cfg, out, resume=bool(list_checkpoints(out)))
    warm = trainer.sampler.warmup_iters if job["sampler"] == "greedy" else 0
    summary["warmup_iters"] = warm
    return summary


def planned_greedy_corrected_images(a, iters: int, m: int = 10, k: int = 5) -> float:
    """The corrected #optimization of a greedy run without early stop (the trainer's accounting):
    one path per warm-up iteration, then rounds of m evaluated / k trained paths, each evaluation
    on the fixed eval batch, a forward costing 1/3.33 of an optimization step."""
    warm = int(round(a["warmup"] * iters))
    rounds = math.ceil(max(iters - warm, 0) / k)
    eval_images = rounds * m * min(a["eval_batch"], a["n_path_eval"])
    return iters * a["batch"] + eval_images / EVAL_COST_RATIO


def _load_supernet(which, a):
    import torch

    from hwnas.nn import SuperNet
    from hwnas.space import create_space
    from hwnas.train.checkpoint import load_checkpoint

    if which == "random":
        torch.manual_seed(a["seed"] + 99)
        return SuperNet(create_space("tiny")).eval()
    return load_checkpoint(Path(a["work"]) / which).supernet


def rank_archs_job(job):
    """Supernet val accuracy of the ground-truth archs (BN recalibrated per arch)."""
    a = job["args"]
    cached = _cache_path(a, "rank", job["which"], [job["indices"], a["recal_images"]])
    if cached.is_file():
        return json.loads(cached.read_text())
    _threads()
    from hwnas.io import atomic_write_json
    from hwnas.train.evaluate import evaluate_path, recalibrate_bn

    ds = _datasets(a)
    net = _load_supernet(job["which"], a)
    out = []
    for idx in job["indices"]:
        recalibrate_bn(net, idx, ds.train, n_images=a["recal_images"], batch_size=a["recal_images"], seed=a["seed"])
        out.append(evaluate_path(net, idx, ds.val, batch_size=250)[1])
    atomic_write_json(cached, out)
    return out


def _cache_path(a, kind: str, which: str, what) -> Path:
    """A result kept in the work folder, named by everything it depends on (data, supernet runs)."""
    import hashlib

    key = json.dumps([what] + [a[k] for k in GT_KEYS + ("greedy_iters", "seed", "pool_size", "warmup", "anneal", "eval_batch")])
    return Path(a["work"]) / kind / f"{which}-{hashlib.sha256(key.encode()).hexdigest()[:12]}.json"


def table3_job(job):
    """For each path: loss on the path-eval subset and accuracy on the whole val split (eval mode,
    no recalibration). Kept in the work folder per chunk, so a rerun with the same --work reuses it."""
    cached = _cache_path(job["args"], "table3", job["which"], job["indices"])
    if cached.is_file():
        return json.loads(cached.read_text())
    _threads()
    import torch
    import torch.nn.functional as F

    from hwnas.io import atomic_write_json

    a = job["args"]
    ds = _datasets(a)
    net = _load_supernet(job["which"], a)
    x, y = ds.val.batch(torch.arange(len(ds.val)))
    n_sub = len(ds.path_eval)
    res = []
    with torch.no_grad():
        for idx in job["indices"]:
            out = torch.cat([net(x[s:s + 250], list(idx)) for s in range(0, len(y), 250)])
            res.append((float(F.cross_entropy(out[:n_sub], y[:n_sub])), float(100.0 * (out[:n_sub].argmax(1) == y[:n_sub]).float().mean()),
                        float(100.0 * (out.argmax(1) == y).float().mean())))
    atomic_write_json(cached, res)
    return res


def throughput_job(job):
    """Images/s of a training step on the supernet (one path) vs. the standalone net of that path, interleaved."""
    _threads()
    import torch
    import torch.nn.functional as F

    from hwnas.nn import SuperNet
    from hwnas.space import create_space

    a = job["args"]
    space = create_space("tiny")
    sup = SuperNet(space)
    rng = np.random.default_rng(a["seed"])
    idx = [int(i) for i in space.sample_indices(rng, 1)[0]]
    std = sup.extract(space.from_indices(idx))
    x, y = torch.randn(a["batch"], 3, 32, 32), torch.randint(0, 10, (a["batch"],))
    opt_s = torch.optim.SGD(sup.parameters(), lr=0.01, momentum=0.9)
    opt_n = torch.optim.SGD(std.parameters(), lr=0.01, momentum=0.9)
    times = {"supernet": 0.0, "standalone": 0.0}
    for rep in range(a["throughput_steps"] + 2):
        for name in ("supernet", "standalone") if rep % 2 == 0 else ("standalone", "supernet"):
            t0 = time.perf_counter()
            if name == "supernet":
                loss = F.cross_entropy(sup(x, idx), y)
                opt_s.zero_grad(set_to_none=True)
                loss.backward()
                opt_s.step()
            else:
                loss = F.cross_entropy(std(x), y)
                opt_n.zero_grad(set_to_none=True)
                loss.backward()
                opt_n.step()
            if rep >= 2:
                times[name] += time.perf_counter() - t0
    n = a["throughput_steps"] * a["batch"]
    out = {"path": space.from_indices(idx).compact(), "supernet_img_s": n / times["supernet"], "standalone_img_s": n / times["standalone"]}
    # GreedyNAS round (m=10 evaluations on the eval batch + k=5 training steps) vs. 5 uniform steps, interleaved
    xe = torch.randn(a["eval_batch"], 3, 32, 32)
    ye = torch.randint(0, 10, (a["eval_batch"],))

    def train_step(path):
        sup.train()
        loss = F.cross_entropy(sup(x, path), y)
        opt_s.zero_grad(set_to_none=True)
        loss.backward()
        opt_s.step()

    t_uni = t_eval = 0.0
    reps = max(2, a["throughput_steps"] // 5)
    for rep in range(reps + 1):
        paths = [[int(i) for i in r] for r in space.sample_indices(rng, 15)]
        t0 = time.perf_counter()
        for pth in paths[:5]:
            train_step(pth)
        t1 = time.perf_counter()
        sup.eval()
        with torch.no_grad():
            for pth in paths[5:]:
                F.cross_entropy(sup(xe, pth), ye)
        t2 = time.perf_counter()
        if rep:  # the first round warms up
            t_uni += t1 - t0
            t_eval += t2 - t1
    out["greedy_eval_per_iteration_over_uniform_iteration"] = (t_eval / 5) / (t_uni / 5)
    return out


def _finite(v: float) -> float | None:
    """None where a correlation is undefined (one side constant, e.g. a random-init supernet
    that predicts the same class for every path)."""
    return None if not math.isfinite(v) else v


def kendall(a, b) -> float | None:
    import warnings

    from scipy.stats import kendalltau

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _finite(float(kendalltau(a, b).statistic))


def spearman(a, b) -> float | None:
    import warnings

    from scipy.stats import spearmanr

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _finite(float(spearmanr(a, b).statistic))


def _fmt(v: float | None, width: int) -> str:
    return f"{'undef':>{width}}" if v is None else f"{v:{width}.3f}"


def noise_ceiling(truth: list[float], sigma: float, top: list[int] | None = None, draws: int = 2000, seed: int = 0) -> float | None:
    """Expected Kendall tau between a ranking by the noise-free accuracies and a truth that carries
    seed-to-seed noise ``sigma``: taking the measured truth as the noise-free values, the mean
    tau between them and themselves plus N(0, sigma^2). No predictor ranks better on average."""
    if sigma <= 0:
        return 1.0
    rng = np.random.default_rng(seed)
    t = np.asarray(truth, dtype=float)
    sel = np.arange(len(t)) if top is None else np.asarray(top)
    taus = [kendall(t[sel], (t + rng.normal(0.0, sigma, len(t)))[sel]) for _ in range(draws)]
    taus = [v for v in taus if v is not None]
    return float(np.mean(taus)) if taus else None


BOOTSTRAP_SEED_OFFSET = 17


def paired_tau_difference(acc_g, acc_u, truth, top: list[int], draws: int = 2000, seed: int = 0) -> dict:
    """How sure the tau difference between two supernets is, with 24 archs: archs resampled with
    replacement (the same draw for both supernets), tau recomputed; the 5-95% range of each tau
    and of greedy - uniform, and the share of draws in which greedy ranks better."""
    import warnings

    from scipy.stats import bootstrap

    def taus(g, u, t):
        a, b = kendall(g, t), kendall(u, t)
        return np.array([np.nan, np.nan]) if a is None or b is None else np.array([a, b])

    out = {}
    for name, sel in (("all", np.arange(len(truth))), ("top_half", np.asarray(top))):
        g, u, t = (np.asarray(v, dtype=float)[sel] for v in (acc_g, acc_u, truth))
        with warnings.catch_warnings():  # undefined taus (nan) make scipy warn; those draws are dropped below
            warnings.simplefilter("ignore")
            res = bootstrap((g, u, t), taus, paired=True, vectorized=False, n_resamples=draws, confidence_level=0.90,
                            method="percentile", random_state=np.random.default_rng(seed + BOOTSTRAP_SEED_OFFSET))
        defined = np.isfinite(res.bootstrap_distribution).all(axis=0)  # draws in which both taus are defined
        dg, du = res.bootstrap_distribution[0, defined], res.bootstrap_distribution[1, defined]
        diff = dg - du
        out[name] = {"greedy_tau_90ci": _range90(dg), "uniform_tau_90ci": _range90(du), "difference_90ci": _range90(diff),
                     "share_greedy_better": float(np.mean(diff > 0)) if len(diff) else None}
    return out


def _range90(xs) -> list[float] | None:
    """5th-95th percentile; None when no draw had both taus defined (a supernet ranking every arch alike)."""
    return [float(np.percentile(xs, 5)), float(np.percentile(xs, 95))] if len(xs) else None


def pool_composition(run_dir: Path, gt: list[dict], top: list[int]) -> dict:
    """Which ops the greedy supernet's candidate pool holds, layer by layer, against the ops of
    the best standalone archs: the pool decides what the greedy supernet trains (ε of the
    candidates come from it), so an op the pool lacks is an op the supernet barely trains."""
    meta = json.loads((run_dir / "supernet.json").read_text())
    paths = np.asarray([e[0] for e in meta["pool"]["entries"]], dtype=int)
    from hwnas.space import create_space

    space = create_space("tiny")
    layers = []
    for li, layer in enumerate(space.layers):
        n = len(layer.choices)
        pool_share = np.bincount(paths[:, li], minlength=n) / max(len(paths), 1)
        top_share = np.bincount([gt[i]["indices"][li] for i in top], minlength=n) / max(len(top), 1)
        layers.append({"ops": [str(c) for c in layer.choices], "pool_share": pool_share.round(3).tolist(),
                       "top_half_truth_share": top_share.round(3).tolist(), "uniform_share": round(1.0 / n, 3)})
    # how much of the pool's mass sits on the ops the best standalone archs use (1.0 = as uniform)
    cover = [float(np.mean([layers[li]["pool_share"][gt[i]["indices"][li]] * len(space.layers[li].choices)
                            for li in range(len(space.layers))])) for i in top]
    return {"pool_paths": int(len(paths)), "layers": layers,
            "top_half_truth_ops_pool_share_over_uniform": float(np.mean(cover))}


def truth_statistics(gt: list[dict], replicas: list[dict], top: list[int]) -> dict:
    """Spread of the standalone accuracies vs. the seed-to-seed noise of one arch trained twice."""
    truth = [g["val_acc"] for g in gt]
    by_arch = {g["arch"]: g["val_acc"] for g in gt}
    diffs = [r["val_acc"] - by_arch[r["arch"]] for r in replicas]
    sigma = float(np.sqrt(np.mean(np.square(diffs)) / 2)) if diffs else 0.0  # one run's std from paired differences
    spread = float(np.std(truth, ddof=1)) if len(truth) > 1 else 0.0
    return {
        "acc_mean": float(np.mean(truth)), "acc_min": float(np.min(truth)), "acc_max": float(np.max(truth)),
        "acc_std_across_archs": spread, "acc_std_top_half": float(np.std([truth[i] for i in top], ddof=1)) if len(top) > 1 else 0.0,
        "seed_pairs": [{"arch": r["arch"], "seed_a": by_arch[r["arch"]], "seed_b": r["val_acc"]} for r in replicas],
        "seed_noise_std": sigma, "spread_over_noise": spread / sigma if sigma > 0 else None,
        "tau_ceiling_all": noise_ceiling(truth, sigma), "tau_ceiling_top_half": noise_ceiling(truth, sigma, top),
        "flops_kendall_tau_all": kendall([g["flops"] for g in gt], truth),
        "flops_kendall_tau_top_half": kendall([gt[i]["flops"] for i in top], [truth[i] for i in top]),
    }


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--archs", type=int, default=24, help="ground-truth archs trained standalone")
    p.add_argument("--noise-archs", type=int, default=4, help="of them, trained again with another seed (truth noise)")
    p.add_argument("--paths", type=int, default=200, help="paths of the Table-3 analogue")
    p.add_argument("--n-train", type=int, default=2000)
    p.add_argument("--n-val", type=int, default=400, help="validation split: truth, supernet accuracy, Table 3's whole-val side")
    p.add_argument("--n-path-eval", type=int, default=100, help="path-eval subset of val (GreedyNAS ranking, Table 3's subset side)")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--eval-batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.12)
    p.add_argument("--gt-epochs", type=float, default=2.0, help="standalone training epochs (the ground truth)")
    p.add_argument("--greedy-iters", type=int, default=250, help="iterations of the greedy supernet; uniform gets the same corrected cost")
    p.add_argument("--pool-size", type=int, default=100)
    p.add_argument("--warmup", type=float, default=0.2)
    p.add_argument("--anneal", type=float, default=0.5)
    p.add_argument("--recal-images", type=int, default=256)
    p.add_argument("--throughput-steps", type=int, default=20)
    p.add_argument("--ckpt-every", type=int, default=100, help="supernet checkpoints (a rerun with the same --work resumes)")
    p.add_argument("--workers", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-seed", type=int, default=0)
    p.add_argument("--work", default=None, help="folder for the runs; reusing it resumes [default: a temp dir]")
    p.add_argument("--quick", action="store_true", help="a few-minute smoke run (tiny sizes, numbers meaningless)")
    p.add_argument("--out", default=str(RESULTS))
    p.add_argument("--controls", action="store_true",
                   help="also train a uniform supernet with greedy's #optimization only, and greedy without the pool (eps 0)")
    p.add_argument("--cost-only", action="store_true", help="re-measure only the interleaved cost ratios and update --out")
    ns = p.parse_args(argv)
    if ns.cost_only:
        return cost_only(ns)
    if ns.quick:
        ns.archs, ns.noise_archs, ns.paths, ns.n_train, ns.n_val, ns.n_path_eval = 6, 2, 12, 160, 64, 32
        ns.batch, ns.eval_batch, ns.gt_epochs, ns.greedy_iters = 32, 32, 1, 30
        ns.pool_size, ns.recal_images, ns.throughput_steps = 10, 64, 4
    ns.noise_archs = min(ns.noise_archs, ns.archs)
    import tempfile

    work = Path(ns.work or tempfile.mkdtemp(prefix="supernet-bench-"))
    a = {k: v for k, v in vars(ns).items()}
    a["work"] = str(work)
    t_start = time.time()
    from hwnas.space import create_space

    space = create_space("tiny")
    rng = np.random.default_rng(ns.seed + 5)
    gt_idx: list[list[int]] = []
    while len(gt_idx) < ns.archs:
        row = [int(i) for i in space.sample_indices(rng, 1)[0]]
        if row not in gt_idx:
            gt_idx.append(row)
    t3_rng = np.random.default_rng(ns.seed + 6)  # one path per draw: --paths N is a prefix of any longer list
    t3_idx = [[int(i) for i in space.sample_indices(t3_rng, 1)[0]] for _ in range(ns.paths)]

    ctx = get_context("spawn")
    timings = {}
    with ProcessPoolExecutor(max_workers=ns.workers, mp_context=ctx) as ex:
        # 1) the supernets first, the standalone nets (ground truth) as workers come free
        t0 = time.time()
        greedy_f = ex.submit(train_supernet_job, {"args": a, "sampler": "greedy", "iters": ns.greedy_iters, "out": str(work / "greedy")})
        todo = [(("gt", i), {"args": a, "indices": idx, "seed": ns.seed}) for i, idx in enumerate(gt_idx)]
        todo += [(("rep", i), {"args": a, "indices": idx, "seed": ns.seed + 1}) for i, idx in enumerate(gt_idx[:ns.noise_archs])]
        running: dict = {greedy_f: "greedy"}
        results: dict = {}
        # the greedy run's corrected cost is fixed by its settings (no early stop here), so the
        # uniform supernet starts at once beside it; the real count is checked when greedy is done
        planned = planned_greedy_corrected_images(a, ns.greedy_iters)
        uniform_iters = int(round(planned / ns.batch))
        running[ex.submit(train_supernet_job, {"args": a, "sampler": "uniform", "iters": uniform_iters,
                                               "out": str(work / "uniform")})] = "uniform"
        if ns.controls:  # which part of GreedyNAS moves the ranking: both train greedy's iterations
            for name, (sampler, extra) in CONTROLS.items():
                running[ex.submit(train_supernet_job, {"args": a, "sampler": sampler, "iters": ns.greedy_iters,
                                                       "out": str(work / name), **extra})] = name
        while running or todo:
            while todo and len(running) < ns.workers:
                key, job = todo.pop(0)
                running[ex.submit(train_standalone, job)] = key
            if not running:
                continue
            done, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for f in done:
                results[running.pop(f)] = f.result()
        greedy, uniform = results["greedy"], results["uniform"]
        if abs(greedy["corrected_opt_images"] - planned) > 0.5:
            raise SystemExit(f"greedy supernet's corrected cost {greedy['corrected_opt_images']:.1f} images differs from the planned "
                             f"{planned:.1f}: the uniform supernet's budget is wrong; fix planned_greedy_corrected_images")
        gt = [results[("gt", i)] for i in range(len(gt_idx))]
        replicas = [results[("rep", i)] for i in range(ns.noise_archs)]
        print(f"ground truth: {len(gt)} standalone nets + {len(replicas)} seed replicas ({time.time() - t0:.0f}s)", flush=True)
        timings["train_s"] = time.time() - t0
        print(f"trained: greedy {greedy['iterations']} it, uniform {uniform_iters} it ({timings['train_s']:.0f}s)", flush=True)

        # 2) ranking of the ground-truth archs by each supernet
        t0 = time.time()
        ranked = ("uniform", "greedy") + (tuple(CONTROLS) if ns.controls else ())
        rank_f = {w: ex.submit(rank_archs_job, {"args": a, "which": w, "indices": gt_idx}) for w in ranked}
        thr_f = ex.submit(throughput_job, {"args": a})
        # 3) Table 3: split the paths over the workers
        chunks = [t3_idx[i:i + 10] for i in range(0, len(t3_idx), 10)]  # small chunks: each one is kept when done
        t3_f: dict[str, list] = {w: [] for w in ("random", "uniform", "greedy")}
        for c in chunks:  # chunk by chunk for all three supernets: a stopped run keeps comparable prefixes
            for w in t3_f:
                t3_f[w].append(ex.submit(table3_job, {"args": a, "which": w, "indices": c}))
        sup_acc = {w: f.result() for w, f in rank_f.items()}
        t3 = {}
        for w, fs in t3_f.items():
            t3[w] = [r for f in fs for r in f.result()]
        thr = thr_f.result()
        timings["eval_s"] = time.time() - t0

    truth = [g["val_acc"] for g in gt]
    order = np.argsort(truth)[::-1]
    top = [int(i) for i in order[: len(order) // 2]]
    stats = truth_statistics(gt, replicas, top)
    ranking = {}
    for w in ranked:
        acc = sup_acc[w]
        ranking[w] = {"kendall_tau_all": kendall(acc, truth), "kendall_tau_top_half": kendall([acc[i] for i in top], [truth[i] for i in top]),
                      "spearman_all": spearman(acc, truth), "supernet_acc": acc,
                      "mean_supernet_acc": float(np.mean(acc))}
    ranking["greedy_minus_uniform"] = paired_tau_difference(sup_acc["greedy"], sup_acc["uniform"], truth, top, seed=ns.seed)
    if ns.controls:  # filtering alone vs. uniform, both at greedy's #optimization
        ranking["greedy_eps0_minus_uniform_equal_opt"] = paired_tau_difference(sup_acc["greedy-eps0"], sup_acc["uniform-equal-opt"],
                                                                               truth, top, seed=ns.seed)
    table3 = {}
    for w, rows in t3.items():
        loss_sub = [r[0] for r in rows]
        acc_sub = [r[1] for r in rows]
        acc_val = [r[2] for r in rows]
        table3[w] = {"kendall_tau_loss": kendall([-v for v in loss_sub], acc_val), "spearman_loss": spearman([-v for v in loss_sub], acc_val),
                     "kendall_tau_acc": kendall(acc_sub, acc_val), "spearman_acc": spearman(acc_sub, acc_val),
                     "mean_val_acc": float(np.mean(acc_val)), "std_val_acc": float(np.std(acc_val)), "max_val_acc": float(np.max(acc_val))}
    g_post = max(greedy["iterations"] - greedy["warmup_iters"], 1)
    u_iter_s = uniform["train_seconds"] / max(uniform["iterations"], 1)
    g_eval_per_iter = greedy["eval_seconds"] / g_post
    cost = {
        "greedy_eval_seconds_per_trained_iteration": g_eval_per_iter,
        "uniform_seconds_per_iteration": u_iter_s,
        "greedy_eval_overhead_ratio_in_runs": g_eval_per_iter / u_iter_s,
        "greedy_eval_overhead_ratio_measured": thr["greedy_eval_per_iteration_over_uniform_iteration"],
        "greedy_eval_overhead_ratio_by_images": (10 * ns.eval_batch / 5) / (EVAL_COST_RATIO * ns.batch),
        "supernet_vs_standalone": thr,
        "supernet_over_standalone_img_s": thr["supernet_img_s"] / thr["standalone_img_s"],
        "note": ("ratios measured interleaved in one process (same load); greedy_eval_overhead_ratio_in_runs divides times "
                 "of two runs made at different machine load and is only indicative"),
    }
    gt_images = sum(g["images"] for g in gt)
    greedy["pool_composition"] = pool_composition(work / "greedy", gt, top)
    result = {
        "benchmark": "supernet_bench", "settings": {k: v for k, v in a.items() if k not in ("out", "work")},
        "scale_note": ("scaled to a busy 2-core CPU: built-in data with n_train/n_val/n_path_eval as in settings (paper: ImageNet, "
                       "50K val, 1K path-eval); ground truth = standalone training for gt_epochs epochs with the supernet recipe; "
                       "pool size, iterations and paths scaled down as in settings; m=10, k=5, eps 0->0.8, alpha=0.08 as the paper"),
        "supernets": {"greedy": greedy, "uniform": uniform, **{n: results[n] for n in CONTROLS if n in results}},
        "controls": {n: CONTROL_NOTES[n] for n in CONTROLS if n in results},
        "ground_truth": gt, "seed_replicas": replicas, "truth": stats, "ranking": ranking, "table3": table3, "cost": cost,
        "supernet_cost_over_one_standalone": greedy["corrected_opt_images"] / (gt_images / len(gt)),
        "wall_seconds": time.time() - t_start, "timings": timings,
    }
    print_table(result)
    Path(ns.out).parent.mkdir(parents=True, exist_ok=True)
    Path(ns.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {ns.out}")
    return result


# name -> (sampler, overrides); both train greedy's number of iterations
CONTROLS = {"uniform-equal-opt": ("uniform", {}), "greedy-eps0": ("greedy", {"eps_max": 0.0})}
CONTROL_NOTES = {
    "uniform-equal-opt": "uniform sampling with greedy's #optimization images only (its evaluations not paid for): "
                         "separates the cost of filtering from its effect",
    "greedy-eps0": "greedy path filtering (m=10, k=5) without sampling from the candidate pool (eps stays 0; "
                   "GreedyNAS Table 4, Net2): separates filtering from the pool's exploitation",
}


def cost_only(ns) -> dict:
    """Re-measure the cost section (interleaved, one process) of an existing result file."""
    path = Path(ns.out)
    result = json.loads(path.read_text())
    a = dict(result["settings"])
    a["throughput_steps"] = ns.throughput_steps
    thr = throughput_job({"args": a})
    c = result["cost"]
    c["supernet_vs_standalone"] = thr
    c["supernet_over_standalone_img_s"] = thr["supernet_img_s"] / thr["standalone_img_s"]
    c["greedy_eval_overhead_ratio_measured"] = thr["greedy_eval_per_iteration_over_uniform_iteration"]
    c.setdefault("greedy_eval_overhead_ratio_in_runs", c.get("greedy_eval_overhead_ratio_in_runs"))
    c["note"] = ("ratios measured interleaved in one process (same load); greedy_eval_overhead_ratio_in_runs divides times "
                 "of two runs made at different machine load and is only indicative")
    print_table(result)
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {path}")
    return result


def print_table(r: dict) -> None:
    s, g, u = r["settings"], r["supernets"]["greedy"], r["supernets"]["uniform"]
    print(f"\nsupernet_bench: tiny on builtin ({s['n_train']} train / {s['n_val']} val / {s['n_path_eval']} path-eval), "
          f"{s['archs']} ground-truth archs, {s['paths']} Table-3 paths, wall {r['wall_seconds']:.0f}s")
    t = r.get("truth")
    if t:
        print(f"ground truth ({s['gt_epochs']} epochs standalone): val acc {t['acc_min']:.1f}-{t['acc_max']:.1f}% (mean {t['acc_mean']:.1f}), "
              f"std across archs {t['acc_std_across_archs']:.2f} (top half {t['acc_std_top_half']:.2f}), "
              f"seed-to-seed std {t['seed_noise_std']:.2f} ({len(t['seed_pairs'])} archs twice)")
        print(f"best tau a perfect predictor reaches against this truth: all {_fmt(t['tau_ceiling_all'], 0)}, top half "
              f"{_fmt(t['tau_ceiling_top_half'], 0)}; FLOPs as predictor: all {_fmt(t['flops_kendall_tau_all'], 0)}, "
              f"top half {_fmt(t['flops_kendall_tau_top_half'], 0)}")
    print(f"{'supernet':17} {'iters':>6} {'#opt':>8} {'#eval':>8} {'corrected':>10} {'mean acc':>9} {'tau(all)':>9} {'tau(top½)':>10}")
    for name, sm in [("uniform", u), ("greedy", g)] + [(n, r["supernets"][n]) for n in r.get("controls", {})]:
        rk = r["ranking"][name]
        print(f"{name:17} {sm['iterations']:6d} {sm['n_opt_images']:8d} {sm['n_eval_images']:8d} {sm['corrected_opt_images']:10.0f} "
              f"{rk.get('mean_supernet_acc', float('nan')):9.1f} {_fmt(rk['kendall_tau_all'], 9)} {_fmt(rk['kendall_tau_top_half'], 10)}")
    pc = g.get("pool_composition")
    if pc:
        print(f"greedy pool ({pc['pool_paths']} paths): the ops of the top-half standalone archs hold "
              f"{pc['top_half_truth_ops_pool_share_over_uniform']:.2f}x their uniform share of it")
    for key, label in (("greedy_minus_uniform", "greedy - uniform"), ("greedy_eps0_minus_uniform_equal_opt", "greedy-eps0 - uniform-equal-opt")):
        d = r["ranking"].get(key)
        if d:
            print(f"{label} tau, bootstrap over archs: " + "; ".join(
                f"{k} 90% CI [{v['difference_90ci'][0]:+.2f}, {v['difference_90ci'][1]:+.2f}], first better in {100 * v['share_greedy_better']:.0f}% of draws"
                if v["difference_90ci"] else f"{k} undefined (a supernet ranks every arch alike)" for k, v in d.items()))
    print("\nTable 3 analogue: Kendall tau of paths ranked by path-eval-subset loss (acc) vs. whole-val accuracy")
    print(f"{'supernet':10} {'tau(loss)':>10} {'tau(acc)':>9} {'rho(loss)':>10} {'mean acc':>9}")
    for name in ("random", "uniform", "greedy"):
        t3 = r["table3"][name]
        print(f"{name:10} {_fmt(t3['kendall_tau_loss'], 10)} {_fmt(t3['kendall_tau_acc'], 9)} {_fmt(t3['spearman_loss'], 10)} {t3['mean_val_acc']:9.1f}")
    c = r["cost"]
    print(f"\ncost: greedy evaluation per trained iteration = {c['greedy_eval_overhead_ratio_measured']:.2f} x a uniform iteration "
          f"(by image count: {c['greedy_eval_overhead_ratio_by_images']:.2f}); supernet training "
          f"{c['supernet_vs_standalone']['supernet_img_s']:.0f} img/s vs standalone {c['supernet_vs_standalone']['standalone_img_s']:.0f} img/s "
          f"(ratio {c['supernet_over_standalone_img_s']:.2f})")


if __name__ == "__main__":
    main()
