"""``HWNAS_QUICK=1``: every job at reduced sizes, to try the commands (and test the README) fast.

The one place the variable is read. With it set, ``cap`` lowers a size to its quick value and
says so on stderr, once per size and process, so a quick result is never mistaken for a full
one: training iterations and images (training, validation, path evaluation), the search's
population, generations, evaluations and held-out images, and the number of whole networks
``hwnas validate`` times. Unset (or ``0``), nothing changes.
"""

from __future__ import annotations

import os
import sys

ENV = "HWNAS_QUICK"

# name -> (quick value, what it is, for the message)
CAPS: dict[str, tuple[int, str]] = {
    "train_iterations": (20, "training iterations"),
    "train_images": (1024, "training images"),
    "validation_images": (256, "validation images"),
    "path_eval_images": (64, "images per path evaluation while training"),
    "search_population": (6, "search population"),
    "search_generations": (2, "search generations"),
    "search_evaluations": (12, "archs the search evaluates"),
    "eval_images": (128, "held-out images per evaluated arch"),
    "validate_samples": (4, "whole networks validated"),
}

_said: set[str] = set()


def enabled() -> bool:
    """Whether ``HWNAS_QUICK`` is set to anything but empty or 0."""
    return os.environ.get(ENV, "").strip() not in ("", "0")


def cap(name: str, value: int | None) -> int | None:
    """``value`` lowered to the quick size of ``name`` when quick mode is on (``None``, the
    caller's default, becomes the quick size); otherwise ``value`` unchanged."""
    if not enabled():
        return value
    limit, what = CAPS[name]
    if value is not None and value <= limit:
        return value
    if name not in _said:
        _said.add(name)
        print(f"{ENV}=1: {what} capped at {limit}" + (f" (asked: {value})" if value is not None else ""), file=sys.stderr)
    return limit
