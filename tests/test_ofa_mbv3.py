"""The ofa-mbv3 space against a plain-torch rebuild of Once-for-All's own MobileNetV3 subnet.

The reference below is written from OFA's definition (``OFAMobileNetV3`` with its
``ConvLayer``/``MBConvLayer``/``SEModule``/``LinearLayer`` and ``make_divisible``), with no hwnas
code in it: if hwnas's space, cost rules or modules drift from OFA, the counts disagree.
"""

import json

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from hwnas.errors import HwnasError
from hwnas.space import create_space

# ---- OFA's definition, rebuilt plainly ---------------------------------------------------


def ofa_make_divisible(v, divisor=8, min_val=None):
    min_val = min_val or divisor
    new_v = max(min_val, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def ofa_act(name):
    return {"relu": nn.ReLU(), "h_swish": nn.Hardswish()}[name]


def ofa_conv_layer(c_in, c_out, k, stride, act, use_bn=True):
    mods = [nn.Conv2d(c_in, c_out, k, stride, k // 2, bias=False)]
    if use_bn:
        mods.append(nn.BatchNorm2d(c_out))
    mods.append(ofa_act(act))
    return nn.Sequential(*mods)


class OfaSE(nn.Module):
    def __init__(self, channel):
        super().__init__()
        mid = ofa_make_divisible(channel // 4, 8)
        self.fc = nn.Sequential(nn.Conv2d(channel, mid, 1, bias=True), nn.ReLU(), nn.Conv2d(mid, channel, 1, bias=True), nn.Hardsigmoid())

    def forward(self, x):
        return x * self.fc(x.mean(3, keepdim=True).mean(2, keepdim=True))


class OfaMBConv(nn.Module):
    def __init__(self, c_in, c_out, k, stride, expand, act, use_se):
        super().__init__()
        mid = ofa_make_divisible(round(c_in * expand), 8)
        self.inverted_bottleneck = None if expand == 1 else ofa_conv_layer(c_in, mid, 1, 1, act)
        dw = [nn.Conv2d(mid, mid, k, stride, k // 2, groups=mid, bias=False), nn.BatchNorm2d(mid), ofa_act(act)]
        if use_se:
            dw.append(OfaSE(mid))
        self.depth_conv = nn.Sequential(*dw)
        self.point_linear = nn.Sequential(nn.Conv2d(mid, c_out, 1, bias=False), nn.BatchNorm2d(c_out))
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x):
        y = x if self.inverted_bottleneck is None else self.inverted_bottleneck(x)
        y = self.point_linear(self.depth_conv(y))
        return x + y if self.residual else y


class OfaMobileNetV3Subnet(nn.Module):
    """``OFAMobileNetV3(width_mult, ks_list=[3,5,7], expand_ratio_list=[3,4,6], depth_list=[2,3,4])``
    with ``set_active_subnet(ks, e, d)`` applied, as ``get_active_subnet`` builds it."""

    def __init__(self, ks, e, d, width_mult=1.2, n_classes=1000):
        super().__init__()
        base = [16, 16, 24, 40, 80, 112, 160, 960, 1280]
        strides = [1, 2, 2, 2, 1, 2]
        acts = ["relu", "relu", "relu", "h_swish", "h_swish", "h_swish"]
        ses = [False, False, True, False, True, True]
        widths = [ofa_make_divisible(w * width_mult, 8) for w in base[:-2]]
        final_expand = ofa_make_divisible(base[-2] * width_mult, 8)
        last = ofa_make_divisible(base[-1] * width_mult, 8)
        self.first_conv = ofa_conv_layer(3, widths[0], 3, 2, "h_swish")
        blocks = [OfaMBConv(widths[0], widths[1], 3, strides[0], 1, acts[0], ses[0])]
        c = widths[1]
        for stage in range(5):
            for i in range(d[stage]):
                j = stage * 4 + i
                blocks.append(OfaMBConv(c, widths[stage + 2], ks[j], strides[stage + 1] if i == 0 else 1, e[j], acts[stage + 1], ses[stage + 1]))
                c = widths[stage + 2]
        self.blocks = nn.Sequential(*blocks)
        self.final_expand_layer = ofa_conv_layer(c, final_expand, 1, 1, "h_swish")
        self.feature_mix_layer = ofa_conv_layer(final_expand, last, 1, 1, "h_swish", use_bn=False)
        self.classifier = nn.Linear(last, n_classes)

    def forward(self, x):
        x = self.final_expand_layer(self.blocks(self.first_conv(x)))
        x = self.feature_mix_layer(x.mean(3, keepdim=True).mean(2, keepdim=True))
        return self.classifier(x.flatten(1))


def ofa_count(ks, e, d, width_mult=1.2, resolution=224):
    with torch.device("meta"):
        net = OfaMobileNetV3Subnet(ks, e, d, width_mult).eval()
        with FlopCounterMode(display=False) as fc:
            net(torch.empty(1, 3, resolution, resolution))
    return fc.get_total_flops() // 2, sum(p.numel() for p in net.parameters())


# ---- the same subnets as hwnas archs -----------------------------------------------------

SUFFIX = ["", "_se", "_hs", "_se_hs", "_se_hs"]  # MobileNetV3's SE / h-swish per stage


def hwnas_ops(ks, e, d):
    return [f"k{ks[s * 4 + i]}e{e[s * 4 + i]}{SUFFIX[s]}" if i < d[s] else "id" for s in range(5) for i in range(4)]


LARGEST = ([7] * 20, [6] * 20, [4] * 5)
SMALLEST = ([3] * 20, [3] * 20, [2] * 5)
MIXED = ([3, 5, 7, 5] * 5, [6, 4, 3, 4] * 5, [4, 3, 2, 3, 4])


@pytest.mark.parametrize("name,cfg", [("largest", LARGEST), ("smallest", SMALLEST)])
def test_arch_info_equals_ofa_definition(hwnas_cli, tmp_path, name, cfg):
    """`hwnas arch info` of OFA's largest and smallest subnets at w1.2/224: MACs and params."""
    f = tmp_path / f"{name}.json"
    f.write_text(json.dumps({"space": "ofa-mbv3", "ops": hwnas_ops(*cfg)}))
    r = hwnas_cli("arch", "info", str(f), "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    flops, params = ofa_count(*cfg)
    assert (info["flops"], info["params"]) == (flops, params)
    assert flops > 100_000_000 and params > 1_000_000  # a real network, not an empty count


@pytest.mark.parametrize("width_mult,resolution", [(1.0, 224), (1.2, 160), (1.2, 128), (1.0, 196)])
def test_width_and_resolution_equal_ofa_definition(width_mult, resolution):
    space = create_space("ofa-mbv3", width_mult=width_mult, resolution=resolution)
    for cfg in (LARGEST, SMALLEST, MIXED):
        arch = space.arch(hwnas_ops(*cfg))
        assert space.flops_params(arch) == ofa_count(*cfg, width_mult=width_mult, resolution=resolution)


def test_widths_follow_ofa_rounding():
    w12 = create_space("ofa-mbv3", width_mult=1.2)
    assert [w12.stem[0].c_out, w12.stem[1].c_out] == [24, 24]
    assert sorted({layer.c_out for layer in w12.layers}) == [32, 48, 96, 136, 192]
    assert [s.c_out for s in w12.head[:3]] == [1152, 1152, 1536]
    w10 = create_space("ofa-mbv3", width_mult=1.0)
    assert sorted({layer.c_out for layer in w10.layers}) == [24, 40, 80, 112, 160]


def test_depth_is_a_skip_on_the_last_two_layers_only():
    space = create_space("ofa-mbv3")
    assert space.num_layers == 20
    for layer in space.layers:
        pos = layer.index % 4
        assert ("id" in layer.choice_ids) == (pos >= 2)
        assert len(layer.choices) == (10 if pos >= 2 else 9)
    ops = hwnas_ops(*SMALLEST)
    ops[0] = "id"  # a stage of fewer than 2 blocks
    with pytest.raises(HwnasError, match="layer 0: op 'id'"):
        space.arch(ops)


def test_skip_on_third_layer_is_ofa_depth_three():
    """A stage with its third layer skipped and its fourth kept is OFA's depth-3 subnet."""
    from hwnas.space.spaces.ofa_mbv3 import ofa_config

    space = create_space("ofa-mbv3")
    ops = hwnas_ops(*LARGEST)
    ops[2] = "id"
    cfg = ofa_config(space.arch(ops))
    assert cfg["d"] == [3, 4, 4, 4, 4] and cfg["ks"][:3] == [7, 7, 7]
    assert space.flops_params(space.arch(ops)) == ofa_count(cfg["ks"], cfg["e"], cfg["d"])


def test_bad_resolution_is_refused():
    with pytest.raises(HwnasError, match="128-224 in steps of 4"):
        create_space("ofa-mbv3", resolution=226)
