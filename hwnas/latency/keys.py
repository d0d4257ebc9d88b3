"""The canonical block key: the one string that names a measurable unit on one input shape.

Two layers with the same key share one measurement, so a key must hold everything that
changes the block's run time (op, shapes, stride, SE, activation) and nothing else.
"""

from __future__ import annotations

from ..space.arch import Arch
from ..space.ops import ConvBNAct, GlobalPool, Identity, MBConv, PoolLinear
from ..space.space import SearchSpace, Slot


def _shape(size: int, c: int) -> str:
    return f"{size}x{size}x{c}"


def block_key(slot: Slot) -> str | None:
    """The slot's key, or None for a true identity (it costs nothing and is not a block)."""
    op = slot.op
    io = f"in:{_shape(slot.size, slot.c_in)}-out:{_shape(slot.out_size, slot.c_out)}"
    if isinstance(op, MBConv):
        return f"mbconv-{io}-k{op.kernel}-e{op.expand}-s{slot.stride}-se{int(op.se)}-{op.act}"
    if isinstance(op, Identity):
        if slot.c_in == slot.c_out and slot.stride == 1:
            return None
        return f"proj-{io}-s{slot.stride}"
    if isinstance(op, ConvBNAct):
        return f"conv-{io}-k{op.kernel}-s{slot.stride}-{op.act}" + ("" if op.bn else "-nobn")
    if isinstance(op, GlobalPool):
        return f"pool-in:{_shape(slot.size, slot.c_in)}"
    if isinstance(op, PoolLinear):
        return f"pool_fc-in:{_shape(slot.size, slot.c_in)}-out:{slot.c_out}"
    raise TypeError(f"no key rule for {op!r}")


def arch_keys(space: SearchSpace, arch: Arch) -> list[str]:
    """The keys of every block of an arch's network, in order (identities left out)."""
    return [k for k in (block_key(s) for s in space.slots(arch)) if k is not None]


def space_slots(space: SearchSpace) -> dict[str, Slot]:
    """Every distinct block of a space: what a full profile of the space measures."""
    out: dict[str, Slot] = {}
    for slot in space.stem:
        out.setdefault(block_key(slot), slot)  # type: ignore[arg-type]
    for layer in space.layers:
        for op in layer.choices:
            s = layer.slot(op)
            k = block_key(s)
            if k is not None:
                out.setdefault(k, s)
    for slot in space.head:
        out.setdefault(block_key(slot), slot)  # type: ignore[arg-type]
    return out
