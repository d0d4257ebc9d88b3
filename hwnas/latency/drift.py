"""Drift correction with an anchor network timed between measurements.

Why: the speed of a device drifts while a table is profiled or validated. A shared host
slows down by several percent for minutes at a time when its neighbours load the memory
system (the inference thread's CPU time does not exclude that), and a phone warms up and
throttles. A block timed in a slow minute then looks slower than a block timed in a fast
one, and no calibration fitted afterwards can undo that, because the error differs from
block to block. So one fixed whole network of the space, the *anchor*, is timed every
``anchor_every`` measurements, the same way as everything else, and each measurement is
divided by how fast the device was at that moment relative to a reference:

    corrected = raw * reference_ms / local_anchor_ms(t)

``local_anchor_ms(t)`` is the median of the ``window`` anchor readings nearest in time to
the measurement (a median, so one disturbed anchor reading does not move it). A table
stores its anchor (arch and reference latency) in its protocol; ``hwnas validate`` times the
same anchor and expresses its whole-network measurements in the table's reference state,
and reports the raw figures next to the corrected ones. The factors themselves are reported
too: they say how much the device drifted.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..space.arch import Arch
from ..space.space import SearchSpace
from .backends.base import Backend, Measurement, Protocol
from .journal import Journal

ANCHOR_SEED = 7919  # which random arch of a space is its anchor (fixed: tables and validation must agree)
DEFAULT_WINDOW = 5


def anchor_arch(space: SearchSpace) -> Arch:
    """The space's anchor network: a fixed random arch, typical of what is timed."""
    return space.sample(np.random.default_rng(ANCHOR_SEED))


def table_anchor_reference(protocol: dict[str, Any], space: SearchSpace) -> float | None:
    """The reference latency of a table's anchor, if the table has one and it is this space's anchor."""
    info = protocol.get("anchor") or {}
    if not info.get("reference_ms") or info.get("arch") != anchor_arch(space).compact():
        return None
    return float(info["reference_ms"])


def anchor_file(space: SearchSpace, model_format: str, cache_dir: Path | None = None) -> Path:
    """The anchor exported whole (cached next to the validation networks)."""
    from .blocks import export_network
    from .validate import network_file

    arch = anchor_arch(space)
    path = network_file(arch, model_format, cache_dir)
    if not (path.is_file() and path.stat().st_size > 0):
        export_network(arch, model_format, path)
    return path


@dataclass
class AnchorLog:
    """Anchor readings ``(time, ms)`` and the drift factor they imply at any moment."""

    readings: list[tuple[float, float]] = field(default_factory=list)
    window: int = DEFAULT_WINDOW

    @classmethod
    def from_journal(cls, journal: Journal) -> "AnchorLog":
        """The anchor readings an interrupted run journaled."""
        return cls(readings=[(float(r["t"]), float(r["anchor_ms"])) for r in journal.records if "anchor_ms" in r])

    def add(self, t: float, ms: float) -> None:
        self.readings.append((float(t), float(ms)))

    def local_ms(self, t: float) -> float | None:
        """Median anchor latency of the ``window`` readings nearest in time to ``t``."""
        if not self.readings:
            return None
        ts = np.array([r[0] for r in self.readings])
        ms = np.array([r[1] for r in self.readings])
        near = np.argsort(np.abs(ts - t), kind="stable")[: self.window]
        return float(np.median(ms[near]))

    def median_ms(self) -> float | None:
        return float(np.median([r[1] for r in self.readings])) if self.readings else None

    def factor(self, t: float | None, reference_ms: float | None) -> float:
        """How much slower than the reference the device was at ``t`` (1.0 when unknown)."""
        if t is None or not reference_ms:
            return 1.0
        local = self.local_ms(t)
        return local / reference_ms if local else 1.0

    def summary(self, reference_ms: float | None) -> dict[str, Any]:
        if not self.readings or not reference_ms:
            return {"readings": len(self.readings)}
        f = np.array([ms / reference_ms for _, ms in self.readings])
        return {"readings": len(self.readings), "reference_ms": round(float(reference_ms), 6),
                "median_factor": round(float(np.median(f)), 4), "min_factor": round(float(f.min()), 4),
                "max_factor": round(float(f.max()), 4)}


def corrected(m: Measurement | dict[str, Any], factor: float) -> dict[str, Any]:
    """A measurement's timings divided by the drift factor; the raw median is kept."""
    d = dict(m.to_dict() if isinstance(m, Measurement) else m)
    if factor == 1.0:
        return d
    raw = d.get("raw_median_ms", d["median_ms"])
    for k in ("median_ms", "p90_ms", "mean_ms", "std_ms", "min_ms"):
        if k in d:
            d[k] = float(d[k]) / factor
    d["raw_median_ms"] = raw
    d["drift_factor"] = round(float(factor), 6)
    return d


def journal_anchor(journal: Journal | None) -> Callable[[float, float], None] | None:
    """An ``on_anchor`` callback that journals each reading (read back by ``AnchorLog.from_journal``)."""
    if journal is None:
        return None
    return lambda t, ms: journal.append({"key": "__anchor__", "t": t, "anchor_ms": ms})


class AnchoredTimer:
    """Times model files through a backend, timing the anchor every ``every`` measurements.

    ``on_anchor(t, ms)`` is called for each anchor reading (the profiler journals it, so a
    resumed run keeps the readings of the interrupted one). ``finish()`` takes one last
    reading, so the last measurements have anchors on both sides in time.
    """

    def __init__(self, backend: Backend, protocol: Protocol, anchor: Path | None, every: int,
                 log: AnchorLog | None = None, on_anchor: Callable[[float, float], None] | None = None) -> None:
        self.backend = backend
        self.protocol = protocol
        self.anchor = anchor
        self.every = max(0, int(every)) if anchor is not None else 0
        self.log = log or AnchorLog()
        self.on_anchor = on_anchor
        self._since = None if self.every else 0

    @property
    def active(self) -> bool:
        return self.every > 0

    def _read_anchor(self) -> None:
        assert self.anchor is not None
        m = self.backend.measure(self.anchor, self.protocol)
        t = time.time()
        self.log.add(t, m.median_ms)
        if self.on_anchor:
            self.on_anchor(t, m.median_ms)
        self._since = 0

    def measure(self, path: Path) -> tuple[Measurement, float]:
        """One measurement and the time it was taken (anchor first when one is due)."""
        if self.active and (self._since is None or self._since >= self.every):
            self._read_anchor()
        t0 = time.time()
        m = self.backend.measure(path, self.protocol)
        t = (t0 + time.time()) / 2
        if self._since is not None:
            self._since += 1
        return m, t

    def finish(self) -> None:
        if self.active and self._since:
            self._read_anchor()
