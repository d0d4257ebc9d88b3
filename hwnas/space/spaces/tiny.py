"""A small 32x32 space that trains in seconds on a CPU: the built-in default."""

from __future__ import annotations

from ..ops import ConvBNAct, Identity, PoolLinear
from ..registry import register_space
from ..space import SearchSpace, Slot, build_layers, mbconv_ops


@register_space("tiny")
def tiny(num_classes: int = 10) -> SearchSpace:
    ops = [Identity(), *mbconv_ops((3, 5), (1, 3, 6), act="relu")]
    stem = (Slot(ConvBNAct(3, "relu"), 3, 16, 1, 32),)
    layers = build_layers(16, 32, (2, 2, 2), (24, 40, 64), (1, 2, 2), ops, identity_in_first=False)
    head = (Slot(ConvBNAct(1, "relu"), 64, 128, 1, 8), Slot(PoolLinear(), 128, num_classes, 1, 8))
    return SearchSpace("tiny", 32, num_classes, stem, layers, head, tuple(ops), {},
                       "6 layers, MBConv k{3,5} x e{1,3,6} + identity, 32x32 input")
