"""Import published YAML latency tables (ProxylessNAS's ``mobile_trim.yaml``, Once-for-All's
per-resolution ``<R>_lookup_table.yaml``) into our format.

Their keys name a block by type and shapes::

    Conv-input:224x224x3-output:112x112x32                       (stem 3x3 conv)
    expanded_conv-input:56x56x24-output:28x28x40-expand:6-kernel:5-stride:2-idskip:0
    Conv_1-input:7x7x320-output:7x7x1280                         (1x1 feature-mix conv)
    Logits-input:7x7x1280-output:1000                            (pool + classifier)

with ``count``/``mean``/``var`` per key (ms). Once-for-All's MobileNetV3 tables (the "ofa"
flavour) differ: an MBConv key ends in ``-se:{0,1}-hs:{0,1}`` (squeeze-excite, h-swish),
``expand`` is the number of middle channels (144 = 24 x 6), not the ratio, entries give
``std`` instead of ``var``, the head is ``Conv_1`` (1x1 expand conv), ``AvgPool2D`` (global
pool), ``Conv_2`` (1x1 conv without BN on the pooled 1x1 map) and ``Logits`` (classifier on
1x1), and each file holds one input resolution.

Every block of our space is matched by building its source key from the slot's shapes, so an
entry lands under exactly the key our predictor asks for. Which space parameters (widths,
width multiplier, resolution) the table describes is read off the table: the resolution from
its stem key, the rest by trying the space's known variants and keeping the one that maps
the most keys. Every source key that is not used is reported with the reason. The imported
entry's ``median_ms`` is the table's mean (no median is published).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import HwnasError
from ..space.ops import ConvBNAct, GlobalPool, MBConv, PoolLinear
from ..space.registry import create_space
from ..space.space import SearchSpace, Slot
from .keys import space_slots
from .table import LatencyTable, now_iso

# The ProxylessNAS latency-table skeleton's stage widths (its released tables use these).
PROXYLESS_TABLE_WIDTHS = (24, 40, 80, 96, 192, 320)
# The variants of each space a published table may describe (besides its resolution).
SPACE_VARIANTS: dict[str, list[dict[str, Any]]] = {
    "proxyless": [{}, {"widths": PROXYLESS_TABLE_WIDTHS}],
    "mbse": [{}, {"widths": PROXYLESS_TABLE_WIDTHS}],
    "ofa-mbv3": [{}, {"width_mult": 1.0}],
}
FLAVOUR_ACTS = {"proxyless": {"conv": ("relu6",), "mbconv": ("relu6",)},
                "ofa": {"conv": ("hswish",), "mbconv": ("relu", "hswish")}}
_KEY_RE = re.compile(r"^(?P<kind>[A-Za-z0-9_]+)-input:(?P<inp>\d+x\d+x\d+)-output:(?P<out>\d+x\d+x\d+|\d+)(?P<rest>(?:-[a-z]+:\d+)*)$")


def source_key(slot: Slot, flavour: str = "proxyless", idskip: int | None = None) -> str | None:
    """The published table's key of one of our slots (None if that kind of table has no such block)."""
    op = slot.op
    io = f"input:{slot.size}x{slot.size}x{slot.c_in}-output:{slot.out_size}x{slot.out_size}x{slot.c_out}"
    # A ProxylessNAS table times ReLU6 blocks without SE; an OFA one ReLU or h-swish blocks (its
    # convs: h-swish). A block of another activation or with SE is not in that table.
    acts = FLAVOUR_ACTS[flavour]["conv" if isinstance(op, ConvBNAct) else "mbconv"]
    if isinstance(op, (ConvBNAct, MBConv)) and (op.act not in acts or (flavour == "proxyless" and getattr(op, "se", False))):
        return None
    if isinstance(op, MBConv):
        skip = idskip if idskip is not None else int(slot.stride == 1 and slot.c_in == slot.c_out)
        if flavour == "ofa":
            return (f"expanded_conv-{io}-expand:{op.mid_channels(slot.c_in)}-kernel:{op.kernel}-stride:{slot.stride}"
                    f"-idskip:{skip}-se:{int(op.se)}-hs:{int(op.act == 'hswish')}")
        return f"expanded_conv-{io}-expand:{op.expand}-kernel:{op.kernel}-stride:{slot.stride}-idskip:{skip}"
    if isinstance(op, ConvBNAct):
        if op.kernel != 1:
            return f"Conv-{io}"
        return f"{'Conv_1' if op.bn else 'Conv_2'}-{io}"
    if isinstance(op, GlobalPool):
        return f"AvgPool2D-{io}"
    if isinstance(op, PoolLinear):
        return f"Logits-input:{slot.size}x{slot.size}x{slot.c_in}-output:{slot.c_out}"
    return None


def proxyless_key(slot: Slot, idskip: int | None = None) -> str | None:
    """The ProxylessNAS table key of one of our slots."""
    return source_key(slot, "proxyless", idskip)


def parse_source_key(key: str) -> dict[str, str] | None:
    """A published key's parts (kind, input, output and its ``name:value`` fields), or None if it is not one."""
    m = _KEY_RE.match(key)
    if not m:
        return None
    parts = {"kind": m.group("kind"), "input": m.group("inp"), "output": m.group("out")}
    for item in m.group("rest").split("-")[1:]:
        name, value = item.split(":")
        parts[name] = value
    return parts


def key_flavour(keys: list[str]) -> str:
    """``ofa`` when the MBConv keys carry se/hs flags (Once-for-All's MobileNetV3 tables), else ``proxyless``."""
    return "ofa" if any("-se:" in k and "-hs:" in k for k in keys) else "proxyless"


def read_yaml_table(path: Path) -> dict[str, dict[str, float]]:
    """``key -> {mean, std, count}``; ``var`` (ProxylessNAS) or ``std`` (Once-for-All) gives the spread."""
    import yaml

    try:
        raw = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise HwnasError(f"latency table file {str(path)!r} not found") from None
    except yaml.YAMLError as e:
        raise HwnasError(f"{str(path)!r} is not valid YAML ({str(e).splitlines()[0]}); give a ProxylessNAS- or OFA-style latency table") from None
    if not isinstance(raw, dict) or not raw:
        raise HwnasError(f"{str(path)!r} is not a ProxylessNAS- or OFA-style latency table (expected a mapping of block keys to count/mean/var or std)")
    out: dict[str, dict[str, float]] = {}
    for k, v in raw.items():
        if not isinstance(v, dict) or "mean" not in v:
            raise HwnasError(f"{str(path)!r}: entry {str(k)[:80]!r} has no 'mean'; expected count/mean/var (or std) per key")
        try:
            std = float(v["std"]) if "std" in v else math.sqrt(max(float(v.get("var", 0.0) or 0.0), 0.0))
            out[str(k)] = {"mean": float(v["mean"]), "std": std, "count": int(v.get("count", 1) or 1)}
        except (TypeError, ValueError):
            raise HwnasError(f"{str(path)!r}: entry {str(k)[:80]!r} has a non-numeric count/mean/var/std") from None
    return out


def _candidate_keys(slot: Slot, flavour: str) -> list[str]:
    main = source_key(slot, flavour)
    if main is None:
        return []
    cands = [main]
    if isinstance(slot.op, MBConv):  # some tables mark idskip by position, not shape
        cands.append(source_key(slot, flavour, 1 - int(slot.stride == 1 and slot.c_in == slot.c_out)))  # type: ignore[arg-type]
    return cands


def map_entries(space: SearchSpace, yaml_entries: dict[str, dict[str, float]], flavour: str | None = None
                ) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Our key -> entry for every block of ``space`` the YAML table has; and the YAML keys left unused."""
    flavour = flavour or key_flavour(list(yaml_entries))
    used: set[str] = set()
    entries: dict[str, dict[str, Any]] = {}
    for key, slot in space_slots(space).items():
        for c in _candidate_keys(slot, flavour):
            if c in yaml_entries:
                e = yaml_entries[c]
                entries[key] = {"median_ms": e["mean"], "p90_ms": e["mean"] + 1.2816 * e["std"], "mean_ms": e["mean"],
                                "std_ms": e["std"], "n": e["count"], "source_key": c, "measured": "imported"}
                used.add(c)
                break
    return entries, sorted(set(yaml_entries) - used)


def drop_reason(key: str, space: SearchSpace, flavour: str) -> str:
    """Why a published key has no block in ``space``: what differs from the nearest block the space has."""
    parts = parse_source_key(key)
    if parts is None:
        return "not a block key of a ProxylessNAS/OFA table (expected KIND-input:HxWxC-output:...)"
    known = [p for p in (parse_source_key(c) for s in space_slots(space).values() for c in _candidate_keys(s, flavour)) if p]
    same_kind = [p for p in known if p["kind"] == parts["kind"]]
    if not same_kind:
        return f"the space has no {parts['kind']} block"
    same_shape = [p for p in same_kind if p["input"] == parts["input"] and p["output"] == parts["output"]]
    if not same_shape:
        ins = [p for p in same_kind if p["input"] == parts["input"]]
        if ins:
            outs = sorted({p["output"] for p in ins})
            return f"no {parts['kind']} block maps {parts['input']} to {parts['output']} (the space's give {', '.join(outs)})"
        return f"no {parts['kind']} block takes input {parts['input']}"
    best = min(same_shape, key=lambda p: sum(p.get(f) != v for f, v in parts.items()))
    diffs = [f"{f}:{v} (the space has {f}:{best.get(f, '-')})" for f, v in parts.items() if best.get(f) != v]
    return "no such choice there: " + ", ".join(diffs)


@dataclass
class ImportPlan:
    """The space variant a table was mapped to, and everything that was and was not mapped."""

    space: SearchSpace
    args: dict[str, Any]
    flavour: str
    entries: dict[str, dict[str, Any]]
    dropped: dict[str, str]
    why: str
    tried: list[str] = field(default_factory=list)

    @property
    def missing(self) -> list[str]:
        return [k for k in space_slots(self.space) if k not in self.entries]


def table_resolution(keys: list[str]) -> int | None:
    """The input resolution a table was measured at, read off its stem key (``Conv-input:RxRx3-...``)."""
    for k in keys:
        p = parse_source_key(k)
        if p and p["kind"] == "Conv" and p["input"].endswith("x3"):
            h, w, _ = p["input"].split("x")
            if h == w:
                return int(h)
    return None


def _describe(args: dict[str, Any]) -> str:
    return ", ".join(f"{k}={','.join(map(str, v)) if isinstance(v, (tuple, list)) else v}" for k, v in sorted(args.items())) or "default args"


def plan_import(entries_in: dict[str, dict[str, float]], space: str, widths: tuple[int, ...] | None = None) -> ImportPlan:
    """Map a table onto the variant of ``space`` (widths, width multiplier, resolution) that explains the most keys."""
    keys = list(entries_in)
    flavour = key_flavour(keys)
    res = table_resolution(keys)
    variants = [{"widths": widths}] if widths else SPACE_VARIANTS.get(space, [{}])
    best: ImportPlan | None = None
    tried: list[str] = []
    for variant in variants:
        args = dict(variant)
        if res is not None:
            args["resolution"] = res
        try:
            sp = create_space(space, **args)
        except (TypeError, HwnasError):
            args.pop("resolution", None)
            try:
                sp = create_space(space, **args)
            except (TypeError, HwnasError):
                continue
        entries, unused = map_entries(sp, entries_in, flavour)
        tried.append(f"{_describe(args)}: {len(entries)} blocks mapped")
        if best is None or len(entries) > len(best.entries):
            best = ImportPlan(sp, dict(sp.args), flavour, entries, {k: "" for k in unused}, "")
    if best is None:
        raise HwnasError(f"space {space!r} cannot be built for this table; pick another --space")
    best.tried = tried
    read = [f"resolution {res} read off the stem key"] if res is not None and best.space.resolution == res else []
    best.why = "; ".join(read + [f"the variant that maps the most blocks (tried {'; '.join(tried)})" if len(tried) > 1
                                 else f"{tried[0]}" if tried else ""])
    best.dropped = {k: drop_reason(k, best.space, flavour) for k in best.dropped}
    return best


def _best_other_space(entries_in: dict[str, dict[str, float]], exclude: str) -> tuple[str, int] | None:
    best: tuple[str, int] | None = None
    for name in SPACE_VARIANTS:
        if name == exclude:
            continue
        n = len(plan_import(entries_in, name).entries)
        if n and (best is None or n > best[1]):
            best = (name, n)
    return best


def import_yaml_table(path: str | Path, *, device: str, space: str | None = None, backend: str = "imported",
                      out: str | Path | None = None, widths: tuple[int, ...] | None = None,
                      fingerprint: dict[str, Any] | None = None, provenance: dict[str, Any] | None = None,
                      force: bool = False) -> tuple[LatencyTable, ImportPlan]:
    """Import one YAML table for a user-named device (``space`` None: the space that maps the most keys).

    Returns the saved table and the plan: the space variant chosen and why, the keys dropped
    with their reasons, the blocks of the space the table lacks. An existing table at the
    output path (a shipped one carries its source and license) is replaced only with ``force``.
    """
    if not device or not device.strip():
        raise HwnasError("name the device the table was measured on with --device NAME")
    src = Path(path)
    entries_in = read_yaml_table(src)
    if space is None:
        plans = [plan_import(entries_in, name) for name in SPACE_VARIANTS]
        plan = max(plans, key=lambda p: (len(p.entries), -len(p.missing)))  # on a tie, the space the table covers whole
        plan.why = f"space {plan.space.name!r} maps the most blocks; " + plan.why
    else:
        plan = plan_import(entries_in, space, widths)
    if not plan.entries or plan.missing:
        other = _best_other_space(entries_in, plan.space.name)
        if not plan.entries or (other is not None and other[1] > len(plan.entries)):
            advice = (f"space {other[0]!r} maps {other[1]} of its {len(entries_in)} keys: use --space {other[0]}" if other
                      else f"no space of hwnas ({', '.join(SPACE_VARIANTS)}) matches its keys; it is not a ProxylessNAS or OFA MobileNetV3 table")
            what = "no key" if not plan.entries else f"only {len(plan.entries)} of {len(entries_in)} keys"
            raise HwnasError(f"{what} of {str(src)!r} match{'es' if not plan.entries else ''} a block of space {plan.space.name!r} "
                             f"({'; '.join(plan.tried)}); {advice}")
    dev = {"name": device, "model": device, "runtime": backend, **(fingerprint or {}), "imported_from": src.name}
    protocol = {"source": f"imported from {src.name} ({'Once-for-All' if plan.flavour == 'ofa' else 'ProxylessNAS'}-style YAML: "
                          f"count/mean/{'std' if plan.flavour == 'ofa' else 'var'})",
                "statistic": "mean (the source publishes no median)", "imported": now_iso(), **(provenance or {})}
    table = LatencyTable(device=dev, backend=backend, space=plan.space.name, entries=plan.entries, protocol=protocol,
                         space_args={k: list(v) if isinstance(v, tuple) else v for k, v in plan.args.items()})
    if out is None:
        res = f"-{plan.space.resolution}" if table_resolution(list(entries_in)) == plan.space.resolution else ""
        out = Path("latency_tables") / f"{device}-{plan.space.name}{res}-{backend}.json"
    if Path(out).exists() and not force:
        raise HwnasError(f"{str(out)!r} already exists; importing {src.name} would replace it: name another device "
                         f"(--device) or output (--out) for a new table, or pass --force to replace it")
    table.save(out)
    return table, plan
