"""`hwnas shrink` end to end (budget rule, resumable stages) and `hwnas train --expand` resuming its checkpoints."""

import json

import pytest

from hwnas.search.senas.scores import infeasible_ops
from hwnas.space import create_space
from hwnas.space.shrunk import write_space_file
from hwnas.train.checkpoint import list_checkpoints, load_checkpoint

SMALL = ["--max-iters", "8", "--n-train", "128", "--n-val", "64", "--batch", "32", "--samples", "2", "--snapshots", "2",
         "--eval-images", "32"]


@pytest.mark.slow
def test_shrink_drops_budget_infeasible_ops_first_and_resumes_by_stage(hwnas_cli, tmp_path):
    base = create_space("tiny")
    flops = 9_200_000
    bad = infeasible_ops(base, [(base.flops_of_indices, flops)])
    infeasible = {(j, base.layers[j].choice_ids[i]) for j, b in enumerate(bad) for i in range(len(b)) if b[i]}
    assert 1 <= len(infeasible) < 6
    out = tmp_path / "shrink"
    r = hwnas_cli("shrink", "--space", "tiny", "--stages", "1", "--drop", "6", "--flops", "9.2M", "--out", str(out), "--json", *SMALL)
    assert r.returncode == 0, r.stderr
    s0 = json.loads((out / "stage-0" / "scores.json").read_text())
    dropped = [tuple(d) for d in s0["dropped"]]
    assert len(dropped) == 6 and set(dropped[:len(infeasible)]) == infeasible  # infeasible ops go first
    assert sorted(s0["snapshots"]) == ["iter-0000006.pt", "iter-0000008.pt"]  # K=2 snapshots of the last epoch (4 iterations)
    one = create_space(str(out / "shrunk.json"))
    assert one.size == s0["archs_after"] < base.size
    assert all(o not in one.layers[j].choice_ids for j, o in dropped)
    # two stages in the same folder: stage 0 is reused as it is, stage 1 shrinks further
    before = (out / "stage-0" / "scores.json").read_bytes()
    r = hwnas_cli("shrink", "--space", "tiny", "--stages", "2", "--drop", "6", "--flops", "9.2M", "--out", str(out), "--json", *SMALL)
    assert r.returncode == 0, r.stderr
    assert (out / "stage-0" / "scores.json").read_bytes() == before
    stages = json.loads(r.stdout)["stages"]
    assert [s["stage"] for s in stages] == [0, 1] and stages[1]["archs_before"] == one.size
    two = create_space(str(out / "shrunk.json"))
    assert two.size == stages[1]["archs_after"] < one.size
    # other shrink settings in the same folder are refused
    r = hwnas_cli("shrink", "--space", "tiny", "--stages", "2", "--drop", "5", "--flops", "9.2M", "--out", str(out), *SMALL)
    assert r.returncode == 2 and r.stderr.startswith("error:") and "other settings" in r.stderr


@pytest.mark.slow
def test_train_expand_resumes_from_its_checkpoints(hwnas_cli, tmp_path):
    base = create_space("tiny")
    spec = tmp_path / "shrunk.json"
    write_space_file(spec, create_space("tiny", choices=[layer.choice_ids[:2] for layer in base.layers[:3]]
                                        + [layer.choice_ids for layer in base.layers[3:]]))
    args = ["train", "--space", str(spec), "--expand", "6", "--sampler", "uniform", "--max-iters", "6", "--ckpt-every", "2",
            "--n-train", "128", "--n-val", "64", "--n-path-eval", "32", "--batch", "32", "--quiet"]
    run = tmp_path / "run"
    killed = hwnas_cli("5", *args, "--out", str(run), module="tests.kill_after")
    assert killed.returncode == -9
    assert [p.name for p in list_checkpoints(run)][0] == "iter-0000004.json"
    r = hwnas_cli(*args, "--out", str(run), "--resume")
    assert r.returncode == 0, r.stderr
    ref = tmp_path / "ref"
    assert hwnas_cli(*args, "--out", str(ref)).returncode == 0
    a, b = load_checkpoint(run), load_checkpoint(ref)
    assert a.supernet.groups == [(0, 2)]  # 2 x 2 <= 6; x 2 more would be 8
    assert a.meta["iteration"] == 6
    for (name, t), (_, u) in zip(a.supernet.state_dict().items(), b.supernet.state_dict().items()):
        assert t.shape == u.shape and bool((t == u).all()), name  # the resumed run is the uninterrupted one
    r = hwnas_cli("train", "--space", "tiny", "--expand", "1", "--out", str(tmp_path / "x"))
    assert r.returncode == 2 and "merges nothing" in r.stderr
