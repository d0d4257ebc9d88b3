"""The phone's benchmark binaries: TFLite ``benchmark_model`` and ``onnxruntime_perf_test``.

They really run the pushed model - with the host's LiteRT interpreter (or onnxruntime), the
same runtime and the same way of timing as hwnas's host backends - and print what the real
tools print (the format of a real Snapdragon 855 log, see ../shared/data/fixtures/).
"""

from __future__ import annotations

import os
import statistics
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


def _stat_line(us: list[float]) -> str:
    std = statistics.pstdev(us) if len(us) > 1 else 0.0
    return (f"count={len(us)} first={int(us[0])} curr={int(us[-1])} min={int(min(us))} max={int(max(us))} "
            f"avg={statistics.fmean(us):.1f} std={int(round(std))}")


def benchmark_model(sh: Shell, args: list[str]) -> Result:
    f = _flags(args)
    graph = f.get("graph", "")
    threads = int(f.get("num_threads", "1"))
    warmup = int(f.get("warmup_runs", "1"))
    runs = int(f.get("num_runs", "50"))
    lines = ["STARTING!", f"Num runs: [{runs}]", "Inter-run delay (seconds): [-1]", f"Num threads: [{threads}]",
             "Benchmark name: []", "Output prefix: []", f"Warmup runs: [{warmup}]", f"Graph: [{graph}]",
             f"Enable op profiling: [{int(f.get('enable_op_profiling', 'false') == 'true')}]",
             f"Use nnapi : [{int(f.get('use_nnapi', 'false') == 'true')}]"]
    if not graph:
        return Result(("\n".join(lines) + "\nPlease specify the name of your TF Lite input file with --graph\nBenchmarking failed.\n").encode(), 1)
    node = sh.device.files.get(sh.abspath(graph))
    if node is None:
        lines += [f"ERROR: Could not open '{graph}'.", "Failed to mmap model " + graph, "Benchmarking failed."]
        return Result(("\n".join(lines) + "\n").encode(), 1)
    from ai_edge_litert.interpreter import Interpreter

    t0 = time.perf_counter()
    try:
        interp = Interpreter(model_content=node.read(), num_threads=threads)
        interp.allocate_tensors()
    except Exception as e:  # noqa: BLE001
        lines += [f"ERROR: {e}".splitlines()[0], f"Failed to load model {graph}", "Benchmarking failed."]
        return Result(("\n".join(lines) + "\n").encode(), 1)
    for d in interp.get_input_details():
        interp.set_tensor(d["index"], _random_input(d["shape"], d["dtype"]))
    init_ms = (time.perf_counter() - t0) * 1e3
    lines += [f"Loaded model {graph}", "INFO: Initialized TensorFlow Lite runtime.",
              "INFO: Created TensorFlow Lite XNNPACK delegate for CPU.", "resolved reporter",
              f"Initialized session in {init_ms:.3f}ms"]
    clock = time.perf_counter_ns
    # as benchmark_model: at least N runs AND at least min_secs (default 1 s), at most max_secs
    min_secs, max_secs = float(f.get("min_secs", "1.0")), float(f.get("max_secs", "150"))
    warm_min = float(f.get("warmup_min_secs", "0.5"))

    def timed_runs(count: int, at_least_s: float) -> list[float]:
        out, start = [], clock()
        while len(out) < count or (clock() - start) / 1e9 < at_least_s:
            t = clock()
            interp.invoke()
            out.append((clock() - t) / 1e3)
            if (clock() - start) / 1e9 > max_secs:
                break
        return out

    warm = timed_runs(max(warmup, 1), warm_min)
    timed = timed_runs(runs, min_secs)
    sh.device.heat()
    lines += [f"Running benchmark for {len(warm)} iterations ", _stat_line(warm), "",
              f"Running benchmark for {len(timed)} iterations ", _stat_line(timed), ""]
    lines += [f"Timings (microseconds): {_stat_line(timed)}", "Memory (bytes): count=0",
              "", "",
              f"Average inference timings in us: Warmup: {statistics.fmean(warm):.1f}, Init: {int(init_ms * 1e3)}, "
              f"no stats: {statistics.fmean(timed):.1f}"]
    return Result(("\n".join(lines) + "\n").encode())


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
    t = time.perf_counter()
    sess.run(outs, feeds)
    first = time.perf_counter() - t
    lat = []
    for _ in range(runs):
        t = time.perf_counter()
        sess.run(outs, feeds)
        lat.append(time.perf_counter() - t)
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
