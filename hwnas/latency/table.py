"""LatencyTable: the per-block latency file of one device, backend and space.

A plain data object (it knows nothing of devices): load/save with checks, and the
predictor ``predict(arch) -> (ms, uncertainty)``. Format (DESIGN.md)::

  {"format": 1, "device": {fingerprint}, "backend": "...", "space": "...", "created": "...",
   "protocol": {...}, "entries": {key: {"median_ms", "p90_ms", "mean_ms", "std_ms", "n", "measured", ...}},
   "failed": {key: reason}, "calibration": {"overhead_ms": .., "scale": ..}}
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import HwnasError
from ..io import atomic_write_json, read_json_file
from ..space.arch import Arch
from .predictor import arch_sums, predict_arch

FORMAT = 1
# Fingerprint fields that must agree for a table to describe a device.
FINGERPRINT_FIELDS = ("model", "soc", "android", "cpu", "runtime", "runtime_version", "benchmark_binary_sha256")


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class LatencyTable:
    device: dict[str, Any]
    backend: str
    space: str
    protocol: dict[str, Any] = field(default_factory=dict)
    entries: dict[str, dict[str, Any]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    calibration: dict[str, float] = field(default_factory=lambda: {"overhead_ms": 0.0, "scale": 1.0})
    created: str = field(default_factory=now_iso)
    space_args: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    # ---- file ----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = {"format": FORMAT, "device": self.device, "backend": self.backend, "space": self.space,
             "created": self.created, "protocol": self.protocol, "entries": self.entries,
             "failed": self.failed, "calibration": self.calibration}
        if self.space_args:
            d["space_args"] = self.space_args
        return d

    def save(self, path: str | Path | None = None) -> Path:
        p = Path(path or self.path or "")
        if not str(p):
            raise ValueError("no path to save the latency table to")
        self.path = atomic_write_json(p, self.to_dict())
        return self.path

    @classmethod
    def from_dict(cls, d: Any, source: str = "table", fix: str = "rebuild it with `hwnas profile`",
                  recalibrating: bool = False) -> "LatencyTable":
        """A table from its parsed JSON, every entry checked (see ``check_contents``)."""
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise HwnasError(f"{source} is not an hwnas latency table (format {FORMAT}); {fix}")
        try:
            for name, kind in (("device", dict), ("entries", dict), ("protocol", dict), ("failed", dict),
                               ("space_args", dict), ("calibration", dict)):
                if d.get(name) is not None and not isinstance(d[name], kind):
                    raise HwnasError(f"{source}: '{name}' is not an object; {fix}")
            table = cls(device=dict(d["device"]), backend=str(d["backend"]), space=str(d["space"]),
                        protocol=dict(d.get("protocol") or {}), entries=dict(d.get("entries") or {}),
                        failed=dict(d.get("failed") or {}),
                        calibration=dict(d.get("calibration") or {"overhead_ms": 0.0, "scale": 1.0}),
                        created=str(d.get("created", "")), space_args=dict(d.get("space_args") or {}))
        except (KeyError, TypeError, ValueError) as e:
            raise HwnasError(f"{source} is missing or has a bad field ({e}); {fix}") from None
        table.check_contents(source, fix, recalibrating=recalibrating)
        return table

    def check_contents(self, source: str = "latency table", fix: str = "rebuild it with `hwnas profile`",
                       recalibrating: bool = False) -> None:
        """Refuse any entry, calibration or protocol figure a prediction could not be made from.

        Every block's ``median_ms`` (and ``p90_ms``, ``mean_ms`` if present) must be a finite
        positive number and ``std_ms`` finite and not negative; the calibration's terms finite,
        its scale positive. The message names the first bad key, so a damaged table is never
        silently turned into negative or NaN latencies. ``recalibrating`` (``validate
        --calibrate``, which replaces the calibration) skips the check that the calibration
        predicts every arch above zero: the repair that check's message advises.
        """
        for key, e in self.entries.items():
            where = f"{source}: entry {key!r}"
            if not isinstance(e, dict):
                raise HwnasError(f"{where} is not an object with median_ms; {fix}")
            if "median_ms" not in e:
                raise HwnasError(f"{where} lacks median_ms; {fix}")
            for name in ("median_ms", "p90_ms", "mean_ms"):
                if name in e:
                    _check_number(e[name], f"{where} {name}", fix, positive=True)
            if "std_ms" in e:
                _check_number(e["std_ms"], f"{where} std_ms", fix, positive=False)
        for name in ("scale", "overhead_ms", "per_block_ms"):
            if name in self.calibration:
                _check_number(self.calibration[name], f"{source}: calibration {name}", fix,
                              positive=True if name == "scale" else None)
        if not recalibrating:
            self._check_calibrated_range(source, fix)
        anchor = self.protocol.get("anchor")
        if anchor is not None:
            if not isinstance(anchor, dict):
                raise HwnasError(f"{source}: protocol anchor is not an object; {fix}")
            if anchor.get("reference_ms") is not None:
                _check_number(anchor["reference_ms"], f"{source}: protocol anchor reference_ms", fix, positive=True)
        from .backends.base import Protocol  # noqa: PLC0415  (backends import tables; load lazily)

        for name, spec in Protocol.__dataclass_fields__.items():
            if name in self.protocol and isinstance(spec.default, (int, float)) and not isinstance(spec.default, bool):
                _check_number(self.protocol[name], f"{source}: protocol {name}", fix, positive=False)

    def _check_calibrated_range(self, source: str, fix: str) -> None:
        """A calibration may have a negative overhead, but never one that predicts the space's
        fastest arch at zero or less (checked when the table covers the space and the space is known)."""
        if all(float(self.calibration.get(k, 0.0)) >= 0 for k in ("overhead_ms", "per_block_ms")):
            return  # positive scale and entries: every prediction is positive
        from ..space.registry import create_space  # noqa: PLC0415
        from .predictor import predicts_above_zero  # noqa: PLC0415

        try:
            positive, fastest = predicts_above_zero(self, create_space(self.space, **self.space_args))
        except HwnasError:
            return  # a space this version does not know: checked when it is used
        if not positive:
            raise HwnasError(f"{source}: its calibration predicts the fastest arch of space {self.space!r} at {fastest:g} ms; "
                             f"recalibrate it with `hwnas validate --calibrate` or {fix}")

    @classmethod
    def load(cls, path: str | Path, *, space: str | None = None, device: dict[str, Any] | None = None,
             backend: str | None = None, force: bool = False, recalibrating: bool = False) -> "LatencyTable":
        """Load a table; refuse one made for another space/device/backend unless ``force``.

        A damaged file is never rebuilt in place (``hwnas profile`` would stop on it the same
        way), so the message says to move it away, naming the path.
        """
        p = Path(path)
        fix = (f"move it away (e.g. `mv {str(p)!r} {str(p) + '.bad'!r}`) and run `hwnas profile` again "
               "(its journal keeps finished entries)")
        try:
            raw = read_json_file(p, "latency table", fix)
        except FileNotFoundError:
            raise HwnasError(f"latency table {str(p)!r} not found; build it with `hwnas profile` or pass --table") from None
        table = cls.from_dict(raw, source=f"latency table {str(p)!r}", fix=fix, recalibrating=recalibrating)
        table.path = p
        table.check(space=space, device=device, backend=backend, force=force)
        return table

    def check(self, *, space: str | None = None, device: dict[str, Any] | None = None,
              backend: str | None = None, force: bool = False) -> None:
        if force:
            return
        where = f"latency table {str(self.path)!r}" if self.path else "latency table"
        if space is not None and space != self.space:
            raise HwnasError(f"{where} is for space {self.space!r}, not {space!r}; profile this space or pass --force")
        if backend is not None and backend != self.backend:
            raise HwnasError(f"{where} is for backend {self.backend!r}, not {backend!r}; pick the matching table or pass --force")
        if device is not None:
            diffs = [f"{k}: table {self.device.get(k)!r} vs {device.get(k)!r}" for k in FINGERPRINT_FIELDS
                     if k in device and k in self.device and device[k] != self.device[k]]
            if diffs:
                raise HwnasError(f"{where} was measured on another device ({'; '.join(diffs)}); profile this device or pass --force")

    # ---- prediction (the one predictor: latency/predictor.py) ---------------------------
    def missing_keys(self, keys: list[str]) -> list[str]:
        return [k for k in keys if k not in self.entries]

    def raw_sum(self, arch: Arch) -> tuple[float, float]:
        """Sum of block medians and the combined spread, before calibration."""
        raw, var, _ = arch_sums(self, arch)
        return raw, math.sqrt(var)

    def predict(self, arch: Arch) -> tuple[float, float]:
        """Predicted latency in ms and its uncertainty (the blocks' spread, calibrated)."""
        return predict_arch(self, arch)

    def predict_quantile(self, arch: Arch, quantile: float = 0.5) -> float:
        """Median prediction, or the sum of per-block p90 for a conservative bound (quantile 0.9)."""
        return predict_arch(self, arch, quantile)[0]


def _check_number(value: Any, what: str, fix: str, positive: bool | None) -> None:
    """A table figure must be a finite real number: positive (True), not negative (False) or any (None)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise HwnasError(f"{what} is {value!r}, not a number; {fix}")
    if not math.isfinite(value):
        raise HwnasError(f"{what} is {value!r}, not a finite number; {fix}")
    if positive is not None and (value < 0 or (positive and value == 0)):
        raise HwnasError(f"{what} is {value!r}, not {'positive' if positive else 'a non-negative number'}; {fix}")
