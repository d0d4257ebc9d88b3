"""The phone's benchmark binaries: TFLite ``benchmark_model`` and ``onnxruntime_perf_test``.

They really run the pushed model - with the host's LiteRT interpreter (or onnxruntime), the
same runtime and the same way of timing as hwnas's host backends - and print what the real
tools print: benchmark_model as the current prebuilt binary does (the one the README tells a
user to push), or as the 2019 build of tests/data/benchmark_model_proxyless_mobile.txt did (``--benchmark-format 2019``).
"""

from __future__ import annotations

import math
import os
import tempfile
import time

import numpy as np

from .shell import Result, Shell


def _flags(args: list[str]) -> dict[str, str]:
    out = {}
    for a in args[1:]:
        if a.startswith("--") and "=" in a:
            k, v = a[2:].split("=", 1)
            out[k] = v
    return out


def _random_input(shape, dtype):
    shape = [int(d) if d > 0 else 1 for d in shape]
    return np.random.default_rng(0).standard_normal(shape).astype(dtype)


def _stat_line(us: list[int], percentiles: bool = False) -> str:
    """tensorflow::Stat<int64_t>::OutputToStream: integer microseconds, ``avg`` a double printed
    with the C++ stream default (6 significant digits), ``std`` the population std truncated to
    an integer; when every run took the same whole number of microseconds only count and curr.
    Current builds (StatWithPercentiles) append ``p5= median= p95=``: the value at index
    ``n * p / 100`` of the sorted runs."""
    n = len(us)
    if n == 0:
        return "count=0"
    if min(us) == max(us):
        line = f"count={n} curr={us[-1]}" + ("(all same)" if n > 1 else "")
    else:
        avg = sum(us) / n
        std = int(math.sqrt(max(sum(u * u for u in us) / n - avg * avg, 0.0)))
        line = f"count={n} first={us[0]} curr={us[-1]} min={min(us)} max={max(us)} avg={avg:.6g} std={std}"
    if percentiles:
        srt = sorted(us)
        line += f" p5={srt[n * 5 // 100]} median={srt[n * 50 // 100]} p95={srt[n * 95 // 100]}"
    return line


def _g(x: float) -> str:
    """A float as a C++ stream prints it by default."""
    return f"{x:.6g}"


def benchmark_model(sh: Shell, args: list[str]) -> Result:
    """TFLite's benchmark_model: the current prebuilt (``INFO: `` lines, percentiles) or, with the
    phone's ``benchmark_format`` "2019", the older build of tests/data/benchmark_model_proxyless_mobile.txt."""
    f = _flags(args)
    nightly = sh.device.benchmark_format != "2019"
    graph = f.get("graph", "")
    threads = int(f.get("num_threads", "1"))
    warmup = int(f.get("warmup_runs", "1"))
    runs = int(f.get("num_runs", "50"))
    min_secs, max_secs = float(f.get("min_secs", "1.0")), float(f.get("max_secs", "150"))
    warm_min = float(f.get("warmup_min_secs", "0.5"))
    if nightly:  # LogParams: only what was given on the command line
        named = {"num_runs": "Min num runs", "min_secs": "Min runs duration (seconds)", "max_secs": "Max runs duration (seconds)",
                 "num_threads": "Num threads", "warmup_runs": "Min warmup runs",
                 "warmup_min_secs": "Min warmup runs duration (seconds)", "graph": "Graph",
                 "enable_op_profiling": "Enable op profiling", "use_xnnpack": "Use xnnpack"}
        lines = ["STARTING!", "Log parameter values verbosely: [0]"]
        for k, label in named.items():
            if k in f:
                v = f[k]
                v = {"true": "1", "false": "0"}.get(v, v)
                lines.append(f"{label}: [{_g(float(v)) if k in ('min_secs', 'max_secs', 'warmup_min_secs') else v}]")
        if "num_threads" in f:
            lines.append(f"#threads used for CPU inference: [{threads}]")
    else:
        lines = ["STARTING!", f"Num runs: [{runs}]", "Inter-run delay (seconds): [-1]", f"Num threads: [{threads}]",
                 "Benchmark name: []", "Output prefix: []", f"Warmup runs: [{warmup}]", f"Graph: [{graph}]",
                 f"Enable op profiling: [{int(f.get('enable_op_profiling', 'false') == 'true')}]",
                 f"Use nnapi : [{int(f.get('use_nnapi', 'false') == 'true')}]"]

    def done(extra: list[str], rc: int = 0) -> Result:
        out = lines + extra
        if nightly:
            out = [("INFO: " + ln) if ln and not ln.startswith(("ERROR: ", "INFO: ", "VERBOSE: ")) else ln for ln in out]
        return Result(("\n".join(out) + "\n").encode(), rc)

    if not graph:
        return done(["ERROR: Please specify the name of your TF Lite input file with --graph" if nightly else
                     "Please specify the name of your TF Lite input file with --graph", "ERROR: Benchmarking failed." if nightly
                     else "Benchmarking failed."], 1)
    node = sh.device.files.get(sh.abspath(graph))
    if node is None:
        if nightly:
            return done([f"ERROR: Could not open '{graph}'.", f"ERROR: Failed to mmap model {graph}", "ERROR: Benchmarking failed."], 1)
        return done([f"ERROR: Could not open '{graph}'.", "Failed to mmap model " + graph, "Benchmarking failed."], 1)
    from ai_edge_litert.interpreter import Interpreter

    t0 = time.perf_counter()
    try:
        interp = Interpreter(model_content=node.read(), num_threads=threads)
        interp.allocate_tensors()
    except Exception as e:  # noqa: BLE001
        return done([f"ERROR: {e}".splitlines()[0], f"ERROR: Failed to load model {graph}" if nightly else f"Failed to load model {graph}",
                     "ERROR: Benchmarking failed." if nightly else "Benchmarking failed."], 1)
    for d in interp.get_input_details():
        interp.set_tensor(d["index"], _random_input(d["shape"], d["dtype"]))
    init_us = int((time.perf_counter() - t0) * 1e6)
    lines += [f"Loaded model {graph}", "INFO: Initialized TensorFlow Lite runtime.", "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."]
    if nightly:
        lines += [f"The input model file size (MB): {_g(len(node.read()) / 1e6)}", f"Initialized session in {_g(init_us / 1e3)}ms."]
    else:
        lines += ["resolved reporter", f"Initialized session in {init_us / 1e3:.3f}ms"]
    # as benchmark_model's BenchmarkModel::Run: each run is timed with NowMicros() (whole
    # microseconds, no per-run time below 1 us), at least N runs AND at least min_secs (default
    # 1 s) since the loop started, and no new run after max_secs. On the phone NowMicros() is the
    # wall clock of a big core that taskset reserved for the benchmark (one thread, nothing else
    # scheduled there), so a run's wall time is the inference's own time. This stand-in shares the
    # computer's cores with other processes: by default ("core") a run is timed on the measuring
    # thread's CPU clock, which is what such a reserved core would show; "wall" (--clock wall)
    # reads the shared wall clock instead, other processes' time slices included.
    clock = time.thread_time_ns if sh.device.clock == "core" else time.perf_counter_ns
    invoke = interp.invoke

    def timed_runs(count: int, at_least_s: float) -> list[int]:
        out: list[int] = []
        wall = time.perf_counter_ns
        now = wall() // 1000  # the run-count/duration bounds are wall time, as on the phone
        min_finish, max_finish = now + int(at_least_s * 1e6), now + int(max_secs * 1e6)
        while (len(out) < count or now < min_finish) and now <= max_finish:
            start = clock()
            invoke()
            end = clock()
            out.append(end // 1000 - start // 1000)
            now = wall() // 1000
        return out

    def avg(us: list[int]) -> str:
        return _g(sum(us) / len(us)) if us else "nan"

    def announce(count: int, at_least_s: float, done_runs: int) -> str:
        if nightly:
            return (f"Running benchmark for at least {count} iterations and at least {_g(at_least_s)} seconds but "
                    f"terminate if exceeding {_g(max_secs)} seconds.")
        return f"Running benchmark for {done_runs} iterations "

    warm = timed_runs(warmup, warm_min)
    timed = timed_runs(runs, min_secs)
    sh.device.heat()
    out = [announce(warmup, warm_min, len(warm)), _stat_line(warm, nightly), "",
           announce(runs, min_secs, len(timed)), _stat_line(timed, nightly), ""]
    if nightly:
        out += [f"Inference timings in us: Init: {init_us}, First inference: {warm[0] if warm else timed[0]}, "
                f"Warmup (avg): {avg(warm)}, Inference (avg): {avg(timed)}",
                "Note: as the benchmark tool itself affects memory footprint, the following is only APPROXIMATE to the "
                "actual memory footprint of the model at runtime. Take the information at your discretion.",
                "Memory footprint delta from the start of the tool (MB): init=3.125 overall=3.5"]
    else:
        out += [f"Timings (microseconds): {_stat_line(timed)}", "Memory (bytes): count=0", "", "",
                f"Average inference timings in us: Warmup: {avg(warm)}, Init: {init_us}, no stats: {avg(timed)}"]
    return done(out)


def onnxruntime_perf_test(sh: Shell, args: list[str]) -> Result:
    """``onnxruntime_perf_test -I -m times -r N -x THREADS model.onnx`` (the options hwnas passes)."""
    a = args[1:]
    runs, threads, model = 50, 1, None
    i = 0
    while i < len(a):
        if a[i] == "-r":
            runs, i = int(a[i + 1]), i + 2
        elif a[i] == "-x":
            threads, i = int(a[i + 1]), i + 2
        elif a[i] in ("-m", "-e", "-o", "-y", "-t", "-c"):
            i += 2
        elif a[i].startswith("-"):
            i += 1
        else:
            model, i = a[i], i + 1
    if model is None or sh.abspath(model) not in sh.device.files:
        return Result(f"Failed to find model file: {model}\n".encode(), 255)
    import onnxruntime as ort

    with tempfile.NamedTemporaryFile(suffix=".onnx", delete=False) as tmp:
        tmp.write(sh.device.files[sh.abspath(model)].read())
    try:
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        t0 = time.perf_counter()
        sess = ort.InferenceSession(tmp.name, so, providers=["CPUExecutionProvider"])
        created = time.perf_counter() - t0
    finally:
        os.unlink(tmp.name)
    feeds = {i.name: _random_input(i.shape if all(isinstance(d, int) for d in i.shape) else [1], np.float32) for i in sess.get_inputs()}
    outs = [o.name for o in sess.get_outputs()]
    clock = time.thread_time if sh.device.clock == "core" else time.perf_counter  # as benchmark_model above
    t = clock()
    sess.run(outs, feeds)
    first = clock() - t
    lat = []
    for _ in range(runs):
        t = clock()
        sess.run(outs, feeds)
        lat.append(clock() - t)
    total = sum(lat)
    q = np.percentile(lat, [50, 90, 95, 99, 99.9])
    text = (f"Session creation time cost: {created:.6f} s\nFirst inference time cost: {first * 1e3:.0f} ms\n"
            f"Total inference time cost: {total:.6f} s\nTotal inference requests: {runs}\n"
            f"Average inference time cost: {total / runs * 1e3:.6f} ms\nTotal inference run time: {total:.6f} s\n"
            f"Number of inferences per second: {runs / total:.2f} \nAvg CPU usage: 12 %\nPeak working set size: 31000576 bytes\n"
            f"Avg CPU usage:12\nPeak working set size:31000576\nRuns:{runs}\nMin Latency: {min(lat):.6f} s\n"
            f"Max Latency: {max(lat):.6f} s\nP50 Latency: {q[0]:.6f} s\nP90 Latency: {q[1]:.6f} s\n"
            f"P95 Latency: {q[2]:.6f} s\nP99 Latency: {q[3]:.6f} s\nP999 Latency: {q[4]:.6f} s\n")
    return Result(text.encode())


PROGRAMS = {"benchmark_model*": benchmark_model, "onnxruntime_perf_test*": onnxruntime_perf_test}
