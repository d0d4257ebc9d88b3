"""Finding the device's latency table for a space.

The newest ``latency_tables/*.json`` for the device and the space (or the file given with
``--table``), refusing a table of another space, device or space variant. Used by the
search, the export and the train hints alike.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import HwnasError
from ..space.space import SearchSpace
from .table import LatencyTable


def _table_header(path: Path) -> dict[str, Any] | None:
    try:
        d = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return d if isinstance(d, dict) and "entries" in d and "space" in d else None


def _canonical_args(space: str, args: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    """The args that pick a table: a shrunk space's ``choices`` do not (its blocks are its base's)."""
    from ..space.registry import CHOICES_ARG, drop_defaults, normalize_args

    return normalize_args(drop_defaults(space, {k: v for k, v in args.items() if k != CHOICES_ARG}))


def find_table(device: str, space: str, tables_dir: str | Path = "latency_tables", backend: str | None = None,
               space_args: dict[str, Any] | None = None, model_format: str | None = None) -> Path:
    """The newest table in ``tables_dir`` for ``device`` and ``space`` (and ``backend`` and ``space_args`` if given).

    A table belongs to a device when its file is named ``<device>-...json`` or its device
    fingerprint carries ``name == device``; newest by its ``created`` stamp, then file time.
    With ``space_args`` only a table of that variant of the space counts (a phone with one
    table per input resolution has one per variant).
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
        if model_format is not None and (h.get("protocol") or {}).get("model_format") != model_format:
            continue
        if h.get("space") != space:
            other_space.append(f"{p.name} ({h.get('space')})")
            continue
        if space_args is not None and _canonical_args(space, h.get("space_args") or {}) != _canonical_args(space, space_args):
            other_space.append(f"{p.name} ({h.get('space')} with {h.get('space_args') or 'default args'})")
            continue
        found.append((str(h.get("created", "")), p.stat().st_mtime, p))
    if not found:
        hint = f" (only for other spaces: {', '.join(other_space)})" if other_space else ""
        what = f" timing {model_format} files" if model_format else ""
        how = f" --backend {backend_for_format(device, model_format)}" if model_format else ""
        raise HwnasError(f"no latency table for device {device!r} and space {space!r}{what} in {str(d)!r}{hint}; "
                         f"run `hwnas profile --device {device} --space {space}{how}` or pass --table")
    found.sort()
    return found[-1][2]


def load_table(space: SearchSpace, device: str = "host", table: str | Path | None = None,
               tables_dir: str | Path = "latency_tables", backend: str | None = None) -> LatencyTable:
    """The device's table for ``space`` (``table`` overrides the lookup); another space is an error."""
    path = Path(table) if table is not None else find_table(device, space.name, tables_dir, backend, space_args=space.args)
    t = LatencyTable.load(path)
    if t.space != space.name:
        raise HwnasError(f"latency table {str(path)!r} is for space {t.space!r}, not {space.name!r}; "
                         f"pass a table of space {space.name!r} or profile it with `hwnas profile --space {space.name}`")
    dev_name = t.device.get("name") if isinstance(t.device, dict) else None
    if table is not None and dev_name and dev_name != device:
        raise HwnasError(f"latency table {str(path)!r} was measured on device {dev_name!r}, not {device!r}; "
                         f"pass --device {dev_name} or a table of {device!r}")
    if _canonical_args(t.space, t.space_args) != _canonical_args(space.name, space.args):
        raise HwnasError(f"latency table {str(path)!r} is for {t.space} with {t.space_args or 'default args'}, "
                         f"not {space.args or 'default args'}; profile this variant of the space")
    return t


def table_model_format(table: LatencyTable) -> str | None:
    """The format of the files the table's blocks were timed as (``onnx``, ``tflite``), when it says."""
    fmt = (table.protocol or {}).get("model_format")
    return str(fmt) if fmt else None


def backend_for_format(device: str, model_format: str) -> str:
    """The device's timing backend that runs ``model_format`` files (for the profile command a message names)."""
    from .backends.base import BACKENDS, list_backends

    known = list_backends()  # loads the built-in backends
    try:
        from ..device.profiles import load_device

        names = list(load_device(device).backends) or known
    except HwnasError:
        names = known
    for n in names:
        if n in BACKENDS and getattr(BACKENDS.builder(n), "model_format", None) == model_format:
            return n
    return "NAME"


def table_for_format(table: LatencyTable, model_format: str) -> Path:
    """The table of ``table``'s device and space (same variant) in the same folder whose blocks were
    timed as ``model_format`` files: what checks an export in another format than the search's
    table (a search on the host's onnxruntime table, a .tflite export -> the host's LiteRT table).
    An HwnasError naming the profile to run when there is none."""
    dev = str(table.device.get("name") or "host") if isinstance(table.device, dict) else "host"
    folder = Path(table.path).parent if table.path else Path("latency_tables")
    return find_table(dev, table.space, folder, space_args=table.space_args, model_format=model_format)
