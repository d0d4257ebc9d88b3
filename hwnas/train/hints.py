"""The budget ``hwnas train`` suggests for the search that follows it.

A fixed "--latency 80ms" is meaningless for a space whose nets run in 0.2 ms on the host (or
in 300 ms on a phone): the hint is the median predicted latency of the space's paths by the
table ``hwnas search`` would load (device ``host``, ``latency_tables/``), so about half the
paths fit; without such a table, the median FLOPs of the paths.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import HwnasError
from ..space import create_space


def _two_digits(x: float) -> str:
    """2 significant digits, no exponent: 0.2537 -> '0.25', 81.4 -> '81'."""
    if x <= 0:
        return "0"
    digits = max(0, 1 - int(np.floor(np.log10(x))))
    return f"{round(x, digits):.{digits}f}"


def suggested_budget(space_name: str, space_args: dict | None = None, *, device: str = "host",
                     tables_dir: str | Path = "latency_tables", max_latency_ms: float | None = None,
                     samples: int = 1000, seed: int = 0) -> str:
    """Search options for a budget that suits the space, e.g. ``--latency 0.25ms`` or ``--flops 12M``.

    A run trained under a latency budget suggests that budget; otherwise the median over
    ``samples`` uniform paths of the device table's prediction (or of FLOPs without a table).
    """
    if max_latency_ms is not None:
        return f"--latency {_two_digits(max_latency_ms)}ms"
    space = create_space(space_name, **(space_args or {}))
    X = space.sample_indices(np.random.default_rng(seed), samples)
    try:
        from ..latency.lookup import load_table
        from ..latency.predictor import LatencyPredictor

        ms = LatencyPredictor(load_table(space, device=device, tables_dir=tables_dir), space).predict_indices(X)
        return f"--latency {_two_digits(float(np.median(ms)))}ms"
    except (HwnasError, OSError, ValueError, KeyError):  # no usable table: FLOPs need none
        flops = float(np.median(space.flops_of_indices(X)))
        return f"--flops {_two_digits(flops / 1e6)}M"
