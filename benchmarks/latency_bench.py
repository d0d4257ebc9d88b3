"""Latency-table benchmark on the host: profiling cost, repeatability, prediction vs. measurement.

For each backend (onnxruntime, litert):
  - profile the space from an empty block cache (wall time, distinct keys, time per key),
  - profile it a second time (same cache) -> per-entry repeatability,
  - ``validate`` K random archs exported whole: shares within ±5%/±10% uncalibrated and after
    calibration (fitted on half, reported on the held-out half), RMSE, bias, and the noise
    floor (the same whole network measured twice in fresh processes);
and once: the benchmark_model fixture log, per-op times summed per block vs. its average.

    python benchmarks/latency_bench.py            # full: proxyless 224 and tiny, 100 archs each
    python benchmarks/latency_bench.py --quick    # tiny only, 20 archs (a few minutes)

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
from hwnas.latency.benchmark_log import load_benchmark_log  # noqa: E402
from hwnas.latency.keys import space_slots  # noqa: E402
from hwnas.latency.profiler import profile_space  # noqa: E402
from hwnas.latency.table import LatencyTable  # noqa: E402
from hwnas.latency.validate import validate_table  # noqa: E402
from hwnas.space import create_space  # noqa: E402

FIXTURE = ROOT.parent / "shared" / "data" / "fixtures" / "benchmark_model_proxyless_mobile.txt"
# The reference: a naive table (median of 40 in-process runs per block, plain sum) on
# this kind of machine, 20 random proxyless archs: share within ±10% / ±5%.
NAIVE_REFERENCE = {"onnxruntime": {"within_10": 1.00, "within_5": 0.85}, "litert": {"within_10": 0.92, "within_5": 0.83, "worst_pct": -30}}


def profile_with_timing(space: str, backend: str, out: Path, cache: Path) -> dict:
    t0 = time.perf_counter()
    marks: dict[str, float] = {}

    def progress(ev) -> None:
        marks.setdefault(ev.phase, time.perf_counter())

    table = profile_space("host", space, backend, out, cache_dir=cache, progress=progress)
    wall = time.perf_counter() - t0
    sp = create_space(space)
    layer_slots = sum(len(layer.choices) for layer in sp.layers) + len(sp.stem) + len(sp.head)
    export_s = (marks.get("measure", time.perf_counter()) - t0)
    return {"table": str(out.name), "wall_s": round(wall, 1), "export_s": round(export_s, 1), "measure_s": round(wall - export_s, 1),
            "distinct_keys": len(space_slots(sp)), "layer_op_slots": layer_slots, "entries": len(table.entries),
            "failed": len(table.failed), "s_per_key": round(wall / max(1, len(space_slots(sp))), 2),
            "retries": int(sum(e.get("retries", 0) for e in table.entries.values())),
            "cv_exceeded": int(sum(e.get("status") == "cv_exceeded" for e in table.entries.values())),
            "rounds": table.protocol.get("rounds"), "runs": table.protocol.get("runs")}


def repeatability(a: Path, b: Path) -> dict:
    ta, tb = LatencyTable.load(a), LatencyTable.load(b)
    keys = sorted(set(ta.entries) & set(tb.entries))
    d = np.array([abs(tb.entries[k]["median_ms"] - ta.entries[k]["median_ms"]) / ta.entries[k]["median_ms"] for k in keys])
    return {"entries": len(keys), "median_abs_diff_pct": float(100 * np.median(d)), "p90_abs_diff_pct": float(100 * np.percentile(d, 90)),
            "within_10": float(np.mean(d <= 0.10)), "within_5": float(np.mean(d <= 0.05)), "max_abs_diff_pct": float(100 * d.max())}


def fixture_figure() -> dict:
    if not FIXTURE.exists():
        return {"skipped": "fixture log not found"}
    log = load_benchmark_log(FIXTURE)
    blocks = log.group_ops()
    total = sum(blocks.values())
    return {"blocks": len(blocks), "ops": len(log.ops), "sum_per_block_ms": round(total, 3), "reported_avg_ms": log.average_ms,
            "timings_avg_ms": log.timings.avg_ms if log.timings else None,
            "diff_pct": round(100 * (total - log.average_ms) / log.average_ms, 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny only, 20 archs")
    ap.add_argument("--spaces", default=None, help="comma list (default proxyless,tiny; --quick: tiny)")
    ap.add_argument("--backends", default="onnxruntime,litert")
    ap.add_argument("--samples", type=int, default=None, help="archs per validation (default 100; --quick 20)")
    ap.add_argument("--keep", default=None, help="folder to keep the tables in (default: a temp folder)")
    ap.add_argument("--litert-samples", type=int, default=None, help="archs per litert validation (default --samples; whole-net TFLite conversion is slow)")
    ap.add_argument("--shared-cache", action="store_true", help="use the user's block cache (blocks already exported are not re-exported; the profiling cost then excludes their conversion)")
    ap.add_argument("--merge", action="store_true", help="add to the runs already in --out instead of starting a new file")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "latency_bench.json"))
    args = ap.parse_args()
    spaces = (args.spaces or ("tiny" if args.quick else "proxyless,tiny")).split(",")
    samples = args.samples or (20 if args.quick else 100)
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="latency_bench-"))
    work.mkdir(parents=True, exist_ok=True)
    started = time.time()
    results: dict = {"mode": "quick" if args.quick else "full", "runs": {}, "fixture_log": fixture_figure(),
                     "naive_reference_from_issue": NAIVE_REFERENCE}
    if args.merge and Path(args.out).exists():
        results["runs"] = json.loads(Path(args.out).read_text()).get("runs", {})
    for space in spaces:
        for backend in args.backends.split(","):
            name = f"{space}/{backend}"
            print(f"== {name}", flush=True)
            from hwnas.latency.blocks import default_cache_dir

            cache = default_cache_dir() if args.shared_cache else work / f"cache-{space}-{backend}" / "blocks"
            t1, t2 = work / f"host-{space}-{backend}.json", work / f"host-{space}-{backend}.run2.json"
            for p in (t1, t2):
                p.unlink(missing_ok=True)
            r: dict = {"profile": profile_with_timing(space, backend, t1, cache)}
            r["profile_again"] = profile_with_timing(space, backend, t2, cache)
            r["repeatability"] = repeatability(t1, t2)
            k = (args.litert_samples or samples) if backend == "litert" else samples
            t0 = time.perf_counter()
            rep = validate_table("host", t1, samples=k, seed=0, calibrate=True, plot=work / f"validate-{space}-{backend}.png")
            r["validate"] = {key: rep[key] for key in ("samples", "results", "noise", "calibration", "export", "protocol", "archs")}
            r["validate"]["wall_s"] = round(time.perf_counter() - t0, 1)
            r["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            results["runs"][name] = r
            r["profile"]["block_cache"] = "shared (blocks may have been exported before)" if args.shared_cache else "empty at start"
            if not args.shared_cache:
                shutil.rmtree(cache.parent, ignore_errors=True)
            atomic_write_json(args.out, {**results, "wall_s": round(time.time() - started, 1)})
    results["wall_s"] = round(time.time() - started, 1)
    atomic_write_json(args.out, results)
    print_table(results)
    print(f"wrote {args.out}; tables in {work}")


def print_table(res: dict) -> None:
    hdr = f"{'space/backend':26} {'archs':>5} {'keys':>5} {'prof s':>7} {'s/key':>6} {'rep med%':>8} {'rep ±10':>7} {'unc ±5/±10':>12} {'cal ±5/±10 (held-out)':>22} {'noise med/max%':>15}"
    print(hdr)
    for name, r in res["runs"].items():
        p, rp, v = r["profile"], r["repeatability"], r["validate"]
        u, c, nz = v["results"]["uncalibrated"], v["results"]["calibrated_heldout"], v["noise"]
        print(f"{name:26} {v['samples']:>5} {p['distinct_keys']:>5} {p['wall_s']:>7.1f} {p['s_per_key']:>6.2f} {rp['median_abs_diff_pct']:>8.2f} {rp['within_10'] * 100:>6.0f}%"
              f" {u['within_5'] * 100:>5.0f}/{u['within_10'] * 100:<5.0f} {c['within_5'] * 100:>10.0f}/{c['within_10'] * 100:<10.0f}"
              f" {nz['median_abs_pct']:>6.2f}/{nz['max_abs_pct']:<6.2f}")
    fx = res["fixture_log"]
    if "sum_per_block_ms" in fx:
        print(f"fixture log: {fx['ops']} ops in {fx['blocks']} blocks sum to {fx['sum_per_block_ms']} ms vs reported average {fx['reported_avg_ms']} ms ({fx['diff_pct']:+.3f}%)")


if __name__ == "__main__":
    main()
