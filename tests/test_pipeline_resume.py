"""Killing `hwnas run` (kill -9) in any stage and running it again gives the run an
uninterrupted one gives: the same best.json and the same exported file, byte for byte.

Each scenario runs in its own folder with the same relative paths (runs/, tables/), with the
deterministic ``fixed`` timing backend of tests/kill_stage.py so that profiling twice gives
the same table. Blocks are exported once into a shared cache.
"""

import hashlib
import json

import pytest

from hwnas.pipeline.layout import RunLayout

TINY = ["--name", "t", "--runs-dir", "runs", "--device", "fixed", "--backend", "fixed",
        "--set", "run.tables_dir=tables", "--set", "export.format=onnx",
        "--set", "train.n_train=96", "--set", "train.n_val=48", "--set", "train.n_path_eval=32", "--set", "train.batch_size=16",
        "--set", "train.eval_batch=16", "--set", "train.max_iters=8", "--set", "train.ckpt_every=3", "--set", "train.m=4",
        "--set", "train.k=2", "--set", "train.pool_size=6", "--set", "train.warmup=0.25", "--set", "train.anneal=0.25",
        "--set", "search.population=4", "--set", "search.generations=2", "--set", "search.n_eval=32", "--set", "search.bn_batches=1",
        "--latency", "0.4ms", "--quiet", "--no-report"]
# where each stage is killed (see tests/kill_stage.py): the 10th block measurement, after iteration 5
# (checkpoint at 3), after the 3rd evaluated arch, after the conversion, in the parity check
KILL_AT = {"profile": 10, "train": 5, "search": 3, "export": 1, "verify": 1}


@pytest.fixture(scope="module")
def cache_env(tmp_path_factory):
    return {"HWNAS_CACHE_DIR": str(tmp_path_factory.mktemp("blocks")), "OMP_NUM_THREADS": "1"}


# a host-kind device whose one backend is the deterministic `fixed` one
DEVICE = 'name = "fixed"\nkind = "host"\ndescription = "deterministic pretend timings"\nthreads = 1\nwarmup_runs = 1\nruns = 3\n' \
         'min_time_s = 0.0\nanchor_every = 8\nbackends = ["fixed"]\n'


def _run(hwnas_cli, cwd, env, stage="none", n=0):
    (cwd / "devices").mkdir(exist_ok=True)
    (cwd / "devices" / "fixed.toml").write_text(DEVICE)  # ./devices/NAME.toml: a device profile by name
    return hwnas_cli(str(stage), str(n), "run", *TINY, cwd=cwd, env=env, module="tests.kill_stage", timeout=900)


def _outcome(folder):
    layout = RunLayout.for_name("t", folder / "runs")
    best = json.loads(layout.best.read_text())
    best.pop("resumed_evaluations")  # how the search got there, not what it found
    model = layout.exported_model()
    entries = json.loads((folder / "tables" / "fixed-tiny-fixed.json").read_text())["entries"]
    best["_table_medians"] = {k: e["median_ms"] for k, e in entries.items()}  # the profiled table, less its timestamps
    return best, hashlib.sha256(model.read_bytes()).hexdigest(), json.loads(layout.manifest.read_text())


@pytest.fixture(scope="module")
def reference(tmp_path_factory, cache_env):
    from .conftest import run_hwnas

    folder = tmp_path_factory.mktemp("uninterrupted")
    r = _run(run_hwnas, folder, cache_env)
    assert r.returncode == 0, r.stderr
    return _outcome(folder)


def _kill_and_resume(hwnas_cli, tmp_path, cache_env, reference, stage):
    killed = _run(hwnas_cli, tmp_path, cache_env, stage, KILL_AT[stage])
    assert killed.returncode == -9, killed.stderr  # SIGKILL: no chance to record anything
    layout = RunLayout.for_name("t", tmp_path / "runs")
    m = json.loads(layout.manifest.read_text())
    assert m["stages"][stage]["status"] == "running"  # what a killed stage leaves

    again = _run(hwnas_cli, tmp_path, cache_env)
    assert again.returncode == 0, again.stderr
    assert f"stage {stage} was interrupted; continuing from it" in again.stderr
    best, sha, manifest = _outcome(tmp_path)
    ref_best, ref_sha, ref_manifest = reference
    assert best == ref_best
    assert sha == ref_sha
    assert manifest["stages"][stage]["attempts"] == 2
    assert all(manifest["stages"][s]["status"] in ("done", "skipped") for s in manifest["stages"])
    assert manifest["table"]["path"] == ref_manifest["table"]["path"] == "tables/fixed-tiny-fixed.json"
    return again


# Slow (an uninterrupted run and a killed one, each every stage end to end in a subprocess). The default
# suite covers the parts: tests/test_pipeline.py (a stage left running by kill -9 is run again from
# there, the stages before it are not, a finished run does nothing), tests/test_search_cli.py (a
# search resumes) and tests/test_train.py (a killed training resumes bit for bit).
@pytest.mark.slow
def test_kill_during_search_then_rerun_gives_the_uninterrupted_result(hwnas_cli, tmp_path, cache_env, reference):
    again = _kill_and_resume(hwnas_cli, tmp_path, cache_env, reference, "search")
    manifest = json.loads(RunLayout.for_name("t", tmp_path / "runs").manifest.read_text())
    assert manifest["stages"]["search"]["outputs"]["resumed_evaluations"] == KILL_AT["search"]  # not evaluated twice
    assert manifest["stages"]["train"]["attempts"] == 1  # the stages before it were not run again
    # and once finished, the same command does nothing (but write the report, which this one asks for)
    args = [a for a in TINY if a != "--no-report"]
    third = hwnas_cli("none", "0", "run", *args, "--json", cwd=tmp_path, env=cache_env, module="tests.kill_stage")
    assert third.returncode == 0 and "is finished: nothing to do" in third.stderr, third.stderr
    out = json.loads(third.stdout)  # --json: stdout is the JSON and nothing else
    assert out["already_finished"] is True and out["ran"] == []
    report = tmp_path / out["report"]
    assert report == tmp_path / "runs" / "t" / "report.html" and report.read_text().lstrip().lower().startswith("<!doctype html")
    assert out["stages"]["verify"]["outputs"]["parity_verified"] is True
    assert hashlib.sha256((tmp_path / out["model"]).read_bytes()).hexdigest() == reference[1]


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["profile", "train", "export", "verify"])
def test_kill_during_each_stage_then_rerun_gives_the_uninterrupted_result(hwnas_cli, tmp_path, cache_env, reference, stage):
    _kill_and_resume(hwnas_cli, tmp_path, cache_env, reference, stage)
