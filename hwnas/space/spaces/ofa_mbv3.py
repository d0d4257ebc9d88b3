"""Once-for-All's MobileNetV3 space, ``ofa_mbv3_d234_e346_k357_w1.2`` (Cai et al., ICLR 2020).

Skeleton (OFA's ``OFAMobileNetV3``): a 3x3 stride-2 stem conv with h-swish; a fixed first
block (MBConv expand 1, kernel 3, ReLU, residual); 5 stages of 4 searchable layers with
stride 2, 2, 2, 1, 2, activation ReLU, ReLU, h-swish, h-swish, h-swish and SE on stages
2, 4 and 5 (reduction 4 of the middle channels rounded to 8, hard-sigmoid gate); a 1x1
expand conv with h-swish, a global pool, a 1x1 conv without BN (and without bias) with
h-swish, and the classifier. Widths are the base widths 16, 16, 24, 40, 80, 112, 160, 960,
1280 times ``width_mult``, rounded with ``make_divisible(., 8)`` as OFA does (1.2 gives 24,
24, 32, 48, 96, 136, 192, 1152, 1536). A middle width is ``c_in * expand``: OFA rounds
``round(c_in * expand)`` to 8, which leaves it unchanged since every width is a multiple of 8.

Elastic depth (2, 3 or 4 blocks per stage) is encoded as a "skip" choice (op ``id``) on the
third and fourth layer of each stage; the first two layers offer only the 9 MBConvs
(kernel 3/5/7 x expand 3/4/6), so a stage never has fewer than 2 blocks. A skipped layer
is a no-op (its input and output shapes are equal), so a stage's depth is its count of
non-skip layers, and a stage with its third layer skipped and its fourth not is the same
network as OFA's depth 3 with that fourth block third (``ofa_config`` gives OFA's
``ks``/``e``/``d`` lists).
"""

from __future__ import annotations

from typing import Any

from ...errors import HwnasError
from ..arch import Arch
from ..ops import ConvBNAct, GlobalPool, Identity, MBConv, PoolLinear, make_divisible
from ..registry import register_space
from ..space import Layer, SearchSpace, Slot

BASE_WIDTHS = (16, 16, 24, 40, 80, 112, 160, 960, 1280)
STRIDES = (2, 2, 2, 1, 2)
ACTS = ("relu", "relu", "hswish", "hswish", "hswish")
SE = (False, True, False, True, True)
KERNELS = (3, 5, 7)
EXPANDS = (3, 4, 6)
MAX_DEPTH = 4
MIN_DEPTH = 2
RESOLUTIONS = tuple(range(128, 225, 4))


def stage_ops(stage: int) -> tuple[MBConv, ...]:
    return tuple(MBConv(k, e, SE[stage], ACTS[stage]) for k in KERNELS for e in EXPANDS)


def ofa_widths(width_mult: float) -> tuple[int, ...]:
    """OFA's rounded widths: stem, first block, the 5 stages, final expand, feature mix."""
    return tuple(make_divisible(w * width_mult, 8) for w in BASE_WIDTHS)


@register_space("ofa-mbv3")
def ofa_mbv3(width_mult: float = 1.2, resolution: int = 224, num_classes: int = 1000) -> SearchSpace:
    if resolution not in RESOLUTIONS:
        raise HwnasError(f"ofa-mbv3 takes input resolutions 128-224 in steps of 4, not {resolution}; pick one such as 224")
    if not 0.1 <= float(width_mult) <= 4.0:
        raise HwnasError(f"ofa-mbv3 width_mult {width_mult} is out of range; use e.g. 1.0 or 1.2")
    w = ofa_widths(float(width_mult))
    stem_c, first_c, stage_w, final_c, mix_c = w[0], w[1], w[2:7], w[7], w[8]
    size = (resolution + 1) // 2
    stem = (
        Slot(ConvBNAct(3, "hswish"), 3, stem_c, 2, resolution),
        Slot(MBConv(3, 1, False, "relu"), stem_c, first_c, 1, size),
    )
    layers: list[Layer] = []
    c_in = first_c
    for stage, (width, stride) in enumerate(zip(stage_w, STRIDES)):
        mb = stage_ops(stage)
        for j in range(MAX_DEPTH):
            s = stride if j == 0 else 1
            choices = mb if j < MIN_DEPTH else (*mb, Identity())
            layers.append(Layer(len(layers), stage, c_in, width, s, size, choices))
            size = (size + s - 1) // s
            c_in = width
    head = (
        Slot(ConvBNAct(1, "hswish"), c_in, final_c, 1, size),
        Slot(GlobalPool(), final_c, final_c, 1, size),
        Slot(ConvBNAct(1, "hswish", bn=False), final_c, mix_c, 1, 1),
        Slot(PoolLinear(), mix_c, num_classes, 1, 1),
    )
    ops = (Identity(), *(op for stage in range(len(STRIDES)) for op in stage_ops(stage)))
    return SearchSpace("ofa-mbv3", resolution, num_classes, stem, tuple(layers), head, ops, {},
                       f"Once-for-All MobileNetV3 (w{width_mult:g}): 5 stages x depth 2-4 (skip on layers 3-4), "
                       "MBConv k{3,5,7} x e{3,4,6}, SE/h-swish as MobileNetV3")


def ofa_config(arch: Arch) -> dict[str, Any]:
    """OFA's ``set_active_subnet`` arguments of an arch: 20 ``ks``/``e`` (skipped blocks last) and 5 ``d``."""
    space = arch.get_space()
    if space.name != "ofa-mbv3":
        raise HwnasError(f"arch is for space {space.name!r}; OFA's config exists only for ofa-mbv3")
    ks: list[int] = []
    es: list[int] = []
    ds: list[int] = []
    for stage in range(len(STRIDES)):
        ops = [layer.choices[i] for layer, i in zip(space.layers, space.choice_indices(arch)) if layer.stage == stage]
        active = [op for op in ops if isinstance(op, MBConv)]
        ds.append(len(active))
        ks += [op.kernel for op in active] + [KERNELS[0]] * (MAX_DEPTH - len(active))
        es += [op.expand for op in active] + [EXPANDS[0]] * (MAX_DEPTH - len(active))
    return {"ks": ks, "e": es, "d": ds}
