"""Latency tables: keys, backends, profiler (journal/resume), table checks, predictor, validate."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from hwnas.errors import HwnasError
from hwnas.latency.backends import Protocol, create_backend, list_backends
from hwnas.latency.backends.base import Backend, RunTimes, register_backend
from hwnas.latency.blocks import block_file, export_block
from hwnas.latency.journal import journal_path
from hwnas.latency.keys import arch_keys, block_key, space_slots
from hwnas.latency.profiler import entry_from_rounds, profile_space
from hwnas.latency.table import LatencyTable
from hwnas.space import create_space

from .conftest import REPO

FAST = ("--runs", "5", "--warmup", "1", "--rounds", "1", "--min-time", "0")


def one_line_error(r):
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    return lines[0]


@pytest.fixture(scope="module")
def block_cache(tmp_path_factory):
    """One private block cache for this module: each tiny block is exported once."""
    return tmp_path_factory.mktemp("blocks")


@pytest.fixture
def cache_env(block_cache, monkeypatch):
    """The private block cache, for the library and for CLI subprocesses."""
    monkeypatch.setenv("HWNAS_CACHE_DIR", str(block_cache))
    return {"HWNAS_CACHE_DIR": str(block_cache)}


@pytest.fixture(scope="module")
def tiny_table(block_cache, tmp_path_factory):
    """A full tiny onnxruntime table made by the real CLI (few runs: this is about plumbing)."""
    from .conftest import run_hwnas

    out = tmp_path_factory.mktemp("tables") / "t.json"
    r = run_hwnas("profile", "--device", "host", "--space", "tiny", "--backend", "onnxruntime", "--out", str(out), *FAST,
                  env={"HWNAS_CACHE_DIR": str(block_cache)})
    assert r.returncode == 0, r.stderr
    return out


# ---- keys ----------------------------------------------------------------------------
def test_keys_shared_across_layers_and_stem_head_are_blocks():
    sp = create_space("proxyless")
    slots = space_slots(sp)
    # every layer x op, stem and head, minus the keys layers share (same op on the same shape)
    naive = sum(len(layer.choices) for layer in sp.layers) + len(sp.stem) + len(sp.head)
    assert len(slots) == 70 < naive
    keys = list(slots)
    assert keys[0] == "conv-in:224x224x3-out:112x112x32-k3-s2-relu6"
    assert keys[1] == "mbconv-in:112x112x32-out:112x112x16-k3-e1-s1-se0-relu6"
    assert keys[-1] == "pool_fc-in:7x7x1280-out:1000"
    assert "mbconv-in:56x56x32-out:28x28x40-k5-e6-s2-se0-relu6" in slots
    # identity on an unchanged shape costs nothing and is not a block
    ident = [layer for layer in sp.layers if "id" in layer.choice_ids][0]
    assert block_key(ident.slot(ident.choices[0])) is None
    arch = sp.arch(["k3e3"] + ["id"] * 3 + ["k3e3"] + ["id"] * 3 + ["k3e3"] + ["id"] * 3 + ["k3e3"] + ["id"] * 3 + ["k3e3"] + ["id"] * 3 + ["k3e3"])
    assert len(arch_keys(sp, arch)) == 2 + 6 + 2


# ---- backends ------------------------------------------------------------------------
def test_backend_registry_and_unknown_name():
    assert {"onnxruntime", "litert"} <= set(list_backends())
    with pytest.raises(HwnasError, match="unknown latency backend 'nope'; known: .*onnxruntime"):
        create_backend("nope")
    b = create_backend("onnxruntime")
    assert b.model_format == "onnx" and create_backend("litert").model_format == "tflite"
    fp = b.fingerprint()
    assert fp["runtime"] == "onnxruntime" and fp["runtime_version"] and fp["cpu"]


def test_onnxruntime_measures_in_a_fresh_pinned_process(tmp_path):
    sp = create_space("tiny")
    key, slot = next(iter(space_slots(sp).items()))
    path = export_block(key, slot, "onnx", tmp_path)
    assert path == block_file(key, "onnx", tmp_path) and path.stat().st_size > 0
    assert export_block(key, slot, "onnx", tmp_path).stat().st_mtime == path.stat().st_mtime  # cached
    with create_backend("onnxruntime") as b:
        p = Protocol(warmup_runs=1, runs=7, min_time_s=0.0, cpu_mask=[0], cv_bound=10.0)
        m1, m2 = b.measure(path, p), b.measure(path, p)
    assert m1.n == 7 and 0 < m1.median_ms <= m1.p90_ms and m1.std_ms >= 0 and m1.status == "ok"
    assert m1.info["pid"] != m2.info["pid"] and m1.info["pid"] != os.getpid()  # a new process each time
    assert m1.info["cpus"] == [0]
    with create_backend("onnxruntime") as b:  # a minimum timing span adds runs past ``runs``
        m3 = b.measure(path, Protocol(warmup_runs=3, runs=3, min_time_s=0.002, cv_bound=10.0))
    assert m3.n > 3 and (m3.n * m3.mean_ms >= 2.0 or m3.n == 50 * 3)  # the span, or the 50x cap


def test_measure_failure_is_a_clear_error(tmp_path):
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"not an onnx model")
    with create_backend("onnxruntime") as b:
        with pytest.raises(HwnasError, match="could not time"):
            b.measure(bad, Protocol(runs=2, warmup_runs=0))
        with pytest.raises(HwnasError, match="not found"):
            b.measure(tmp_path / "missing.onnx")


class _Scripted(Backend):
    """Replays given per-run times: exercises Backend.measure's retry bookkeeping exactly."""

    name = "scripted"
    model_format = "onnx"

    def __init__(self, device=None, script=()):
        super().__init__(device)
        self.script = list(script)

    def fingerprint(self):
        return {"model": "scripted"}

    def _time_runs(self, model_path, protocol):
        return RunTimes(self.script.pop(0))


def test_cv_above_bound_is_remeasured_and_recorded(tmp_path):
    f = tmp_path / "m.onnx"
    f.write_bytes(b"x")
    noisy = [1.0, 2.0, 3.0, 1.0, 2.5, 0.5, 3.0]
    steady = [1.00, 1.01, 0.99, 1.00, 1.02, 0.98, 1.00]
    m = _Scripted(script=[noisy, steady]).measure(f, Protocol(cv_bound=0.05, max_retries=3))
    assert m.retries == 1 and m.status == "ok" and len(m.attempts) == 2 and m.attempts[0]["cv"] > 0.05
    assert m.median_ms == pytest.approx(1.0)
    m = _Scripted(script=[noisy] * 3).measure(f, Protocol(cv_bound=0.05, max_retries=2))
    assert m.retries == 2 and m.status == "cv_exceeded" and len(m.attempts) == 3


def test_entry_is_median_of_round_medians():
    rounds = [{"median_ms": v, "p90_ms": v * 1.1, "mean_ms": v, "std_ms": 0.01, "n": 10, "cv": 0.01, "measured": "t"} for v in (1.0, 1.2, 5.0)]
    e = entry_from_rounds(rounds)
    assert e["median_ms"] == 1.2 and e["n"] == 30 and e["round_medians_ms"] == [1.0, 1.2, 5.0]
    assert e["std_ms"] > 1.0  # the pooled spread keeps the outlier round visible


# ---- profiler, table, predictor (CLI) ------------------------------------------------
def test_profile_tiny_then_predict_and_table_checks(hwnas_cli, tmp_path, cache_env, tiny_table):
    out = tmp_path / "t.json"
    out.write_text(tiny_table.read_text())
    assert not journal_path(tiny_table).exists()  # complete: the journal is folded into the table
    d = json.loads(out.read_text())
    sp = create_space("tiny")
    assert set(d["entries"]) == set(space_slots(sp)) and d["failed"] == {}
    assert d["format"] == 1 and d["backend"] == "onnxruntime" and d["space"] == "tiny"
    assert d["device"]["runtime"] == "onnxruntime" and d["device"]["name"] == "host"
    assert d["protocol"]["runs"] == 5 and d["protocol"]["threads"] == 1 and "fresh process" in d["protocol"]["process"]
    e = next(iter(d["entries"].values()))
    assert {"median_ms", "p90_ms", "mean_ms", "std_ms", "n", "measured", "cv", "retries", "status"} <= set(e)
    assert d["protocol"]["clock"] == "auto" and "CPU time of the inference thread" in d["protocol"]["clock_used"]
    # a second run of the same command finds everything done and re-measures nothing
    r = hwnas_cli("profile", "--space", "tiny", "--out", str(out), *FAST, env=cache_env)
    assert r.returncode == 0, r.stderr
    assert json.loads(out.read_text())["entries"] == d["entries"]
    # extending a table with measurements taken another way is refused
    err = one_line_error(hwnas_cli("profile", "--space", "tiny", "--out", str(out), "--runs", "9", "--warmup", "1", "--rounds", "1", "--min-time", "0", env=cache_env))
    assert "measured with another protocol (runs 5->9)" in err

    table = LatencyTable.load(out, space="tiny", backend="onnxruntime", device=create_backend("onnxruntime").fingerprint())
    arch = sp.sample(3)
    ms, unc = table.predict(arch)
    assert ms == pytest.approx(sum(d["entries"][k]["median_ms"] for k in arch_keys(sp, arch)))
    assert unc > 0 and table.predict_quantile(arch, 0.9) >= ms
    table.calibration = {"scale": 2.0, "overhead_ms": 0.5, "per_block_ms": 0.1}
    assert table.predict(arch)[0] == pytest.approx(2 * ms + 0.5 + 0.1 * len(arch_keys(sp, arch)))

    r = hwnas_cli("arch", "info", sp.to_compact(arch).join(["tiny:", ""]), "--table", str(out), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["latency"]["predicted_ms"] == pytest.approx(ms)

    # a table for another space, backend or device is refused unless forced
    assert "is for space 'tiny', not 'proxyless'" in one_line_error(hwnas_cli("arch", "info", "proxyless-mobile", "--table", str(out)))
    with pytest.raises(HwnasError, match="for backend 'onnxruntime', not 'litert'"):
        LatencyTable.load(out, backend="litert")
    with pytest.raises(HwnasError, match="measured on another device"):
        LatencyTable.load(out, device={"cpu": "Snapdragon 855"})
    assert LatencyTable.load(out, device={"cpu": "Snapdragon 855"}, force=True).space == "tiny"

    # a corrupt (truncated) table: a clear error, and profile refuses to overwrite it silently
    text = out.read_text()
    out.write_text(text[: len(text) // 2])
    err = one_line_error(hwnas_cli("arch", "info", "tiny:" + sp.to_compact(arch), "--table", str(out)))
    assert "is corrupt" in err
    err = one_line_error(hwnas_cli("profile", "--space", "tiny", "--out", str(out), *FAST, env=cache_env))
    assert "is corrupt" in err and out.read_text() == text[: len(text) // 2]


def test_bad_cli_input(hwnas_cli, tmp_path):
    assert "unknown device 'nosuchphone'" in one_line_error(hwnas_cli("profile", "--device", "nosuchphone", "--space", "tiny"))
    err = one_line_error(hwnas_cli("profile", "--device", "host", "--space", "tiny", "--backend", "tensorrt", "--out", str(tmp_path / "x.json")))
    assert "unknown latency backend 'tensorrt'" in err
    assert "unknown search space" in one_line_error(hwnas_cli("profile", "--space", "nospace", "--out", str(tmp_path / "y.json")))
    assert "not found" in one_line_error(hwnas_cli("validate", "--table", str(tmp_path / "none.json")))


def _kill_after_measurements(cmd: list[str], env: dict, out: Path, n: int) -> list[dict]:
    """Start the profiler ``cmd``, kill -9 it once its journal holds ``n`` measurements; the journaled ones."""
    proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    jp = journal_path(out)
    deadline = time.time() + 120
    before: list[dict] = []
    while time.time() < deadline:
        if jp.exists():
            before = [json.loads(x) for x in jp.read_text().splitlines() if x.strip() and x.endswith("}")]
            if sum("measurement" in x for x in before) >= n:
                break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not out.exists(), "killed before the end: only the journal holds the work"
    lines = jp.read_text().splitlines()
    done = [json.loads(x) for x in lines if x.strip().endswith("}") and '"measurement"' in x]
    # simulate a crash mid-write too: a half line at the end
    with open(jp, "a") as f:
        f.write('{"key": "mbconv-in:32x32x16-out:32x32x24-k3-e6-s1-se0-relu", "round": 1, "measurement": {"median_')
    return done


def _assert_resumed_table_keeps_the_journaled_measurements(table: dict, done: list[dict], n_keys: int) -> None:
    assert len(table["entries"]) == n_keys
    assert table["protocol"]["anchor"]["readings"] >= 2  # the anchor readings of both runs (drift correction)
    for rec in done:  # every measurement finished before the kill is in the table as measured then (drift-corrected)
        e = table["entries"][rec["key"]]
        assert rec["measurement"]["median_ms"] == pytest.approx(e["round_medians_ms"][rec["round"]] * e["drift_factors"][rec["round"]], rel=1e-3)
    assert all(len(e["round_medians_ms"]) == 2 for e in table["entries"].values())


KILLED_PROFILE = """
import sys
from hwnas.device.profiles import load_device
from hwnas.latency.backends import Protocol
from hwnas.latency.keys import space_slots
from hwnas.latency.profiler import profile_space
from hwnas.space import create_space

host = load_device("host")
keys = list(space_slots(create_space("tiny")))[:int(sys.argv[2])]
profile_space(host, "tiny", "onnxruntime", sys.argv[1], keys=keys,
              protocol=Protocol.from_device(host, runs=3, warmup_runs=1, rounds=2, min_time_s=0.0))
"""


def test_profiling_killed_mid_run_resumes_without_remeasuring(tmp_path, cache_env):
    """kill -9 the profiler mid-run (16 of tiny's blocks, two rounds); the same call continues and keeps
    every finished measurement. (All 39 blocks through `hwnas profile` is the slow test below.)"""
    out, n_keys = tmp_path / "k.json", 16
    cmd = [sys.executable, "-c", KILLED_PROFILE, str(out), str(n_keys)]
    done = _kill_after_measurements(cmd, {**os.environ, **cache_env, "PYTHONPATH": str(REPO)}, out, 10)
    assert 10 <= len(done) < 2 * n_keys
    r = subprocess.run(cmd, env={**os.environ, **cache_env, "PYTHONPATH": str(REPO)}, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "skipped 1 damaged line" in r.stderr  # the half line, said and measured again
    _assert_resumed_table_keeps_the_journaled_measurements(json.loads(out.read_text()), done, n_keys)


@pytest.mark.slow
def test_profile_resumes_after_kill_without_remeasuring(tmp_path, cache_env):
    """kill -9 `hwnas profile` mid-run; the same command continues and keeps every finished entry."""
    out = tmp_path / "k.json"
    cmd = [sys.executable, "-m", "hwnas", "profile", "--space", "tiny", "--backend", "onnxruntime", "--out", str(out),
           "--runs", "10", "--warmup", "1", "--rounds", "2", "--min-time", "0"]
    env = {**os.environ, **cache_env, "PYTHONPATH": str(REPO)}
    done = _kill_after_measurements(cmd, env, out, 10)
    assert 10 <= len(done) < 2 * 39
    r = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    _assert_resumed_table_keeps_the_journaled_measurements(json.loads(out.read_text()), done, 39)


def test_failed_export_is_recorded_and_profiling_continues(tmp_path):
    sp = create_space("tiny")
    slots = space_slots(sp)
    bad_key = list(slots)[3]
    # a directory where the block's file should go: the real exporter fails to write it
    block_file(bad_key, "onnx", tmp_path / "c").mkdir(parents=True)
    (block_file(bad_key, "onnx", tmp_path / "c") / "x").write_text("")
    keys = list(slots)[:6]
    table = profile_space("host", "tiny", "onnxruntime", tmp_path / "f.json", cache_dir=tmp_path / "c", keys=keys,
                          protocol=Protocol(runs=3, warmup_runs=0, rounds=1))
    assert set(table.entries) == set(keys) - {bad_key}
    assert "export failed" in table.failed[bad_key]
    saved = json.loads((tmp_path / "f.json").read_text())
    assert bad_key in saved["failed"] and len(saved["entries"]) == 5


def test_journal_for_another_profile_or_garbage_is_refused(tmp_path):
    out = tmp_path / "j.json"
    jp = journal_path(out)
    jp.write_text('{"journal": 1, "backend": "litert", "space": "tiny"}\n')
    with pytest.raises(HwnasError, match="belongs to another profile"):
        profile_space("host", "tiny", "onnxruntime", out, keys=[], protocol=Protocol(runs=2, rounds=1))
    jp.write_text("garbage\n{\"key\": 1}\n")
    with pytest.raises(HwnasError, match="no valid header"):
        profile_space("host", "tiny", "onnxruntime", out, keys=[], protocol=Protocol(runs=2, rounds=1))


def test_validate_tiny_reports_and_calibrates(hwnas_cli, tmp_path, cache_env, tiny_table):
    out = tmp_path / "v.json"
    out.write_text(tiny_table.read_text())
    plot = tmp_path / "v.png"
    r = hwnas_cli("validate", "--device", "host", "--table", str(out), "--samples", "6", "--calibrate", "--plot", str(plot), "--json", env=cache_env)
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["samples"] == 6 and plot.stat().st_size > 1000 and plot.read_bytes()[:4] == b"\x89PNG"
    assert all(len(a["rounds_ms"]) == 2 for a in rep["archs"])
    # the shares, RMSE and noise figures recomputed from the per-arch figures and the table file itself
    space = create_space("tiny")
    entries = json.loads(tiny_table.read_text())["entries"]
    archs = [space.from_compact(a["arch"]) for a in rep["archs"]]
    raw = np.array([sum(entries[k]["median_ms"] for k in arch_keys(space, a)) for a in archs])
    blocks = np.array([len(arch_keys(space, a)) for a in archs])
    rounds = np.array([a["rounds_ms"] for a in rep["archs"]])
    meas = np.array([a["measured_ms"] for a in rep["archs"]])
    assert np.allclose([a["raw_sum_ms"] for a in rep["archs"]], raw)
    assert np.allclose(meas, rounds.mean(axis=1), rtol=1e-5)  # median of two rounds

    def expect(part, pred, m):
        rel = np.abs(pred - m) / m
        assert part["n"] == len(m)
        assert part["within_5"] == pytest.approx(np.mean(rel <= 0.05))
        assert part["within_10"] == pytest.approx(np.mean(rel <= 0.10))
        assert part["rmse_ms"] == pytest.approx(np.sqrt(np.mean((pred - m) ** 2)), rel=1e-4)

    expect(rep["results"]["uncalibrated"], raw, meas)
    cal = json.loads(out.read_text())["calibration"]
    assert cal == rep["calibration"] and cal["fitted_on"] == 3 and cal["scale"] != 1.0
    held = np.random.default_rng(1).permutation(6)[3:]  # the held-out half of seed 0
    cal_pred = cal["scale"] * raw + cal["overhead_ms"] + cal["per_block_ms"] * blocks
    expect(rep["results"]["uncalibrated_heldout"], raw[held], meas[held])
    expect(rep["results"]["calibrated_heldout"], cal_pred[held], meas[held])
    # the statistics a search's confidence is built from: the held-out residuals, and the anchor's drift
    resid = np.log(meas[held] / cal_pred[held])
    assert cal["residual_n"] == 3 and cal["residual_log_mean"] == pytest.approx(resid.mean(), abs=2e-4)
    assert cal["residual_log_std"] == pytest.approx(resid.std(ddof=1), rel=2e-3, abs=2e-4)
    assert cal["drift_n"] == (rep["drift"].get("readings", 0) if rep["drift"]["corrected"] else 0)
    spread = 100 * np.abs(rounds[:, 0] - rounds[:, 1]) / rounds.mean(axis=1)
    assert rep["noise"]["median_abs_pct"] == pytest.approx(np.median(spread), rel=1e-3, abs=1e-3)
    # the measured whole nets are real: sum of blocks and measured time are the same order of magnitude
    assert np.all((0.2 < raw / meas) & (raw / meas < 5))
    # the report is also left next to the table, for `hwnas report`: the plotted pairs are the held-out ones
    saved = json.loads(out.with_suffix(".validate.json").read_text())
    assert saved["results"] == rep["results"] and saved["archs"] == rep["archs"]
    pairs = saved["series"]["calibrated (held-out)"]
    assert np.allclose(pairs["predicted_ms"], cal_pred[held], rtol=1e-3) and np.allclose(pairs["measured_ms"], meas[held])
