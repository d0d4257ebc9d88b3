"""ProxylessNAS / GreedyNAS mobile skeleton (GreedyNAS Table 5): 21 searchable MBConv layers, 7^21."""

from __future__ import annotations

from typing import Sequence

from ..ops import ConvBNAct, Identity, MBConv, PoolLinear, make_divisible
from ..registry import register_space
from ..space import SearchSpace, Slot, build_layers, mbconv_ops

PROXYLESS_MOBILE_WIDTHS = (32, 40, 80, 96, 192, 320)
DEPTHS = (4, 4, 4, 4, 4, 1)
STRIDES = (2, 2, 2, 1, 2, 1)


def mobile_skeleton(
    name: str,
    ops: Sequence,
    widths: Sequence[int] = PROXYLESS_MOBILE_WIDTHS,
    width_mult: float = 1.0,
    resolution: int = 224,
    num_classes: int = 1000,
    act: str = "relu6",
    description: str = "",
) -> SearchSpace:
    if len(widths) != len(DEPTHS):
        raise ValueError(f"{name}: expected {len(DEPTHS)} stage widths, got {len(widths)}")
    w = [make_divisible(c * width_mult) for c in widths]
    stem_c = make_divisible(32 * width_mult)
    first_c = make_divisible(16 * width_mult)
    head_c = make_divisible(1280 * width_mult) if width_mult > 1.0 else 1280
    size = (resolution + 1) // 2
    stem = (
        Slot(ConvBNAct(3, act), 3, stem_c, 2, resolution),
        Slot(MBConv(3, 1, act=act), stem_c, first_c, 1, size),
    )
    layers = build_layers(first_c, size, DEPTHS, w, STRIDES, ops, identity_in_first=False)
    last = layers[-1]
    final = (last.size + last.stride - 1) // last.stride
    head = (Slot(ConvBNAct(1, act), last.c_out, head_c, 1, final), Slot(PoolLinear(), head_c, num_classes, 1, final))
    return SearchSpace(name, resolution, num_classes, stem, layers, head, tuple(ops), {}, description)


@register_space("proxyless")
def proxyless(widths: Sequence[int] = PROXYLESS_MOBILE_WIDTHS, width_mult: float = 1.0, resolution: int = 224, num_classes: int = 1000) -> SearchSpace:
    ops = [Identity(), *mbconv_ops((3, 5, 7), (3, 6))]
    return mobile_skeleton("proxyless", ops, widths, width_mult, resolution, num_classes,
                           description="ProxylessNAS mobile skeleton, MBConv k{3,5,7} x e{3,6} + identity (GreedyNAS)")
