"""ofa-mbv3 exports (h-swish, SE with hard-sigmoid, the BN-free 1x1 conv after the pool) with parity,
and the Note10 flow: search under 25 ms over the resolutions the phone has tables for, export the winner."""

import json
import re

import pytest

from hwnas.latency.table import LatencyTable
from hwnas.space import create_space
from tests.test_export import check_fp32_parity, quiet_export, random_archs

from .conftest import REPO


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_torch_thread):
    yield


def _every_kind(archs):
    ops = set().union(*(a.ops for a in archs))
    return {"se": any(o.endswith("_se") or "_se_" in o for o in ops), "hs": any(o.endswith("_hs") for o in ops),
            "skip": "id" in ops, "plain": any("_" not in o and o != "id" for o in ops)}


def test_ofa_arch_fp32_parity_onnx_and_tflite(tmp_path):
    """One arch at the smallest input (128): every stage kind (ReLU, ReLU+SE, h-swish, h-swish+SE) and a skip."""
    archs = random_archs("ofa-mbv3", {"resolution": 128}, 1, seed=5)
    assert all(_every_kind(archs).values())
    worst = check_fp32_parity(tmp_path, archs)
    print(f"\nofa-mbv3@128: worst fp32 max abs err onnx {worst['onnx']:.3g}, tflite {worst['tflite']:.3g}")


@pytest.mark.slow
def test_ofa_archs_fp32_parity_at_224(tmp_path):
    archs = random_archs("ofa-mbv3", {}, 3, seed=11)
    worst = check_fp32_parity(tmp_path, archs)
    print(f"\nofa-mbv3@224: worst fp32 max abs err onnx {worst['onnx']:.3g}, tflite {worst['tflite']:.3g} over 3 archs")


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["tflite", "onnx"])
def test_ofa_arch_int8(tmp_path, fmt):
    """int8 files of an ofa-mbv3 arch: checked against PyTorch on the built-in images (reported, not
    enforced, for fresh weights whose logits are nearly tied)."""
    (arch,) = random_archs("ofa-mbv3", {"resolution": 128}, 1, seed=5)
    r = quiet_export(arch, fmt=fmt, precision="int8", out=tmp_path)
    (p,) = r.parity
    assert p.precision == "int8" and p.n > 0 and p.logit_scale > 0
    assert p.passed or any("not enforced" in w for w in r.warnings)
    print(f"\nofa-mbv3@128 int8 {fmt}: top-1 agreement {100 * p.top1_agreement:.1f}%, max abs err {p.max_abs_err:.3g}")


def _search_note10(hwnas_cli, out, resolutions):
    """A short search on the shipped Note10 tables under 25 ms; its best.json."""
    r = hwnas_cli("search", "--space", "ofa-mbv3", "--device", "note10", "--latency", "25ms", "--resolution", resolutions,
                  "--population", "12", "--generations", "3", "--tables-dir", str(REPO / "latency_tables"), "--out", str(out))
    assert r.returncode == 0, r.stderr
    return json.loads((out / "best.json").read_text()), r


def test_note10_search_under_25ms_picks_a_tabled_resolution(hwnas_cli, tmp_path):
    best, r = _search_note10(hwnas_cli, tmp_path / "s", "200-224")
    # off a terminal: which resolution is being searched, and progress lines for every one of them
    parts = r.stderr.split("searching resolution ")[1:]
    assert [p.split("\n", 1)[0] for p in parts] == [f"{res} ({i} of 7)" for i, res in enumerate(range(200, 225, 4), 1)]
    for part in parts:  # each search starts and ends with a line; the best is a MACs count, not a percentage
        lines = [line for line in part.splitlines() if line.startswith("search: ")]
        assert re.match(r"search: 0/\d+ archs evaluated", lines[0])
        assert " MMACs, " in lines[-1] and "%" not in lines[-1]
    # the score is the MACs proxy, not an accuracy: the table does not call it one
    header = next(line for line in r.stdout.splitlines() if "arch" in line and "latency ms" in line)
    assert "acc %" not in header and "MMACs" in header
    res = best["resolution"]
    assert res in range(200, 225, 4) and best["space_args"].get("resolution", 224) == res
    assert sorted(int(k) for k in best["resolutions_searched"]) == list(range(200, 225, 4))
    # the bound the search constrained is at least the shipped table's median for that resolution, and within the budget
    table = LatencyTable.load(REPO / "latency_tables" / f"note10-ofa-mbv3-{res}-tflite.json", space="ofa-mbv3")
    arch = create_space("ofa-mbv3", **best.get("space_args", {})).arch(best["ops"])
    assert table.predict(arch)[0] - 1e-9 <= best["latency_ms"] <= 25.0
    assert best["table"].endswith(f"note10-ofa-mbv3-{res}-tflite.json")
    # the winner is the best (by its score) of the per-resolution searches
    assert best["score"] == max(v["score"] for v in best["resolutions_searched"].values())


@pytest.mark.slow
def test_note10_winner_exports_with_parity_and_says_it_is_not_measured(hwnas_cli, tmp_path):
    out = tmp_path / "s"
    best, _ = _search_note10(hwnas_cli, out, "208-224")
    table = REPO / "latency_tables" / f"note10-ofa-mbv3-{best['resolution']}-tflite.json"
    r = hwnas_cli("export", "--arch", str(out / "best.json"), "--format", "tflite", "--table", str(table),
                  "--out", str(tmp_path / "e"), "--json", timeout=1800)
    assert r.returncode == 0, r.stderr
    side = json.loads(r.stdout)
    assert side["parity"][0]["passed"] is True
    assert side["input"]["shape"] == [1, 3, best["resolution"], best["resolution"]]
    assert "predicted on the Samsung Galaxy Note10 table; not measured: no such phone attached" in side["latency"]["note"]
    assert side["latency"]["predicted_ms"] <= 25.0
