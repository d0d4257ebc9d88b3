"""The supernet benchmark runs end to end on its quick settings (slow: outside the default suite)."""

import json
import subprocess
import sys

import pytest

from .conftest import REPO


@pytest.mark.slow
def test_supernet_bench_quick_writes_its_tables(tmp_path):
    out = tmp_path / "bench.json"
    r = subprocess.run([sys.executable, str(REPO / "benchmarks" / "supernet_bench.py"), "--quick", "--workers", "1", "--controls",
                        "--work", str(tmp_path / "work"), "--out", str(out)], capture_output=True, text=True, timeout=3600)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(out.read_text())
    g, u = res["supernets"]["greedy"], res["supernets"]["uniform"]
    assert abs(g["corrected_opt_images"] - u["corrected_opt_images"]) <= res["settings"]["batch"]  # same corrected cost
    assert g["n_eval_images"] > 0 and u["n_eval_images"] == 0
    assert len(res["ground_truth"]) == res["settings"]["archs"]
    assert set(res["table3"]) == {"random", "uniform", "greedy"}
    assert res["cost"]["supernet_vs_standalone"]["supernet_img_s"] > 0
    assert "Table 3 analogue" in r.stdout
    # controls: uniform at greedy's #optimization only; greedy filtering without the pool
    ctl = res["supernets"]["uniform-equal-opt"], res["supernets"]["greedy-eps0"]
    assert ctl[0]["n_opt_images"] == g["n_opt_images"] and ctl[0]["n_eval_images"] == 0
    assert ctl[1]["n_eval_images"] == g["n_eval_images"] and set(res["controls"]) == {"uniform-equal-opt", "greedy-eps0"}
    assert all(len(res["ranking"][n]["supernet_acc"]) == len(res["ground_truth"]) for n in res["controls"])
    boot = res["ranking"]["greedy_minus_uniform"]["all"]
    assert boot["difference_90ci"][0] <= boot["difference_90ci"][1] and 0.0 <= boot["share_greedy_better"] <= 1.0
