"""`hwnas train` end to end: checkpoints, bookkeeping, kill + resume, corrupt/foreign checkpoints, DDP."""

import json
import os
import pickle
import re
import socket
import subprocess
import sys

import pytest
import torch

from hwnas.errors import HwnasError
from hwnas.train.checkpoint import latest_good, list_checkpoints, load_checkpoint, read_checkpoint
from hwnas.train.trainer import EVAL_COST_RATIO, TrainConfig, train_supernet

from .conftest import REPO

SMALL = ["--space", "tiny", "--n-train", "96", "--n-val", "48", "--n-path-eval", "32", "--batch", "16", "--eval-batch", "16",
         "--threads", "1", "--quiet"]


def _greedy(iters, **kw):
    args = SMALL + ["--sampler", "greedy", "--max-iters", str(iters), "--m-paths", "4", "--k-paths", "2", "--pool-size", "6",
                    "--warmup", "0.25", "--anneal", "0.25"]
    for k, v in kw.items():
        args += [f"--{k.replace('_', '-')}", str(v)]
    return args


def _config(iters, **kw):
    """The in-process equivalent of ``_greedy`` (same defaults as the CLI options above)."""
    base = dict(space="tiny", n_train=96, n_val=48, n_path_eval=32, batch_size=16, eval_batch=16, sampler="greedy",
                max_iters=iters, m=4, k=2, pool_size=6, warmup=0.25, anneal=0.25)
    base.update(kw)
    return TrainConfig(**base)


class one_thread:
    """Runs in this process with the thread count the CLI runs use (results depend on it)."""

    def __enter__(self):
        self.n = torch.get_num_threads()
        torch.set_num_threads(1)

    def __exit__(self, *exc):
        torch.set_num_threads(self.n)


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("small") / "run"
    with one_thread():
        train_supernet(_config(4), out)
    return out


def test_train_writes_a_loadable_supernet_with_pool_and_bookkeeping(hwnas_cli, tmp_path):
    out = tmp_path / "run"
    r = hwnas_cli("train", *_greedy(12, ckpt_every=4), "--out", str(out), env={"COLUMNS": "300"})
    assert r.returncode == 0, r.stderr
    assert "corrected #optimization" in r.stdout and "#evaluation" in r.stdout
    # the next step's budget comes from the shipped host table of tiny (sub-millisecond), not a fixed 80 ms
    assert re.search(r"next: hwnas search --supernet \S+ --latency 0\.[0-9]+ms\)", r.stdout), r.stdout
    s = json.loads((out / "summary.json").read_text())
    assert s["iterations"] == 12 and s["n_opt_images"] == 12 * 16
    # warm-up 3 iterations uniform, then rounds of m=4 evaluated / k=2 trained: 5 rounds (iters 3,5,7,9,11)
    assert s["n_eval_paths"] == 5 * 4 and s["n_eval_images"] == 5 * 4 * 16
    assert s["corrected_opt_images"] == pytest.approx(12 * 16 + 5 * 4 * 16 / EVAL_COST_RATIO)
    assert [p.name for p in list_checkpoints(out)] == ["iter-0000008.json", "iter-0000004.json"]

    ts = load_checkpoint(out)
    assert ts.space.name == "tiny" and ts.data_spec == "builtin" and ts.meta["finished"]
    assert 1 <= len(ts.pool) <= 6 and [loss for _, loss in ts.pool] == sorted(loss for _, loss in ts.pool)
    assert ts.pool[0][0].compact() == s["best_paths"][0][0]
    _, tensors = read_checkpoint(out / "supernet.json")
    for k, v in ts.supernet.state_dict().items():
        assert torch.equal(v, tensors["model"][k])
    ds = ts.datasets()
    assert (len(ds.train), len(ds.val), len(ds.path_eval)) == (96, 48, 32)
    net = ts.supernet.extract(ts.pool[0][0])  # the standalone net of the best pool path runs
    assert net(torch.zeros(2, 3, 32, 32)).shape == (2, 10)

    with pytest.raises(HwnasError, match="--resume"):
        train_supernet(_config(12), out)


def test_kill_then_resume_reproduces_the_uninterrupted_run_bit_for_bit(hwnas_cli, tmp_path):
    args = _greedy(10, ckpt_every=3)
    with one_thread():
        train_supernet(_config(10, ckpt_every=3), tmp_path / "ref")

    run = tmp_path / "killed"
    killed = hwnas_cli("7", "train", *args, "--out", str(run), module="tests.kill_after")
    assert killed.returncode == -9  # SIGKILL: no chance to clean up
    assert not (run / "supernet.json").exists()
    assert [p.name for p in list_checkpoints(run)] == ["iter-0000006.json", "iter-0000003.json"]
    # the newest checkpoint is damaged on disk: resume must detect it and use the previous one
    pt = run / "checkpoints" / "iter-0000006.pt"
    data = bytearray(pt.read_bytes())
    data[len(data) // 2] ^= 0xFF
    pt.write_bytes(bytes(data))

    resumed = hwnas_cli("train", *args, "--out", str(run), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "corrupt" in resumed.stderr and "iteration 3" in resumed.stderr

    m_ref, t_ref = read_checkpoint(tmp_path / "ref" / "supernet.json")
    m_res, t_res = read_checkpoint(run / "supernet.json")
    assert len(m_ref["history"]) == 10
    assert m_res["history"] == m_ref["history"]  # the same loss curve, value for value
    assert m_res["pool"] == m_ref["pool"] and m_res["counters"]["n_eval_images"] == m_ref["counters"]["n_eval_images"]
    for k, v in t_ref["model"].items():
        assert torch.equal(v, t_res["model"][k]), k


def _same_train_command_again_reuses_the_finished_run(cli, tmp_path):
    """``cli(*argv)`` runs `hwnas train` and returns (exit code, stdout, stderr)."""
    out = tmp_path / "run"
    args = ["train", *_greedy(6, ckpt_every=3), "--out", str(out)]
    code, first_out, first_err = cli(*args)
    assert code == 0, first_err
    final = {p.name: p.read_bytes() for p in out.glob("supernet.*")}
    code, again_out, again_err = cli(*args)
    assert code == 0, again_err
    assert f"{out} already holds this training run, finished after 6 iterations: reusing it" in " ".join(again_err.split())
    assert {p.name: p.read_bytes() for p in out.glob("supernet.*")} == final  # nothing retrained or rewritten
    assert again_out.strip().splitlines()[-1] == first_out.strip().splitlines()[-1]  # the same `next:` line
    # other settings into the same folder: one line naming what differs, nothing touched
    code, _, other_err = cli("train", *_greedy(8, ckpt_every=3), "--out", str(out))
    assert code == 2 and other_err.count("\n") == 1, other_err
    assert "other settings (max_iters 6 -> 8)" in other_err and "--resume" in other_err
    assert {p.name: p.read_bytes() for p in out.glob("supernet.*")} == final


def test_the_same_train_command_again_reuses_the_finished_run(tmp_path, capsys, monkeypatch):
    """The README's job run twice: a finished run with the same settings is reused, not refused or retrained
    (the CLI in this process; the same with a fresh process per command is the slow test below)."""
    from hwnas.cli import run

    monkeypatch.setenv("COLUMNS", "200")

    def cli(*argv):
        capsys.readouterr()
        with one_thread():
            code = run(list(argv))
        got = capsys.readouterr()
        return code, got.out, got.err

    _same_train_command_again_reuses_the_finished_run(cli, tmp_path)


@pytest.mark.slow
def test_the_same_train_command_again_in_new_processes_reuses_the_finished_run(hwnas_cli, tmp_path):
    def cli(*argv):
        r = hwnas_cli(*argv)
        return r.returncode, r.stdout, r.stderr

    _same_train_command_again_reuses_the_finished_run(cli, tmp_path)


def test_the_same_train_command_again_continues_an_interrupted_run(tmp_path):
    """Without --resume, the same settings on a folder whose run was cut off continue it from its newest checkpoint."""
    with one_thread():
        train_supernet(_config(6, ckpt_every=3), tmp_path / "ref")
        out = tmp_path / "cut"
        train_supernet(_config(6, ckpt_every=3), out)
        for p in out.glob("supernet.*"):  # as if killed after the checkpoint of iteration 3
            p.unlink()
        resumed = []
        trainer, summary = train_supernet(_config(6, ckpt_every=3), out, on_resume=lambda meta, problems: resumed.append(meta["iteration"]))
    assert resumed == [3] and summary["iterations"] == 6 and not summary.get("reused")
    m_ref, _ = read_checkpoint(tmp_path / "ref" / "supernet.json")
    m_res, _ = read_checkpoint(out / "supernet.json")
    assert m_res["history"] == m_ref["history"]


def test_checkpoint_of_another_space_or_damaged_is_a_clear_error(small_run, tmp_path):
    import shutil

    out = tmp_path / "run"
    shutil.copytree(small_run, out)
    with pytest.raises(HwnasError, match="space 'tiny', not 'nas-bench-macro'"):
        load_checkpoint(out, space="nas-bench-macro")
    with pytest.raises(HwnasError, match="space 'tiny'"):
        train_supernet(TrainConfig(space="nas-bench-macro"), out, resume=True)

    # a JSON that claims another space but carries tiny's weights (hash intact) does not load
    meta = json.loads((out / "supernet.json").read_text())
    meta["space"] = "nas-bench-macro"
    (out / "supernet.json").write_text(json.dumps(meta))
    with pytest.raises(HwnasError, match="does not fit the 'nas-bench-macro' supernet"):
        load_checkpoint(out / "supernet.json")

    (out / "supernet.json").write_text("{ not json")
    with pytest.raises(HwnasError, match="corrupt"):
        load_checkpoint(out / "supernet.json")
    with pytest.raises(HwnasError, match="not found"):
        load_checkpoint(tmp_path / "nothing.json")


class _Evil:
    def __reduce__(self):
        return (os.system, (f"touch {EVIL_MARK}",))


EVIL_MARK = ""


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_a_checkpoint_file_cannot_run_code(small_run, tmp_path):
    global EVIL_MARK
    import shutil

    out = tmp_path / "run"
    shutil.copytree(small_run, out)
    EVIL_MARK = str(tmp_path / "pwned")
    payload = pickle.dumps({"model": _Evil()})
    import hashlib

    (out / "evil.pt").write_bytes(payload)
    meta = json.loads((out / "supernet.json").read_text())
    meta.update(weights_file="evil.pt", sha256=hashlib.sha256(payload).hexdigest())
    (out / "evil.json").write_text(json.dumps(meta))
    with pytest.raises(HwnasError, match="cannot be loaded safely"):
        load_checkpoint(out / "evil.json")
    assert not os.path.exists(EVIL_MARK)


def test_bad_input_is_a_one_line_error(hwnas_cli, tmp_path):
    r = hwnas_cli("train", "--data", f"folder:{tmp_path / 'missing'}", "--out", str(tmp_path / "a"))
    assert r.returncode == 2 and r.stderr.startswith("error: image folder") and "does not exist" in r.stderr
    (tmp_path / "empty").mkdir()
    with pytest.raises(HwnasError, match="no class subfolders"):
        train_supernet(_config(4, data=f"folder:{tmp_path / 'empty'}"), tmp_path / "b")
    with pytest.raises(HwnasError, match="needs a latency table"):
        train_supernet(_config(4, max_latency_ms=5.0), tmp_path / "c")
    with pytest.raises(HwnasError, match="nothing to resume"):
        train_supernet(_config(4), tmp_path / "d", resume=True)
    with pytest.raises(HwnasError, match="unknown path sampler 'random'"):
        train_supernet(_config(4, sampler="random"), tmp_path / "e")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _assert_two_ranks_match_one_process(one, two):
    """The run of two ranks (``two``) is the one-process run (``one``) with the same global batch."""
    m1, t1 = read_checkpoint(one / "supernet.json")
    m2, t2 = read_checkpoint(two / "supernet.json")
    assert m2["world_size"] == 2 and m1["world_size"] == 1
    assert [e[0] for e in m1["pool"]["entries"]] == [e[0] for e in m2["pool"]["entries"]]  # the same pool
    assert [e[1] for e in m1["pool"]["entries"]] == pytest.approx([e[1] for e in m2["pool"]["entries"]], abs=1e-4)
    assert [h[1] for h in m1["history"]] == pytest.approx([h[1] for h in m2["history"]], abs=1e-3)
    assert m1["counters"]["n_eval_images"] == m2["counters"]["n_eval_images"]
    worst = max(float((t1["model"][k].double() - t2["model"][k].double()).abs().max()) for k in t1["model"]
                if t1["model"][k].is_floating_point())
    assert worst < 1e-3
    assert latest_good(two) is not None and not list(two.glob("*rank1*"))


# Summing over ranks rounds differently from one process (~1e-7). With 8 images per rank the
# supernet amplifies any 1e-7 perturbation ~10x per step at lr 0.01 (the same happens in one
# process), so a small learning rate keeps 20 steps comparable at float tolerance.
DDP_ITERS, DDP_LR = 20, 0.002


@pytest.fixture(scope="module")
def one_process_run(tmp_path_factory):
    """The one-process run both two-rank tests compare with."""
    out = tmp_path_factory.mktemp("one") / "run"
    with one_thread():
        train_supernet(_config(DDP_ITERS, lr=DDP_LR, ckpt_every=100), out)
    return out


def _forked_rank(rank: int, port: int, out: str) -> None:
    """One rank of a two-process run, as torchrun starts it (its environment), forked from this process."""
    from hwnas.train.distributed import init_distributed, shutdown_distributed

    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    ctx = init_distributed()
    try:
        train_supernet(_config(DDP_ITERS, lr=DDP_LR, ckpt_every=100), out, ctx=ctx)
    finally:
        shutdown_distributed(ctx)


def test_two_ranks_match_one_process_with_the_same_global_batch(one_process_run, tmp_path):
    """DDP training over gloo with two processes (forked, so they share this process's imports: the
    torchrun command line is the slow test below) gives the one-process run."""
    import multiprocessing

    fork = multiprocessing.get_context("fork")
    port = _free_port()
    ranks = [fork.Process(target=_forked_rank, args=(r, port, str(tmp_path / "two"))) for r in (0, 1)]
    for p in ranks:
        p.start()
    for p in ranks:
        p.join(300)
    assert [p.exitcode for p in ranks] == [0, 0]
    _assert_two_ranks_match_one_process(one_process_run, tmp_path / "two")


@pytest.mark.slow
def test_two_processes_match_one_process_with_the_same_global_batch(one_process_run, tmp_path):
    """The same with the documented command line: torchrun starts two `hwnas train` processes."""
    args = _greedy(DDP_ITERS, lr=DDP_LR, ckpt_every=100)
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={_free_port()}",
                          "-m", "hwnas", "train", *args, "--out", str(tmp_path / "two")],
                         cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
    assert two.returncode == 0, two.stderr[-3000:]
    _assert_two_ranks_match_one_process(one_process_run, tmp_path / "two")


def test_a_corrupt_final_checkpoint_is_skipped_with_a_warning_naming_it(tmp_path):
    """Search and export once used an earlier iteration without a word when supernet.pt was damaged."""
    from hwnas.search.api import run_search
    from hwnas.train.checkpoint import SkippedCheckpointWarning

    run = tmp_path / "run"
    with one_thread():
        train_supernet(_config(6, ckpt_every=2), run)  # checkpoints at 2 and 4, the final one at 6
    pt = run / "supernet.pt"
    data = bytearray(pt.read_bytes())
    data[len(data) // 2] ^= 0xFF
    pt.write_bytes(bytes(data))
    with pytest.warns(SkippedCheckpointWarning) as w:
        ck = load_checkpoint(run)
    assert ck.path.name == "iter-0000004.json"
    msg = str(w[0].message)
    assert "supernet.pt" in msg and "corrupt" in msg and "iter-0000004.json" in msg and "iteration 4" in msg
    (run / "checkpoints" / "iter-0000004.json").unlink()
    with pytest.warns(SkippedCheckpointWarning, match="iteration 2"):
        outcome = run_search(flops="1000M", supernet=run, population=2, generations=1, n_eval=16, bn_batches=1,
                             threads=1, out=tmp_path / "s", plot=False)
    assert any("supernet.pt" in x and "iteration 2" in x for x in outcome.warnings), outcome.warnings


def test_export_from_a_run_with_a_corrupt_final_checkpoint_says_which_iteration_it_used(tmp_path):
    from hwnas.export import export_arch
    from hwnas.space import create_space

    run = tmp_path / "run"
    with one_thread():
        train_supernet(_config(4, ckpt_every=2), run)
    (run / "supernet.json").write_text("{ torn")
    r = export_arch(create_space("tiny").sample(1), weights=run, fmt="onnx", out=tmp_path / "out")
    assert any("supernet.json" in w and "iteration 2" in w for w in r.warnings), r.warnings
    assert any("iteration 2" in w for w in r.sidecar_data["warnings"]), r.sidecar_data["warnings"]
