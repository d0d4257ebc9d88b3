"""The one latency predictor: a table's per-block entries turned into the latency of archs.

Every stage that needs a predicted latency -- ``LatencyTable.predict``, the training budget
(``train.samplers.PathBudget``), the search constraint (``latency.bound.LatencyModel``),
the export check, ``hwnas validate`` and the train hints -- asks this module, so training,
search and export agree on which archs fit a budget to the last bit of the formula.

The model: an arch's latency is the sum of its blocks' latencies (stem, one block per layer
unless it is a true identity, head), then the table's calibration, applied in exactly one
place, ``calibrate``::

    ms = scale * sum + overhead_ms + per_block_ms * number_of_blocks

Both terms are linear in the blocks, so over many archs (an (n, layers) matrix of choice
indices) the prediction is a gather and a sum per layer. ``distribution`` gives per arch the
median, the p90 bound (sum of the blocks' p90) and the spread (the blocks' standard
deviations combined as independent), which is what a quantile or confidence of the latency
is built from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import HwnasError
from ..space.arch import Arch
from ..space.space import SearchSpace, Slot
from .keys import arch_keys, block_key

MEDIAN = 0.5
P90 = 0.9


def calibrate(raw_ms: Any, nblocks: Any, calibration: Mapping[str, Any] | None) -> Any:
    """Calibrated latency from the raw block sum and the block count (scalars or arrays).

    ``per_block_ms`` is the per-call cost every separately timed block carries (runtime entry,
    layout conversion at its edges) that a whole network pays only once; it is optional.
    """
    c = calibration or {}
    return (float(c.get("scale", 1.0)) * raw_ms + float(c.get("overhead_ms", 0.0))
            + float(c.get("per_block_ms", 0.0)) * nblocks)


def spread_scale(calibration: Mapping[str, Any] | None) -> float:
    """The factor the blocks' combined standard deviation is scaled by (the calibration's scale)."""
    return abs(float((calibration or {}).get("scale", 1.0)))


def entry_field(quantile: float) -> str:
    """The table field a quantile is read from: medians up to 0.5, the stored p90 for 0.9."""
    if not 0.0 < quantile < 1.0:
        raise HwnasError(f"latency quantile {quantile} must be between 0 and 1, e.g. 0.5 (median) or 0.9")
    if quantile <= MEDIAN:
        return "median_ms"
    if quantile == P90:
        return "p90_ms"
    raise HwnasError(f"latency quantile {quantile} is not stored in tables; use 0.5 (median) or 0.9 (p90)")


def entry_value(entry: Mapping[str, Any], field: str) -> float:
    """A block's latency for ``field`` (a table without p90 falls back to the median)."""
    return float(entry.get(field, entry["median_ms"]))


def missing_message(table: Any, missing: Sequence[str], space_name: str) -> str:
    where = f"latency table {str(table.path)!r}" if getattr(table, "path", None) else "latency table"
    return (f"{where} lacks {len(set(missing))} block(s) of space {space_name!r} (e.g. {missing[0]}); "
            f"run `hwnas profile --space {space_name}` to fill them")


@dataclass(frozen=True)
class LatencyDistribution:
    """Per-arch predicted latency in ms: median, p90 bound and spread (standard deviation)."""

    median_ms: np.ndarray
    p90_ms: np.ndarray
    spread_ms: np.ndarray


class LatencyPredictor:
    """A table's prediction for the archs of one space, scalar (``predict``) and vectorized.

    Per layer and choice it keeps the block's median, p90, variance and whether it is a block
    at all (a true identity is not); the stem and head are one fixed term. A block the table
    lacks is NaN: archs that avoid it predict normally, an arch that needs it is an error
    naming the block (``require_complete`` makes it an error up front).
    """

    def __init__(self, table: Any, space: SearchSpace) -> None:
        if table.space != space.name:
            raise HwnasError(f"latency table is for space {table.space!r}, not {space.name!r}; profile this space")
        self.table, self.space = table, space
        self.calibration: dict[str, Any] = dict(table.calibration or {})
        width = max(len(layer.choices) for layer in space.layers)
        shape = (space.num_layers, width)
        self._median, self._p90, self._var = np.zeros(shape), np.zeros(shape), np.zeros(shape)
        self._blocks = np.zeros(shape)
        self._keys: list[list[str | None]] = []
        self.missing: list[str] = []
        for j, layer in enumerate(space.layers):
            row: list[str | None] = []
            for i, op in enumerate(layer.choices):
                row.append(self._fill(j, i, layer.slot(op)))
            self._keys.append(row)
        fixed = [self._terms(s) for s in space.fixed_slots()]
        self._fixed_median = sum(f[0] for f in fixed)
        self._fixed_p90 = sum(f[1] for f in fixed)
        self._fixed_var = sum(f[2] for f in fixed)
        self._fixed_blocks = sum(f[3] for f in fixed)

    def _terms(self, slot: Slot) -> tuple[float, float, float, int]:
        """(median, p90, variance, is a block) of one slot; NaN for a block the table lacks."""
        k = block_key(slot)
        if k is None:
            return 0.0, 0.0, 0.0, 0
        e = self.table.entries.get(k)
        if e is None:
            self.missing.append(k)
            return math.nan, math.nan, math.nan, 1
        return entry_value(e, "median_ms"), entry_value(e, "p90_ms"), float(e.get("std_ms", 0.0)) ** 2, 1

    def _fill(self, j: int, i: int, slot: Slot) -> str | None:
        self._median[j, i], self._p90[j, i], self._var[j, i], self._blocks[j, i] = self._terms(slot)
        return block_key(slot)

    def require_complete(self) -> "LatencyPredictor":
        """Raise unless the table holds every block of the space."""
        if self.missing:
            raise HwnasError(missing_message(self.table, self.missing, self.space.name))
        return self

    # ---- vectorized --------------------------------------------------------------------
    def _gather(self, terms: np.ndarray, X: np.ndarray) -> np.ndarray:
        return terms[np.arange(X.shape[1])[None, :], X].sum(axis=1)

    def _check(self, values: np.ndarray, X: np.ndarray) -> None:
        bad = np.flatnonzero(np.isnan(values))
        if bad.size:
            row = X[bad[0]]
            needed = [k for j, i in enumerate(row) if (k := self._keys[j][int(i)]) in set(self.missing)]
            needed += [k for k in self.missing if k not in needed]
            raise HwnasError(missing_message(self.table, needed, self.space.name))

    def raw_indices(self, X: np.ndarray, quantile: float = MEDIAN) -> tuple[np.ndarray, np.ndarray]:
        """Uncalibrated block sums and block counts of an (n, layers) index matrix."""
        X = np.atleast_2d(np.asarray(X, dtype=np.int64))
        terms, fixed = (self._median, self._fixed_median) if entry_field(quantile) == "median_ms" else (self._p90, self._fixed_p90)
        raw = self._gather(terms, X) + fixed
        self._check(raw, X)
        return raw, self._gather(self._blocks, X) + self._fixed_blocks

    def predict_indices(self, X: np.ndarray, quantile: float = MEDIAN) -> np.ndarray:
        """Calibrated latency (ms) of each row: the median, or the p90 bound for quantile 0.9."""
        raw, nblocks = self.raw_indices(X, quantile)
        return calibrate(raw, nblocks, self.calibration)

    def spread_indices(self, X: np.ndarray) -> np.ndarray:
        """Each row's spread in ms: the blocks' standard deviations combined, times |scale|."""
        X = np.atleast_2d(np.asarray(X, dtype=np.int64))
        var = self._gather(self._var, X) + self._fixed_var
        self._check(var, X)
        return spread_scale(self.calibration) * np.sqrt(var)

    def distribution(self, X: np.ndarray) -> LatencyDistribution:
        """Median, p90 bound and spread of every row (what a latency quantile is built from)."""
        return LatencyDistribution(self.predict_indices(X, MEDIAN), self.predict_indices(X, P90), self.spread_indices(X))

    def range(self, quantile: float = MEDIAN, calibration: Mapping[str, Any] | None = None) -> tuple[float, float]:
        """Fastest and slowest prediction over the whole space (terms are per layer, so exact),
        under the table's calibration or, to judge a candidate fit, under ``calibration``."""
        self.require_complete()
        c = self.calibration if calibration is None else calibration
        field = entry_field(quantile)
        terms = self._median if field == "median_ms" else self._p90
        fixed = self._fixed_median if field == "median_ms" else self._fixed_p90
        cal = calibrate(terms, self._blocks, c) - calibrate(0.0, 0.0, c)
        base = float(calibrate(fixed, self._fixed_blocks, c))
        n = [len(layer.choices) for layer in self.space.layers]
        lo = base + sum(float(np.min(cal[j, :k])) for j, k in enumerate(n))
        hi = base + sum(float(np.max(cal[j, :k])) for j, k in enumerate(n))
        return lo, hi

    # ---- one arch ----------------------------------------------------------------------
    def predict(self, arch: Arch, quantile: float = MEDIAN) -> float:
        return float(self.predict_indices(np.array([self.space.choice_indices(arch)]), quantile)[0])

    def predict_with_spread(self, arch: Arch) -> tuple[float, float]:
        X = np.array([self.space.choice_indices(arch)])
        return float(self.predict_indices(X)[0]), float(self.spread_indices(X)[0])


def predicts_above_zero(table: Any, space: SearchSpace,
                        calibration: Mapping[str, Any] | None = None) -> tuple[bool, float | None]:
    """Whether a calibration (the table's, or a candidate) predicts every arch of ``space`` above
    zero, and the fastest arch's prediction. A table lacking blocks of the space knows no
    fastest arch (None): it passes, and an arch needing a missing block is refused when used."""
    predictor = LatencyPredictor(table, space)
    if predictor.missing:
        return True, None
    fastest = predictor.range(calibration=calibration)[0]
    return math.isfinite(fastest) and fastest > 0, fastest


def arch_sums(table: Any, arch: Arch, quantile: float = MEDIAN) -> tuple[float, float, int]:
    """One arch's uncalibrated block sum (median or p90), summed block variance and block count."""
    field = entry_field(quantile)
    keys = arch_keys(arch.get_space(), arch)
    missing = [k for k in keys if k not in table.entries]
    if missing:
        raise HwnasError(missing_message(table, missing, table.space))
    raw = sum(entry_value(table.entries[k], field) for k in keys)
    var = sum(float(table.entries[k].get("std_ms", 0.0)) ** 2 for k in keys)
    return raw, var, len(keys)


def predict_arch(table: Any, arch: Arch, quantile: float = MEDIAN) -> tuple[float, float]:
    """One arch's calibrated latency and spread from its block keys (no per-space set-up).

    The same terms and the same ``calibrate`` as ``LatencyPredictor``; used where one arch is
    asked about (the table's ``predict``, the export check), so a table lacking blocks of
    other archs still predicts this one.
    """
    raw, var, nblocks = arch_sums(table, arch, quantile)
    return float(calibrate(raw, nblocks, table.calibration)), spread_scale(table.calibration) * math.sqrt(var)
