"""ADB path vs host path: profiling overhead, agreement of the tables, and push caching.

The fake SM8150 phone (tests/fakephone, its own process on 127.0.0.1) runs each pushed
.tflite with the same LiteRT interpreter as the host ``litert`` backend, so the two tables
of one space, measured with the same protocol, should agree; the difference in wall time is
the ADB path's overhead (push, checksum, thermal/governor checks, one benchmark process per
measurement over the wire). A second profile of the same space into a new table must push
nothing (models are cached on the phone by sha256).

    python benchmarks/adb_bench.py [--quick] [--space tiny] [--transports adb-shell,adb-cli]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from common import print_table, write_results


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--space", default="tiny")
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3, help="profiles per path, alternating host and phone (>= 2 shows push caching)")
    ap.add_argument("--min-time", type=float, default=0.0,
                    help="min seconds of timed runs per measurement (benchmark_model --min_secs); >0 on a loaded machine "
                         "lets preemption outliers into benchmark_model's average")
    ap.add_argument("--transports", default="adb-shell,adb-cli")
    ap.add_argument("--quick", action="store_true", help="runs 20, rounds 2, adb-shell only")
    args = ap.parse_args()
    if args.quick:
        args.runs, args.rounds, args.transports = 20, 2, "adb-shell"
    transports = [t for t in args.transports.split(",") if t]
    if "adb-cli" in transports and not shutil.which("adb"):
        print("adb client not installed: skipping the adb-cli transport")
        transports.remove("adb-cli")

    work = Path(tempfile.mkdtemp(prefix="adb_bench."))
    os.environ["XDG_CONFIG_HOME"] = str(work / "config")
    os.environ["ANDROID_ADB_SERVER_PORT"] = str(free_port())
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    adb_home = {**os.environ, "HOME": str(work)}
    if "adb-cli" in transports:
        subprocess.run(["adb", "start-server"], env=adb_home, capture_output=True, timeout=60)

    from hwnas.device.profiles import load_device
    from hwnas.latency.backends import Protocol, create_backend
    from hwnas.latency.blocks import export_block
    from hwnas.latency.keys import space_slots
    from hwnas.latency.profiler import profile_space
    from hwnas.space import create_space
    from tests.fakephone import spawn

    sp = create_space(args.space)
    slots = space_slots(sp)
    t0 = time.perf_counter()
    for key, slot in slots.items():  # exports are shared by both paths and not part of the comparison
        export_block(key, slot, "tflite")
    export_s = time.perf_counter() - t0

    same = dict(runs=args.runs, warmup_runs=args.warmup, rounds=args.rounds, min_time_s=args.min_time, threads=1, cv_bound=0.05,
                max_retries=3, cooldown_s=0.0)
    host_dev, phone_dev = load_device("host"), load_device("sd855")
    results: dict = {"space": args.space, "keys": len(slots), "protocol": same, "export_s": round(export_s, 2)}
    phones = []
    try:
        host_wall, host_meds, host_means = 0.0, {}, {}
        paths = {tr: {"wall": 0.0, "meds": {}, "pushes": [], "phone_pushes": []} for tr in transports}
        quiet = lambda m: None  # noqa: E731
        logs = {}
        for tr in transports:
            logs[tr] = work / f"phone-{tr}.log"
            phones.append(spawn(log=logs[tr]))  # a fresh phone per transport: its first profile must push everything
        one = dict(same, rounds=1)
        # host and phone profiles alternate, one round each, so load from other processes hits both alike
        for rep in range(args.rounds):
            t0 = time.perf_counter()
            host = profile_space(host_dev, sp, "litert", work / f"host-{rep}.json", protocol=Protocol.from_device(host_dev, **one))
            host_wall += time.perf_counter() - t0
            for k, e in host.entries.items():
                host_meds.setdefault(k, []).append(e["median_ms"])
                host_means.setdefault(k, []).append(e["mean_ms"])
            for tr, phone in zip(transports, phones):
                before = sum(1 for ln in logs[tr].read_text().splitlines() if ln.startswith("push: ")) if logs[tr].exists() else 0
                be = create_backend("adb", device=phone_dev, serial=phone.address, transport=tr, log=quiet)
                t0 = time.perf_counter()
                adb = profile_space(phone_dev, sp, be, work / f"adb-{tr}-{rep}.json", protocol=Protocol.from_device(phone_dev, **one))
                paths[tr]["wall"] += time.perf_counter() - t0
                be.close()
                after = sum(1 for ln in logs[tr].read_text().splitlines() if ln.startswith("push: "))
                paths[tr]["pushes"].append(be.pushes)
                paths[tr]["phone_pushes"].append(after - before)
                paths[tr]["soc"] = adb.device.get("soc")
                for k, e in adb.entries.items():
                    paths[tr]["meds"].setdefault(k, []).append(e["median_ms"])
        results["host"] = {"wall_s": round(host_wall, 2), "backend": "litert"}
        host_med = {k: statistics.median(v) for k, v in host_meds.items()}
        host_mean = {k: statistics.median(v) for k, v in host_means.items()}
        rows = []

        def agreement(phone: dict, ref: dict) -> dict:
            ratios = {k: phone[k] / ref[k] for k in slots if k in phone and ref.get(k, 0) > 0}
            dev = sorted(abs(r - 1) for r in ratios.values())
            return {"within_15pct": round(sum(d <= 0.15 for d in dev) / len(dev), 3),
                    "median_abs_dev_pct": round(100 * statistics.median(dev), 2), "max_abs_dev_pct": round(100 * max(dev), 2),
                    "per_key_ratio": {k: round(v, 4) for k, v in ratios.items()}}

        for tr in transports:
            p = paths[tr]
            med = {k: statistics.median(v) for k, v in p["meds"].items()}
            # benchmark_model reports the average of the timed runs: compare it with the host's
            # average (same statistic) and, for reference, with the host's median
            vs_mean, vs_median = agreement(med, host_mean), agreement(med, host_med)
            results[tr] = {"wall_s": round(p["wall"], 2), "overhead_ratio": round(p["wall"] / host_wall, 3),
                           "pushes_per_profile": p["pushes"], "phone_side_pushes_per_profile": p["phone_pushes"],
                           "entries": len(med), "fingerprint_soc": p.get("soc"),
                           "agreement_vs_host_mean": vs_mean, "agreement_vs_host_median": vs_median}
            rows.append([tr, host_wall, p["wall"], p["wall"] / host_wall, p["pushes"][0], sum(p["pushes"][1:]),
                         f"{100 * vs_mean['within_15pct']:.0f}%", vs_mean["median_abs_dev_pct"],
                         f"{100 * vs_median['within_15pct']:.0f}%"])
        print_table(["transport", "host wall s", "adb wall s", "adb/host", "pushes 1st", "pushes later", "±15% vs host mean",
                     "median |dev| %", "±15% vs host median"],
                    rows, title=f"{args.space}: {len(slots)} blocks, runs {args.runs}, warm-up {args.warmup}, {args.rounds} alternating profiles per path")
    finally:
        for phone in phones:
            phone.stop()
        if "adb-cli" in transports:
            subprocess.run(["adb", "kill-server"], env=adb_home, capture_output=True, timeout=60)
    name = "adb_bench"
    print(f"results -> {write_results(name, results)}")


if __name__ == "__main__":
    main()
