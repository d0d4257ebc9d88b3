"""ADB path vs host path: agreement of the tables, profiling overhead, and push caching.

The fake SM8150 phone (tests/fakephone, its own process on 127.0.0.1) runs each pushed
.tflite with the same LiteRT interpreter as the host ``litert`` backend and prints what the
real ``benchmark_model`` prints, so the phone table of a space, measured with sd855's
protocol, should agree with the host LiteRT table of the same space. Both are measured in
this run, fresh: one profile per path per round, host and phones alternating, so load from
other processes on this shared machine hits every path alike; an entry is the median over
the rounds. The phone tables are also compared with the shipped
``latency_tables/host-tiny-litert.json``.

Also measured: the wall time of the ADB path vs the host path for the same keys (push,
checksum, thermal/governor checks, one benchmark_model process per measurement over the
wire), and that a second profile of the same space into a new table pushes nothing (models
are cached on the phone by sha256). ``--wall-check`` adds one profile on a fake phone whose
benchmark_model reads this computer's wall clock instead of the measuring thread's CPU
clock: what benchmark_model's average becomes when the "big core" is shared with other
processes (a phone's reserved core is not).

    python benchmarks/adb_bench.py [--quick] [--space tiny] [--rounds 3] [--transports adb-shell,adb-cli] [--no-wall-check]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from common import print_table, write_results

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def agreement(phone: dict[str, float], ref: dict[str, float], keys: list[str]) -> dict:
    """Distribution of |phone/ref - 1| over the keys both tables hold."""
    ratios = {k: phone[k] / ref[k] for k in keys if k in phone and ref.get(k, 0) > 0}
    dev = sorted(abs(r - 1) for r in ratios.values())
    q = statistics.quantiles(dev, n=20, method="inclusive") if len(dev) > 1 else dev * 19
    worst = sorted(ratios, key=lambda k: abs(ratios[k] - 1))[-3:][::-1]
    return {"keys": len(dev), "within_5pct": round(sum(d <= 0.05 for d in dev) / len(dev), 3),
            "within_10pct": round(sum(d <= 0.10 for d in dev) / len(dev), 3),
            "within_15pct": round(sum(d <= 0.15 for d in dev) / len(dev), 3),
            "median_abs_dev_pct": round(100 * statistics.median(dev), 2), "p90_abs_dev_pct": round(100 * q[17], 2),
            "max_abs_dev_pct": round(100 * max(dev), 2), "median_ratio": round(statistics.median(ratios.values()), 4),
            "worst": {k: round(ratios[k], 4) for k in worst}, "per_key_ratio": {k: round(v, 4) for k, v in ratios.items()}}


def clock_read_overhead_us(n: int = 20000) -> dict[str, float]:
    """What reading the clocks around a run costs per run (an empty call timed both ways)."""
    noop = lambda: None  # noqa: E731
    cpu, wall = [], []
    cc, wc = time.thread_time_ns, time.perf_counter_ns
    for _ in range(n):
        c0 = cc()
        noop()
        c1 = cc()
        cpu.append(c1 - c0)
        t0 = wc()
        noop()
        t1 = wc()
        wall.append(t1 - t0)
    return {"thread_cpu_us": round(statistics.median(cpu) / 1e3, 3), "wall_us": round(statistics.median(wall) / 1e3, 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--space", default="tiny")
    ap.add_argument("--rounds", type=int, default=3, help="profiles per path, host and phones alternating (>= 2 shows push caching)")
    ap.add_argument("--transports", default="adb-shell,adb-cli")
    ap.add_argument("--no-wall-check", dest="wall_check", action="store_false",
                    help="skip the profile on a fake phone that times runs with the shared wall clock")
    ap.add_argument("--quick", action="store_true", help="rounds 2, adb-shell only, no wall-clock check")
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.transports, args.wall_check = 2, "adb-shell", False
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
    keys = list(slots)
    t0 = time.perf_counter()
    for key, slot in slots.items():  # exports are shared by both paths and not part of the comparison
        export_block(key, slot, "tflite")
    export_s = time.perf_counter() - t0

    host_dev, phone_dev = load_device("host"), load_device("sd855")
    # each device's own protocol (runs, warm-up, minimum time, CV bound), one round per profile:
    # the rounds are the alternating profiles below
    # (and no anchor-network timings between blocks on either path, where the protocol has them:
    # the phone has none, and the wall times compare the same work)
    fixed = {"rounds": 1, **({"anchor_every": 0} if "anchor_every" in {f.name for f in dataclasses.fields(Protocol)} else {})}
    host_proto = Protocol.from_device(host_dev, **fixed)
    phone_proto = Protocol.from_device(phone_dev, **fixed)
    same = [f for f in ("warmup_runs", "runs", "min_time_s", "threads", "cv_bound", "max_retries")
            if getattr(host_proto, f) != getattr(phone_proto, f)]
    if same:
        raise SystemExit(f"host and sd855 profiles measure differently ({', '.join(same)}): the tables would not be comparable")
    results: dict = {"space": args.space, "keys": len(keys), "rounds": args.rounds, "export_s": round(export_s, 2),
                     "note": ("wall times: the host's min_time_s is counted on the measuring thread's CPU clock (a loaded machine "
                              "stretches it in wall time), benchmark_model's --min_secs in wall time; the loopback phone runs "
                              "benchmark_model in a thread of its own process, a real phone starts a process per measurement"),
                     "host_protocol": dataclasses.asdict(host_proto), "phone_protocol": dataclasses.asdict(phone_proto),
                     "load_avg_start": list(os.getloadavg())}
    phones, logs = [], {}
    quiet = lambda m: None  # noqa: E731
    try:
        for tr in transports:
            logs[tr] = work / f"phone-{tr}.log"
            phones.append(spawn(log=logs[tr]))  # a fresh phone per transport: its first profile must push everything
        host_wall, host_meds, host_runs = 0.0, {}, 0
        paths = {tr: {"wall": 0.0, "meds": {}, "pushes": [], "phone_pushes": [], "retries": 0, "measurements": 0} for tr in transports}
        for rep in range(args.rounds):
            t0 = time.perf_counter()
            host = profile_space(host_dev, sp, "litert", work / f"host-{rep}.json", protocol=dataclasses.replace(host_proto))
            host_wall += time.perf_counter() - t0
            for k, e in host.entries.items():
                host_meds.setdefault(k, []).append(e["median_ms"])
                host_runs += 1 + e.get("retries", 0)
            for tr, phone in zip(transports, phones):
                before = sum(1 for ln in logs[tr].read_text().splitlines() if ln.startswith("push: ")) if logs[tr].exists() else 0
                be = create_backend("adb", device=phone_dev, serial=phone.address, transport=tr, log=quiet)
                t0 = time.perf_counter()
                adb = profile_space(phone_dev, sp, be, work / f"adb-{tr}-{rep}.json", protocol=dataclasses.replace(phone_proto))
                paths[tr]["wall"] += time.perf_counter() - t0
                be.close()
                after = sum(1 for ln in logs[tr].read_text().splitlines() if ln.startswith("push: "))
                p = paths[tr]
                p["pushes"].append(be.pushes)
                p["phone_pushes"].append(after - before)
                p["soc"], p["model"] = adb.device.get("soc"), adb.device.get("model")
                for k, e in adb.entries.items():
                    p["meds"].setdefault(k, []).append(e["median_ms"])
                    p["retries"] += e.get("retries", 0)
                    p["measurements"] += 1
        host_med = {k: statistics.median(v) for k, v in host_meds.items()}
        shipped_path = REPO / "latency_tables" / f"host-{args.space}-litert.json"
        shipped = {}
        if shipped_path.is_file():
            shipped = {k: e["median_ms"] for k, e in json.loads(shipped_path.read_text())["entries"].items()}
        results["host"] = {"wall_s": round(host_wall, 2), "backend": "litert", "measuring_processes": host_runs,
                           "s_per_measuring_process": round(host_wall / host_runs, 4),
                           "fresh_vs_shipped": agreement(host_med, shipped, keys) if shipped else None}
        rows = []
        for tr in transports:
            p = paths[tr]
            med = {k: statistics.median(v) for k, v in p["meds"].items()}
            fresh = agreement(med, host_med, keys)
            vs_shipped = agreement(med, shipped, keys) if shipped else None
            procs = p["measurements"] + p["retries"]
            # whole-profile wall time depends on how often each path re-measured (its CV bound); per
            # measuring process it is the cost of the path itself (push, checks, the wire, process start)
            results[tr] = {"wall_s": round(p["wall"], 2), "overhead_ratio": round(p["wall"] / host_wall, 3),
                           "measuring_processes": procs, "s_per_measuring_process": round(p["wall"] / procs, 4),
                           "overhead_ratio_per_measuring_process": round((p["wall"] / procs) / (host_wall / host_runs), 3),
                           "pushes_per_profile": p["pushes"], "phone_side_pushes_per_profile": p["phone_pushes"],
                           "entries": len(med), "fingerprint": {"soc": p.get("soc"), "model": p.get("model")},
                           "remeasures_per_measurement": round(p["retries"] / max(p["measurements"], 1), 3),
                           "agreement_vs_fresh_host": fresh, "agreement_vs_shipped_host": vs_shipped}
            rows.append([tr, host_wall, p["wall"], p["wall"] / host_wall, (p["wall"] / procs) / (host_wall / host_runs),
                         p["pushes"][0], sum(p["pushes"][1:]),
                         f"{100 * fresh['within_15pct']:.0f}%", fresh["median_abs_dev_pct"], fresh["max_abs_dev_pct"],
                         f"{100 * vs_shipped['within_15pct']:.0f}%" if vs_shipped else "-",
                         vs_shipped["max_abs_dev_pct"] if vs_shipped else "-"])
        print_table(["transport", "host wall s", "adb wall s", "adb/host", "adb/host per process", "pushes 1st", "pushes later", "±15% vs fresh host",
                     "median |dev| %", "max |dev| %", "±15% vs shipped", "max |dev| % shipped"],
                    rows, title=f"{args.space}: {len(keys)} blocks, sd855/host protocol (runs {phone_proto.runs}, warm-up "
                                f"{phone_proto.warmup_runs}, min {phone_proto.min_time_s:g} s), {args.rounds} alternating profiles per path")

        if args.wall_check:
            # the same profile on a phone whose benchmark_model reads the shared wall clock
            wall_phone = spawn(clock="wall")
            phones.append(wall_phone)
            be = create_backend("adb", device=phone_dev, serial=wall_phone.address, transport="adb-shell", log=quiet)
            t0 = time.perf_counter()
            wt = profile_space(phone_dev, sp, be, work / "adb-wall.json", protocol=dataclasses.replace(phone_proto))
            wall_s = time.perf_counter() - t0
            be.close()
            wmed = {k: e["median_ms"] for k, e in wt.entries.items()}
            wa = agreement(wmed, host_med, keys)
            results["wall_clock_phone"] = {"wall_s": round(wall_s, 2), "load_avg": list(os.getloadavg()),
                                           "remeasures_per_measurement": round(sum(e.get("retries", 0) for e in wt.entries.values()) / len(wmed), 3),
                                           "agreement_vs_fresh_host": wa}
            print(f"fake phone on the shared wall clock (one profile): {100 * wa['within_15pct']:.0f}% of blocks within ±15% of "
                  f"the host table, median ratio {wa['median_ratio']:.2f}, load average {os.getloadavg()[0]:.1f}")
        results["clock_read_overhead_per_run"] = clock_read_overhead_us()
        results["load_avg_end"] = list(os.getloadavg())
    finally:
        for phone in phones:
            phone.stop()
        if "adb-cli" in transports:
            subprocess.run(["adb", "kill-server"], env=adb_home, capture_output=True, timeout=60)
    print(f"results -> {write_results('adb_bench', results)}")


if __name__ == "__main__":
    main()
