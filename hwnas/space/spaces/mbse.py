"""The GreedyNAS large space: the proxyless skeleton with an SE option per MBConv, 13^21."""

from __future__ import annotations

from typing import Sequence

from ..ops import Identity
from ..registry import register_space
from ..space import SearchSpace, mbconv_ops
from .proxyless import PROXYLESS_MOBILE_WIDTHS, mobile_skeleton


@register_space("mbse")
def mbse(widths: Sequence[int] = PROXYLESS_MOBILE_WIDTHS, width_mult: float = 1.0, resolution: int = 224, num_classes: int = 1000) -> SearchSpace:
    ops = [Identity(), *mbconv_ops((3, 5, 7), (3, 6), se=(False, True))]
    return mobile_skeleton("mbse", ops, widths, width_mult, resolution, num_classes,
                           description="proxyless skeleton with optional SE per MBConv (GreedyNAS large space)")
