"""Search evaluation cost: seconds per evaluated arch before and after, the ranking kept, and scaling.

    python benchmarks/search_speed_bench.py --supernet RUN_OR_CHECKPOINT [--part tiny proxyless halving torchrun]

- ``tiny``: the supernet evaluator one arch at a time (``SupernetEvaluator(baseline=True)``, the
  loop before ``PathScorer``) against the current one, on the same random archs, interleaved
  in blocks (a block's archs through one, then the other, the order alternating) so both see
  the same machine load; per block the ratio of seconds per arch, a bootstrap interval over
  blocks. Then Kendall tau and top-10 overlap between the two evaluators' accuracies on all
  archs, and the same timing for the current evaluator with successive halving.
- ``proxyless``: the same timing on the ``proxyless`` space at 224x224 (an untrained supernet
  and synthetic 224x224 images: the cost of a forward pass does not depend on the weights).
- ``halving``: NSGA-II searches with and without successive halving on 10 seeds: is the
  winner the same?
- ``torchrun``: archs per second of one search with 1 and 2 ``torchrun`` processes (gloo).

The machine this runs on is shared; timings are ratios measured in one process at a time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from common import bootstrap_distribution, print_table, write_results

REPO = Path(__file__).resolve().parent.parent


def ratio_interval(old: list[float], new: list[float]) -> dict:
    """Mean seconds per arch of each side, their ratio and a 90% bootstrap interval over blocks."""
    old_a, new_a = np.asarray(old), np.asarray(new)
    res = bootstrap_distribution([old_a, new_a], lambda o, n: np.mean(o) / np.mean(n))
    ci = res.confidence_interval
    return {"old_s_per_arch": float(old_a.mean()), "new_s_per_arch": float(new_a.mean()),
            "ratio": float(old_a.mean() / new_a.mean()), "ratio_90ci": [float(ci.low), float(ci.high)], "blocks": len(old_a)}


def interleaved(evaluators: dict, archs: list, block: int) -> tuple[dict, dict]:
    """Seconds per arch per block for each evaluator, the order rotating from block to block."""
    names = list(evaluators)
    times: dict[str, list[float]] = {n: [] for n in names}
    accs: dict[str, list[float]] = {n: [] for n in names}
    for b, s in enumerate(range(0, len(archs), block)):
        part = archs[s:s + block]
        order = names[b % len(names):] + names[:b % len(names)]
        for n in order:
            t = time.perf_counter()
            got = evaluators[n].evaluate(part)
            times[n].append((time.perf_counter() - t) / len(part))
            accs[n].extend(float(v) for v in got)
        print(f"block {b + 1}: " + ", ".join(f"{n} {times[n][-1]:.2f} s/arch" for n in names), flush=True)
    return times, accs


def ranking(old: list[float], new: list[float], k: int = 10) -> dict:
    from scipy.stats import kendalltau

    old_a, new_a = np.asarray(old), np.asarray(new)
    top_old = set(np.argsort(-old_a, kind="stable")[:k])
    top_new = set(np.argsort(-new_a, kind="stable")[:k])
    return {"kendall_tau": float(kendalltau(old_a, new_a).statistic), "top10_overlap": len(top_old & top_new),
            "identical": int((old_a == new_a).sum()), "n": len(old_a), "max_abs_diff": float(np.abs(old_a - new_a).max())}


def part_tiny(args) -> dict:
    import torch

    from hwnas.search.evaluator import SupernetEvaluator
    from hwnas.train.checkpoint import load_checkpoint

    torch.set_num_threads(1)
    kw = dict(n_eval=args.eval_images, bn_batches=args.bn_batches, threads=1, seed=0)
    old = SupernetEvaluator(load_checkpoint(args.supernet), baseline=True, **kw)
    new = SupernetEvaluator(load_checkpoint(args.supernet), **kw)
    sh = SupernetEvaluator(load_checkpoint(args.supernet), halving=args.eval_images // 4, halving_keep=0.25, **kw)
    space = old.space
    rng = np.random.default_rng(args.seed)
    archs = list(dict.fromkeys(space.from_indices(r) for r in space.sample_indices(rng, args.archs)))
    times, accs = interleaved({"old": old, "new": new, "new+halving": sh}, archs, args.block)
    out = {"settings": {**kw, "archs": len(archs), "block": args.block, "checkpoint_iteration": old.trained.meta.get("iteration"),
                        "halving": {"images": args.eval_images // 4, "keep": 0.25}},
           "speed": ratio_interval(times["old"], times["new"]),
           "speed_halving": ratio_interval(times["old"], times["new+halving"]),
           "ranking": ranking(accs["old"], accs["new"]),
           "modules_run": new.scorer.modules_run, "times": times}
    print_table(["evaluator", "s/arch", "x fewer s/arch", "90% interval"], [
        ["old (one arch at a time)", out["speed"]["old_s_per_arch"], 1.0, "-"],
        ["new", out["speed"]["new_s_per_arch"], out["speed"]["ratio"], str(np.round(out["speed"]["ratio_90ci"], 2).tolist())],
        ["new + halving", out["speed_halving"]["new_s_per_arch"], out["speed_halving"]["ratio"],
         str(np.round(out["speed_halving"]["ratio_90ci"], 2).tolist())]], title=f"tiny, {len(archs)} random archs")
    print(f"ranking old vs new on {len(archs)} archs: {out['ranking']}")
    return out


def synthetic_224(n: int, seed: int, name: str):
    """Built-in images upsampled to 224x224 (uint8), with their labels."""
    import torch
    import torch.nn.functional as F

    from hwnas.train.data import TensorImageSet, make_builtin

    small = make_builtin(n, seed)
    big = F.interpolate(small.images.float(), size=(224, 224), mode="bilinear", align_corners=False).round().clamp(0, 255)
    return TensorImageSet(big.to(torch.uint8), small.labels, 1000, name)


def part_proxyless(args) -> dict:
    import torch

    from hwnas.nn import SuperNet
    from hwnas.search.evaluator import SupernetEvaluator
    from hwnas.space import create_space
    from hwnas.train.data import Datasets

    torch.set_num_threads(1)
    torch.manual_seed(0)
    space = create_space("proxyless")
    train, val = synthetic_224(64, 0, "train224"), synthetic_224(args.p_eval, 1, "val224")
    ds = Datasets("synthetic-224", train, val, val.subset(torch.arange(0)))

    def trained():
        return SimpleNamespace(supernet=SuperNet(space), space=space, path=None, meta={}, datasets=lambda: ds)

    kw = dict(datasets=ds, n_eval=args.p_eval, bn_batches=2, bn_batch_size=args.p_bn // 2, batch_size=args.p_eval, threads=1)
    old = SupernetEvaluator(trained(), baseline=True, **kw)
    new = SupernetEvaluator(trained(), **kw)
    new.supernet.load_state_dict(old.supernet.state_dict())
    rng = np.random.default_rng(args.seed)
    archs = [space.from_indices(r) for r in space.sample_indices(rng, args.p_archs)]
    times, accs = interleaved({"old": old, "new": new}, archs, 2)
    out = {"settings": {"bn_images": args.p_bn, "eval_images": args.p_eval, "archs": len(archs), "resolution": 224},
           "speed": ratio_interval(times["old"], times["new"]), "times": times,
           "max_abs_accuracy_diff": float(np.abs(np.asarray(accs["old"]) - np.asarray(accs["new"])).max())}
    print_table(["evaluator", "s/arch", "x fewer"], [["old", out["speed"]["old_s_per_arch"], 1.0],
                                                    ["new", out["speed"]["new_s_per_arch"], out["speed"]["ratio"]]],
                title=f"proxyless at 224, {len(archs)} random archs, {args.p_bn} BN + {args.p_eval} scored images")
    return out


def part_halving(args) -> dict:
    """NSGA-II under a FLOPs budget, per seed with and without successive halving; the data are
    built once and shared by all searches. The initial population is random (not the supernet's
    candidate pool, which would start every seed from the same archs)."""
    import torch

    from hwnas.search.base import Budgets, SearchProblem, create_searcher
    from hwnas.search.constraints import parse_flops
    from hwnas.search.evaluator import SupernetEvaluator
    from hwnas.train.checkpoint import load_checkpoint

    torch.set_num_threads(1)
    ck = load_checkpoint(args.supernet)
    ds = ck.datasets()
    rows, winners = [], []
    seeds = [100 + args.seed_start + i for i in range(args.seeds)]
    for seed in range(args.seeds):
        seed = args.seed_start + seed
        got = {}
        for name, halving in (("full", None), ("halving", args.eval_images // 4)):
            ev = SupernetEvaluator(ck, datasets=ds, n_eval=args.eval_images, bn_batches=args.bn_batches, threads=1,
                                   halving=halving, halving_keep=0.25, halving_rank=args.population)
            problem = SearchProblem(ck.space, ev, budgets=Budgets(flops=parse_flops(args.flops)))
            t = time.perf_counter()
            res = create_searcher("nsga2", population=args.population, generations=args.generations).run(problem, seed=100 + seed)
            got[name] = (ck.space.to_compact(res.best.arch), time.perf_counter() - t, res.n_evaluations, len(ev.screened))
        same = got["full"][0] == got["halving"][0]
        winners.append(same)
        rows.append([100 + seed, got["full"][0], got["halving"][0], same, round(got["full"][1], 1), round(got["halving"][1], 1),
                     got["halving"][3]])
        print(rows[-1], flush=True)
        write_results(args.name, {"halving_partial": {"rows": rows, "same_winner": int(sum(winners))}})  # kept if stopped
    print_table(["seed", "winner", "winner with halving", "same", "s", "s halving", "screened out"], rows,
                title="NSGA-II with and without successive halving")
    return {"settings": {"population": args.population, "generations": args.generations, "flops": args.flops,
                         "eval_images": args.eval_images, "bn_batches": args.bn_batches,
                         "halving": {"images": args.eval_images // 4, "keep": 0.25, "rank": args.population},
                         "seeds": seeds, "checkpoint_iteration": ck.meta.get("iteration")},
            "same_winner": int(sum(winners)), "seeds": args.seeds, "rows": rows}


def part_torchrun(args) -> dict:
    import socket

    res = {}
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    for n in (1, 2):
        with tempfile.TemporaryDirectory() as tmp, socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
            s.close()
            cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={n}", "--master_port", str(port),
                   "-m", "hwnas", "search", "--supernet", str(args.supernet), "--flops", args.flops, "--population",
                   str(args.population), "--generations", str(args.generations), "--eval-images", str(args.eval_images),
                   "--bn-batches", str(args.bn_batches), "--out", f"{tmp}/s", "--tables-dir", str(REPO / "latency_tables")]
            done = subprocess.run(cmd, env=env, capture_output=True, text=True)
            if done.returncode:
                raise SystemExit(done.stderr[-3000:])
            summary = json.loads(Path(tmp, "s", "summary.json").read_text())
            res[n] = {"archs": summary["n_evaluations"], "search_s": summary["wall_time_s"],
                      "archs_per_s": summary["n_evaluations"] / summary["wall_time_s"]}
            print(n, res[n], flush=True)
    print_table(["processes", "archs", "search s", "archs/s"], [[n, r["archs"], r["search_s"], r["archs_per_s"]] for n, r in res.items()],
                title="torchrun --nproc_per_node=N -m hwnas search (gloo, this 2-core shared machine)")
    return {"processes": res, "speedup_2_over_1": res[2]["archs_per_s"] / res[1]["archs_per_s"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--supernet", required=True, help="a tiny run folder or checkpoint of `hwnas train`")
    ap.add_argument("--part", nargs="+", default=["tiny", "proxyless", "halving", "torchrun"])
    ap.add_argument("--archs", type=int, default=200)
    ap.add_argument("--block", type=int, default=20)
    ap.add_argument("--eval-images", type=int, default=250)
    ap.add_argument("--bn-batches", type=int, default=2)
    ap.add_argument("--p-archs", type=int, default=6)
    ap.add_argument("--p-bn", type=int, default=32)
    ap.add_argument("--p-eval", type=int, default=32)
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--seed-start", type=int, default=0, help="halving: first seed (100 + this); to split the seeds over processes")
    ap.add_argument("--population", type=int, default=8)
    ap.add_argument("--generations", type=int, default=3)
    ap.add_argument("--flops", default="15M")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--name", default="search_speed_bench")
    args = ap.parse_args()
    from common import RESULTS

    path = RESULTS / f"{args.name}.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    parts = {"tiny": part_tiny, "proxyless": part_proxyless, "halving": part_halving, "torchrun": part_torchrun}
    for p in args.part:
        shown = " ".join("RUN" if a == args.supernet else a for a in sys.argv[1:])  # no machine paths in results
        results[p] = {**parts[p](args), "command": f"python benchmarks/search_speed_bench.py {shown}"}
        for k in ("benchmark", "when", "machine"):
            results.pop(k, None)
        write_results(args.name, results)  # each part saved as it finishes


if __name__ == "__main__":
    main()
