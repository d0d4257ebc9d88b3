"""Budgets and the latency model a search is constrained by.

- Parsing the user's budgets: "80ms", "80 ms", "0.08s", "80000us"; "330M", "330MFLOPs",
  "0.33G"; "5Mparams", "5M", "500K". A bad string is a one-line ``HwnasError``.
- Finding the device's latency table: the newest ``latency_tables/*.json`` for the device
  and the space (or the file given with ``--table``), refusing a table of another space.
- ``LatencyModel``: the table's prediction turned into per-layer terms, so the latency of
  many candidates is one vectorized sum (identical to ``LatencyTable.predict``/``predict_quantile``),
  with ``quantile=0.9`` summing the blocks' p90 for a conservative bound.
- ``check_budgets``: a budget below the cheapest arch of the space is an error, not an empty search.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import HwnasError
from ..latency.keys import block_key
from ..latency.table import LatencyTable
from ..space.arch import Arch
from ..space.space import SearchSpace
from .base import Budgets

_NUM = r"([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)"

_TIME_UNITS = {"ms": 1.0, "msec": 1.0, "s": 1000.0, "sec": 1000.0, "us": 1e-3, "µs": 1e-3, "": 1.0}
_COUNT_UNITS = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9, "b": 1e9}


def parse_latency(text: str | float) -> float:
    """A latency budget in ms from "80ms", "80 ms", "0.08s", "80000us" or a bare number of ms."""
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        m = re.fullmatch(_NUM + r"\s*(ms|msec|s|sec|us|µs)?", str(text).strip().lower())
        if not m:
            raise HwnasError(f"cannot read latency budget {text!r}; write it like 80ms, 80 ms or 0.08s")
        value = float(m.group(1)) * _TIME_UNITS[m.group(2) or ""]
    if not math.isfinite(value) or value <= 0:
        raise HwnasError(f"latency budget {text!r} must be a positive time such as 80ms")
    return value


def _parse_count(text: str | float, what: str, suffixes: tuple[str, ...], example: str) -> int:
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        s = str(text).strip().lower().replace(",", "").replace("_", "")
        pattern = _NUM + r"\s*([kmgb]?)\s*(?:" + "|".join(re.escape(x) for x in suffixes) + r")?"
        m = re.fullmatch(pattern, s)
        if not m:
            raise HwnasError(f"cannot read {what} budget {text!r}; write it like {example}")
        value = float(m.group(1)) * _COUNT_UNITS[m.group(2)]
    if not math.isfinite(value) or value <= 0:
        raise HwnasError(f"{what} budget {text!r} must be a positive count such as {example}")
    return int(round(value))


def parse_flops(text: str | float) -> int:
    """Multiply-adds from "330M", "330MFLOPs", "330 MFLOPs", "0.33G", "330e6"."""
    return _parse_count(text, "FLOPs", ("flops", "flop", "macs", "mac", "madds"), "330M or 330MFLOPs")


def parse_params(text: str | float) -> int:
    """A parameter count from "5Mparams", "5M", "500K", "5e6"."""
    return _parse_count(text, "params", ("params", "param", "parameters"), "5M or 5Mparams")


# ---- tables -----------------------------------------------------------------------------
def _table_header(path: Path) -> dict[str, Any] | None:
    try:
        d = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return d if isinstance(d, dict) and "entries" in d and "space" in d else None


def find_table(device: str, space: str, tables_dir: str | Path = "latency_tables", backend: str | None = None) -> Path:
    """The newest table in ``tables_dir`` for ``device`` and ``space`` (and ``backend`` if given).

    A table belongs to a device when its file is named ``<device>-...json`` or its device
    fingerprint carries ``name == device``; newest by its ``created`` stamp, then file time.
    """
    d = Path(tables_dir)
    found: list[tuple[str, float, Path]] = []
    other_space: list[str] = []
    for p in sorted(d.glob("*.json")) if d.is_dir() else []:
        h = _table_header(p)
        if h is None:
            continue
        dev = h.get("device") or {}
        if not (p.name.startswith(f"{device}-") or (isinstance(dev, dict) and dev.get("name") == device)):
            continue
        if backend is not None and h.get("backend") != backend and not str(h.get("backend", "")).startswith(backend):
            continue
        if h.get("space") != space:
            other_space.append(f"{p.name} ({h.get('space')})")
            continue
        found.append((str(h.get("created", "")), p.stat().st_mtime, p))
    if not found:
        hint = f" (only for other spaces: {', '.join(other_space)})" if other_space else ""
        raise HwnasError(f"no latency table for device {device!r} and space {space!r} in {str(d)!r}{hint}; "
                         f"run `hwnas profile --device {device} --space {space}` or pass --table")
    found.sort()
    return found[-1][2]


def load_table(space: SearchSpace, device: str = "host", table: str | Path | None = None,
               tables_dir: str | Path = "latency_tables", backend: str | None = None) -> LatencyTable:
    """The device's table for ``space`` (``table`` overrides the lookup); another space is an error."""
    path = Path(table) if table is not None else find_table(device, space.name, tables_dir, backend)
    t = LatencyTable.load(path)
    if t.space != space.name:
        raise HwnasError(f"latency table {str(path)!r} is for space {t.space!r}, not {space.name!r}; "
                         f"pass a table of space {space.name!r} or profile it with `hwnas profile --space {space.name}`")
    dev_name = t.device.get("name") if isinstance(t.device, dict) else None
    if table is not None and dev_name and dev_name != device:
        raise HwnasError(f"latency table {str(path)!r} was measured on device {dev_name!r}, not {device!r}; "
                         f"pass --device {dev_name} or a table of {device!r}")
    if dict(t.space_args) != dict(space.args):
        raise HwnasError(f"latency table {str(path)!r} is for {t.space} with {t.space_args or 'default args'}, "
                         f"not {space.args or 'default args'}; profile this variant of the space")
    return t


class LatencyModel:
    """A table's per-arch prediction as per-layer terms: ``model(arch) -> (ms, uncertainty)``.

    ``quantile`` 0.5 predicts with the blocks' medians (``LatencyTable.predict``), 0.9 with
    their p90 (``predict_quantile``); the uncertainty is the blocks' combined spread.
    """

    def __init__(self, table: LatencyTable, space: SearchSpace, quantile: float = 0.5) -> None:
        if not 0.0 < quantile < 1.0:
            raise HwnasError(f"latency quantile {quantile} must be between 0 and 1, e.g. 0.5 (median) or 0.9")
        if quantile not in (0.5, 0.9) and quantile > 0.5:
            raise HwnasError(f"latency quantile {quantile} is not stored in tables; use 0.5 (median) or 0.9 (p90)")
        self.table, self.space, self.quantile = table, space, quantile
        field = "median_ms" if quantile <= 0.5 else "p90_ms"
        missing: list[str] = []

        def term(slot) -> tuple[float, float, int]:
            k = block_key(slot)
            if k is None:
                return 0.0, 0.0, 0
            e = table.entries.get(k)
            if e is None:
                missing.append(k)
                return 0.0, 0.0, 1
            return float(e.get(field, e["median_ms"])), float(e.get("std_ms", 0.0)) ** 2, 1

        fixed = [term(s) for s in space.fixed_slots()]
        width = max(len(layer.choices) for layer in space.layers)
        self._lat = np.zeros((space.num_layers, width))
        self._var = np.zeros((space.num_layers, width))
        self._blocks = np.zeros((space.num_layers, width))
        for j, layer in enumerate(space.layers):
            for i, op in enumerate(layer.choices):
                self._lat[j, i], self._var[j, i], self._blocks[j, i] = term(layer.slot(op))
        if missing:
            where = f"latency table {str(table.path)!r}" if table.path else "latency table"
            raise HwnasError(f"{where} lacks {len(set(missing))} block(s) of space {space.name!r} (e.g. {missing[0]}); "
                             f"run `hwnas profile --space {space.name}` to fill them")
        self._fixed_lat = sum(f[0] for f in fixed)
        self._fixed_var = sum(f[1] for f in fixed)
        self._fixed_blocks = sum(f[2] for f in fixed)
        # The table's own calibration (LatencyTable.calibrated) is linear, so it applies per layer:
        # the overhead goes into the fixed term once and prediction stays one gather-and-sum.
        self.scale = float(table.calibration.get("scale", 1.0))
        self._cal = table.calibrated(self._lat, self._blocks) - table.calibrated(0.0, 0)
        self._fixed_cal = table.calibrated(self._fixed_lat, self._fixed_blocks)

    def predict_indices(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        X = np.atleast_2d(np.asarray(X, dtype=np.int64))
        cols = np.arange(X.shape[1])
        ms = self._cal[cols[None, :], X].sum(axis=1) + self._fixed_cal
        var = self._var[cols[None, :], X].sum(axis=1) + self._fixed_var
        return ms, abs(self.scale) * np.sqrt(var)

    def __call__(self, arch: Arch) -> tuple[float, float]:
        ms, std = self.predict_indices(np.array([self.space.choice_indices(arch)]))
        return float(ms[0]), float(std[0])

    def range(self) -> tuple[float, float]:
        """Fastest and slowest predicted latency of the space (terms are per layer, so exact)."""
        lo = self._fixed_cal + sum(float(np.min(self._cal[j, : len(layer.choices)])) for j, layer in enumerate(self.space.layers))
        hi = self._fixed_cal + sum(float(np.max(self._cal[j, : len(layer.choices)])) for j, layer in enumerate(self.space.layers))
        return lo, hi

    @property
    def tolerance(self) -> dict[str, Any]:
        """What the table says about its own accuracy (validation results, if stored)."""
        return dict(self.table.protocol.get("validation", {})) if isinstance(self.table.protocol, dict) else {}


def check_budgets(space: SearchSpace, budgets: Budgets, latency: LatencyModel | None = None) -> None:
    """Each budget must admit at least the cheapest arch of the space (one line on which does not)."""
    from .encoding import IntegerEncoding

    enc = IntegerEncoding(space)
    if budgets.latency_ms is not None:
        if latency is None:
            raise HwnasError("a latency budget needs a latency table; pass --device with a profiled table or --table")
        lo, hi = latency.range()
        if budgets.latency_ms < lo:
            raise HwnasError(f"latency budget {budgets.latency_ms:g} ms is below the fastest arch of space {space.name!r} "
                             f"({lo:.3f} ms predicted on this table); raise it to at least {lo:.3f} ms")
    for name, limit, col in (("FLOPs", budgets.flops, 0), ("params", budgets.params, 1)):
        if limit is None:
            continue
        lo = int(enc.fixed_cost[col] + sum(int(enc.layer_cost[j, : n, col].min()) for j, n in enumerate(enc.n_choices)))
        if limit < lo:
            raise HwnasError(f"{name} budget {limit / 1e6:g}M is below the smallest arch of space {space.name!r} "
                             f"({lo / 1e6:.3f}M); raise it")
