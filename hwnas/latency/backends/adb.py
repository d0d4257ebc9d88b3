"""``adb``: model files timed on a phone over ADB with ``benchmark_model`` (or ``onnxruntime_perf_test``).

Per measurement: push the file unless the phone already holds one with the same sha256
(pushed once per content, checked against ``sha256sum`` on the phone, so a second profile of
the same blocks pushes nothing), wait while the phone is hotter than the profile allows, then
run one fresh benchmark process pinned with ``taskset`` to the profile's big cores::

    taskset f0 /data/local/tmp/hwnas/benchmark_model --graph=<file> --num_threads=1 \
        --warmup_runs=W --warmup_min_secs=0 --num_runs=N --min_secs=T --enable_op_profiling=false

and parse its output. benchmark_model times each run with the phone's wall clock in whole
microseconds and prints summary statistics only (count, min, max, avg, std of the timed
runs, or ``count=N curr=X(all same)`` when every run took X us; no per-run times), so an ADB
measurement's ``median_ms`` is the reported average, ``p90_ms`` is avg + 1.2816 std and
``cv`` is std/(avg*sqrt(count)), the relative standard error of that average (see
``tflite_summary``; recorded in ``info``). ``onnxruntime_perf_test`` reports P50/P90, which
are used as such. The CV bound and re-measure loop are the shared ones of ``Backend.measure``.

Options (``create_backend("adb", device=profile, serial=..., transport=...)``): ``serial``
(USB serial or ``host:port``; default the profile's), ``transport`` (``adb-shell`` or
``adb-cli``; default the profile's), ``log`` (a callable for progress notes), ``checks``
(run the preparation checks before the first measurement; default True).
"""

from __future__ import annotations

import math
import posixpath
import re
import threading
from pathlib import Path
from typing import Any, Callable

from ...device.checks import pin_governor, run_checks
from ...device.phone import Phone, stderr_log
from ...device.transport import DeviceError
from ...io import file_sha256
from ...errors import HwnasError
from ..benchmark_log import parse_benchmark_log
from .base import Backend, MeasurementError, Protocol, RunTimes, register_backend

Z90 = 1.2816  # the normal 90th percentile in standard deviations
CV_DEFINITION_TFLITE = "std/(avg*sqrt(count)) of benchmark_model's timed runs (relative standard error of its average)"
BINARY_KINDS = {"tflite": ("tflite", "benchmark_model"), "onnxruntime": ("onnx", "onnxruntime_perf_test")}
_LOAD_FAIL = re.compile(r"Could not open|Failed to mmap|Failed to find model file|No such file", re.I)


def benchmark_command(binary: str, remote_model: str, protocol: Protocol, kind: str = "tflite") -> list[str]:
    """The benchmark invocation as an argument list (quoted later, argument by argument)."""
    mask = format(sum(1 << c for c in protocol.cpu_mask), "x") if protocol.cpu_mask else ""
    prefix = ["taskset", mask] if mask else []
    if kind == "onnxruntime":
        return [*prefix, binary, "-I", "-m", "times", "-r", str(protocol.runs), "-x", str(protocol.threads), "-y", "1", remote_model]
    # benchmark_model also runs for at least --min_secs (default 1 s) and warms up for at least
    # --warmup_min_secs (0.5 s): set both so the phone follows the same protocol as the host.
    min_secs = float(getattr(protocol, "min_time_s", 0.0) or 0.0)
    return [*prefix, binary, f"--graph={remote_model}", f"--num_threads={protocol.threads}", f"--warmup_runs={protocol.warmup_runs}",
            "--warmup_min_secs=0", f"--num_runs={protocol.runs}", f"--min_secs={min_secs:g}", "--enable_op_profiling=false"]


def timed_stats(output: str) -> dict[str, float]:
    """The timed runs' statistics from benchmark_model's output (microseconds, as printed).

    Read by the one benchmark_model parser (``latency.benchmark_log``): the stat line of the
    second "Running benchmark for ..." block (the first is the warm-up): ``count=N first=..
    curr=.. min=.. max=.. avg=.. std=..``, or ``count=N curr=X(all same)`` when every run took
    the same whole number of microseconds (then avg = X and std = 0), or ``count=0``. Current
    builds prefix every line with ``INFO: `` and add ``p5=.. median=.. p95=..``. Output that
    stops after the warm-up or inside the stat line is a MeasurementError saying so.
    """
    try:
        st = parse_benchmark_log(output).timed_run()
    except HwnasError as e:
        raise MeasurementError(str(e)) from None
    if st.count <= 0 or "avg" not in st.values_us:
        raise MeasurementError("benchmark_model timed no runs (count=0)")
    return {**st.values_us, "count": st.count}


def tflite_summary(output: str) -> dict[str, float]:
    """benchmark_model output -> summary in ms (its avg is the entry: it prints no per-run times).

    The CV is ``std / (avg * sqrt(count))``, the relative standard error of that average
    (``CV_DEFINITION_TFLITE``). A per-run spread (std/avg) would not do: with whole-microsecond
    runs and the ordinary jitter of a block of a few microseconds it is 5-25 % on any phone, so
    every block would be re-measured to no use. What can make an average wrong is a few runs the
    phone interrupted (another process on the core): a run longer by X moves the average by
    X/count and the std by about X/sqrt(count), so this CV is the share of the average those runs
    may have added, and the usual bound re-measures exactly those.
    """
    st = timed_stats(output)
    n = int(st["count"])
    avg, std = st["avg"] / 1e3, st.get("std", 0.0) / 1e3
    if not avg > 0:
        raise MeasurementError(f"benchmark_model reported an average of {st['avg']:g} us: the model runs in less than its "
                               f"1 us resolution")
    out = {"median_ms": avg, "mean_ms": avg, "std_ms": std, "p90_ms": avg + Z90 * std,
           "min_ms": st.get("min", st["avg"]) / 1e3, "max_ms": st.get("max", st["avg"]) / 1e3, "n": n,
           "cv": std / (avg * math.sqrt(n))}
    # a current build's percentiles are kept for reference; the entry stays the average, which
    # unlike a whole-microsecond median resolves a block of a few microseconds
    out.update({f"printed_{k}_ms": st[k] / 1e3 for k in ("p5", "median", "p95") if k in st})
    return out


def perf_test_summary(output: str) -> dict[str, float]:
    """``onnxruntime_perf_test`` output -> summary (its latencies are in seconds)."""
    def grab(label: str) -> float | None:
        m = re.search(rf"^{re.escape(label)}:\s*([0-9.eE+-]+)", output, re.M)
        return float(m.group(1)) if m else None

    p50, p90, avg = grab("P50 Latency"), grab("P90 Latency"), grab("Average inference time cost")
    n = grab("Total inference requests")
    if p50 is None or avg is None:
        raise MeasurementError("onnxruntime_perf_test printed no latencies")
    lo = grab("Min Latency") or p50
    med = p50 * 1e3
    p90_ms = (p90 or p50) * 1e3
    std = max(p90_ms - med, 0.0) / Z90
    return {"median_ms": med, "mean_ms": avg, "std_ms": std, "p90_ms": p90_ms, "min_ms": lo * 1e3,
            "n": int(n or 0), "cv": std / med if med > 0 else float("inf")}


@register_backend("adb")
class AdbBackend(Backend):
    name = "adb"
    model_format = "tflite"

    def __init__(self, device: Any = None, serial: str | None = None, transport: str | None = None,
                 log: Callable[[str], None] | None = None, checks: bool = True, **options: Any) -> None:
        super().__init__(device, **options)
        if device is None or getattr(device, "kind", "host") != "adb":
            name = getattr(device, "name", "host")
            raise HwnasError(f"backend 'adb' times on a phone; device {name!r} is not one (use --device sd855, or a devices/*.toml with kind = \"adb\")")
        if device.binary_kind not in BINARY_KINDS:
            raise HwnasError(f"device {device.name!r}: binary_kind must be one of {', '.join(BINARY_KINDS)}, not {device.binary_kind!r}")
        self.model_format, self.tool = BINARY_KINDS[device.binary_kind]
        self.log = log or stderr_log
        self.phone = Phone(device, serial=serial, transport=transport, log=self.log)
        self.run_checks = checks
        self._ready = False
        self._fp: dict[str, Any] = {}
        self._remote: dict[str, str] = {}  # sha256 -> remote path known to hold that content
        self._seen_reconnects = 0
        self._lock = threading.Lock()
        self.pushes = 0
        self.pushed_bytes = 0
        self.report = None

    @property
    def models_dir(self) -> str:
        return posixpath.join(self.device.remote_dir, "models")

    # ---- set-up -------------------------------------------------------------------------
    def _ensure_ready(self) -> None:
        if self._ready:
            return
        self.phone.connect()
        report = run_checks(self.phone, self.device)
        self.report = report
        bad = report.failures
        if bad and self.run_checks:
            raise HwnasError(f"phone {self.phone.serial} is not ready: " + "; ".join(c.message for c in bad))
        for c in report.warnings:
            if c.name in ("root", "governor", "phone"):
                self.log(f"warning: {c.message}")
        if report.fingerprint.get("rooted") and self.device.governor:
            pin_governor(self.phone, self.device)
        fp = dict(report.fingerprint)
        fp.pop("governor", None)  # may be pinned now; what it was is in the check report
        fp.update({"runtime": self.tool, "runtime_version": (fp.get("benchmark_binary_sha256") or "")[:12],
                   "binary_path": self.device.benchmark_binary, "transport": self.phone.transport.name})
        self._fp = fp
        self._refresh_cache()
        self._ready = True

    def _refresh_cache(self) -> None:
        """What the phone already holds: sha256 of every file in the models folder (one command)."""
        self._remote.clear()
        self._seen_reconnects = self.phone.reconnects
        d = self.models_dir
        res = self.phone.shell(f"sha256sum {_q(d)}/* 2>/dev/null")
        for line in res.output.splitlines():
            parts = line.split(None, 1)
            if len(parts) == 2 and re.fullmatch(r"[0-9a-f]{64}", parts[0]):
                self._remote[parts[0]] = parts[1].strip()

    def fingerprint(self) -> dict[str, Any]:
        self._ensure_ready()
        return dict(self._fp)

    @property
    def cv_definition(self) -> str:
        """How this backend's ``cv`` is computed (not from per-run times, which the tools do not print)."""
        return CV_DEFINITION_TFLITE if self.device.binary_kind == "tflite" else "(P90-P50)/1.2816/P50 of onnxruntime_perf_test's runs"

    def describe_clock(self, protocol: Protocol) -> str:
        if self.device.binary_kind != "tflite":
            return "the phone's wall clock per run as onnxruntime_perf_test reads it; the entry is its P50"
        return ("the phone's wall clock per run as benchmark_model reads it (whole microseconds), on the big cores taskset "
                "reserves; the entry is benchmark_model's average of the timed runs and the CV is " + CV_DEFINITION_TFLITE)

    def describe_process(self) -> str:
        return (f"one fresh {self.tool} process on the phone per measurement (taskset to the profile's CPUs), "
                f"pushed over {self.phone.transport.name}")

    def close(self) -> None:
        self.phone.close()

    # ---- measuring ----------------------------------------------------------------------
    def remote_model(self, model_path: Path) -> str:
        """The model's path on the phone, pushing it only if the phone lacks this exact content."""
        if self.phone.reconnects != self._seen_reconnects:
            self._refresh_cache()  # the phone may have rebooted and lost /data/local/tmp files
        digest = file_sha256(model_path)
        if digest in self._remote:
            return self._remote[digest]
        remote = posixpath.join(self.models_dir, f"{digest[:16]}-{model_path.name}")
        self.phone.call(lambda t: t.push(model_path, remote, sha256=digest))
        self.pushes += 1
        self.pushed_bytes += model_path.stat().st_size
        self._remote[digest] = remote
        return remote

    def _time_runs(self, model_path: Path, protocol: Protocol) -> RunTimes:
        with self._lock:
            self._ensure_ready()
            for attempt in range(2):
                remote = self.remote_model(Path(model_path))
                waited = self.phone.wait_cool(self.device.max_temp_c, self.device.thermal_wait_s)
                cmd = benchmark_command(self.device.benchmark_binary, remote, protocol, self.device.binary_kind)
                res = self.phone.shell(cmd, timeout_s=self.device.command_timeout_s)
                if res.rc == 127 or "inaccessible or not found" in res.output:
                    raise DeviceError(f"{self.tool} missing on phone {self.phone.serial} at {self.device.benchmark_binary!r}: "
                                      f"run `hwnas device setup {self.device.name} --benchmark-binary PATH`, then the same command again")
                if res.rc != 0 and attempt == 0 and _LOAD_FAIL.search(res.output):
                    self._remote.pop(file_sha256(Path(model_path)), None)  # removed behind our back: push again
                    continue
                break
            if res.rc != 0:
                tail = " | ".join(res.output.strip().splitlines()[-3:])
                raise MeasurementError(f"{self.tool} failed on {Path(model_path).name} (exit {res.rc}): {tail}")
            try:
                summary = tflite_summary(res.output) if self.device.binary_kind == "tflite" else perf_test_summary(res.output)
            except HwnasError as e:
                raise MeasurementError(f"{self.tool} output not understood for {Path(model_path).name}: {e}") from None
            tflite = self.device.binary_kind == "tflite"
            stat = "benchmark_model avg (no per-run times)" if tflite else "onnxruntime_perf_test P50/P90"
            cv = self.cv_definition
            return RunTimes(times_ms=[], summary=summary,
                            info={"statistic": stat, "cv": cv, "remote": remote, "waited_cool_s": round(waited, 1),
                                  **{k: round(v, 6) for k, v in summary.items() if k.startswith("printed_")},
                                  "cpu_mask": format(sum(1 << c for c in protocol.cpu_mask), "x") if protocol.cpu_mask else ""})


def _q(s: str) -> str:
    import shlex

    return shlex.quote(s)
