"""Converting the files a timing job times, without timing them (``--export-only``).

``hwnas profile`` and ``hwnas validate`` convert each block or whole network before timing it,
into the caches of ``blocks.py`` and ``validate.network_file``. A conversion costs seconds to
minutes of CPU (a whole MobileNetV3 to TFLite: minutes on a loaded machine), and on a shared
machine the timing job is the one that must run alone and at normal priority. Filling the same
caches first, at whatever priority the caller likes and without the device, leaves the timed
run nothing to convert: it holds the device only to time. Nothing here measures or writes a table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..device.profiles import DeviceProfile
from ..space.space import SearchSpace
from .backends.base import create_backend
from .blocks import block_file, export_block, export_failure
from .drift import anchor_file
from .keys import space_slots
from .lookup import table_model_format
from .profiler import ProfileEvent, resolve_device, resolve_space
from .table import LatencyTable
from .validate import export_networks, validation_archs


@dataclass
class Prepared:
    """What an export-only pass left in the cache."""

    what: str  # "blocks" | "networks"
    total: int
    converted: int  # converted by this pass (the rest were cached already)
    failed: dict[str, str] = field(default_factory=dict)  # key -> reason

    @property
    def ready(self) -> int:
        return self.total - len(self.failed)


def backend_format(device: DeviceProfile | str, backend: str) -> str:
    """The model format ``backend`` times on ``device`` (building the backend connects to nothing)."""
    be = create_backend(backend, device=resolve_device(device))
    try:
        return be.model_format
    finally:
        be.close()


def prepare_blocks(space: SearchSpace | str, model_format: str, *, space_args: dict[str, Any] | None = None,
                   cache_dir: Path | None = None, anchor: bool = True,
                   progress: Callable[[ProfileEvent], None] | None = None) -> Prepared:
    """Every block of ``space`` (and the drift anchor) as a ``model_format`` file in the block cache.

    A block that fails to convert is reported, not recorded anywhere: the profile that follows
    tries it again and records the failure in its table.
    """
    sp = resolve_space(space, space_args)
    slots = space_slots(sp)
    out = Prepared("blocks", len(slots), 0)
    for i, (key, slot) in enumerate(slots.items()):
        path = block_file(key, model_format, cache_dir)
        cached = path.is_file() and path.stat().st_size > 0
        try:
            export_block(key, slot, model_format, cache_dir)
            out.converted += not cached
        except Exception as e:  # noqa: BLE001  (any converter error: report it and go on)
            out.failed[key] = export_failure(e)
        if progress:
            progress(ProfileEvent("export", i + 1, len(slots), key))
    if anchor:
        anchor_file(sp, model_format, cache_dir)
    return out


def prepare_validation(device: DeviceProfile | str, table: LatencyTable | str | Path, *, samples: int = 20, seed: int = 0,
                       cache_dir: Path | None = None, force: bool = False,
                       progress: Callable[[ProfileEvent], None] | None = None) -> Prepared:
    """The whole networks ``hwnas validate --samples N --seed S`` times for ``table`` (and its anchor)."""
    from .. import quick  # noqa: PLC0415

    tab = table if isinstance(table, LatencyTable) else LatencyTable.load(table, force=force)
    model_format = table_model_format(tab) or backend_format(device, tab.backend)
    samples = quick.cap("validate_samples", samples) or samples  # what validate_table samples
    space, archs = validation_archs(tab, samples, seed)
    _, converted, _ = export_networks(archs, model_format, cache_dir, progress)
    if (tab.protocol.get("anchor") or {}).get("reference_ms"):
        anchor_file(space, model_format, cache_dir)
    return Prepared("networks", len(archs), converted)
