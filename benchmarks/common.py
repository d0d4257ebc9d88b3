"""Shared by benchmark scripts: where results go, how a table is printed, bootstrap intervals."""

from __future__ import annotations

import json
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

RESULTS = Path(__file__).resolve().parent / "results"
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def machine() -> dict[str, Any]:
    import os

    return {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform(terse=True)}


def write_results(name: str, payload: dict[str, Any]) -> Path:
    from hwnas.io import atomic_write_json

    payload = {"benchmark": name, "when": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": machine(), **payload}
    return atomic_write_json(RESULTS / f"{name}.json", payload)


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], title: str = "") -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(*headers, title=title)
    for r in rows:
        t.add_row(*(f"{v:.4g}" if isinstance(v, float) else str(v) for v in r))
    Console().print(t)


def bootstrap_distribution(samples: Sequence[Any], statistic, *, paired: bool = True, n_resamples: int = 2000,
                           confidence: float = 0.90, seed: int = 0):
    """``scipy.stats.bootstrap`` of ``statistic(*samples)`` (resampled together when ``paired``):
    the result, whose ``bootstrap_distribution`` holds every resample's value (percentile method)."""
    import numpy as np
    from scipy.stats import bootstrap

    arrays = tuple(np.asarray(s, dtype=float) for s in samples)
    return bootstrap(arrays, statistic, paired=paired, vectorized=False, n_resamples=n_resamples, confidence_level=confidence,
                     method="percentile", random_state=np.random.default_rng(seed))


def percentile_range(values, confidence: float = 0.90) -> list[float] | None:
    """The central ``confidence`` range of resampled values, ignoring undefined (nan) ones; None if none is defined."""
    import numpy as np

    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    tail = 100 * (1 - confidence) / 2
    return [float(np.percentile(v, tail)), float(np.percentile(v, 100 - tail))] if len(v) else None
