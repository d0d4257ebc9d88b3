"""Latency-constrained search: does it find the best arch under the budget, and does the budget hold on the device?

    python benchmarks/search_bench.py [--seeds 10] [--quick] [--skip-measure] [--skip-supernet] [--supernet RUN_DIR]

1. NAS-Bench-Macro (tabular accuracy = the truth) with latency predicted by the committed host
   table (latency_tables/host-nas-bench-macro-onnxruntime.json). Budgets = 25th/50th/75th
   percentile of the predicted latency of all 6,561 archs. Per budget and seed: NSGA-II
   (GreedyNAS setting: population 50 x 20 generations) -> accuracy rank of its winner among all
   feasible archs, evaluations used, predicted constraint violations; random search and
   evolution (no pool) at the same number of evaluations; and a small-budget setting
   (NSGA-II 20 x 5) against random search at equal evaluations, where the search matters more.
2. Closed loop: every distinct NSGA-II winner exported whole with the profiler's exporter and
   timed on the host with the table's backend and protocol (hwnas.latency.validate.measure_networks);
   share whose measured latency is within the budget, and within budget + 10% (the +-10% band
   `hwnas validate` reports the table's accuracy in).
3. Supernet: a `tiny` supernet trained with `hwnas train` (or --supernet RUN_DIR), searched end to
   end with NSGA-II under the median predicted latency of the tiny host table; time per evaluated arch.
4. Bad input: the one-line errors for an unparseable budget, an impossible budget, a table of
   another device/space and a supernet checkpoint of another space.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from common import print_table, write_results

from hwnas.errors import HwnasError
from hwnas.search.base import Budgets, SearchProblem, create_searcher
from hwnas.search.constraints import LatencyModel, load_table
from hwnas.search.evaluator import TabularEvaluator
from hwnas.space import create_space

REPO = Path(__file__).resolve().parent.parent
TABLES = REPO / "latency_tables"


def macro_truth(model: LatencyModel):
    space = create_space("nas-bench-macro")
    X = np.array([space.choice_indices(a) for a in space.iter_archs()])
    lat = model.predict_indices(X)[0]
    bench = TabularEvaluator().benchmark
    acc = np.array([bench.entries[space.to_compact(space.from_indices(r))].mean_acc for r in X])
    return space, X, lat, acc


def run_one(space, model, T, algorithm, seed, max_evaluations=None, **opts):
    prob = SearchProblem(space, TabularEvaluator(), latency=model, budgets=Budgets(latency_ms=T))
    return create_searcher(algorithm, **opts).run(prob, max_evaluations=max_evaluations, seed=seed)


def rank_of(acc_feasible_sorted_desc: np.ndarray, found: float) -> int:
    return int((acc_feasible_sorted_desc > found).sum()) + 1


def tabular_part(seeds: int, quick: bool) -> tuple[dict, list]:
    table = load_table(create_space("nas-bench-macro"), device="host", table=TABLES / "host-nas-bench-macro-onnxruntime.json")
    model = LatencyModel(table, create_space("nas-bench-macro"))
    space, X, lat, acc = macro_truth(model)
    out = {"table": "latency_tables/host-nas-bench-macro-onnxruntime.json", "table_created": table.created,
           "table_calibration": table.calibration, "space_size": int(len(X)),
           "predicted_latency_ms": {"min": float(lat.min()), "median": float(np.median(lat)), "max": float(lat.max())},
           "budgets": []}
    rows = []
    winners = []
    settings = [("nsga2 50x20", {"population": 50, "generations": 20}), ("nsga2 20x5", {"population": 20, "generations": 5})]
    for q in (25, 50, 75):
        T = float(np.percentile(lat, q))
        feas = lat <= T
        fa = np.sort(acc[feas])[::-1]
        top1 = max(1, int(np.ceil(0.01 * feas.sum())))
        entry = {"percentile": q, "budget_ms": T, "n_feasible": int(feas.sum()), "best_feasible_acc": float(fa[0]),
                 "top1pct_rank": top1, "settings": {}}
        for label, opts in settings:
            per = {"nsga2": [], "random": [], "evolution": []}
            t0 = time.perf_counter()
            for seed in range(seeds):
                n = run_one(space, model, T, "nsga2", seed, **opts)
                used = n.n_evaluations
                violations = sum(1 for r in n.history if r.latency_ms > T)
                per["nsga2"].append({"seed": seed, "rank": rank_of(fa, n.best.accuracy), "acc": n.best.accuracy,
                                     "evaluations": used, "predicted_ms": n.best.latency_ms, "violations": violations,
                                     "arch": n.best.arch.compact()})
                winners.append((n.best.arch, T, q, n.best.latency_ms, "median"))  # both settings: more distinct winners
                for base in ("random", "evolution"):
                    if base == "evolution" and quick and label != settings[0][0]:
                        continue
                    b = run_one(space, model, T, base, seed, max_evaluations=used,
                                **({"population": opts["population"]} if base == "evolution" else {}))
                    per[base].append({"seed": seed, "rank": rank_of(fa, b.best.accuracy), "acc": b.best.accuracy,
                                      "evaluations": b.n_evaluations, "violations": sum(1 for r in b.history if r.latency_ms > T)})
            summ = {}
            for alg, runs in per.items():
                if not runs:
                    continue
                ranks = np.array([r["rank"] for r in runs])
                summ[alg] = {"median_rank": float(np.median(ranks)), "worst_rank": int(ranks.max()),
                             "median_rank_pct": float(100 * np.median(ranks) / feas.sum()),
                             "share_top1pct": float(np.mean(ranks <= top1)), "share_rank1": float(np.mean(ranks == 1)),
                             "median_evaluations": float(np.median([r["evaluations"] for r in runs])),
                             "predicted_violations": int(sum(r["violations"] for r in runs)), "runs": runs}
                rows.append((q, f"{T:.3f}", int(feas.sum()), label, alg, summ[alg]["median_rank"], summ[alg]["worst_rank"],
                             f"{summ[alg]['share_top1pct']:.0%}", summ[alg]["median_evaluations"], summ[alg]["predicted_violations"]))
            summ["wall_s"] = time.perf_counter() - t0
            summ["nsga2_beats_or_ties_random"] = float(np.mean([a["acc"] >= b["acc"] for a, b in zip(per["nsga2"], per["random"])]))
            entry["settings"][label] = summ
        # the conservative mode (--latency-quantile 0.9): constrain the sum of the blocks' p90 instead of the medians
        p90 = LatencyModel(table, space, quantile=0.9)
        p90_runs = []
        for seed in range(seeds):
            prob = SearchProblem(space, TabularEvaluator(), latency=p90, budgets=Budgets(latency_ms=T))
            n = create_searcher("nsga2").run(prob, seed=seed)
            p90_runs.append({"seed": seed, "rank": rank_of(fa, n.best.accuracy), "acc": n.best.accuracy,
                             "evaluations": n.n_evaluations, "p90_ms": n.best.latency_ms, "median_ms": model(n.best.arch)[0]})
            winners.append((n.best.arch, T, q, model(n.best.arch)[0], "p90"))
        entry["nsga2_p90_constraint"] = {"median_rank": float(np.median([r["rank"] for r in p90_runs])), "runs": p90_runs}
        out["budgets"].append(entry)
    print_table(["pct", "budget ms", "feasible", "setting", "algorithm", "median rank", "worst rank", "top-1%", "evals", "violations"],
                rows, "NAS-Bench-Macro: rank of the found arch among feasible archs (1 = best), over seeds")
    return out, winners


def space_free(arch) -> str:
    return arch.get_space().to_compact(arch)


def closed_loop(winners: list, rounds: int) -> dict:
    from hwnas.device.profiles import load_device
    from hwnas.latency.backends import Protocol, create_backend
    from hwnas.latency.validate import measure_networks

    table = load_table(create_space("nas-bench-macro"), device="host", table=TABLES / "host-nas-bench-macro-onnxruntime.json")
    distinct: dict = {}
    for arch, T, q, pred, mode in winners:
        distinct.setdefault((arch, T, mode), (q, pred))
    archs = sorted({k[0] for k in distinct}, key=lambda a: a.ops)
    dev = load_device("host")
    proto = Protocol.from_dict(table.protocol or {})
    proto.rounds = rounds
    with tempfile.TemporaryDirectory() as tmp, create_backend(table.backend, device=dev) as be:
        t0 = time.perf_counter()
        round_records, export_stats = measure_networks(archs, be, proto, cache_dir=Path(tmp) / "blocks")
        wall = time.perf_counter() - t0
    meas_rounds = [[float(r["median_ms"]) for r in rr] for rr in round_records]
    measured = {a: float(np.median(r)) for a, r in zip(archs, meas_rounds)}
    rows, recs = [], []
    for (arch, T, mode), (q, pred) in distinct.items():
        m = measured[arch]
        raw = table.raw_sum(arch)[0]  # the blocks' sum before the table's calibration
        recs.append({"arch": arch.compact(), "constraint": mode, "percentile": q, "budget_ms": T, "predicted_ms": pred, "measured_ms": m,
                     "uncalibrated_sum_ms": raw, "uncalibrated_error_pct": 100 * (raw - m) / m,
                     "rounds_ms": [float(x) for x in meas_rounds[archs.index(arch)]],
                     "within_budget": bool(m <= T), "within_budget_plus_10pct": bool(m <= 1.10 * T),
                     "pred_error_pct": 100 * (pred - m) / m})
        rows.append((q, mode, space_free(arch), f"{T:.3f}", f"{pred:.3f}", f"{m:.3f}", f"{100 * (pred - m) / m:+.1f}%",
                     f"{100 * (raw - m) / m:+.1f}%", m <= T, m <= 1.1 * T))
    print_table(["pct", "constraint", "winner", "budget ms", "predicted ms (median)", "measured ms", "pred err", "uncalibrated err", "<= budget", "<= budget+10%"], rows,
                f"closed loop on host ({table.backend}, {proto.rounds} rounds, fresh process per measurement)")
    errs = np.array([r["pred_error_pct"] for r in recs])
    return {"backend": table.backend, "protocol": proto.to_dict(), "distinct_winners": len(recs), "wall_s": wall,
            "load_average_1min_at_end": __import__("os").getloadavg()[0], "cpus": __import__("os").cpu_count(),
            "share_within_budget": float(np.mean([r["within_budget"] for r in recs])),
            "share_within_budget_plus_10pct": float(np.mean([r["within_budget_plus_10pct"] for r in recs])),
            "by_constraint": {mode: {"n": len(sel), "share_within_budget": float(np.mean([r["within_budget"] for r in sel])),
                                     "share_within_budget_plus_10pct": float(np.mean([r["within_budget_plus_10pct"] for r in sel]))}
                              for mode in ("median", "p90") for sel in [[r for r in recs if r["constraint"] == mode]] if sel},
            "prediction_error_pct": {"median": float(np.median(errs)), "min": float(errs.min()), "max": float(errs.max())},
            "table_calibration": table.calibration,
            "uncalibrated_error_pct": {"median": float(np.median([r["uncalibrated_error_pct"] for r in recs])),
                                       "min": float(min(r["uncalibrated_error_pct"] for r in recs)),
                                       "max": float(max(r["uncalibrated_error_pct"] for r in recs))},
            "winners": recs, "export": export_stats}


def train_tiny(run_dir: Path, iters: int) -> float:
    t0 = time.perf_counter()
    cmd = [sys.executable, "-m", "hwnas", "train", "--space", "tiny", "--out", str(run_dir), "--max-iters", str(iters),
           "--n-train", "2000", "--n-val", "1000", "--n-path-eval", "250", "--pool-size", "100", "--threads", "1", "--quiet",
           "--ckpt-every", "50", "--no-early-stop"]
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"hwnas train failed: {r.stderr.strip()}")
    return time.perf_counter() - t0


def supernet_part(supernet: str | None, iters: int, population: int, generations: int, n_eval: int) -> dict:
    from hwnas.search.api import run_search

    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(supernet) if supernet else Path(tmp) / "tiny-run"
        if not (run_dir / "supernet.json").exists():  # train one (into --supernet DIR, kept for re-runs)
            out["train_s"] = train_tiny(run_dir, iters)
            out["train_iters"] = iters
            out["train_command"] = "hwnas train --space tiny --max-iters N --n-train 2000 --n-val 1000 --n-path-eval 250 --pool-size 100 --threads 1 --no-early-stop"
        import json

        summ = run_dir / "summary.json"
        if summ.exists():
            out["train_summary"] = {k: v for k, v in json.loads(summ.read_text()).items() if isinstance(v, (int, float, str))}
        space = create_space("tiny")
        table = load_table(space, device="host", table=TABLES / "host-tiny-onnxruntime.json")
        model = LatencyModel(table, space)
        lat = model.predict_indices(space.sample_indices(np.random.default_rng(0), 20000))[0]
        T = float(np.median(lat))
        t0, c0 = time.perf_counter(), time.process_time()
        o = run_search(latency=f"{T}ms", supernet=run_dir, algorithm="nsga2", population=population, generations=generations,
                       tables_dir=TABLES, n_eval=n_eval, bn_batches=2, threads=1, out=Path(tmp) / "search", seed=0)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        res = o.result
        ev = o.result.info
        out.update({
            "budget_ms": T, "population": population, "generations": generations, "n_eval_images": n_eval,
            "bn_recalibration_images": 128, "evaluations": res.n_evaluations, "search_wall_s": wall,
            "search_s_per_evaluated_arch": res.wall_time_s / max(1, res.n_evaluations),
            "search_cpu_s_per_evaluated_arch": cpu / max(1, res.n_evaluations),
            "load_average_1min_at_end": __import__("os").getloadavg()[0],
            "from_pool": ev.get("from_pool"), "best": res.best.to_dict() if res.best else None,
            "files": sorted(p.name for p in o.out_dir.iterdir()),
            "all_within_budget": all(r.latency_ms <= T for r in res.history),
        })
    print_table(["budget ms", "evaluations", "from pool", "best acc %", "best pred ms", "s / evaluated arch", "CPU s / arch"],
                [(f"{T:.3f}", out["evaluations"], out["from_pool"], f"{res.best.accuracy:.2f}", f"{res.best.latency_ms:.3f}",
                  f"{out['search_s_per_evaluated_arch']:.2f}", f"{out['search_cpu_s_per_evaluated_arch']:.2f}")], "tiny supernet from `hwnas train`: NSGA-II end to end")
    return out


def bad_input(supernet_dir: Path | None) -> list[dict]:
    from hwnas.search.api import run_search

    cases = [
        ("unparseable budget", dict(latency="fast", benchmark="nas-bench-macro")),
        ("budget below the fastest arch", dict(latency="0.001ms", benchmark="nas-bench-macro")),
        ("table of another space", dict(latency="1ms", benchmark="nas-bench-macro", table=TABLES / "host-tiny-onnxruntime.json")),
        ("table of another device", dict(latency="1ms", benchmark="nas-bench-macro", table="{other_device_table}")),
    ]
    if supernet_dir is not None:
        cases.append(("supernet checkpoint of another space", dict(latency="1ms", supernet=supernet_dir, space="nas-bench-macro")))
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        # the host table relabelled as measured on another phone: what a user gets by passing the wrong --table
        other = load_table(create_space("nas-bench-macro"), device="host", table=TABLES / "host-nas-bench-macro-onnxruntime.json")
        other.device = {**other.device, "name": "sd855", "model": "SM-G9750"}
        other_path = other.save(Path(tmp) / "sd855-nas-bench-macro.json")
        for name, kw in cases:
            kw = {k: (other_path if v == "{other_device_table}" else v) for k, v in kw.items()}
            try:
                run_search(out=Path(tmp) / "o", tables_dir=TABLES, **kw)
                out.append({"case": name, "error": None})
            except HwnasError as e:  # machine paths out of the committed results
                msg = str(e).replace(str(REPO) + "/", "").replace(tmp, "<tmp>")
                if supernet_dir is not None:
                    msg = msg.replace(str(supernet_dir), "<tiny run>")
                out.append({"case": name, "error": msg})
    print_table(["case", "error"], [(c["case"], c["error"]) for c in out], "bad input")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--quick", action="store_true", help="3 seeds, no small-budget evolution, short supernet training")
    ap.add_argument("--skip-measure", action="store_true")
    ap.add_argument("--skip-supernet", action="store_true")
    ap.add_argument("--supernet", default=None, help="tiny run folder: used if trained, else trained into (and kept)")
    ap.add_argument("--train-iters", type=int, default=300)
    ap.add_argument("--population", type=int, default=10)
    ap.add_argument("--generations", type=int, default=4)
    ap.add_argument("--eval-images", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--parts", default="tabular,closed-loop,supernet,bad-input",
                    help="comma list; parts not run are kept from the existing results file")
    args = ap.parse_args()
    parts = set(args.parts.split(","))
    if args.skip_measure:
        parts.discard("closed-loop")
    if args.skip_supernet:
        parts.discard("supernet")
    if "closed-loop" in parts:
        parts.add("tabular")  # the winners to measure come from the tabular searches
    seeds = 3 if args.quick else args.seeds
    import json

    from common import RESULTS

    old_path = RESULTS / "search_bench.json"
    payload: dict = json.loads(old_path.read_text()) if old_path.exists() and parts != ALL_PARTS else {}
    for k in ("benchmark", "when", "machine"):
        payload.pop(k, None)
    cmd = "python benchmarks/search_bench.py " + " ".join(sys.argv[1:])
    payload.setdefault("commands", {})
    t0 = time.perf_counter()
    if "tabular" in parts:
        payload["seeds"] = seeds
        payload["tabular"], winners = tabular_part(seeds, args.quick)
        payload["commands"]["tabular"] = cmd
    if "closed-loop" in parts:
        payload["closed_loop"] = closed_loop(winners, args.rounds)
        payload["commands"]["closed_loop"] = cmd
    sup_dir = Path(args.supernet) if args.supernet else None
    if "supernet" in parts:
        payload["supernet"] = supernet_part(args.supernet, 100 if args.quick else args.train_iters, args.population,
                                            args.generations, args.eval_images)
        payload["commands"]["supernet"] = cmd
    if "bad-input" in parts:
        if sup_dir is None or not (sup_dir / "supernet.json").exists():  # a throwaway tiny checkpoint is enough here
            from hwnas.nn import SuperNet
            from hwnas.train.checkpoint import save_checkpoint

            sup_dir = Path(tempfile.mkdtemp())
            save_checkpoint(sup_dir, "supernet", {"model": SuperNet(create_space("tiny")).state_dict()},
                            {"space": "tiny", "data": "builtin", "config": {}, "pool": {"entries": []}})
        payload["bad_input"] = bad_input(sup_dir)
        payload["commands"]["bad_input"] = cmd
    payload.pop("command", None)
    payload["wall_s_last_run"] = time.perf_counter() - t0
    print(f"wrote {write_results('search_bench', payload)}")


ALL_PARTS = {"tabular", "closed-loop", "supernet", "bad-input"}


if __name__ == "__main__":
    main()
