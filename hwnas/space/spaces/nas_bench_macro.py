"""NAS-Bench-Macro (Su et al., CVPR 2021): 8 layers x {id, k3e3, k5e6} on CIFAR-10, 3^8 = 6561 archs.

The op order (id, k3e3, k5e6) makes our compact encoding equal to the benchmark's own keys.
"""

from __future__ import annotations

from ..ops import ConvBNAct, Identity, MBConv, PoolLinear
from ..registry import register_space
from ..space import SearchSpace, Slot, build_layers


@register_space("nas-bench-macro")
def nas_bench_macro(num_classes: int = 10) -> SearchSpace:
    ops = [Identity(), MBConv(3, 3, act="relu"), MBConv(5, 6, act="relu")]
    stem = (Slot(ConvBNAct(3, "relu"), 3, 32, 1, 32),)
    layers = build_layers(32, 32, (2, 3, 3), (64, 128, 256), (2, 2, 2), ops, identity_in_first=True)
    head = (Slot(ConvBNAct(1, "relu"), 256, 1280, 1, 4), Slot(PoolLinear(), 1280, num_classes, 1, 4))
    return SearchSpace("nas-bench-macro", 32, num_classes, stem, layers, head, tuple(ops), {},
                       "NAS-Bench-Macro: 8 layers {id, k3e3, k5e6}, stages [2,3,3], CIFAR-10 accuracy table")
