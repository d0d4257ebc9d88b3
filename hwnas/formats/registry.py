"""The model-format registry: one entry per file format a network can be written as.

A format says what its files are called (extension), how a PyTorch module becomes a file at
each precision (its exporters), how such a file is run on the host (its runner and the name
of its host runtime, for parity checks), and what besides a block's key decides the file (its version tag, which keys the
block cache). The latency profiler, validation and ``hwnas export`` all look formats up here,
so adding a format is one ``register_format`` call (see ARCHITECTURE.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping

import numpy as np

from ..errors import HwnasError

PRECISIONS = ("fp32", "fp16", "int8")

Runner = Callable[[np.ndarray], np.ndarray]
"""A function mapping a float NCHW batch to float logits."""


@dataclass(frozen=True)
class ModelFormat:
    """One file format. ``exporters`` maps a precision to ``fn(module, example, path)`` (int8
    exporters take the calibration images as a 4th argument) and returns the written path."""

    name: str
    extension: str
    exporters: dict[str, Callable[..., Path]]
    runner: Callable[[Path, int], Runner]
    version_tag: Callable[[], str]
    host_runtime: str = ""
    options: Mapping[str, object] = field(default_factory=dict)

    @property
    def precisions(self) -> list[str]:
        return [p for p in PRECISIONS if p in self.exporters] + [p for p in self.exporters if p not in PRECISIONS]


_FORMATS: dict[str, ModelFormat] = {}


def register_format(fmt: ModelFormat) -> ModelFormat:
    """Add a format (an error if the name or extension is taken)."""
    if fmt.name in _FORMATS:
        raise ValueError(f"model format {fmt.name!r} is registered twice")
    if any(f.extension == fmt.extension for f in _FORMATS.values()):
        raise ValueError(f"extension {fmt.extension!r} already belongs to another model format")
    _FORMATS[fmt.name] = fmt
    return fmt


def unregister_format(name: str) -> None:
    """Remove a format (for tests that register a toy one)."""
    _FORMATS.pop(name, None)


def format_names() -> list[str]:
    return list(_FORMATS)


def get_format(name: str) -> ModelFormat:
    if name not in _FORMATS:
        raise HwnasError(f"unknown export format {name!r}; use one of: {', '.join(_FORMATS)}")
    return _FORMATS[name]


def format_of_file(path: str | Path) -> ModelFormat:
    """The format whose extension ``path`` has."""
    p = Path(path)
    for f in _FORMATS.values():
        if p.suffix == f.extension:
            return f
    exts = " and ".join(f.extension for f in _FORMATS.values())
    raise HwnasError(f"cannot run {str(p)!r}: only {exts} files are supported")


def supported_precisions(fmt: str) -> list[str]:
    return get_format(fmt).precisions


def check_format(fmt: str, precision: str) -> None:
    """A one-line error unless ``fmt`` can be written at ``precision``."""
    f = get_format(fmt)
    if precision not in PRECISIONS and precision not in f.exporters:
        raise HwnasError(f"unknown precision {precision!r}; use one of: {', '.join(PRECISIONS)}")
    if precision not in f.exporters:
        raise HwnasError(f"precision {precision!r} is not supported for {fmt} export; use one of: {', '.join(f.precisions)}")


def export_module(module, example, path: str | Path, fmt: str, precision: str = "fp32",
                  calibration: Iterable[np.ndarray] | None = None) -> Path:
    """Write ``module`` as ``fmt`` at ``precision`` (the folder is created); int8 needs ``calibration`` images."""
    check_format(fmt, precision)
    fn = get_format(fmt).exporters[precision]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    if precision == "int8":
        if calibration is None:
            raise HwnasError("int8 export needs calibration images (a --calibration-data folder or the built-in data)")
        return fn(module, example, path, calibration)
    return fn(module, example, path)


def load_runner(path: str | Path, threads: int = 1) -> Runner:
    """Run an exported file on the host: a float NCHW batch -> float logits."""
    return format_of_file(path).runner(Path(path), threads)


def exporter_tag(fmt: str) -> str:
    """What, besides a block's key, decides the exported file (so a new converter gets new files)."""
    return get_format(fmt).version_tag()
