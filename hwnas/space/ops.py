"""Candidate operations as frozen, hashable data.

An op knows nothing about PyTorch: it is the description shared by the FLOPs counter, the
block-key builder, the network builder and the latency table, so all of them agree on what a
layer computes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

ACTIVATIONS = ("relu", "relu6", "hswish")


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round channels the way MobileNet-family code does (never drop more than 10%)."""
    new = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return new


@dataclass(frozen=True)
class MBConv:
    """MobileNetV2 inverted residual: 1x1 expand, kxk depthwise, optional SE, 1x1 project."""

    kernel: int
    expand: int
    se: bool = False
    act: str = "relu6"

    def __post_init__(self) -> None:
        if self.kernel % 2 != 1 or self.kernel < 1:
            raise ValueError(f"MBConv kernel must be odd, got {self.kernel}")
        if self.expand < 1:
            raise ValueError(f"MBConv expand must be >= 1, got {self.expand}")
        if self.act not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.act!r}; known: {', '.join(ACTIVATIONS)}")

    @property
    def id(self) -> str:
        return f"k{self.kernel}e{self.expand}" + ("_se" if self.se else "") + ("_hs" if self.act == "hswish" else "")

    def mid_channels(self, c_in: int) -> int:
        return c_in * self.expand

    def se_channels(self, c_in: int) -> int:
        return make_divisible(self.mid_channels(c_in) / 4)


@dataclass(frozen=True)
class Identity:
    """Skip the layer. Where channels or stride change it is a strided 1x1 conv + BN."""

    @property
    def id(self) -> str:
        return "id"


@dataclass(frozen=True)
class ConvBNAct:
    """A plain conv + BN + activation: the stem and the head's feature-mix layer.

    ``bn=False`` is MobileNetV3's 1x1 conv after the global pool: no BN and no bias.
    """

    kernel: int
    act: str = "relu6"
    bn: bool = True

    @property
    def id(self) -> str:
        return f"conv{self.kernel}" + ("" if self.bn else "_nobn")


@dataclass(frozen=True)
class GlobalPool:
    """Global average pool to 1x1 (MobileNetV3 pools before its last 1x1 conv)."""

    @property
    def id(self) -> str:
        return "pool"


@dataclass(frozen=True)
class PoolLinear:
    """Global average pool then the classifier (on a 1x1 input the pool is a no-op)."""

    @property
    def id(self) -> str:
        return "pool_fc"


Op = Union[MBConv, Identity, ConvBNAct, GlobalPool, PoolLinear]
