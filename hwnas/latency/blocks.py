"""Block export: each distinct block key as a model file, cached on disk by key.

The files are written by the same exporter functions that ``hwnas export`` uses for whole
networks (the model-format registry, ``hwnas.formats``), so a block is timed as it will be deployed. The cache
is keyed by (format, exporter settings, block key); a block is converted once however many
layers, archs or tables share it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import warnings
from pathlib import Path

from ..formats import export_module, exporter_tag, get_format
from ..io import remove_stale_temp_files
from ..space.space import Slot


# Cache folders already cleaned of killed exports' temp files by this process.
_swept: set[Path] = set()


def default_cache_dir() -> Path:
    base = os.environ.get("HWNAS_CACHE_DIR") or os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / ("" if os.environ.get("HWNAS_CACHE_DIR") else "hwnas") / "blocks"


def block_file(key: str, model_format: str, cache_dir: Path | None = None) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.x-]+", "_", key)
    if len(safe) > 150:
        safe = safe[:120] + "-" + hashlib.sha1(key.encode()).hexdigest()[:12]
    return (cache_dir or default_cache_dir()) / exporter_tag(model_format) / (safe + get_format(model_format).extension)


@contextlib.contextmanager
def _no_converter_noise():
    """The converters warn about their own internals (FutureWarning etc.); not the user's business."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def export_block(key: str, slot: Slot, model_format: str, cache_dir: Path | None = None, seed: int = 0) -> Path:
    """The block's model file (exported now unless already cached)."""
    path = block_file(key, model_format, cache_dir)
    if path.is_file() and path.stat().st_size > 0:
        return path
    if path.parent not in _swept:  # once per folder and process: what killed exports left behind
        _swept.add(path.parent)
        remove_stale_temp_files(path.parent)
    import torch

    from ..nn.modules import build_block

    torch.manual_seed(seed)
    module = build_block(slot).eval()
    example = torch.randn(1, slot.c_in, slot.size, slot.size)
    with _no_converter_noise():
        return export_module(module, example, path, model_format)


def export_failure(e: Exception) -> str:
    """A converter's error as the one-line reason a table (or an export-only pass) records for the block."""
    first = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"export failed: {type(e).__name__}: {first}"[:500]


def export_network(arch, model_format: str, path: Path, seed: int = 0) -> Path:
    """A whole arch's network through the same exporter (what validate times end to end)."""
    import torch

    from ..nn.network import build_network

    torch.manual_seed(seed)
    net = build_network(arch).eval()
    space = arch.get_space()
    example = torch.randn(1, 3, space.resolution, space.resolution)
    with _no_converter_noise():
        return export_module(net, example, path, model_format)
