"""The host measuring worker: a runtime-preloaded zygote that forks one fresh process per measurement.

Run as ``python worker.py onnxruntime|litert`` (by file path: it imports nothing of hwnas,
only numpy and the runtime, so it is small and starts fast). It reads one JSON request per
line on stdin::

    {"model": "/path/block.onnx", "warmup": 10, "runs": 50, "min_time": 0.2, "threads": 1, "cpus": [1]}

and for each one forks a child process that pins itself to ``cpus``
(``os.sched_setaffinity``), loads the model into a new session/interpreter, runs the
warm-up, times ``runs`` runs, sends the per-run times back and exits. So every measurement
runs in its own process (no session, allocator, cache or thread pool state is shared between
measurements) while paying the Python + runtime import once per worker, not per block.
Replies are one JSON line per request on stdout: ``{"ok": true, "wall_ms": [...],
"thread_cpu_ms": [...], "pid": .., "cpus": [..]}`` or ``{"ok": false, "error": "..."}``.
Each run is timed on two clocks: wall time, and the CPU time of the calling thread (with one
runtime thread all inference work runs on it, so this is the run's time minus whatever the
OS gave to other processes meanwhile: the robust clock on a shared machine).
"""

from __future__ import annotations

import gc
import json
import os
import select
import signal
import sys
import time
import traceback

# Run by file path, Python puts this folder first on sys.path, where our own ``onnxruntime.py``
# would shadow the real package.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

RUNTIME = ""


def _load_runtime(name: str) -> None:
    global ort, Interpreter  # noqa: PLW0603
    if name == "onnxruntime":
        import onnxruntime as ort  # noqa: F401
    elif name == "litert":
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        from ai_edge_litert.interpreter import Interpreter  # noqa: F401
    else:
        raise SystemExit(f"unknown runtime {name!r}")


def _random_input(shape, dtype):
    import numpy as np

    shape = [int(d) if (isinstance(d, (int, np.integer)) and d > 0) else 1 for d in shape]
    return np.random.default_rng(0).standard_normal(shape).astype(dtype)


def _runner(model: str, threads: int):
    """A zero-argument callable that runs the model once, built in this (fresh) process."""
    import numpy as np

    if RUNTIME == "onnxruntime":
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.log_severity_level = 3
        sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
        feeds = {}
        for i in sess.get_inputs():
            dt = np.float32 if "float" in i.type else np.int64
            feeds[i.name] = _random_input(i.shape, dt)
        outs = [o.name for o in sess.get_outputs()]
        return lambda: sess.run(outs, feeds)
    interp = Interpreter(model_path=model, num_threads=threads)
    interp.allocate_tensors()
    for d in interp.get_input_details():
        interp.set_tensor(d["index"], _random_input(d["shape"], d["dtype"]))
    return interp.invoke


def _child(req: dict, wfd: int) -> None:
    try:
        cpus = [int(c) for c in req.get("cpus") or []]
        if cpus:
            os.sched_setaffinity(0, cpus)
        run = _runner(req["model"], int(req.get("threads", 1)))
        for _ in range(int(req.get("warmup", 10))):
            run()
        n = int(req.get("runs", 50))
        min_ns = float(req.get("min_time", 0.0)) * 1e9
        wall, cpu = [], []
        gc.collect()
        gc.disable()
        wclock, cclock = time.perf_counter_ns, time.thread_time_ns
        span = cpu if req.get("clock") == "thread_cpu" else wall
        # at least ``runs`` runs and at least ``min_time`` seconds of them on the protocol's clock
        # (at most 50x runs): a sub-millisecond model is sampled over a span like a big one's
        while len(wall) < n or (sum(span) * 1e6 < min_ns and len(wall) < 50 * n):
            c0 = cclock()
            t0 = wclock()
            run()
            t1 = wclock()
            c1 = cclock()
            wall.append((t1 - t0) / 1e6)
            cpu.append((c1 - c0) / 1e6)
        gc.enable()
        out = {"ok": True, "wall_ms": wall, "thread_cpu_ms": cpu, "pid": os.getpid(), "cpus": sorted(os.sched_getaffinity(0))}
    except BaseException as e:  # noqa: BLE001  (everything goes back to the parent as text)
        out = {"ok": False, "error": f"{type(e).__name__}: {e}".strip()[:2000], "trace": traceback.format_exc()[-2000:]}
    data = (json.dumps(out) + "\n").encode()
    while data:
        k = os.write(wfd, data)
        data = data[k:]
    os.close(wfd)


def _serve_one(req: dict) -> dict:
    rfd, wfd = os.pipe()
    sys.stdout.flush()
    pid = os.fork()
    if pid == 0:  # the fresh measuring process
        os.close(rfd)
        code = 0
        try:
            _child(req, wfd)
        except BaseException:  # noqa: BLE001
            code = 1
        os._exit(code)
    os.close(wfd)
    timeout = float(req.get("timeout", 300))
    deadline = time.monotonic() + timeout
    chunks = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            os.close(rfd)
            return {"ok": False, "error": f"measurement timed out after {timeout:.0f}s"}
        r, _, _ = select.select([rfd], [], [], left)
        if not r:
            continue
        chunk = os.read(rfd, 1 << 16)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(rfd)
    _, status = os.waitpid(pid, 0)
    text = b"".join(chunks).decode(errors="replace").strip()
    if not text:
        sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
        why = f"killed by signal {sig}" if sig else f"exit code {os.WEXITSTATUS(status)}"
        return {"ok": False, "error": f"measuring process died ({why}) while loading or running the model"}
    return json.loads(text)


def main() -> None:
    global RUNTIME  # noqa: PLW0603
    RUNTIME = sys.argv[1]
    _load_runtime(RUNTIME)
    print(json.dumps({"ready": True, "pid": os.getpid(), "runtime": RUNTIME}), flush=True)
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            reply = _serve_one(json.loads(line))
        except Exception as e:  # noqa: BLE001
            reply = {"ok": False, "error": f"worker: {type(e).__name__}: {e}"}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
