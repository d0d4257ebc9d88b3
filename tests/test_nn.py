import numpy as np
import pytest
import torch

from hwnas.nn import Network, SuperNet
from hwnas.space import create_space


def covering_paths(space):
    """Paths that together run every op of every layer at least once."""
    n = max(len(layer.choices) for layer in space.layers)
    return [space.from_indices([j % len(layer.choices) for layer in space.layers]) for j in range(n)]


def randomize_bn(model, gen):
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(m.weight.shape, generator=gen) + 0.5)
            m.bias.data.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)


@pytest.mark.parametrize("name,args,batch", [
    ("tiny", {}, 4),
    ("nas-bench-macro", {}, 2),
    ("proxyless", {"resolution": 64, "num_classes": 10}, 1),
    ("mbse", {"resolution": 64, "num_classes": 10}, 1),
    ("ofa-mbv3", {"resolution": 128, "num_classes": 10, "width_mult": 1.0}, 1),
])
def test_every_supernet_op_matches_standalone(name, args, batch):
    torch.manual_seed(0)
    space = create_space(name, **args)
    sn = SuperNet(space).eval()
    gen = torch.Generator().manual_seed(1)
    randomize_bn(sn, gen)
    x = torch.randn(batch, 3, space.resolution, space.resolution, generator=gen)
    for path in covering_paths(space):
        net = Network(space, path).eval()
        # copy by name (strict: every standalone tensor must come from the supernet path)
        net.load_state_dict(sn.path_state_dict(path), strict=True)
        with torch.no_grad():
            y_sn = sn(x, path)
            y_net = net(x)
        assert y_sn.shape == (batch, space.num_classes)
        torch.testing.assert_close(y_sn, y_net, rtol=0, atol=0)


def test_supernet_path_changes_output_and_extract_is_a_copy():
    space = create_space("tiny")
    sn = SuperNet(space).eval()
    a, b = space.sample(0), space.sample(1)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert not torch.allclose(sn(x, a), sn(x, b))
    net = sn.extract(a)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
        assert not torch.allclose(sn(x, a), net.eval()(x))


def test_path_parameters_are_exactly_the_path():
    space = create_space("tiny")
    sn = SuperNet(space)
    a = space.sample(2)
    n_path = sum(p.numel() for p in sn.path_parameters(a))
    assert n_path == space.params(a)  # BN affine included in analytic params
