"""Latency-table benchmark on the host: profiling cost, repeatability, prediction vs. measurement.

For each space and backend (onnxruntime, litert):
  - profile the space from an empty block cache (wall time, distinct keys, time per key),
  - profile it a second time -> per-entry repeatability (median |diff|, share within ±10%),
  - validate K random archs exported whole: shares within ±5%/±10% uncalibrated and after
    calibration (fitted on half, reported on the held-out half), RMSE, bias, and the noise
    floor (the same whole network measured twice in fresh processes);
and once: the benchmark_model fixture log, per-op times summed per block vs. its average.

    python benchmarks/latency_bench.py all            # full: proxyless 224 and tiny, 100 archs
    python benchmarks/latency_bench.py all --quick    # tiny only, 20 archs

The steps can also run separately (e.g. in parallel on a busy machine), each writing a
sidecar file next to its table, then ``assemble`` collects them::

    latency_bench.py profile  --space proxyless --backend onnxruntime --table W/a.json
    latency_bench.py profile  --space proxyless --backend onnxruntime --table W/a.run2.json
    latency_bench.py validate --table W/a.json --samples 100
    latency_bench.py assemble W/a.json [W/b.json ...]

Prints a table and writes benchmarks/results/latency_bench.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hwnas.io import atomic_write_json  # noqa: E402
from hwnas.latency.backends.base import Protocol  # noqa: E402
from hwnas.latency.benchmark_log import load_benchmark_log  # noqa: E402
from hwnas.latency.keys import space_slots  # noqa: E402
from hwnas.latency.profiler import profile_space  # noqa: E402
from hwnas.latency.table import LatencyTable  # noqa: E402
from hwnas.latency.validate import validate_table  # noqa: E402
from hwnas.space import create_space  # noqa: E402

FIXTURE = ROOT / "tests" / "data" / "benchmark_model_proxyless_mobile.txt"
RESULTS = ROOT / "benchmarks" / "results" / "latency_bench.json"
# The reference: a naive table (median of 40 in-process runs per block, plain sum) on
# this kind of machine, 20 random proxyless archs: share within ±10% / ±5%.
NAIVE_REFERENCE = {"onnxruntime": {"within_10": 1.00, "within_5": 0.85}, "litert": {"within_10": 0.92, "within_5": 0.83, "worst_pct": -30}}


def sidecar(table: Path, what: str) -> Path:
    return table.with_name(table.stem + f".{what}.json")


def run_profile(space: str, backend: str, table: Path, cache: Path | None) -> dict:
    """Profile into ``table`` (resuming if interrupted) and record the cost next to it."""
    t0 = time.perf_counter()
    marks: dict[str, float] = {}

    def progress(ev) -> None:
        marks.setdefault(ev.phase, time.perf_counter())

    fresh = cache is None
    cache_dir = Path(tempfile.mkdtemp(prefix="blocks-")) if fresh else cache
    try:
        tab = profile_space("host", space, backend, table, cache_dir=cache_dir, progress=progress)
    finally:
        if fresh:
            shutil.rmtree(cache_dir, ignore_errors=True)
    wall = time.perf_counter() - t0
    sp = create_space(space)
    keys = len(space_slots(sp))
    export_s = marks.get("measure", time.perf_counter()) - t0
    out = {"space": space, "backend": backend, "table": table.name, "wall_s": round(wall, 1), "export_s": round(export_s, 1),
           "measure_s": round(wall - export_s, 1), "distinct_keys": keys,
           "layer_op_slots": sum(len(layer.choices) for layer in sp.layers) + len(sp.stem) + len(sp.head),
           "entries": len(tab.entries), "failed": len(tab.failed), "s_per_key": round(wall / keys, 2),
           "retries": int(sum(e.get("retries", 0) for e in tab.entries.values())),
           "cv_exceeded_entries": int(sum(e.get("status") == "cv_exceeded" for e in tab.entries.values())),
           "block_cache": "empty at start" if fresh else "given (blocks exported before are reused)",
           "protocol": {k: tab.protocol.get(k) for k in ("runs", "warmup_runs", "min_time_s", "rounds", "clock", "max_retries", "cv_bound",
                                                         "process", "clock_used", "anchor_every", "anchor")},
           "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    prev = sidecar(table, "profile")
    if prev.exists():  # a resumed run: keep the first run's cost too
        out["earlier_runs"] = [json.loads(prev.read_text())]
    atomic_write_json(prev, out)
    return out


def run_validate(table: Path, samples: int, max_retries: int | None) -> dict:
    tab = LatencyTable.load(table)
    proto = Protocol.from_dict(tab.protocol)
    if max_retries is not None:
        proto.max_retries = max_retries
    t0 = time.perf_counter()
    rep = validate_table("host", tab, samples=samples, seed=0, calibrate=True, protocol=proto,
                         plot=table.with_name(table.stem + ".validate.png"))
    rep["wall_s"] = round(time.perf_counter() - t0, 1)
    rep["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    atomic_write_json(sidecar(table, "validate"), rep)
    return rep


def repeatability(a: Path, b: Path) -> dict:
    """Per-entry differences between two profiles of the same space.

    With drift correction each table's entries are in the speed its own anchor reference
    recorded; the second figure puts table b in table a's reference state (entries times
    ref_a / ref_b), which is what extending table a with b's measurements would do.
    """
    ta, tb = LatencyTable.load(a), LatencyTable.load(b)
    keys = sorted(set(ta.entries) & set(tb.entries))

    def stats(scale: float) -> dict:
        d = np.array([abs(scale * tb.entries[k]["median_ms"] - ta.entries[k]["median_ms"]) / ta.entries[k]["median_ms"] for k in keys])
        return {"entries": len(keys), "median_abs_diff_pct": float(100 * np.median(d)), "p90_abs_diff_pct": float(100 * np.percentile(d, 90)),
                "within_10": float(np.mean(d <= 0.10)), "within_5": float(np.mean(d <= 0.05)), "max_abs_diff_pct": float(100 * d.max())}

    out = stats(1.0)
    ra, rb = (t.protocol.get("anchor", {}).get("reference_ms") for t in (ta, tb))
    if ra and rb:
        out["anchor_reference_ms"] = [ra, rb]
        out["in_one_reference_state"] = stats(ra / rb)
    return out


def fixture_figure() -> dict:
    if not FIXTURE.exists():
        return {"skipped": "fixture log not found"}
    log = load_benchmark_log(FIXTURE)
    blocks = log.group_ops()
    total = sum(blocks.values())
    return {"blocks": len(blocks), "ops": len(log.ops), "sum_per_block_ms": round(total, 3), "reported_avg_ms": log.average_ms,
            "timings_avg_ms": log.timings.avg_ms if log.timings else None,
            "diff_pct": round(100 * (total - log.average_ms) / log.average_ms, 3)}


def profile_cost_from_table(t: Path) -> dict:
    """For a table built by ``hwnas profile`` itself: wall time = file written - table created."""
    from datetime import datetime, timezone

    tab = LatencyTable.load(t)
    created = datetime.fromisoformat(tab.created)
    done = datetime.fromtimestamp(t.stat().st_mtime, tz=timezone.utc)
    sp = create_space(tab.space)
    keys = len(space_slots(sp))
    wall = (done - created).total_seconds()
    return {"space": tab.space, "backend": tab.backend, "table": t.name, "wall_s": round(wall, 1), "distinct_keys": keys,
            "layer_op_slots": sum(len(layer.choices) for layer in sp.layers) + len(sp.stem) + len(sp.head),
            "entries": len(tab.entries), "failed": len(tab.failed), "s_per_key": round(wall / keys, 2),
            "retries": int(sum(e.get("retries", 0) for e in tab.entries.values())),
            "cv_exceeded_entries": int(sum(e.get("status") == "cv_exceeded" for e in tab.entries.values())),
            "block_cache": "empty at start", "how": "wall time from the table's 'created' stamp to its file's write time"}


def assemble(tables: list[Path], out: Path, note: str = "") -> dict:
    earlier = json.loads(out.read_text()).get("runs", {}) if out.exists() else {}
    res: dict = {"runs": {}, "fixture_log": fixture_figure(), "naive_reference_from_issue": NAIVE_REFERENCE}
    if note:
        res["note"] = note
    for t in tables:
        tab = LatencyTable.load(t)
        name = f"{tab.space}/{tab.backend}"
        r: dict = {"table": t.name}
        if sidecar(t, "profile").exists():
            r["profile"] = json.loads(sidecar(t, "profile").read_text())
        else:
            r["profile"] = profile_cost_from_table(t)
        run2 = t.with_name(t.stem + ".run2.json")
        if run2.exists():
            r["repeatability"] = repeatability(t, run2)
            if sidecar(run2, "profile").exists():
                r["profile_again"] = json.loads(sidecar(run2, "profile").read_text())
        if sidecar(t, "validate").exists():
            v = json.loads(sidecar(t, "validate").read_text())
            r["validate"] = {k: v.get(k) for k in ("samples", "results", "noise", "drift", "results_without_drift_correction",
                                                   "noise_without_drift_correction", "calibration", "export", "protocol", "wall_s", "finished", "archs")}
        # a profile from a warm block cache does not say what a first profile costs: keep the
        # last cold-cache figure of this space/backend from the earlier results
        cold = lambda p: isinstance(p, dict) and p.get("block_cache") == "empty at start"  # noqa: E731
        if not cold(r["profile"]):
            prev = earlier.get(name, {})
            prev_cold = prev.get("profile") if cold(prev.get("profile")) else prev.get("profile_cold_cache_earlier")
            if cold(prev_cold):
                r["profile_cold_cache_earlier"] = prev_cold
        res["runs"][name] = r
    atomic_write_json(out, res)
    print_table(res)
    print(f"wrote {out}")
    return res


def print_table(res: dict) -> None:
    print(f"{'space/backend':24} {'archs':>5} {'keys':>4} {'prof s':>7} {'s/key':>6} {'rep med%':>8} {'rep±10':>6}"
          f" {'uncal ±5/±10':>13} {'cal(held-out) ±5/±10':>21} {'noise med/max%':>15}")
    for name, r in res["runs"].items():
        p, rp, v = r.get("profile", {}), r.get("repeatability"), r.get("validate")
        line = f"{name:24} {v['samples'] if v else '-':>5} {p.get('distinct_keys', '-'):>4} {p.get('wall_s', '-'):>7} {p.get('s_per_key', '-'):>6}"
        line += f" {rp['median_abs_diff_pct']:>8.2f} {rp['within_10'] * 100:>5.0f}%" if rp else f" {'-':>8} {'-':>6}"
        if v:
            u, c, nz = v["results"]["uncalibrated"], v["results"]["calibrated_heldout"], v["noise"]
            line += (f" {u['within_5'] * 100:>6.0f}/{u['within_10'] * 100:<6.0f} {c['within_5'] * 100:>10.0f}/{c['within_10'] * 100:<10.0f}"
                     f" {nz['median_abs_pct']:>6.2f}/{nz['max_abs_pct']:<6.2f}")
        print(line)
    fx = res["fixture_log"]
    if "sum_per_block_ms" in fx:
        print(f"fixture log: {fx['ops']} ops in {fx['blocks']} blocks sum to {fx['sum_per_block_ms']} ms vs reported average "
              f"{fx['reported_avg_ms']} ms ({fx['diff_pct']:+.3f}%)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("all", help="every step, one after the other")
    a.add_argument("--quick", action="store_true", help="tiny only, 20 archs")
    a.add_argument("--spaces", default=None, help="comma list (default proxyless,tiny; --quick: tiny)")
    a.add_argument("--backends", default="onnxruntime,litert")
    a.add_argument("--samples", type=int, default=None, help="archs per validation (default 100; --quick 20)")
    a.add_argument("--work", default=None, help="folder for the tables (default: a temp folder)")
    a.add_argument("--out", default=str(RESULTS))
    p = sub.add_parser("profile")
    p.add_argument("--space", required=True)
    p.add_argument("--backend", required=True)
    p.add_argument("--table", required=True)
    p.add_argument("--cache", default=None, help="block cache to use (default: an empty temporary one)")
    v = sub.add_parser("validate")
    v.add_argument("--table", required=True)
    v.add_argument("--samples", type=int, default=100)
    v.add_argument("--max-retries", type=int, default=None, help="override the table protocol's CV re-measure bound")
    s = sub.add_parser("assemble")
    s.add_argument("tables", nargs="+")
    s.add_argument("--note", default="")
    s.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()

    if args.cmd == "profile":
        print(json.dumps(run_profile(args.space, args.backend, Path(args.table), Path(args.cache) if args.cache else None), indent=1))
    elif args.cmd == "validate":
        rep = run_validate(Path(args.table), args.samples, args.max_retries)
        print(json.dumps({k: rep[k] for k in ("results", "noise", "calibration")}, indent=1))
    elif args.cmd == "assemble":
        assemble([Path(t) for t in args.tables], Path(args.out), args.note)
    else:
        spaces = (args.spaces or ("tiny" if args.quick else "proxyless,tiny")).split(",")
        samples = args.samples or (20 if args.quick else 100)
        work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="latency_bench-"))
        work.mkdir(parents=True, exist_ok=True)
        tables = []
        for space in spaces:
            for backend in args.backends.split(","):
                t1 = work / f"host-{space}-{backend}.json"
                print(f"== {space}/{backend}", flush=True)
                run_profile(space, backend, t1, None)
                run_profile(space, backend, t1.with_name(t1.stem + ".run2.json"), None)
                run_validate(t1, samples, None)
                tables.append(t1)
        assemble(tables, Path(args.out), "quick mode" if args.quick else "")


if __name__ == "__main__":
    main()
