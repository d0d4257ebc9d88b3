"""Supernet and train-from-scratch evaluators, and a search driven by a supernet checkpoint."""

import numpy as np
import pytest
import torch

from hwnas.errors import HwnasError
from hwnas.nn import SuperNet
from hwnas.search.api import run_search
from hwnas.search.evaluator import ScratchEvaluator, SupernetEvaluator
from hwnas.space import create_space
from hwnas.train.checkpoint import load_checkpoint, save_checkpoint
from hwnas.train.data import Datasets, make_builtin

from .test_constraints import synthetic_table

CONFIG = {"n_train": 256, "n_val": 200, "n_path_eval": 64}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A tiny supernet with a candidate pool, saved in the `hwnas train` checkpoint format."""
    torch.manual_seed(0)
    space = create_space("tiny")
    net = SuperNet(space)
    folder = tmp_path_factory.mktemp("run")
    pool = [[list(space.choice_indices(space.sample(i))), 1.0 + i / 10, 0] for i in range(4)]
    save_checkpoint(folder, "supernet", {"model": net.state_dict()},
                    {"space": "tiny", "data": "builtin", "config": CONFIG, "pool": {"entries": pool[::-1]}})
    return folder


def small_evaluator(ck):
    return SupernetEvaluator(ck, n_eval=32, bn_batches=1, bn_batch_size=16, batch_size=32, threads=1)


def test_supernet_evaluator_inherits_weights_and_recalibrates_bn(checkpoint):
    ck = load_checkpoint(checkpoint)
    ev = small_evaluator(ck)
    space = ck.space
    archs = [space.sample(i) for i in (1, 2)]
    # the held-out images are not the path-evaluation images the training sampler ranked on
    assert ev.held_out_from.startswith("val after")
    assert len(ev.eval_set) == 32
    accs = ev.evaluate(archs)
    # the standalone net with the path's weights and just-recalibrated BN scores the same
    net = ck.supernet.extract(archs[1]).eval()
    bn = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    fresh = SuperNet(space).extract(archs[1])
    assert any(not torch.allclose(a.running_mean, b.running_mean) for a, b in
               zip(bn, [m for m in fresh.modules() if isinstance(m, torch.nn.BatchNorm2d)]))
    with torch.no_grad():
        x, y = ev.eval_set.batch(torch.arange(len(ev.eval_set)))
        standalone = 100.0 * float((net(x).argmax(1) == y).float().mean())
    assert accs[1] == pytest.approx(standalone)
    # order does not matter (every path's BN is re-estimated on the same images) and repeats are cached
    ev2 = small_evaluator(load_checkpoint(checkpoint))
    assert list(ev2.evaluate([archs[1], archs[0], archs[1]])) == [accs[1], accs[0], accs[1]]
    assert ev2.n_evaluations == 2


def test_scratch_evaluator_trains_and_is_deterministic():
    """Scored on the images it trained on, a net that really trained has learnt them (chance is 10%)."""
    images = make_builtin(32, seed=0)
    ds = Datasets("memorize", images, images, images.subset(torch.arange(0)))
    arch = create_space("tiny").sample(3)

    def score(epochs: float, lr: float = 0.05) -> float:
        return ScratchEvaluator(ds, epochs=epochs, lr=lr, batch_size=16, n_eval=32, threads=1).evaluate([arch])[0]

    assert score(20) >= 75.0
    assert score(1, lr=0.0) <= 25.0  # without learning it stays near chance
    assert score(1) == score(1)  # seeded: the same arch gets the same accuracy


def test_search_from_checkpoint_starts_from_its_pool(checkpoint, tmp_path):
    table = synthetic_table("tiny")
    table.save(tmp_path / "host-tiny-onnxruntime.json")
    ck = load_checkpoint(checkpoint)
    out = run_search(flops="1000M", supernet=checkpoint, algorithm="nsga2", population=3, generations=2,
                     tables_dir=tmp_path, n_eval=32, bn_batches=1, threads=1, out=tmp_path / "out", plot=False)
    res = out.result
    assert res.info["from_pool"] == 3
    assert [r.arch for r in res.history[:3]] == [a for a, _ in ck.pool][:3]  # the pool, best (lowest loss) first
    assert [loss for _, loss in ck.pool] == sorted(loss for _, loss in ck.pool)
    assert res.n_evaluations <= 6 and res.best is not None
    from hwnas.search.constraints import LatencyModel

    # the table was found and used: the recorded latency is its bound at the default confidence 0.9
    assert res.best.latency_ms == pytest.approx(LatencyModel(table, ck.space, confidence=0.9)(res.best.arch)[0])
    assert res.best.latency_ms > table.predict(res.best.arch)[0]


def test_checkpoint_of_another_space_is_refused(checkpoint, tmp_path):
    with pytest.raises(HwnasError, match="space 'tiny', not 'nas-bench-macro'"):
        run_search(flops="100M", supernet=checkpoint, space="nas-bench-macro", out=tmp_path / "o")
    synthetic_table("nas-bench-macro").save(tmp_path / "macro.json")
    with pytest.raises(HwnasError, match="is for space 'nas-bench-macro', not 'tiny'"):
        run_search(latency="5ms", supernet=checkpoint, table=tmp_path / "macro.json", out=tmp_path / "o")
