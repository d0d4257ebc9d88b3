"""Import ProxylessNAS-style YAML latency tables (e.g. its ``mobile_trim.yaml``) into our format.

Their keys name a block by type and shapes::

    Conv-input:224x224x3-output:112x112x32                       (stem 3x3 conv)
    expanded_conv-input:56x56x24-output:28x28x40-expand:6-kernel:5-stride:2-idskip:0
    Conv_1-input:7x7x320-output:7x7x1280                         (1x1 feature-mix conv)
    Logits-input:7x7x1280-output:1000                            (pool + classifier)

with ``count``/``mean``/``var`` per key (ms). Every block of our space is matched by
building its ProxylessNAS key from the slot's shapes, so an entry lands under exactly the
key our predictor asks for; table keys the space does not use are counted, not guessed at.
The imported entry's ``median_ms`` is the table's mean (no median is published).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ..errors import HwnasError
from ..space.ops import ConvBNAct, Identity, MBConv, PoolLinear
from ..space.registry import create_space
from ..space.space import SearchSpace, Slot
from .keys import space_slots
from .table import LatencyTable, now_iso

# The ProxylessNAS latency-table skeleton's stage widths (its released tables use these).
PROXYLESS_TABLE_WIDTHS = (24, 40, 80, 96, 192, 320)


def proxyless_key(slot: Slot, idskip: int | None = None) -> str | None:
    """The ProxylessNAS table key of one of our slots (None if that table has no such block)."""
    op = slot.op
    io = f"input:{slot.size}x{slot.size}x{slot.c_in}-output:{slot.out_size}x{slot.out_size}x{slot.c_out}"
    if isinstance(op, MBConv):
        skip = idskip if idskip is not None else int(slot.stride == 1 and slot.c_in == slot.c_out)
        return f"expanded_conv-{io}-expand:{op.expand}-kernel:{op.kernel}-stride:{slot.stride}-idskip:{skip}"
    if isinstance(op, ConvBNAct):
        return f"{'Conv_1' if op.kernel == 1 else 'Conv'}-{io}"
    if isinstance(op, PoolLinear):
        return f"Logits-input:{slot.size}x{slot.size}x{slot.c_in}-output:{slot.c_out}"
    if isinstance(op, Identity):
        return None
    return None


def read_yaml_table(path: Path) -> dict[str, dict[str, float]]:
    import yaml

    try:
        raw = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise HwnasError(f"latency table file {str(path)!r} not found") from None
    except yaml.YAMLError as e:
        raise HwnasError(f"{str(path)!r} is not valid YAML ({str(e).splitlines()[0]}); give a ProxylessNAS-style latency table") from None
    if not isinstance(raw, dict) or not raw:
        raise HwnasError(f"{str(path)!r} is not a ProxylessNAS-style latency table (expected a mapping of block keys to count/mean/var)")
    out: dict[str, dict[str, float]] = {}
    for k, v in raw.items():
        if not isinstance(v, dict) or "mean" not in v:
            raise HwnasError(f"{str(path)!r}: entry {str(k)[:80]!r} has no 'mean'; expected count/mean/var per key")
        try:
            out[str(k)] = {"mean": float(v["mean"]), "var": float(v.get("var", 0.0) or 0.0), "count": int(v.get("count", 1) or 1)}
        except (TypeError, ValueError):
            raise HwnasError(f"{str(path)!r}: entry {str(k)[:80]!r} has a non-numeric count/mean/var") from None
    return out


def map_entries(space: SearchSpace, yaml_entries: dict[str, dict[str, float]]) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Our key -> entry for every block of ``space`` the YAML table has; and the YAML keys left unused."""
    used: set[str] = set()
    entries: dict[str, dict[str, Any]] = {}
    for key, slot in space_slots(space).items():
        cands = [proxyless_key(slot)]
        if isinstance(slot.op, MBConv):  # some tables mark idskip by position, not shape
            cands.append(proxyless_key(slot, 1 - int(slot.stride == 1 and slot.c_in == slot.c_out)))
            mid = slot.c_in * slot.op.expand  # OFA-style tables give the expanded width
            cands.append(proxyless_key(slot).replace(f"-expand:{slot.op.expand}-", f"-expand:{mid}-"))
        for c in cands:
            if c is not None and c in yaml_entries:
                e = yaml_entries[c]
                std = math.sqrt(max(e["var"], 0.0))
                entries[key] = {"median_ms": e["mean"], "p90_ms": e["mean"] + 1.2816 * std, "mean_ms": e["mean"], "std_ms": std,
                                "n": e["count"], "source_key": c, "measured": "imported"}
                used.add(c)
                break
    return entries, sorted(set(yaml_entries) - used)


def import_proxyless_yaml(path: str | Path, *, device: str, space: str = "proxyless", backend: str = "imported",
                          out: str | Path | None = None, widths: tuple[int, ...] | None = None) -> tuple[LatencyTable, dict[str, Any]]:
    """Import the YAML table for a user-named device; returns the saved table and a short report."""
    if not device or not device.strip():
        raise HwnasError("name the device the table was measured on with --device NAME")
    entries_in = read_yaml_table(Path(path))
    tries: list[dict[str, Any]] = [{"widths": widths}] if widths else [{}, {"widths": PROXYLESS_TABLE_WIDTHS}]
    best: tuple[SearchSpace, dict[str, Any], dict[str, dict[str, Any]], list[str]] | None = None
    for args in tries:
        try:
            sp = create_space(space, **args)
        except (TypeError, HwnasError):  # a space without stage widths
            continue
        entries, unused = map_entries(sp, entries_in)
        if best is None or len(entries) > len(best[2]):
            best = (sp, args, entries, unused)
    if best is None or not best[2]:
        raise HwnasError(f"no key of {str(path)!r} matches a block of space {space!r}; check --space and --widths")
    sp, args, entries, unused = best
    missing = [k for k in space_slots(sp) if k not in entries]
    table = LatencyTable(device={"name": device, "model": device, "runtime": backend, "imported_from": Path(path).name},
                         backend=backend, space=sp.name, entries=entries,
                         protocol={"source": f"imported from {Path(path).name} (ProxylessNAS-style YAML: count/mean/var)",
                                   "statistic": "mean (the source publishes no median)", "imported": now_iso()},
                         space_args={k: list(v) if isinstance(v, tuple) else v for k, v in args.items()})
    dest = Path(out) if out else Path("latency_tables") / f"{device}-{sp.name}-{backend}.json"
    table.save(dest)
    return table, {"mapped": len(entries), "unmapped": len(unused), "unmapped_keys": unused[:20], "missing_blocks": missing,
                   "space_args": table.space_args}
