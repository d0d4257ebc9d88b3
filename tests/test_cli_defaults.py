"""The README's short commands: `hwnas search` without --supernet takes the newest training run,
`hwnas export` without --arch the newest search's best.json; each says which, and with nothing
to use names the command to run first."""

from __future__ import annotations

import json
import os

import pytest
import torch

from hwnas.errors import HwnasError
from hwnas.search.results import newest_search
from hwnas.space import create_space
from hwnas.train.runs import newest_run

from .conftest import run_hwnas
from .test_constraints import synthetic_table

CONFIG = {"n_train": 256, "n_val": 200, "n_path_eval": 64}


def _fake_run(folder, seed: int, finished: bool = True, mtime: float | None = None):
    """A run folder as `hwnas train` leaves it: supernet.{json,pt} when finished, else checkpoints/ only."""
    from hwnas.nn import SuperNet
    from hwnas.train.checkpoint import save_checkpoint

    torch.manual_seed(seed)
    space = create_space("tiny")
    pool = [[list(space.choice_indices(space.sample(seed))), 1.0, 0]]
    meta = {"space": "tiny", "data": "builtin", "config": CONFIG, "pool": {"entries": pool}, "finished": finished}
    name, where = ("supernet", folder) if finished else ("iter-0000004", folder / "checkpoints")
    path = save_checkpoint(where, name, {"model": SuperNet(space).state_dict()}, meta)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return folder


def _fake_search(folder, arch, mtime: float):
    folder.mkdir(parents=True)
    best = folder / "best.json"
    best.write_text(json.dumps(arch.to_dict()))
    os.utime(best, (mtime, mtime))
    return best


def test_newest_run_is_the_last_finished_one(tmp_path):
    runs = tmp_path / "runs"
    with pytest.raises(HwnasError, match=r"no training run in .*runs.*; run `hwnas train` first"):
        newest_run(runs)
    _fake_run(runs / "old", 0, mtime=1_000_000)
    _fake_run(runs / "new", 1, mtime=2_000_000)
    _fake_run(runs / "older", 2, mtime=500_000)
    assert newest_run(runs) == runs / "new"
    _fake_run(runs / "unfinished", 3, finished=False, mtime=3_000_000)  # still training: not used silently
    assert newest_run(runs) == runs / "new"
    _fake_run(runs / "host-tiny-0.25ms" / "supernet", 4, mtime=4_000_000)  # the training folder of an `hwnas run`
    assert newest_run(runs) == runs / "host-tiny-0.25ms" / "supernet"


def test_newest_run_with_only_an_unfinished_run_says_how_to_finish_it(tmp_path):
    runs = tmp_path / "runs"
    _fake_run(runs / "half", 0, finished=False)
    with pytest.raises(HwnasError) as e:
        newest_run(runs)
    assert "unfinished" in str(e.value) and "hwnas train" in str(e.value) and str(runs / "half") in str(e.value)


def test_newest_search_is_the_last_best_json(tmp_path):
    exports = tmp_path / "exports"
    with pytest.raises(HwnasError, match=r"no search result .*; run `hwnas search"):
        newest_search(exports)
    space = create_space("tiny")
    _fake_search(exports / "a", space.sample(0), 1_000_000)
    b = _fake_search(exports / "b", space.sample(1), 2_000_000)
    (exports / "b-fp32.onnx").write_bytes(b"not a search")  # exports hold files too
    assert newest_search(exports) == b


def test_search_without_supernet_uses_the_newest_run(tmp_path):
    tables = tmp_path / "latency_tables"
    synthetic_table("tiny").save(tables / "host-tiny-onnxruntime.json")
    args = ["search", "--latency", "9ms", "--algorithm", "random", "--max-evaluations", "2", "--eval-images", "32",
            "--bn-batches", "1", "--out", "exports/s"]
    r = run_hwnas(*args, cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        "error: no training run in 'runs'; run `hwnas train` first (or pass --supernet RUN_FOLDER)"], r.stderr
    _fake_run(tmp_path / "runs" / "a", 0, mtime=1_000_000)
    _fake_run(tmp_path / "runs" / "b", 1, mtime=2_000_000)
    r = run_hwnas(*args, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert f"using the newest training run {os.path.join('runs', 'b')} (--supernet to choose another)" in " ".join(r.stderr.split())
    best = json.loads((tmp_path / "exports" / "s" / "best.json").read_text())
    # stored relative to best.json's folder, so an export from anywhere finds it
    assert (tmp_path / "exports" / "s" / best["supernet"]).resolve() == (tmp_path / "runs" / "b").resolve()


def test_export_without_arch_uses_the_newest_search(tmp_path):
    space = create_space("tiny")
    r = run_hwnas("export", "--format", "onnx", "--no-verify", cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        "error: no search result in 'exports'; run `hwnas search` first (or pass --arch FILE)"], r.stderr
    _fake_search(tmp_path / "exports" / "s1", space.sample(0), 1_000_000)
    newest = space.sample(1)
    _fake_search(tmp_path / "exports" / "s2", newest, 2_000_000)
    r = run_hwnas("export", "--format", "onnx", "--no-verify", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    best = os.path.join("exports", "s2", "best.json")
    assert f"exporting the newest search's best arch {best} (--arch to choose another)" in " ".join(r.stderr.split())
    sidecar = json.loads(r.stdout)
    assert sidecar["arch"]["ops"] == list(newest.ops)
