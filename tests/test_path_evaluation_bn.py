"""Path evaluation with the batch's own BN statistics: the supernet's running statistics stay
untouched, and the output is the batch-normalised one (not the eval-mode one)."""

import pytest
import torch
import torch.nn.functional as F

from hwnas.nn import SuperNet
from hwnas.space import create_space
from hwnas.train.evaluate import batch_loss, bn_batch_statistics


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """Small nets on the shared cores."""


def _bn_buffers(net):
    return {k: v.clone() for k, v in net.state_dict().items() if "running" in k or "num_batches" in k}


def test_batch_statistics_leave_running_statistics_and_modes_untouched():
    torch.manual_seed(0)
    net = SuperNet(create_space("tiny"))
    path = [0] * len(net.layers)
    x, y = torch.randn(16, 3, 32, 32) * 3 + 1, torch.randint(0, 10, (16,))
    before = _bn_buffers(net)
    net.train()
    loss_batch, _ = batch_loss(net, path, x, y, bn="batch")
    assert net.training and all(m.track_running_stats for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d))
    after = _bn_buffers(net)
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    # the same as a train-mode forward (batch statistics), which would have moved the running stats
    net.train()
    with torch.no_grad():
        ref = float(F.cross_entropy(net(x, path), y))
    assert loss_batch == pytest.approx(ref, rel=1e-5)
    # and not the eval-mode loss (running statistics of an untrained net: mean 0, var 1, the input is not)
    net.load_state_dict({**net.state_dict(), **before})
    loss_running, _ = batch_loss(net, path, x, y)
    assert abs(loss_running - loss_batch) > 1e-3
    with bn_batch_statistics(net):
        assert all(m.training and not m.track_running_stats for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d))
    with pytest.raises(ValueError, match="bn must be one of"):
        batch_loss(net, path, x, y, bn="frozen")
