"""Budgets and the latency model a search is constrained by.

- Parsing the user's budgets: "80ms", "80 ms", "0.08s", "80000us"; "330M", "330MFLOPs",
  "0.33G"; "5Mparams", "5M", "500K". A bad string is a one-line ``HwnasError``.
- Finding the device's latency table: ``hwnas.latency.lookup`` (``find_table``, ``load_table``).
- ``LatencyModel`` (``hwnas.latency.bound``, shared with training's path budget): the bound a
  latency budget is judged by, vectorized over many candidates.
- ``check_budgets``: a budget below the cheapest arch of the space is an error, not an empty search.
"""

from __future__ import annotations

import math
import re

from ..errors import HwnasError
from ..latency.bound import LatencyModel
from ..latency.lookup import find_table, load_table
from ..space.space import SearchSpace
from .budgets import Budgets

__all__ = ["LatencyModel", "check_budgets", "find_table", "load_table", "parse_flops", "parse_latency", "parse_params"]

_NUM = r"([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)"

_TIME_UNITS = {"ms": 1.0, "msec": 1.0, "s": 1000.0, "sec": 1000.0, "us": 1e-3, "µs": 1e-3}
_COUNT_UNITS = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9, "b": 1e9}


def parse_latency(text: str | float) -> float:
    """A latency budget in ms from "80ms", "80 ms", "0.08s" or "80000us" (a Python number is ms).

    Text needs its unit: a bare "80" typed by a user could mean ms or s, so it is refused.
    """
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        m = re.fullmatch(_NUM + r"\s*(ms|msec|s|sec|us|µs)?", str(text).strip().lower())
        if not m:
            raise HwnasError(f"cannot read latency budget {text!r}; write it like 80ms, 80 ms or 0.08s")
        if m.group(2) is None:
            v = str(text).strip()
            raise HwnasError(f"latency budget {text!r} has no unit; write {v}ms (or {v}s, {v}us)")
        value = float(m.group(1)) * _TIME_UNITS[m.group(2)]
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


def check_budgets(space: SearchSpace, budgets: Budgets, latency: LatencyModel | None = None) -> list[str]:
    """Each budget must admit at least the cheapest arch of the space (one line on which does not).

    Returns warnings: a latency budget above the slowest arch of the space constrains nothing.
    """
    warnings: list[str] = []
    from .encoding import IntegerEncoding

    enc = IntegerEncoding(space)
    if budgets.latency_ms is not None:
        if latency is None:
            raise HwnasError("a latency budget needs a latency table; pass --device with a profiled table or --table")
        lo, hi = latency.range()
        if budgets.latency_ms < lo:
            raise HwnasError(f"latency budget {budgets.latency_ms:g} ms is below the fastest arch of space {space.name!r} "
                             f"({lo:.3f} ms predicted on this table); raise it to at least {lo:.3f} ms")
        if budgets.latency_ms > hi:
            where = f"by {latency.table.path}" if latency.table.path else "on this table"
            warnings.append(f"latency budget {budgets.latency_ms:g} ms is above the slowest arch of space {space.name!r} "
                            f"({hi:.3f} ms predicted {where}): it constrains nothing; a budget below {hi:.3f} ms does")
    for name, limit, col in (("FLOPs", budgets.flops, 0), ("params", budgets.params, 1)):
        if limit is None:
            continue
        lo = int(enc.fixed_cost[col] + sum(int(enc.layer_cost[j, : n, col].min()) for j, n in enumerate(enc.n_choices)))
        if limit < lo:
            raise HwnasError(f"{name} budget {limit / 1e6:g}M is below the smallest arch of space {space.name!r} "
                             f"({lo / 1e6:.3f}M); raise it")
    return warnings
