"""What an export leaves and says: no silent overwrite, honest latency fields, a plain verdict,
the normalization the weights were trained with, and a model never paired with an old sidecar."""

import json
import math
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from hwnas.cli import run
from hwnas.errors import HwnasError
from hwnas.export import export_arch
from hwnas.export.latency_check import LatencyReport, latency_verdict
from hwnas.space import create_space
from hwnas.train.checkpoint import load_checkpoint

REPO = Path(__file__).resolve().parents[1]
ORT_TABLE = REPO / "latency_tables" / "host-tiny-onnxruntime.json"


def quiet_export(*args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return export_arch(*args, **kw)


def models(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir() if p.suffix in (".onnx", ".tflite"))


def write_best(folder: Path, arch, **fields) -> Path:
    """A search's best.json as `hwnas search` writes it (arch at top level)."""
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / "best.json"
    p.write_text(json.dumps({**arch.to_dict(), "accuracy": 50.0, **fields}))
    return p


# ---- item 6: never replace an export silently -----------------------------------------------
def test_a_second_search_winner_does_not_replace_the_first(tmp_path):
    space = create_space("tiny")
    a, b = space.sample(1), space.sample(2)
    assert a != b
    out = tmp_path / "exports"
    ra = quiet_export(str(write_best(tmp_path / "search-a", a)), fmt="onnx", out=out)
    first = ra.path.read_bytes()
    rb = quiet_export(str(write_best(tmp_path / "search-b", b)), fmt="onnx", out=out)
    assert rb.path != ra.path and len(models(out)) == 2
    assert ra.path.read_bytes() == first  # the first winner's file is untouched
    assert json.loads(ra.sidecar.read_text())["arch"] == a.to_dict()
    assert json.loads(rb.sidecar.read_text())["arch"] == b.to_dict()
    # the search folder's name tells the files apart, not "best"
    assert ra.path.name.startswith("search-a-") and rb.path.name.startswith("search-b-")


def test_same_name_other_export_needs_force_and_identical_export_is_reused(tmp_path, capsys):
    space = create_space("tiny")
    a, b = space.sample(1), space.sample(2)
    r1 = quiet_export(a, fmt="onnx", out=tmp_path, name="winner")
    before = r1.path.read_bytes()
    with pytest.raises(HwnasError, match="already exists.*--force"):
        quiet_export(b, fmt="onnx", out=tmp_path, name="winner")
    assert r1.path.read_bytes() == before and json.loads(r1.sidecar.read_text())["arch"] == a.to_dict()
    # the same arch, weights and precision again: the file is reused (and checked again), and said so
    mtime = r1.path.stat().st_mtime_ns
    capsys.readouterr()
    assert run(["export", "--arch", "tiny:" + space.to_compact(a), "--format", "onnx", "--out", str(tmp_path), "--name", "winner"]) == 0
    printed = " ".join(capsys.readouterr().out.split())  # rich wraps lines at the terminal width
    assert f"reused {r1.path}" in printed and "ok parity fp32" in printed
    assert r1.path.stat().st_mtime_ns == mtime and r1.path.read_bytes() == before
    # --force replaces
    assert run(["export", "--arch", "tiny:" + space.to_compact(b), "--format", "onnx", "--out", str(tmp_path), "--name", "winner", "--force"]) == 0
    assert json.loads(r1.sidecar.read_text())["arch"] == b.to_dict() and r1.path.read_bytes() != before
    assert "reused" not in capsys.readouterr().out


def test_without_a_name_different_weights_do_not_collide(tmp_path):
    arch = create_space("tiny").sample(4)
    from hwnas.nn import build_network

    paths = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        w = tmp_path / f"w{seed}.pt"
        torch.save(build_network(arch).state_dict(), w)
        paths.append(quiet_export(arch, weights=w, fmt="onnx", out=tmp_path / "out").path)
    assert paths[0] != paths[1] and len(models(tmp_path / "out")) == 2


# ---- item 7: no table -> "latency not checked", parity and latency apart --------------------
def test_without_a_table_the_latency_is_not_checked_and_says_so(tmp_path, capsys):
    arch = create_space("tiny").sample(3)
    best = write_best(tmp_path / "s", arch)
    assert run(["export", "--arch", str(best), "--format", "onnx", "--out", str(tmp_path / "o")]) == 0
    assert "latency not checked" in " ".join(capsys.readouterr().out.split())
    (side_path,) = (tmp_path / "o").glob("*.json")
    side = json.loads(side_path.read_text())
    assert "verified" not in side  # one word for two checks was the defect
    assert side["parity_verified"] is True and side["latency_checked"] is False and side["budget_met"] is None
    assert side["latency"]["verdict"].startswith("latency not checked: no latency table")


@pytest.mark.skipif(not ORT_TABLE.is_file(), reason="no shipped host tiny onnxruntime table")
def test_the_table_and_budget_named_in_best_json_are_used(tmp_path):
    arch = create_space("tiny").sample(5)
    folder = tmp_path / "search-x"
    folder.mkdir()
    tab = json.loads(ORT_TABLE.read_text())
    tab["calibration"].update(residual_log_mean=0.0, residual_log_std=0.02, residual_n=50, drift_log_std=0.03, drift_n=20)
    (folder / "t.json").write_text(json.dumps(tab))
    # stored relative to best.json's folder, as a search run elsewhere leaves it
    best = write_best(folder, arch, table="t.json", budgets={"latency_ms": 100.0, "flops": None, "params": None})
    r = quiet_export(str(best), fmt="onnx", out=tmp_path / "o", latency_runs=10)
    side = json.loads(r.sidecar.read_text())
    assert side["latency_checked"] is True and side["latency"]["measured_ms"] > 0
    assert Path(side["latency"]["table"]).name == "t.json"
    assert side["latency"]["budget_ms"] == 100.0 and side["budget_met"] is True
    assert side["latency"]["verdict"].startswith("meets the 100 ms budget on this machine")
    # the prediction's 90% interval and the probability of meeting the budget, from the table's error model
    lp, m = side["latency"]["prediction"], side["latency"]["predicted_ms"]
    sigma = math.sqrt(0.02 ** 2 + 0.03 ** 2)  # validated: residuals and drift (they hold the blocks' noise)
    assert lp["interval_ms"] == pytest.approx([m * math.exp(-1.6448536 * sigma), m * math.exp(1.6448536 * sigma)], rel=1e-5)
    assert lp["p_within_budget"] == 1.0 and lp["interval_confidence"] == 0.9
    # a budget no file can meet: "does not meet", on the console and in the sidecar's warnings
    best = write_best(folder, arch, table="t.json", budgets={"latency_ms": 0.0001})
    r = quiet_export(str(best), fmt="onnx", out=tmp_path / "o2", latency_runs=10)
    side = json.loads(r.sidecar.read_text())
    assert side["budget_met"] is False and side["latency"]["verdict"].startswith("does not meet the 0.0001 ms budget")
    assert side["latency"]["verdict"] in side["warnings"]


# ---- item 8: the verdict in words ---------------------------------------------------------
def _report(**kw) -> LatencyReport:
    base = dict(table="host-tiny.json", backend="litert", device="host", predicted_ms=0.218, uncertainty_ms=0.004,
                measured_ms=0.335, error_pct=100 * (0.218 - 0.335) / 0.335)
    base.update(kw)
    return LatencyReport(**base)


def test_verdict_explains_a_slower_device_and_another_cpu():
    rep = _report(device_speed_factor=1.56, measured_reference_ms=0.335 / 1.56,
                  error_reference_pct=100 * (0.218 - 0.335 / 1.56) / (0.335 / 1.56),
                  table_cpu="AMD EPYC", this_cpu="Intel Xeon")
    met, text = latency_verdict(rep, 0.25)
    assert met is False
    assert text.startswith("does not meet the 0.25 ms budget on this machine: measured 0.335 ms")
    assert "this CPU ('Intel Xeon') is not the one the table was profiled on ('AMD EPYC')" in text
    assert "it ran 1.56x slower than when the table was profiled" in text
    # 0.335 / 1.56 = 0.2147 ms; (0.218 - 0.2147) / 0.2147 = +1.5%
    assert "in the table's state the file takes 0.215 ms (prediction error +1.5%)" in text


def test_verdict_met_and_unmeasured_and_underpredicted():
    met, text = latency_verdict(_report(measured_ms=0.2, error_pct=9.0), 0.25)
    assert met is True and text == "meets the 0.25 ms budget on this machine: measured 0.200 ms (predicted 0.218 ms)"
    met, text = latency_verdict(_report(measured_ms=None, error_pct=None, note="not measured: no phone"), 0.25)
    assert met is None and text == "latency not checked: not measured: no phone"
    # same speed as at profiling time and same CPU: the table under-predicted this file
    rep = _report(measured_ms=0.30, error_pct=100 * (0.218 - 0.30) / 0.30, device_speed_factor=1.0,
                  measured_reference_ms=0.30, error_reference_pct=100 * (0.218 - 0.30) / 0.30, table_cpu="A", this_cpu="A")
    met, text = latency_verdict(rep, 0.25)
    assert met is False and "the table predicted 0.218 ms, 27.3% under the measurement" in text
    met, text = latency_verdict(_report(measured_ms=0.2), None)
    assert met is None and text == "no latency budget to check: measured 0.200 ms (predicted 0.218 ms)"


# ---- item 9: the normalization the weights were trained with -------------------------------
def test_training_records_its_normalization_and_export_carries_it(tmp_path):
    from hwnas.search.api import run_search
    from hwnas.train.data import build_datasets
    from hwnas.train.trainer import TrainConfig, train_supernet

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cfg = TrainConfig(space="tiny", n_train=96, n_val=48, n_path_eval=32, batch_size=16, eval_batch=16, sampler="greedy",
                          max_iters=3, m=4, k=2, pool_size=4, warmup=0.25, anneal=0.25)
        train_supernet(cfg, tmp_path / "run")
        ds = build_datasets("builtin", n_train=96, n_val=48, n_path_eval=32)
        want = {"mean": [round(float(v), 6) for v in ds.train.mean.flatten()], "std": [round(float(v), 6) for v in ds.train.std.flatten()]}
        assert want["mean"] != [0.485, 0.456, 0.406]  # the built-in set has its own statistics
        rec = load_checkpoint(tmp_path / "run").meta["normalization"]
        assert (rec["mean"], rec["std"]) == (want["mean"], want["std"]) and rec["data"] == "builtin"
        out = run_search(flops="1000M", supernet=tmp_path / "run", algorithm="random", max_evaluations=2, n_eval=32,
                         bn_batches=1, threads=1, out=tmp_path / "search", plot=False)
        best = json.loads(out.paths["best"].read_text())
        assert (best["normalization"]["mean"], best["normalization"]["std"]) == (want["mean"], want["std"])
        r = quiet_export(str(out.paths["best"]), fmt="onnx", out=tmp_path / "o")
    finally:
        torch.set_num_threads(n)
    norm = json.loads(r.sidecar.read_text())["input"]["normalization"]
    assert (norm["mean"], norm["std"]) == (want["mean"], want["std"])


def test_cifar_and_folder_sets_report_their_statistics(tmp_path):
    from hwnas.train.data import build_datasets

    from .test_data import _write_cifar

    _write_cifar(tmp_path)
    ds = build_datasets(f"cifar10:{tmp_path}", n_val=30, n_path_eval=10)
    assert ds.normalization() == {"data": f"cifar10:{tmp_path}", "mean": [0.4914, 0.4822, 0.4465],
                                  "std": [0.247, 0.2435, 0.2616], "scale": "RGB in [0, 1]"}


def test_weights_without_a_record_do_not_claim_imagenet_statistics(tmp_path):
    arch = create_space("tiny").sample(6)
    from hwnas.nn import build_network

    w = tmp_path / "w.pt"
    torch.save(build_network(arch).state_dict(), w)
    norm = json.loads(quiet_export(arch, weights=w, fmt="onnx", out=tmp_path / "o").sidecar.read_text())["input"]["normalization"]
    assert norm["mean"] is None and norm["std"] is None and "not recorded" in norm["note"]
    # a wrapped state dict may carry it
    stats = {"mean": [0.1, 0.2, 0.3], "std": [0.4, 0.5, 0.6]}
    torch.save({"arch": arch.to_dict(), "state_dict": build_network(arch).state_dict(), "normalization": stats}, w)
    norm = json.loads(quiet_export(arch, weights=w, fmt="onnx", out=tmp_path / "o2").sidecar.read_text())["input"]["normalization"]
    assert (norm["mean"], norm["std"]) == (stats["mean"], stats["std"])


# ---- item 19: a crash never pairs a new model with an old sidecar --------------------------
CRASH = """
import os, sys, warnings
warnings.simplefilter("ignore")
import hwnas.export.api as api
import hwnas.io as hio
real = hio.atomic_write_json
def crash(path, *a, **k):
    if str(path).endswith(".onnx.json"):
        os._exit(9)  # killed while writing the sidecar
    return real(path, *a, **k)
api.atomic_write_json = crash
api.export_arch(sys.argv[1], fmt="onnx", out=sys.argv[2], name="w", force=True)
"""


def test_killed_while_writing_the_sidecar_leaves_no_mismatched_pair(tmp_path):
    space = create_space("tiny")
    a, b = space.sample(1), space.sample(2)
    first = quiet_export(a, fmt="onnx", out=tmp_path, name="w")
    old_model = first.path.read_bytes()
    p = subprocess.run([sys.executable, "-c", CRASH, "tiny:" + space.to_compact(b), str(tmp_path)], cwd=REPO,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 9, p.stderr
    model_now = first.path.read_bytes() if first.path.exists() else None
    side_now = json.loads(first.sidecar.read_text()) if first.sidecar.exists() else None
    if model_now is not None and model_now != old_model:  # the new model is in place ...
        assert side_now is None or side_now["arch"] == b.to_dict()  # ... never under the old arch's sidecar
    if side_now is not None and model_now is not None:
        import hashlib

        assert side_now["sha256"] == hashlib.sha256(model_now).hexdigest()


LITERT_TABLE = REPO / "latency_tables" / "host-tiny-litert.json"


@pytest.mark.skipif(not (ORT_TABLE.is_file() and LITERT_TABLE.is_file()), reason="no shipped host tiny tables")
def test_a_tflite_export_of_a_search_on_an_onnx_table_is_checked_with_the_litert_table(tmp_path):
    """best.json names the onnxruntime table it searched with; a .tflite export is timed with the same
    device and space's table of that format (<device>-<space>-litert.json beside it), not left unchecked."""
    arch = create_space("tiny").sample(5)
    folder = tmp_path / "search-x"
    tables = tmp_path / "latency_tables"
    tables.mkdir()
    (tables / ORT_TABLE.name).write_bytes(ORT_TABLE.read_bytes())
    best = write_best(folder, arch, table=str(tables / ORT_TABLE.name), budgets={"latency_ms": 100.0})
    # without the tflite table beside it: not measured, and the message names the table to profile
    r = quiet_export(str(best), fmt="tflite", out=tmp_path / "o1", latency_runs=10)
    side = json.loads(r.sidecar.read_text())
    assert side["latency_checked"] is False or side["latency"].get("measured_ms") is None
    assert "hwnas profile --device host --space tiny --backend litert" in side["latency"]["verdict"] + " ".join(side["warnings"])
    # with it: that table predicts, the file is timed by its backend, and the sidecar says why it was used
    (tables / LITERT_TABLE.name).write_bytes(LITERT_TABLE.read_bytes())
    r = quiet_export(str(best), fmt="tflite", out=tmp_path / "o2", latency_runs=10)
    side = json.loads(r.sidecar.read_text())
    lat = side["latency"]
    assert side["latency_checked"] is True and lat["measured_ms"] > 0 and lat["backend"] == "litert"
    assert Path(lat["table"]).name == LITERT_TABLE.name and side["budget_met"] is True
    from hwnas.latency.table import LatencyTable

    assert lat["predicted_ms"] == pytest.approx(LatencyTable.load(tables / LITERT_TABLE.name).predict(arch)[0])
    assert any(ORT_TABLE.name in w and LITERT_TABLE.name in w for w in side["warnings"])
    # a table given with --table is used as given (the user chose it)
    r = quiet_export(str(best), fmt="tflite", out=tmp_path / "o3", table=tables / ORT_TABLE.name, verify=True, latency_runs=10)
    assert Path(json.loads(r.sidecar.read_text())["latency"]["table"]).name == ORT_TABLE.name
