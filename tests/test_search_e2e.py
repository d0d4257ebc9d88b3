"""End to end as a user runs it: `hwnas train` a tiny supernet, `hwnas search` on it, `hwnas export` the winner."""

import json

import pytest

from hwnas.space import Arch


@pytest.mark.slow
def test_train_search_export(hwnas_cli, tmp_path):
    run = tmp_path / "run"
    r = hwnas_cli("train", "--space", "tiny", "--out", str(run), "--max-iters", "20", "--n-train", "400", "--n-val", "300",
                  "--n-path-eval", "100", "--pool-size", "20", "--threads", "1", "--quiet", "--no-early-stop")
    assert r.returncode == 0, r.stderr
    out = tmp_path / "search"
    r = hwnas_cli("search", "--latency", "0.3ms", "--supernet", str(run), "--population", "6", "--generations", "2",
                  "--eval-images", "100", "--bn-batches", "1", "--backend", "onnxruntime", "--out", str(out))
    assert r.returncode == 0, r.stderr
    best = json.loads((out / "best.json").read_text())
    assert best["latency_ms"] <= 0.3 and best["supernet"] == str(run)
    hist = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    assert 6 <= len(hist) <= 12 and all(h["latency_ms"] <= 0.3 for h in hist)
    r = hwnas_cli("export", "--arch", str(out / "best.json"), "--weights", str(run), "--format", "onnx", "--no-verify",
                  "--out", str(tmp_path / "exp"))
    assert r.returncode == 0, r.stderr
    onnx = list((tmp_path / "exp").glob("*.onnx"))
    assert len(onnx) == 1
    assert Arch.load(out / "best.json").compact().split(":")[1] in r.stdout
