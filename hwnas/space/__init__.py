"""Search spaces as data: ops, layers, archs, FLOPs/params, sampling."""

from .arch import Arch, resolve_arch
from .ops import ConvBNAct, Identity, MBConv, Op, PoolLinear, make_divisible
from .registry import create_space, list_spaces, register_space
from .space import Layer, SearchSpace, Slot

__all__ = [
    "Arch", "resolve_arch", "ConvBNAct", "Identity", "MBConv", "Op", "PoolLinear", "make_divisible",
    "create_space", "list_spaces", "register_space", "Layer", "SearchSpace", "Slot",
]
