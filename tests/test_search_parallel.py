"""Cheaper and spread evaluation: PathScorer equals the one-arch loop, successive halving keeps the
best, ranks of a gloo group give the serial accuracies, and a torchrun search resumes."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from hwnas.nn import SuperNet
from hwnas.search.evaluator import SupernetEvaluator, share_bounds
from hwnas.space import create_space
from hwnas.train.checkpoint import load_checkpoint, save_checkpoint
from hwnas.train.evaluate import path_bn_modules

CONFIG = {"n_train": 128, "n_val": 160, "n_path_eval": 32}
EVAL = dict(n_eval=96, bn_batches=2, bn_batch_size=16, batch_size=40, threads=1)


def make_checkpoint(folder: Path) -> Path:
    """A tiny supernet whose BN statistics are not the identity (so re-estimation matters)."""
    torch.manual_seed(0)
    space = create_space("tiny")
    net = SuperNet(space)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
        elif isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):  # outputs that depend on the image and the path
            torch.nn.init.kaiming_normal_(m.weight)
            if m.bias is not None:
                m.bias.data.zero_()
    save_checkpoint(folder, "supernet", {"model": net.state_dict()},
                    {"space": "tiny", "data": "builtin", "config": CONFIG, "pool": {"entries": []}})
    return folder


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("run"))


def relabelled(ck, arch):
    """The checkpoint's data with held-out labels replaced by what ``arch`` predicts (after its BN
    re-estimation): an untrained supernet then gives archs accuracies from ~10% to 100%."""
    from hwnas.train.data import Datasets, TensorImageSet

    ds = ck.datasets()
    ev = SupernetEvaluator(ck, datasets=ds, baseline=True, **EVAL)
    ev.evaluate([arch])
    x, _ = ds.val.batch(torch.arange(len(ds.val)))
    with torch.no_grad():
        ck.supernet.eval()
        pred = ck.supernet(x, ck.space.choice_indices(arch)).argmax(1)
    val = TensorImageSet(ds.val.images, pred, 10, "relabelled", ds.val.mean.flatten().tolist(), ds.val.std.flatten().tolist())
    return Datasets(ds.spec, ds.train, val, val.subset(torch.arange(len(ds.path_eval))))


def archs_sharing_prefixes(space, n=10):
    """Random archs plus mutants of them (NSGA-II's offspring share most layers with a parent)."""
    base = [space.sample(i) for i in range(n // 2)]
    out = list(base)
    for i, a in enumerate(base):
        idx = list(space.choice_indices(a))
        idx[-1 - i % 2] = (idx[-1 - i % 2] + 1) % len(space.layers[-1 - i % 2].choices)
        out.append(space.from_indices(idx))
    return list(dict.fromkeys(out))


def test_path_scorer_equals_one_arch_at_a_time(checkpoint):
    ck = load_checkpoint(checkpoint)
    archs = archs_sharing_prefixes(ck.space)
    ds = relabelled(ck, archs[0])
    old = SupernetEvaluator(ck, datasets=ds, baseline=True, **EVAL).evaluate(archs)
    new_ev = SupernetEvaluator(load_checkpoint(checkpoint), datasets=ds, **EVAL)
    new = new_ev.evaluate(archs)
    assert old[0] == 100.0 and len(set(old)) >= 4  # the archs differ, so equality below is not trivial
    np.testing.assert_allclose(new, old, atol=100.0 / 96 + 1e-9)  # folded BN: at most one image may flip
    assert np.mean(new == old) >= 0.9
    # shared prefixes were computed once: fewer module passes than paths x modules
    per_path = len(ck.space.layers) + 2
    assert new_ev.scorer.modules_run < len(archs) * per_path * (len(new_ev.scorer.bn_batches) + 3)
    # the supernet is left re-estimated for the last path, as recalibrate_bn leaves it (channels-last
    # sums in another order: equal to float rounding)
    ref = load_checkpoint(checkpoint)
    SupernetEvaluator(ref, datasets=ds, baseline=True, **EVAL).evaluate(archs[-1:])
    path = ck.space.choice_indices(archs[-1])
    for a, b in zip(path_bn_modules(new_ev.supernet, path), path_bn_modules(ref.supernet, path)):
        torch.testing.assert_close(a.running_mean, b.running_mean, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(a.running_var, b.running_var, rtol=1e-4, atol=1e-5)
    # a tight activation budget (nothing cached) gives the same numbers
    tight = SupernetEvaluator(load_checkpoint(checkpoint), datasets=ds, cache_mb=0, **EVAL)
    np.testing.assert_array_equal(tight.evaluate(archs), new)


class TableScorer:
    """Correct counts from a fixed per-image correctness table: arch i is right on images ``truth[i]``."""

    def __init__(self, truth: dict[tuple, np.ndarray]) -> None:
        self.truth, self.calls = truth, []

    def correct(self, paths, rows=None, keep_states=False):
        lo, hi = rows
        self.calls.append((len(paths), hi - lo))
        return np.array([int(self.truth[tuple(p)][lo:hi].sum()) for p in paths])


def test_successive_halving_keeps_a_known_best(checkpoint):
    ck = load_checkpoint(checkpoint)
    space = ck.space
    archs = [space.sample(i) for i in range(8)]
    rng = np.random.default_rng(0)
    rates = np.linspace(0.05, 0.2, len(archs))
    rates[5] = 0.9  # the known best
    truth = {tuple(space.choice_indices(a)): rng.random(96) < r for a, r in zip(archs, rates)}
    full = {a: 100.0 * int(truth[tuple(space.choice_indices(a))].sum()) / 96 for a in archs}
    ev = SupernetEvaluator(ck, halving=24, halving_keep=0.25, halving_rank=2, **EVAL)
    ev._scorer = TableScorer(truth)
    ev.cache.update({space.sample(100 + i): acc for i, acc in enumerate((70.0, 60.0, 20.0))})  # earlier generations
    got = dict(zip(archs, ev.evaluate(archs)))
    assert max(got, key=got.get) == archs[5] and got[archs[5]] == full[archs[5]]
    promoted = [a for a in archs if a not in ev.screened]
    # the best quarter is completed, and whatever may still reach the 2nd best so far (60%): no arch at 5-20% can
    assert archs[5] in promoted and len(promoted) == 2
    assert all(got[a] == full[a] for a in promoted)
    assert all(got[a] < min(min(got[p] for p in promoted), 60.0) for a in ev.screened)
    # the second stage scored only the promoted archs, on the remaining images
    assert ev._scorer.calls == [(8, 24), (2, 72)]
    # with nothing evaluated before, every arch may still rank among the best: all are completed
    fresh = SupernetEvaluator(ck, halving=24, halving_keep=0.25, halving_rank=2, **EVAL)
    fresh._scorer = TableScorer(truth)
    assert list(fresh.evaluate(archs)) == [full[a] for a in archs] and not fresh.screened


def test_successive_halving_completes_promoted_archs_exactly(checkpoint):
    """On a real supernet: promoted archs get the accuracy of a full evaluation (statistics reused)."""
    ck = load_checkpoint(checkpoint)
    archs = archs_sharing_prefixes(ck.space, 8)
    ds = relabelled(ck, archs[0])
    full = SupernetEvaluator(load_checkpoint(checkpoint), datasets=ds, **EVAL).evaluate(archs)
    assert len(set(full)) >= 3
    ev = SupernetEvaluator(load_checkpoint(checkpoint), datasets=ds, halving=32, halving_keep=0.5, halving_rank=1, **EVAL)
    ev.cache[ck.space.sample(99)] = 100.0  # an earlier arch no screened one can reach: only the best half is completed
    got = ev.evaluate(archs)
    promoted = [i for i, a in enumerate(archs) if a not in ev.screened]
    assert int(np.ceil(len(archs) / 2)) <= len(promoted) < len(archs)
    np.testing.assert_array_equal(got[promoted], full[promoted])
    everyone = SupernetEvaluator(load_checkpoint(checkpoint), datasets=ds, halving=32, halving_keep=1.0, **EVAL)
    np.testing.assert_array_equal(everyone.evaluate(archs), full)


def test_share_bounds_cover_every_item_once():
    for n in range(0, 9):
        for world in (1, 2, 3):
            cuts = [share_bounds(n, r, world) for r in range(world)]
            assert cuts[0][0] == 0 and cuts[-1][1] == n
            assert all(a[1] == b[0] for a, b in zip(cuts, cuts[1:]))
            assert max(hi - lo for lo, hi in cuts) - min(hi - lo for lo, hi in cuts) <= 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(rank: int, world: int, port: int, ckpt: str, out: str) -> None:
    import torch.distributed as dist

    from hwnas.search.fnas.knowledge_pool import KnowledgePool
    from hwnas.search.fnas.train_evaluator import TrainEvaluator, builtin_data
    from hwnas.train.distributed import DistContext

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    ctx = DistContext(rank, world, "gloo")
    ck = load_checkpoint(ckpt)
    archs = archs_sharing_prefixes(ck.space)
    ev = SupernetEvaluator(ck, **EVAL)
    ev.dist = ctx
    sh = SupernetEvaluator(load_checkpoint(ckpt), halving=32, halving_keep=0.5, halving_rank=1, **EVAL)
    sh.cache[ck.space.sample(99)] = 100.0
    sh.dist = ctx
    fnas = TrainEvaluator(iterations=3, pool=KnowledgePool(3), data=builtin_data(0, 64, 32), batch=16)
    fnas.dist = ctx
    result = {"supernet": ev.evaluate(archs).tolist(), "halving": sh.evaluate(archs).tolist(),
              "fnas": fnas.evaluate(archs[:3]).tolist() + fnas.evaluate(archs[3:5]).tolist(),
              "pool": sorted(fnas.pool.entries), "evaluations": ev.n_evaluations}
    Path(out, f"rank{rank}.json").write_text(json.dumps(result))
    dist.destroy_process_group()


def test_two_gloo_ranks_give_the_serial_accuracies(checkpoint, tmp_path):
    torch.multiprocessing.spawn(_rank_main, args=(2, free_port(), str(checkpoint), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r0 == r1  # every rank holds every accuracy (and the same knowledge pool)
    archs = archs_sharing_prefixes(load_checkpoint(checkpoint).space)
    assert r0["supernet"] == SupernetEvaluator(load_checkpoint(checkpoint), **EVAL).evaluate(archs).tolist()
    serial_sh = SupernetEvaluator(load_checkpoint(checkpoint), halving=32, halving_keep=0.5, halving_rank=1, **EVAL)
    serial_sh.cache[load_checkpoint(checkpoint).space.sample(99)] = 100.0
    assert r0["halving"] == serial_sh.evaluate(archs).tolist()
    assert r0["evaluations"] == len(archs)
    from hwnas.search.fnas.knowledge_pool import KnowledgePool
    from hwnas.search.fnas.train_evaluator import TrainEvaluator, builtin_data

    # without a pool, the scratch evaluator's share per rank gives the serial accuracies
    plain = TrainEvaluator(iterations=3, data=builtin_data(0, 64, 32), batch=16)
    first = plain.evaluate(archs[:3]).tolist()
    # with a pool, the first batch starts from the same (empty) pool: the same accuracies too
    pooled = TrainEvaluator(iterations=3, pool=KnowledgePool(3), data=builtin_data(0, 64, 32), batch=16)
    assert r0["fnas"][:3] == first == pooled.evaluate(archs[:3]).tolist()
    assert r0["pool"] and len(r0["pool"]) >= len(KnowledgePool._keys(archs[0].get_space(), archs[0]))


def _search_cmd(ckpt: Path, out: Path, generations: int) -> list[str]:
    return ["-m", "hwnas", "search", "--supernet", str(ckpt), "--flops", "1000M", "--population", "4",
            "--generations", str(generations), "--eval-images", "48", "--bn-batches", "1", "--out", str(out)]


def _run(args: list[str], env: dict) -> None:
    done = subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.mark.slow
def test_torchrun_search_resumes_and_matches_serial(checkpoint, tmp_path):
    """Two gloo processes search 2 generations, are resumed for a third: the history is the serial search's."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    launch = ["-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port", str(free_port())]
    _run(launch + _search_cmd(checkpoint, tmp_path / "spread", 2), env)
    first = (tmp_path / "spread" / "history.jsonl").read_text().splitlines()
    launch[-1] = str(free_port())
    _run(launch + _search_cmd(checkpoint, tmp_path / "spread", 3), env)
    _run(_search_cmd(checkpoint, tmp_path / "serial", 3), env)
    spread = [json.loads(x) for x in (tmp_path / "spread" / "history.jsonl").read_text().splitlines()]
    serial = [json.loads(x) for x in (tmp_path / "serial" / "history.jsonl").read_text().splitlines()]
    assert len(first) < len(spread)  # the resumed run added the third generation
    assert [(r["compact"], r["accuracy"]) for r in spread] == [(r["compact"], r["accuracy"]) for r in serial]
    best = json.loads((tmp_path / "spread" / "best.json").read_text())
    assert best["compact"] == json.loads((tmp_path / "serial" / "best.json").read_text())["compact"]
