"""What the two host backends share: the worker process and the host fingerprint.

Isolation modes (``isolation=`` option of the backend, recorded in every table):

- ``fork`` (default): one worker per backend imports the runtime once, then forks a fresh
  child process per measurement (the child builds its own session, warms up, times, exits).
- ``spawn``: a brand-new Python interpreter per measurement (the strictest; ~0.5-1 s more
  per measurement for the imports).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from ...errors import HwnasError
from .base import Backend, MeasurementError, Protocol, RunTimes

WORKER = Path(__file__).with_name("worker.py")
ISOLATION = {
    "fork": "fresh process per measurement: forked from a worker that has only the runtime imported (spawned once per backend); the child loads the model, warms up, times and exits",
    "spawn": "fresh Python interpreter per measurement (spawned, imports the runtime, loads the model, warms up, times and exits)",
}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def host_fingerprint(runtime: str, dist: str) -> dict[str, Any]:
    try:
        version = metadata.version(dist)
    except metadata.PackageNotFoundError:
        version = ""
    return {"model": "host", "soc": "", "android": "", "cpu": cpu_model(), "cpu_count": os.cpu_count(),
            "machine": platform.machine(), "os": f"{platform.system()} {platform.release()}",
            "runtime": runtime, "runtime_version": version, "benchmark_binary_sha256": ""}


class HostWorkerBackend(Backend):
    """Times files with a runtime on this machine through ``worker.py``."""

    runtime = ""  # the worker's runtime name
    dist = ""  # the PyPI distribution whose version goes in the fingerprint

    def __init__(self, device: Any = None, isolation: str = "fork", **options: Any) -> None:
        super().__init__(device, **options)
        if device is not None and getattr(device, "kind", "host") != "host":
            raise HwnasError(f"backend {self.name!r} times on this machine; device {device.name!r} is a phone (kind {device.kind!r}): use the 'adb' backend")
        if isolation not in ISOLATION:
            raise HwnasError(f"unknown isolation {isolation!r}; use one of {', '.join(ISOLATION)}")
        self.isolation = isolation
        self._proc: subprocess.Popen | None = None

    def fingerprint(self) -> dict[str, Any]:
        return host_fingerprint(self.runtime, self.dist)

    def describe_process(self) -> str:
        return ISOLATION[self.isolation]

    def describe_clock(self, protocol: Protocol) -> str:
        if self.clock(protocol) == "thread_cpu":
            return ("CPU time of the inference thread per run (time.thread_time_ns; with one runtime thread all work runs on it, "
                    "so time the OS gave other processes on this shared machine is excluded); wall-clock median kept in each measurement")
        return "wall clock per run (time.perf_counter_ns)"

    # ---- the worker -------------------------------------------------------------------
    def _start(self) -> subprocess.Popen:
        env = dict(os.environ)
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        env.setdefault("OMP_NUM_THREADS", "1")
        proc = subprocess.Popen([sys.executable, str(WORKER), self.runtime], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True, bufsize=1, env=env)
        hello = proc.stdout.readline() if proc.stdout else ""
        if not hello.strip().startswith("{"):
            proc.kill()
            raise MeasurementError(f"the {self.runtime} measuring worker failed to start; check that {self.dist} is installed")
        return proc

    def _request(self, req: dict[str, Any]) -> dict[str, Any]:
        if self._proc is None or self._proc.poll() is not None:
            self._proc = self._start()
        proc = self._proc
        assert proc.stdin and proc.stdout
        try:
            proc.stdin.write(json.dumps(req) + "\n")
            proc.stdin.flush()
            line = proc.stdout.readline()
        except (BrokenPipeError, OSError):
            line = ""
        if self.isolation == "spawn":
            self.close()
        if not line:
            self.close()
            raise MeasurementError(f"the {self.runtime} measuring worker died while timing {req['model']!r}")
        return json.loads(line)

    def _time_runs(self, model_path: Path, protocol: Protocol) -> RunTimes:
        reply = self._request({"model": str(Path(model_path).resolve()), "warmup": protocol.warmup_runs, "runs": protocol.runs, "min_time": protocol.min_time_s, "clock": self.clock(protocol),
                               "threads": protocol.threads, "cpus": list(protocol.cpu_mask), "timeout": protocol.timeout_s})
        if not reply.get("ok"):
            raise MeasurementError(f"{self.name} could not time {str(model_path)!r}: {reply.get('error', 'unknown error')}")
        clock = self.clock(protocol)
        other = "wall" if clock == "thread_cpu" else "thread_cpu"
        other_ms = sorted(reply[f"{other}_ms"])
        return RunTimes(times_ms=[float(t) for t in reply[f"{clock}_ms"]],
                        info={"pid": reply.get("pid"), "cpus": reply.get("cpus"), "clock": clock,
                              f"{other}_median_ms": other_ms[len(other_ms) // 2]})

    @staticmethod
    def clock(protocol: Protocol) -> str:
        """``auto``: the inference thread's CPU time when the runtime uses one thread, else wall time."""
        if protocol.clock == "auto":
            return "thread_cpu" if protocol.threads == 1 else "wall"
        if protocol.clock == "thread_cpu" and protocol.threads != 1:
            raise HwnasError(f"clock 'thread_cpu' measures one thread but the protocol uses {protocol.threads}; use clock 'wall' or 'auto'")
        return protocol.clock

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            try:
                if proc.stdin:
                    proc.stdin.close()
                proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                proc.kill()
                proc.wait()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass
