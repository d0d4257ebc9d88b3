"""Op modules built from the op descriptions in ``hwnas.space.ops``.

The module tree of a block is the same wherever it is built (standalone net, supernet choice,
profiled block), so weights copy across by name and the exported block is the deployed block.
"""

from __future__ import annotations

import torch
from torch import nn

from ..space.ops import ConvBNAct, GlobalPool, Identity, MBConv, PoolLinear
from ..space.space import Slot


def activation(name: str) -> nn.Module:
    if name == "relu":
        return nn.ReLU(inplace=True)
    if name == "relu6":
        return nn.ReLU6(inplace=True)
    if name == "hswish":
        return nn.Hardswish(inplace=True)
    raise ValueError(f"unknown activation {name!r}")


class ConvBN(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, k: int, stride: int = 1, groups: int = 1, act: str | None = None, bn: bool = True) -> None:
        layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, k, stride, k // 2, groups=groups, bias=False)]
        if bn:
            layers.append(nn.BatchNorm2d(c_out))
        if act:
            layers.append(activation(act))
        super().__init__(*layers)


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, reduced: int) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(channels, reduced, 1, bias=True)
        self.act = nn.ReLU(inplace=True)
        self.expand = nn.Conv2d(reduced, channels, 1, bias=True)
        self.gate = nn.Hardsigmoid(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        return x * self.gate(self.expand(self.act(self.reduce(s))))


class MBConvBlock(nn.Module):
    def __init__(self, op: MBConv, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        mid = op.mid_channels(c_in)
        self.expand = ConvBN(c_in, mid, 1, act=op.act) if op.expand != 1 else nn.Identity()
        self.depthwise = ConvBN(mid, mid, op.kernel, stride, groups=mid, act=op.act)
        self.se = SqueezeExcite(mid, op.se_channels(c_in)) if op.se else nn.Identity()
        self.project = ConvBN(mid, c_out, 1)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.se(self.depthwise(self.expand(x))))
        return x + y if self.residual else y


class IdentityBlock(nn.Module):
    """A true identity, or a strided 1x1 conv + BN where the shape changes (NAS-Bench-Macro)."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.proj = ConvBN(c_in, c_out, 1, stride) if (c_in != c_out or stride != 1) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.proj is None else self.proj(x)


class GlobalPoolBlock(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean((2, 3), keepdim=True)


class PoolLinearBlock(nn.Module):
    def __init__(self, c_in: int, num_classes: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc = nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(torch.flatten(x.mean((2, 3)), 1)))


def build_block(slot: Slot, dropout: float = 0.0) -> nn.Module:
    """The module for one op at one position."""
    op = slot.op
    if isinstance(op, MBConv):
        return MBConvBlock(op, slot.c_in, slot.c_out, slot.stride)
    if isinstance(op, Identity):
        return IdentityBlock(slot.c_in, slot.c_out, slot.stride)
    if isinstance(op, ConvBNAct):
        return ConvBN(slot.c_in, slot.c_out, op.kernel, slot.stride, act=op.act, bn=op.bn)
    if isinstance(op, GlobalPool):
        return GlobalPoolBlock()
    if isinstance(op, PoolLinear):
        return PoolLinearBlock(slot.c_in, slot.c_out, dropout)
    raise TypeError(f"no module for op {op!r}")
