"""The timing-backend interface: one way to time a model file on one device.

A backend knows how to run a model file of its ``model_format`` ("onnx" or "tflite") on a
device and report its latency; it knows nothing of spaces, blocks or tables. The profiler
(block tables), ``hwnas validate`` (whole networks) and ``hwnas export`` (deployed file)
all time through the same ``Backend.measure``, so they follow one protocol.

Interface (what a new backend implements, e.g. ``adb`` for benchmark_model on a phone)::

    @register_backend("mybackend")
    class MyBackend(Backend):
        name = "mybackend"
        model_format = "tflite"          # which exporter makes its files: "onnx" | "tflite"
        def fingerprint(self) -> dict: ...   # device + runtime identity stored in tables
        def _time_runs(self, model_path, protocol) -> RunTimes: ...
            # ONE measurement: warm-up then ``protocol.runs`` timed runs in a fresh process,
            # returning the per-run times in ms (or, for a tool that reports only summary
            # statistics, RunTimes(times_ms=[], summary={...})).

``Backend.measure(model_path, protocol) -> Measurement`` does the shared bookkeeping:
call ``_time_runs``, compute median/p90/mean/std/CV, and if the CV exceeds
``protocol.cv_bound`` cool down and re-measure (at most ``protocol.max_retries`` times),
recording every attempt in ``Measurement.attempts``. ``measure_many`` times a list of files
(backends may override it to batch, e.g. one ADB session).

``create_backend(name, device=profile, **kw)`` and ``list_backends()`` are the only ways in
(an unknown name is an ``HwnasError`` that lists the known ones). ``device`` is a
``hwnas.device.profiles.DeviceProfile`` (kind "host" or "adb"); ``Protocol.from_device``
turns its measuring fields into a protocol.
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ...errors import HwnasError
from ...registry import Registry

# How the CV that triggers a re-measure is computed: robust to a single preempted run on a
# shared machine, yet it still flags a measurement whose bulk is spread out.
CV_DEFINITION = "1.4826*MAD/median of the timed runs"


@dataclass
class Protocol:
    """How one measurement is taken (stored in every table so it can be reproduced)."""

    warmup_runs: int = 10
    runs: int = 50
    min_time_s: float = 0.1  # keep timing past ``runs`` until this much time has passed (benchmark_model's --min_secs)
    threads: int = 1
    cpu_mask: list[int] = field(default_factory=list)  # pin the measuring process to these CPUs ([] = no pinning)
    cv_bound: float = 0.05
    max_retries: int = 3
    cooldown_s: float = 0.0
    rounds: int = 1  # profiler: measurements per key, interleaved across keys; the entry is their median
    clock: str = "auto"  # host: "thread_cpu", "wall" or "auto" (thread_cpu with one thread); phones: wall
    anchor_every: int = 0  # time the space's anchor network every this many measurements (0 = off; see latency/drift.py)
    timeout_s: float = 300.0

    @classmethod
    def from_device(cls, device: Any, **overrides: Any) -> "Protocol":
        base = device.measurement_protocol() if device is not None else {}
        known = {f for f in cls.__dataclass_fields__}
        kw = {k: v for k, v in base.items() if k in known}
        kw.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**kw)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Protocol":
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def validate(self) -> None:
        if self.clock not in ("auto", "wall", "thread_cpu"):
            raise HwnasError(f"unknown clock {self.clock!r}; use auto, wall or thread_cpu")
        if self.runs < 1 or self.warmup_runs < 0 or self.threads < 1 or self.rounds < 1 or self.max_retries < 0 or self.anchor_every < 0:
            raise HwnasError(f"bad measurement protocol {self.to_dict()}: need runs>=1, warmup_runs>=0, threads>=1, rounds>=1, max_retries>=0, anchor_every>=0")


@dataclass
class RunTimes:
    """What one fresh-process run of a model returned."""

    times_ms: list[float]
    summary: dict[str, float] = field(default_factory=dict)  # for tools that only print statistics
    info: dict[str, Any] = field(default_factory=dict)  # e.g. pid, cpus the worker ran on


@dataclass
class Measurement:
    """The latency of one model file: robust statistics plus what happened on the way."""

    median_ms: float
    p90_ms: float
    mean_ms: float
    std_ms: float
    n: int
    cv: float
    min_ms: float = 0.0
    retries: int = 0
    status: str = "ok"  # "ok" or "cv_exceeded" (kept: the attempt with the lowest CV)
    attempts: list[dict[str, Any]] = field(default_factory=list)
    measured: str = ""
    info: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Measurement":
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known})


def summarize(times_ms: Sequence[float]) -> dict[str, float]:
    """median/p90/mean/std/min/CV of per-run times (CV as in ``CV_DEFINITION``)."""
    a = np.asarray(times_ms, dtype=float)
    if a.size == 0:
        raise ValueError("no timed runs")
    med = float(np.median(a))
    mad = float(np.median(np.abs(a - med)))
    return {"median_ms": med, "p90_ms": float(np.percentile(a, 90)), "mean_ms": float(a.mean()),
            "std_ms": float(a.std(ddof=1)) if a.size > 1 else 0.0, "min_ms": float(a.min()), "n": int(a.size),
            "cv": (1.4826 * mad / med) if med > 0 else math.inf}


class MeasurementError(HwnasError):
    """A model could not be timed (it failed to load or run, or the worker died)."""


class Backend(ABC):
    """Times model files of one format on one device (see the module docstring)."""

    name: str = ""
    model_format: str = ""

    def __init__(self, device: Any = None, **options: Any) -> None:
        self.device = device
        self.options = options

    # ---- what a backend implements ----------------------------------------------------
    @abstractmethod
    def fingerprint(self) -> dict[str, Any]:
        """Device and runtime identity (see ``hwnas.latency.table.FINGERPRINT_FIELDS``)."""

    @abstractmethod
    def _time_runs(self, model_path: Path, protocol: Protocol) -> RunTimes:
        """One measurement in a fresh process: warm-up, then ``protocol.runs`` timed runs."""

    def describe_process(self) -> str:
        """One line on what 'a fresh process per measurement' means for this backend."""
        return "one fresh process per measurement"

    def describe_clock(self, protocol: Protocol) -> str:
        """One line on which clock times a run."""
        return "wall clock per run"

    def close(self) -> None:
        """Release workers or connections (called by the profiler when done)."""

    def __enter__(self) -> "Backend":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ---- shared bookkeeping ------------------------------------------------------------
    def default_protocol(self) -> Protocol:
        return Protocol.from_device(self.device)

    def measure(self, model_path: str | Path, protocol: Protocol | None = None) -> Measurement:
        """Time one model file; re-measure (bounded) while the CV exceeds the bound."""
        protocol = protocol or self.default_protocol()
        protocol.validate()
        path = Path(model_path)
        if not path.is_file():
            raise MeasurementError(f"model file {str(path)!r} not found; export it first")
        attempts: list[dict[str, Any]] = []
        best: tuple[dict[str, float], RunTimes] | None = None
        for attempt in range(protocol.max_retries + 1):
            if attempt and protocol.cooldown_s > 0:
                time.sleep(protocol.cooldown_s)
            rt = self._time_runs(path, protocol)
            stats = summarize(rt.times_ms) if rt.times_ms else dict(rt.summary)
            attempts.append({k: round(float(v), 6) for k, v in stats.items() if k in ("median_ms", "cv", "n")})
            if best is None or stats["cv"] < best[0]["cv"]:
                best = (stats, rt)
            if stats["cv"] <= protocol.cv_bound:
                break
        assert best is not None
        stats, rt = best
        return Measurement(median_ms=stats["median_ms"], p90_ms=stats["p90_ms"], mean_ms=stats["mean_ms"],
                           std_ms=stats["std_ms"], n=int(stats["n"]), cv=stats["cv"], min_ms=stats.get("min_ms", 0.0),
                           retries=len(attempts) - 1, status="ok" if stats["cv"] <= protocol.cv_bound else "cv_exceeded",
                           attempts=attempts, measured=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                           info=rt.info)

    def measure_many(self, model_paths: Sequence[str | Path], protocol: Protocol | None = None) -> list[Measurement]:
        return [self.measure(p, protocol) for p in model_paths]


BACKENDS: Registry[Backend] = Registry("latency backend")
register_backend = BACKENDS.register


def _load_builtin() -> None:
    from . import litert, onnxruntime  # noqa: F401  (registration side effects)
    import importlib

    for extra in ("adb",):  # backends that live in their own module and may not be installed
        try:
            importlib.import_module(f"{__package__}.{extra}")
        except ModuleNotFoundError as e:
            if e.name != f"{__package__}.{extra}":
                raise


def create_backend(name: str, device: Any = None, **options: Any) -> Backend:
    """The backend called ``name`` for ``device`` (a DeviceProfile; None = the host)."""
    _load_builtin()
    backend = BACKENDS.create(name, device=device, **options)
    if device is not None and getattr(device, "backends", None) and name not in device.backends:
        raise HwnasError(f"device {device.name!r} does not support backend {name!r}; use one of {', '.join(device.backends)}")
    return backend


def list_backends(pattern: str = "*") -> list[str]:
    _load_builtin()
    return BACKENDS.names(pattern)
