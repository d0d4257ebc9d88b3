"""Closed loop: does a search's winner meet the latency budget when its exported file is timed?

NAS-Bench-Macro (tabular accuracy), on three backends, each with its own table calibrated by
``hwnas validate --calibrate`` (which stores the held-out residuals, the anchor's drift and the
noise floor the confidence is built from and judged against):

- ``onnxruntime``: ``latency_tables/host-nas-bench-macro-onnxruntime.json``, ``.onnx`` files;
- ``litert``: ``latency_tables/host-nas-bench-macro-litert.json``, ``.tflite`` files;
- ``phone``: the fake SM8150 phone over ADB (``tests/fakephone``: its own process, LiteRT behind
  ``benchmark_model``), a table profiled and calibrated on it by the ``phone-table`` phase.

Budgets are the 25th/50th/75th percentile of the predicted median (``--confidence 0.5``) over all
6,561 archs.
Per budget and seed, each searcher (NSGA-II 20 x 10; FNAS with its defaults) runs constraining
the median (``--confidence 0.5``) and the default (``--confidence 0.9``). Every distinct winner
is exported (``hwnas export``'s library call) and timed by the export's own latency check
(``verify_latency``: the table's backend and protocol, the anchor before and after).

The work is split in phases so the timed parts run alone, under the shared timing lock, in
jobs shorter than 15 minutes (each phase resumes from ``--work``):

    python benchmarks/confidence_bench.py phone-table            # under the timing lock
    python benchmarks/confidence_bench.py search [--searchers nsga2,fnas] [--percentiles 25,50,75]
    python benchmarks/confidence_bench.py time --backend litert --max-seconds 780   # under the lock
    python benchmarks/confidence_bench.py report

Reported per backend, searcher and constraint: the share of winners over the budget as timed
(and over it by more than the table's noise floor), the worst overshoot, the same in the
table's state (the measurement divided by the anchor's speed factor), and the accuracy the
margin costs (median-mode minus confidence-mode accuracy of the same budget and seed);
intervals are 95% bootstrap intervals over seeds (each seed's figure pooled over its budgets).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from common import print_table, write_results

from hwnas.latency.table import LatencyTable

REPO = Path(__file__).resolve().parent.parent
FORMAT_OF = {"onnxruntime": "onnx", "litert": "tflite", "phone": "tflite"}
MODES = {"median": 0.5, "confidence 0.9": 0.9}
SEARCHERS = {"nsga2": {"population": 20, "generations": 10}, "fnas": {}}
PHONE_TABLE = "sd855-nas-bench-macro-adb.json"


def table_path(backend: str, work: Path) -> Path:
    if backend == "phone":
        return work / "phone" / PHONE_TABLE
    return REPO / "latency_tables" / f"host-nas-bench-macro-{backend}.json"


def read_jsonl(p: Path) -> list[dict]:
    return [json.loads(ln) for ln in p.read_text().splitlines() if ln.strip()] if p.is_file() else []


# ---- the fake phone ---------------------------------------------------------------------------
class Phone:
    """A fake phone process and the adb environment it is reached with (as benchmarks/adb_bench.py)."""

    def __init__(self, work: Path) -> None:
        os.environ["XDG_CONFIG_HOME"] = str(work / "config")
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        from tests.fakephone import spawn

        self.proc = spawn()
        self.address = self.proc.address

    def backend(self):
        from hwnas.device.profiles import load_device
        from hwnas.latency.backends import create_backend

        return create_backend("adb", device=load_device("sd855"), serial=self.address, log=lambda m: None)

    def __enter__(self) -> "Phone":
        return self

    def __exit__(self, *exc) -> None:
        self.proc.stop()


def phone_table(work: Path, samples: int) -> None:
    """Profile NAS-Bench-Macro's blocks on the fake phone (sd855's protocol) and calibrate the table."""
    from hwnas.device.profiles import load_device
    from hwnas.latency.backends import Protocol
    from hwnas.latency.profiler import profile_space
    from hwnas.latency.validate import validate_table

    out = table_path("phone", work)
    out.parent.mkdir(parents=True, exist_ok=True)
    sd855 = load_device("sd855")
    with Phone(work) as ph:
        t0 = time.perf_counter()
        if not out.is_file():
            profile_space(sd855, "nas-bench-macro", "adb", out, protocol=Protocol.from_device(sd855, rounds=3),
                          backend_options={"serial": ph.address, "log": lambda m: None})
        print(f"phone table: {out} ({time.perf_counter() - t0:.0f} s)", flush=True)
        if "residual_n" in LatencyTable.load(out).calibration:
            return
        proto = Protocol.from_dict(LatencyTable.load(out).protocol)
        proto.rounds = 2
        be = ph.backend()
        try:
            rep = validate_table(sd855, out, samples=samples, seed=0, calibrate=True, plot=out.with_suffix(".png"), protocol=proto,
                                 backend=be)
        finally:
            be.close()
        (out.parent / "validate.json").write_text(json.dumps(rep))
        print(f"phone table calibrated: {rep['calibration']} ({time.perf_counter() - t0:.0f} s)", flush=True)


# ---- searches ---------------------------------------------------------------------------------
def budgets_of(table: LatencyTable, percentiles: list[int]) -> dict[int, float]:
    from hwnas.search.constraints import LatencyModel
    from hwnas.space import create_space

    space = create_space("nas-bench-macro")
    X = np.array([space.choice_indices(a) for a in space.iter_archs()])
    # the median of the error model: the latency the device is predicted to show (in the state it was validated in)
    pred = LatencyModel(table, space, confidence=0.5).predict_indices(X)[0]
    return {q: float(np.percentile(pred, q)) for q in percentiles}


def search(backend: str, work: Path, seeds: int, percentiles: list[int], searchers: list[str], export: bool = True) -> None:
    """Every (budget, seed, searcher, mode) search not yet in runs.jsonl; each winner exported (not timed)."""
    from hwnas.search.base import SearchProblem, create_searcher
    from hwnas.search.budgets import Budgets
    from hwnas.search.constraints import LatencyModel
    from hwnas.search.evaluator import TabularEvaluator
    from hwnas.space import create_space

    tp = table_path(backend, work)
    table = LatencyTable.load(tp)
    if "residual_n" not in table.calibration:
        print(f"{backend}: {tp} has no validated residuals: run `hwnas validate --calibrate` on it first", flush=True)
        return
    space = create_space("nas-bench-macro")
    runs_file = work / backend / "runs.jsonl"
    runs_file.parent.mkdir(parents=True, exist_ok=True)
    done = {(r["percentile"], r["seed"], r["searcher"], r["mode"]) for r in read_jsonl(runs_file)}
    median = LatencyModel(table, space, confidence=0.5)
    for q, T in budgets_of(table, percentiles).items():
        for searcher in searchers:
            for seed in range(seeds):
                for mode, conf in MODES.items():
                    if (q, seed, searcher, mode) in done:
                        continue
                    t0 = time.perf_counter()
                    prob = SearchProblem(space, TabularEvaluator(), latency=LatencyModel(table, space, confidence=conf),
                                         budgets=Budgets(latency_ms=T))
                    kw = {"max_evaluations": 200} if searcher == "fnas" else {}
                    best = create_searcher(searcher, **SEARCHERS[searcher]).run(prob, seed=seed, **kw).best
                    d = median.describe(best.arch, T, 0.9)
                    rec = {"percentile": q, "budget_ms": T, "seed": seed, "searcher": searcher, "mode": mode, "confidence": conf,
                           "arch": best.arch.compact(), "accuracy": best.accuracy, "bound_ms": best.latency_ms,
                           "median_ms": d["median_ms"], "p_within_budget": d["p_within_budget"],
                           "search_s": round(time.perf_counter() - t0, 1)}
                    with runs_file.open("a") as f:
                        f.write(json.dumps(rec) + "\n")
                    print(f"{backend} p{q} {searcher} seed {seed} {mode}: {rec['arch']} acc {rec['accuracy']:.2f} "
                          f"bound {rec['bound_ms']:.4f} / {T:.4f} ms ({rec['search_s']} s)", flush=True)
    if export:
        export_winners(backend, work)


def export_winners(backend: str, work: Path) -> None:
    """Each distinct winner exported once with the table (the latency check is the timed phase's)."""
    from hwnas.export import export_arch

    exports = work / backend / "exports.json"
    have = json.loads(exports.read_text()) if exports.is_file() else {}
    for a in sorted({r["arch"] for r in read_jsonl(work / backend / "runs.jsonl")} - set(have)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # one folder per format: the LiteRT and phone winners share their .tflite exports (an identical export is reused)
            r = export_arch(a, fmt=FORMAT_OF[backend], out=work / f"exports-{FORMAT_OF[backend]}", table=table_path(backend, work),
                            verify=False, name=a.split(":")[1])  # parity is not what is measured here
        have[a] = str(r.path)
        exports.write_text(json.dumps(have))


# ---- timing (under the timing lock) -------------------------------------------------------------
def time_winners(backend: str, work: Path, max_seconds: float, latency_runs: int | None) -> None:
    """The export's own latency check on every exported winner not yet timed; stops after ``max_seconds``."""
    from hwnas.export.latency_check import verify_latency
    from hwnas.space import resolve_arch

    export_winners(backend, work)
    files = json.loads((work / backend / "exports.json").read_text())
    timed_file = work / backend / "timed.jsonl"
    done = {r["arch"] for r in read_jsonl(timed_file)}
    todo = [a for a in files if a not in done]
    table = LatencyTable.load(table_path(backend, work))
    t0 = time.perf_counter()
    phone = Phone(work) if backend == "phone" else None
    try:
        for i, a in enumerate(todo):
            if time.perf_counter() - t0 > max_seconds:
                print(f"{backend}: stopped after {max_seconds:.0f} s; {len(todo) - i} winners left (run again)", flush=True)
                break
            lat = verify_latency(table, resolve_arch(a), files[a], FORMAT_OF[backend], "fp32", runs=latency_runs,
                                 serial=phone.address if phone else None)
            if lat.measured_ms is None:
                raise SystemExit(f"{a}: not measured: {lat.note}")
            rec = {"arch": a, "measured_ms": lat.measured_ms, "predicted_ms": lat.predicted_ms,
                   "device_speed_factor": lat.device_speed_factor, "measured_reference_ms": lat.measured_reference_ms,
                   "load_1min": os.getloadavg()[0]}
            with timed_file.open("a") as f:
                f.write(json.dumps(rec) + "\n")
            print(f"{backend} [{i + 1}/{len(todo)}] {a}: measured {lat.measured_ms:.4f} ms, predicted {lat.predicted_ms:.4f} ms, "
                  f"device speed x{lat.device_speed_factor or float('nan'):.3f}", flush=True)
    finally:
        if phone:
            phone.proc.stop()


# ---- report -----------------------------------------------------------------------------------
def interval(per_seed: list[float], stat=np.mean) -> list[float] | None:
    """95% bootstrap interval of ``stat`` over the seeds' figures (None with fewer than 2 or no spread)."""
    from scipy.stats import bootstrap

    v = np.asarray(per_seed, float)
    if len(v) < 2 or np.ptp(v) == 0:
        return [float(stat(v)), float(stat(v))] if len(v) else None
    ci = bootstrap((v,), stat, confidence_level=0.95, n_resamples=2000, random_state=0, method="percentile").confidence_interval
    return [float(ci.low), float(ci.high)]


def summarize(runs: list[dict], noise_pct: float) -> dict:
    out: dict = {}
    for searcher in sorted({r["searcher"] for r in runs}):
        for mode in MODES:
            sel = [r for r in runs if r["mode"] == mode and r["searcher"] == searcher]
            if not sel:
                continue
            for r in sel:
                r["over_pct"] = 100 * (r["measured_ms"] / r["budget_ms"] - 1)
                r["over_ref_pct"] = 100 * ((r["measured_reference_ms"] or r["measured_ms"]) / r["budget_ms"] - 1)
            seeds = sorted({r["seed"] for r in sel})
            over = np.array([r["over_pct"] for r in sel])
            over_ref = np.array([r["over_ref_pct"] for r in sel])
            share = [float(np.mean([r["over_pct"] > 0 for r in sel if r["seed"] == s])) for s in seeds]
            share_noise = [float(np.mean([r["over_pct"] > noise_pct for r in sel if r["seed"] == s])) for s in seeds]
            worst = [float(max(r["over_pct"] for r in sel if r["seed"] == s)) for s in seeds]
            out[f"{searcher} / {mode}"] = {
                "n": len(sel), "seeds": len(seeds), "over_budget": int(np.sum(over > 0)),
                "over_budget_beyond_noise": int(np.sum(over > noise_pct)),
                "share_over_budget": float(np.mean(over > 0)), "share_over_budget_ci95_over_seeds": interval(share),
                "share_over_beyond_noise_ci95_over_seeds": interval(share_noise),
                "worst_overshoot_pct": float(over.max()), "per_seed_worst_ci95": interval(worst),
                "median_vs_budget_pct": float(np.median(over)),
                "table_state_over_budget": int(np.sum(over_ref > 0)),
                "table_state_over_budget_beyond_noise": int(np.sum(over_ref > noise_pct)),
                "table_state_worst_overshoot_pct": float(over_ref.max()),
                "median_device_speed_factor": float(np.median([r["device_speed_factor"] or 1.0 for r in sel])),
                "mean_accuracy": float(np.mean([r["accuracy"] for r in sel])),
                "mean_predicted_p_within": float(np.mean([r["p_within_budget"] for r in sel]))}
        key = lambda r: (r["percentile"], r["seed"])  # noqa: E731
        med = {key(r): r["accuracy"] for r in runs if r["mode"] == "median" and r["searcher"] == searcher}
        pairs = [(r["seed"], med[key(r)] - r["accuracy"]) for r in runs
                 if r["mode"] != "median" and r["searcher"] == searcher and key(r) in med]
        if pairs:
            seeds = sorted({s for s, _ in pairs})
            per_seed = [float(np.mean([d for s, d in pairs if s == sd])) for sd in seeds]
            out[f"{searcher} / accuracy given up"] = {"mean_pct_points": float(np.mean([d for _, d in pairs])),
                                                      "ci95_over_seeds": interval(per_seed), "pairs": len(pairs)}
    return out


def report(work: Path, backends: list[str], command: str) -> None:
    payload: dict = {"command": command, "cpus": os.cpu_count(), "backends": {}}
    rows, cost_rows = [], []
    for backend in backends:
        runs, timed = read_jsonl(work / backend / "runs.jsonl"), {r["arch"]: r for r in read_jsonl(work / backend / "timed.jsonl")}
        runs = [{**r, **timed[r["arch"]]} for r in runs if r["arch"] in timed]
        if not runs:
            continue
        tp = table_path(backend, work)
        table = LatencyTable.load(tp)
        cal = table.calibration
        noise = float(cal.get("noise_floor_pct", 0.0))
        summ = summarize(runs, noise)
        payload["backends"][backend] = {"table": os.path.relpath(tp, REPO) if tp.is_relative_to(REPO) else tp.name,
                                        "calibration": cal, "noise_floor_pct": noise,
                                        "budgets_ms": {str(q): T for q, T in sorted({(r["percentile"], r["budget_ms"]) for r in runs})},
                                        "summary": summ, "runs": runs,
                                        "load_1min_while_timing": [min(r["load_1min"] for r in runs), max(r["load_1min"] for r in runs)]}
        for name, s in summ.items():
            if name.endswith("accuracy given up"):
                ci = s["ci95_over_seeds"]
                cost_rows.append((backend, name.split(" / ")[0], s["pairs"], f"{s['mean_pct_points']:.2f}",
                                  f"{ci[0]:.2f} to {ci[1]:.2f}" if ci else "-"))
                continue
            ci = s["share_over_budget_ci95_over_seeds"]
            rows.append((backend, name, s["n"], f"{s['over_budget']} ({ci[0]:.0%}-{ci[1]:.0%})" if ci else s["over_budget"],
                         f"{s['over_budget_beyond_noise']} (> {noise:.1f}%)", f"{s['worst_overshoot_pct']:+.1f}%",
                         f"{s['table_state_over_budget_beyond_noise']} / {s['table_state_worst_overshoot_pct']:+.1f}%",
                         f"x{s['median_device_speed_factor']:.2f}", f"{s['mean_accuracy']:.2f}", f"{s['mean_predicted_p_within']:.2f}"))
    print_table(["backend", "searcher / constraint", "winners", "over budget (95% CI of share over seeds)", "over by > noise floor",
                 "worst", "table state: over > noise / worst", "device speed", "mean acc %", "predicted P(within)"], rows,
                "closed loop on NAS-Bench-Macro: winners exported and timed by `hwnas export`'s check")
    print_table(["backend", "searcher", "budget x seed pairs", "accuracy given up (points)", "95% CI over seeds"], cost_rows,
                "what the 0.9 margin costs: median-mode minus confidence-mode winner accuracy")
    print(f"wrote {write_results('confidence_bench', payload)}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("phase", choices=["phone-table", "search", "time", "report"])
    ap.add_argument("--backend", action="append", help="onnxruntime, litert, phone (repeatable; default all three)")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--percentiles", default="25,50,75")
    ap.add_argument("--searchers", default="nsga2,fnas")
    ap.add_argument("--no-export", action="store_true", help="search: leave the exports to the time phase (a search run beside another)")
    ap.add_argument("--samples", type=int, default=30, help="phone-table: archs validate --calibrate times (half held out)")
    ap.add_argument("--max-seconds", type=float, default=780, help="time: stop starting measurements after this long")
    ap.add_argument("--latency-runs", type=int, default=None, help="time: timed runs per measurement (default the table's protocol)")
    ap.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "hwnas-confidence-bench"),
                    help="keeps the phone table, runs, exports and timings (every phase resumes from it)")
    args = ap.parse_args()
    work = Path(args.work)
    backends = args.backend or ["onnxruntime", "litert", "phone"]
    if args.phase == "phone-table":
        phone_table(work, args.samples)
    elif args.phase == "search":
        for b in backends:
            search(b, work, args.seeds, [int(q) for q in args.percentiles.split(",")], args.searchers.split(","), not args.no_export)
    elif args.phase == "time":
        for b in backends:
            time_winners(b, work, args.max_seconds, args.latency_runs)
    else:
        report(work, backends, "python benchmarks/confidence_bench.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
