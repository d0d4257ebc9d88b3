"""Analytic multiply-adds and parameters per slot.

Conventions (the same as the ProxylessNAS/OFA profilers and ``torch.utils.flop_counter`` / 2):
multiply-adds of convolutions and linear layers only; BN, activations, pooling and residual
adds are free. Parameters count every weight, bias and BN affine.
"""

from __future__ import annotations

from .ops import ConvBNAct, GlobalPool, Identity, MBConv, PoolLinear
from .space import Slot


def conv_cost(c_in: int, c_out: int, k: int, out_size: int, groups: int = 1, bias: bool = False, bn: bool = True) -> tuple[int, int]:
    weights = k * k * (c_in // groups) * c_out
    flops = weights * out_size * out_size
    params = weights + (c_out if bias else 0) + (2 * c_out if bn else 0)
    return flops, params


def slot_cost(slot: Slot) -> tuple[int, int]:
    op, out = slot.op, slot.out_size
    if isinstance(op, Identity):
        if slot.c_in == slot.c_out and slot.stride == 1:
            return 0, 0
        return conv_cost(slot.c_in, slot.c_out, 1, out)
    if isinstance(op, ConvBNAct):
        return conv_cost(slot.c_in, slot.c_out, op.kernel, out, bn=op.bn)
    if isinstance(op, GlobalPool):
        return 0, 0
    if isinstance(op, PoolLinear):
        return slot.c_in * slot.c_out, slot.c_in * slot.c_out + slot.c_out
    if isinstance(op, MBConv):
        mid = op.mid_channels(slot.c_in)
        flops = params = 0
        parts = []
        if op.expand != 1:
            parts.append(conv_cost(slot.c_in, mid, 1, slot.size))
        parts.append(conv_cost(mid, mid, op.kernel, out, groups=mid))
        if op.se:
            r = op.se_channels(slot.c_in)
            parts.append(conv_cost(mid, r, 1, 1, bias=True, bn=False))
            parts.append(conv_cost(r, mid, 1, 1, bias=True, bn=False))
        parts.append(conv_cost(mid, slot.c_out, 1, out))
        for f, p in parts:
            flops += f
            params += p
        return flops, params
    raise TypeError(f"no cost rule for {op!r}")
