import json

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from hwnas.errors import HwnasError
from hwnas.nn import build_network
from hwnas.space import Arch, create_space, list_spaces, resolve_arch
from hwnas.space.named import NAMED_ARCHS
from hwnas.space.tabular import load_nas_bench_macro

SPACES = ["proxyless", "mbse", "nas-bench-macro", "tiny", "ofa-mbv3"]


def test_all_spaces_registered():
    assert set(SPACES) <= set(list_spaces())


def torch_count(space, arch):
    """FLOPs by torch's own counter on the meta device (no real compute), params by summing."""
    with torch.device("meta"):
        net = build_network(arch).eval()
        x = torch.empty(1, 3, space.resolution, space.resolution)
        with FlopCounterMode(display=False) as fc:
            net(x)
    return fc.get_total_flops() // 2, sum(p.numel() for p in net.parameters())


# the 224-pixel spaces take about a minute each: in the slow suite (tiny and nas-bench-macro stay)
@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in ("proxyless", "mbse", "ofa-mbv3") else n
                                  for n in SPACES])
def test_analytic_flops_params_match_torch(name):
    space = create_space(name)
    rng = np.random.default_rng(0)
    for _ in range(100):
        arch = space.sample(rng)
        assert space.flops_params(arch) == torch_count(space, arch), arch.ops


def test_proxyless_mobile_published_figures():
    arch = NAMED_ARCHS.create("proxyless-mobile")
    flops, params = create_space("proxyless").flops_params(arch)
    assert abs(flops - 320.4e6) / 320.4e6 < 0.01
    assert abs(params - 4.08e6) / 4.08e6 < 0.01


def test_proxyless_widths_and_multiplier():
    base = create_space("proxyless")
    narrow = create_space("proxyless", widths=(24, 40, 80, 96, 192, 320))
    assert narrow.layers[0].c_out == 24 and base.layers[0].c_out == 32
    half = create_space("proxyless", width_mult=0.5)
    assert half.layers[-1].c_out == 160
    a = half.sample(1)
    assert a.space_args and Arch.from_json(a.to_json()) == a
    assert half.flops(a) == torch_count(half, a)[0]


def test_identity_never_first_in_a_proxyless_stage():
    space = create_space("proxyless")
    firsts = [layer for layer in space.layers if layer.index in (0, 4, 8, 12, 16, 20)]
    assert all("id" not in layer.choice_ids for layer in firsts)
    assert all("id" in layer.choice_ids for layer in space.layers if layer not in firsts)
    assert len(space.layers) == 21 and [layer.stride for layer in firsts] == [2, 2, 2, 1, 2, 1]
    assert len(create_space("mbse").ops) == 13 and len(space.ops) == 7


def test_nas_bench_macro_enumerates_and_matches_table():
    bench = load_nas_bench_macro()
    space = bench.space
    archs = list(space.iter_archs())
    assert len(archs) == 6561 == len(bench)
    keys = set()
    for a in archs:
        e = bench.lookup(a)
        keys.add(space.to_compact(a))
        assert space.flops_params(a) == (e.flops, e.params)
    assert len(keys) == 6561
    assert bench.accuracy(NAMED_ARCHS.create("nas-bench-macro-best")) == pytest.approx(93.13, abs=0.01)


@pytest.mark.parametrize("name", SPACES)
def test_arch_round_trips(name):
    space = create_space(name)
    for seed in range(20):
        a = space.sample(seed)
        assert Arch.from_json(a.to_json()) == a
        assert space.from_compact(space.to_compact(a)) == a
        assert resolve_arch(a.compact()) == a
        assert space.from_indices(space.choice_indices(a)) == a


def test_sampling_under_flops_bound():
    space = create_space("proxyless")
    rng = np.random.default_rng(3)
    bound = 300_000_000
    archs = [space.sample(rng, max_flops=bound) for _ in range(50)]
    assert all(space.flops(a) <= bound for a in archs)
    assert len(set(archs)) == 50
    with pytest.raises(HwnasError, match="below the smallest"):
        space.sample(rng, max_flops=1000)


def test_validation_names_bad_layer_and_op():
    space = create_space("proxyless")
    ops = list(NAMED_ARCHS.create("proxyless-mobile").ops)
    ops[5] = "k9e3"
    with pytest.raises(HwnasError, match=r"layer 5: op 'k9e3'"):
        space.arch(ops)
    with pytest.raises(HwnasError, match="has 3 layers"):
        Arch.from_dict({"space": "proxyless", "ops": ["k3e3"] * 3})
    bad_first = list(NAMED_ARCHS.create("proxyless-mobile").ops)
    bad_first[0] = "id"
    with pytest.raises(HwnasError, match="layer 0: op 'id'"):
        space.arch(bad_first)
    with pytest.raises(HwnasError, match="malformed JSON"):
        Arch.from_json("{not json")
    with pytest.raises(HwnasError, match="unknown search space"):
        create_space("nope")
