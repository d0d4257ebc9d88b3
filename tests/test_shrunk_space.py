"""Shrunk spaces (SE-NAS): a base space with fewer choices per layer, named by a file every space option takes."""

import json

import numpy as np
import pytest

from hwnas.errors import HwnasError
from hwnas.space import Arch, create_space, list_spaces
from hwnas.space.shrunk import merge_groups, read_space_file, write_space_file


def _shrunk_tiny(path, keep=2):
    base = create_space("tiny")
    space = create_space("tiny", choices=[layer.choice_ids[-keep:] for layer in base.layers])
    write_space_file(path, space)
    return base, space


def test_shrunk_space_narrows_each_layer_and_keeps_the_base_encoding(tmp_path):
    for name in list_spaces():
        base = create_space(name)
        kept = [layer.choice_ids[::2] for layer in base.layers]
        space = create_space(name, choices=kept)
        assert space.name == base.name and space.size == int(np.prod([len(k) for k in kept]))
        assert [layer.choice_ids for layer in space.layers] == [tuple(k) for k in kept]
        arch = space.from_indices(space.sample_indices(np.random.default_rng(0), 1)[0])
        # the same compact text in both spaces: latency tables and archs of the base serve the shrunk space
        assert space.to_compact(arch) == base.to_compact(base.arch(arch.ops))
        assert space.from_compact(space.to_compact(arch)) == arch
        assert space.flops_params(arch) == base.flops_params(base.arch(arch.ops))
        # written and read back as a file, it is the same space (one instance: create_space caches)
        f = tmp_path / f"{name}.json"
        write_space_file(f, space)
        assert create_space(str(f)) is space
        assert Arch.from_json(arch.to_json()) == arch


def test_shrunk_space_rejects_bad_choices_in_one_line(tmp_path):
    base = create_space("tiny")
    with pytest.raises(HwnasError, match="keeps no op"):
        create_space("tiny", choices=[[]] + [list(layer.choice_ids) for layer in base.layers[1:]])
    with pytest.raises(HwnasError, match="not one of its choices"):
        create_space("tiny", choices=[["k9e9"]] + [list(layer.choice_ids) for layer in base.layers[1:]])
    with pytest.raises(HwnasError, match="each of its 6 layers"):
        create_space("tiny", choices=[["id"]])
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"base": "tiny"}))
    with pytest.raises(HwnasError, match="not a shrunk space"):
        create_space(str(bad))
    with pytest.raises(HwnasError, match="does not exist"):
        create_space(str(tmp_path / "missing.json"))
    # keeping everything is the base space itself
    assert create_space("tiny", choices=[list(layer.choice_ids) for layer in base.layers]) is base


def test_space_file_holds_base_args_and_choices(tmp_path):
    space = create_space("proxyless", num_classes=10, choices=[layer.choice_ids[:1] for layer in create_space("proxyless").layers])
    write_space_file(tmp_path / "s.json", space, stages=[])
    base, args, choices = read_space_file(tmp_path / "s.json")
    assert (base, args) == ("proxyless", {"num_classes": 10}) and all(len(c) == 1 for c in choices)
    assert create_space(str(tmp_path / "s.json")).size == 1


def test_merge_rule_shallow_to_deep():
    # the paper's Fig. 3: six layers shrunk to (5, 2, 3, 1, 2, 3) choices, threshold 6:
    # layers 2-4 (2*3*1) and 5-6 (2*3) merge, layer 1 (5 choices, 5*2 > 6) stays shared
    assert merge_groups([5, 2, 3, 1, 2, 3], threshold=6, max_archs=1) == [(1, 4), (4, 6)]
    assert merge_groups([7, 7, 7], threshold=6, max_archs=50) == []
    assert merge_groups([2, 2, 2, 7], threshold=6, max_archs=50) == [(0, 2)]  # 2*2*2 = 8 > 6
    assert merge_groups([2, 3, 7], threshold=6, max_archs=50) == [(0, 3)]  # 42 archs <= 50: nothing shared
    assert merge_groups([1, 1, 7], threshold=6, max_archs=1) == []  # one combination merges nothing


@pytest.mark.slow
def test_shrunk_space_file_round_trips_train_search_export(hwnas_cli, tmp_path):
    spec = tmp_path / "shrunk.json"
    base, space = _shrunk_tiny(spec)
    run = tmp_path / "run"
    r = hwnas_cli("train", "--space", str(spec), "--sampler", "uniform", "--out", str(run), "--max-iters", "6",
                  "--n-train", "200", "--n-val", "200", "--n-path-eval", "100", "--batch", "32", "--quiet")
    assert r.returncode == 0, r.stderr
    r = hwnas_cli("train", "--space", str(spec), "--sampler", "uniform", "--out", str(run), "--max-iters", "6",
                  "--n-train", "200", "--n-val", "200", "--n-path-eval", "100", "--batch", "32", "--quiet", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["reused"] is True, r.stderr  # the same command again reuses the run
    meta = json.loads((run / "supernet.json").read_text())
    assert meta["space"] == "tiny" and meta["config"]["space_args"]["choices"] == [list(c.choice_ids) for c in space.layers]
    out = tmp_path / "search"
    r = hwnas_cli("search", "--space", str(spec), "--supernet", str(run), "--flops", "100G", "--algorithm", "random",
                  "--max-evaluations", "6", "--eval-images", "100", "--bn-batches", "1", "--out", str(out))
    assert r.returncode == 0, r.stderr
    hist = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    assert len(hist) == 6
    for h in hist:  # every evaluated arch is an arch of the shrunk space
        ops = h["ops"]
        assert all(o in layer.choice_ids for o, layer in zip(ops, space.layers))
    best = Arch.load(out / "best.json")
    assert best.get_space() is space
    r = hwnas_cli("export", "--arch", str(out / "best.json"), "--weights", str(run), "--format", "onnx", "--no-verify",
                  "--out", str(tmp_path / "exp"))
    assert r.returncode == 0, r.stderr
    assert len(list((tmp_path / "exp").glob("*.onnx"))) == 1
    r = hwnas_cli("arch", "info", f"{spec}:{space.to_compact(best)}", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["arch"]["ops"] == list(best.ops)
    # the supernet of one shrunk space is refused for another
    _shrunk_tiny(tmp_path / "other.json", keep=3)
    r = hwnas_cli("search", "--space", str(tmp_path / "other.json"), "--supernet", str(run), "--flops", "100G")
    assert r.returncode == 2 and r.stderr.startswith("error:") and "another variant" in r.stderr


def test_tabular_search_of_a_shrunk_benchmark_space(hwnas_cli, tmp_path):
    base = create_space("nas-bench-macro")
    spec = tmp_path / "macro.json"
    write_space_file(spec, create_space("nas-bench-macro", choices=[layer.choice_ids[1:] for layer in base.layers]))
    out = tmp_path / "search"
    r = hwnas_cli("search", "--benchmark", "nas-bench-macro", "--space", str(spec), "--algorithm", "random",
                  "--max-evaluations", "8", "--flops", "10G", "--out", str(out))
    assert r.returncode == 0, r.stderr
    hist = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    assert len(hist) == 8 and all("id" not in h["ops"] for h in hist)  # every layer's first op ("id") was dropped
    from hwnas.space.tabular import load_nas_bench_macro

    bench = load_nas_bench_macro()
    assert all(h["accuracy"] == bench.accuracy(base.arch(h["ops"])) for h in hist)
    r = hwnas_cli("search", "--benchmark", "nas-bench-macro", "--space", "tiny", "--flops", "10G", "--out", str(tmp_path / "x"))
    assert r.returncode == 2 and "has its own space" in r.stderr
