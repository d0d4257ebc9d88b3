"""Readers of user files (latency tables, arch files, search history) refuse bad contents in one line.

Every problem is an HwnasError naming the file and the bad field; nothing is accepted that
would predict a non-finite or negative latency.
"""

import json
import math

import pytest

from hwnas.errors import HwnasError
from hwnas.latency.table import LatencyTable
from hwnas.search.base import read_history
from hwnas.space import create_space
from hwnas.space.arch import Arch

from .conftest import REPO

SHIPPED = REPO / "latency_tables" / "host-tiny-onnxruntime.json"


def one_line(e: pytest.ExceptionInfo) -> str:
    msg = str(e.value)
    assert "\n" not in msg and "Traceback" not in msg
    return msg


def write_table(tmp_path, mutate, source=SHIPPED) -> str:
    d = json.loads(source.read_text())
    mutate(d)
    p = tmp_path / "t.json"
    p.write_text(json.dumps(d))  # json.dumps writes NaN and Infinity as Python's json reads them
    return str(p)


def first_key(d):
    return next(iter(d["entries"]))


def test_a_binary_table_is_one_line_naming_the_file_and_what_to_do(tmp_path):
    p = tmp_path / "t.json"
    p.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00garbage")
    with pytest.raises(HwnasError) as e:
        LatencyTable.load(p)
    msg = one_line(e)
    assert str(p) in msg and "not text" in msg and "move it away" in msg


@pytest.mark.parametrize("value,problem", [
    (float("nan"), "not a finite"), (-45.0, "not positive"), (0.0, "not positive"), (float("inf"), "not a finite"),
    ("fast", "not a number"), (True, "not a number"), (None, "not a number"),
])
def test_every_median_must_be_a_finite_positive_number(tmp_path, value, problem):
    key = {}

    def bad(d):
        key["k"] = k = first_key(d)
        d["entries"][k]["median_ms"] = value

    path = write_table(tmp_path, bad)
    with pytest.raises(HwnasError) as e:
        LatencyTable.load(path)
    msg = one_line(e)
    assert key["k"] in msg and "median_ms" in msg and problem in msg and path in msg


@pytest.mark.parametrize("mutate,words", [
    (lambda d: d["entries"][first_key(d)].pop("median_ms"), ["lacks median_ms"]),
    (lambda d: d["entries"].__setitem__(first_key(d), 0.05), ["not an object"]),
    (lambda d: d["entries"].__setitem__(first_key(d), "0.05"), ["not an object"]),
    (lambda d: d["entries"][first_key(d)].__setitem__("p90_ms", -1.0), ["p90_ms", "not positive"]),
    (lambda d: d["entries"][first_key(d)].__setitem__("std_ms", float("nan")), ["std_ms", "not a finite"]),
    (lambda d: d.__setitem__("entries", [1, 2]), ["entries", "not an object"]),
    (lambda d: d.__setitem__("calibration", {"scale": "x", "overhead_ms": 0.0}), ["calibration", "scale"]),
    (lambda d: d.__setitem__("calibration", {"scale": -1.0, "overhead_ms": 0.0}), ["calibration", "scale", "not positive"]),
    (lambda d: d.__setitem__("calibration", {"scale": 1.0, "overhead_ms": float("nan")}), ["calibration", "overhead_ms"]),
    (lambda d: d.__setitem__("calibration", [1.0]), ["calibration", "not an object"]),
    (lambda d: d["protocol"]["anchor"].__setitem__("reference_ms", -3), ["anchor", "reference_ms"]),
])
def test_bad_entries_and_calibration_are_named(tmp_path, mutate, words):
    path = write_table(tmp_path, mutate)
    with pytest.raises(HwnasError) as e:
        LatencyTable.load(path)
    msg = one_line(e)
    assert path in msg and all(w in msg for w in words), msg


def test_a_search_on_a_table_with_negative_medians_is_refused(tmp_path, hwnas_cli):
    """The reported case: every median negated, and the search ranked archs at -45 ms and exited 0."""
    def negate(d):
        for e in d["entries"].values():
            e["median_ms"] = -e["median_ms"]

    path = write_table(tmp_path, negate, REPO / "latency_tables" / "host-nas-bench-macro-onnxruntime.json")
    r = hwnas_cli("search", "--benchmark", "nas-bench-macro", "--latency", "0.5ms", "--max-evaluations", "20",
                  "--table", path, "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "median_ms" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert not (tmp_path / "o" / "best.json").exists()


def test_shipped_tables_pass_the_checks():
    for p in sorted(q for q in (REPO / "latency_tables").glob("*.json") if not q.name.endswith(".validate.json")):
        t = LatencyTable.load(p)
        assert all(math.isfinite(e["median_ms"]) and e["median_ms"] > 0 for e in t.entries.values())


# ---- arch files ------------------------------------------------------------------------------
def test_an_arch_file_with_unknown_space_args_is_one_line(tmp_path):
    p = tmp_path / "a.json"
    p.write_text(json.dumps({**create_space("tiny").sample(0).to_dict(), "space_args": {"depth": 3}}))
    with pytest.raises(HwnasError) as e:
        Arch.load(p)
    msg = one_line(e)
    assert str(p) in msg and "depth" in msg and "num_classes" in msg


@pytest.mark.parametrize("args", [{"num_classes": {"a": 1}}, {"num_classes": "ten"}, {"num_classes": -3}])
def test_an_arch_file_with_bad_space_arg_values_is_one_line(tmp_path, args):
    p = tmp_path / "a.json"
    p.write_text(json.dumps({**create_space("tiny").sample(0).to_dict(), "space_args": args}))
    with pytest.raises(HwnasError) as e:
        Arch.load(p)
    assert str(p) in one_line(e) and "num_classes" in str(e.value)


def test_a_binary_arch_file_is_one_line(tmp_path):
    p = tmp_path / "a.json"
    p.write_bytes(b"\xff\xfe\x00\x01binary")
    with pytest.raises(HwnasError) as e:
        Arch.load(p)
    assert str(p) in one_line(e) and "not text" in str(e.value)


# ---- history.jsonl ---------------------------------------------------------------------------
def test_a_binary_history_is_one_line(tmp_path):
    p = tmp_path / "history.jsonl"
    p.write_bytes(b"\xff\xfe\x00\x01" * 50 + b"\n" + b"\x80abc\n")
    with pytest.raises(HwnasError) as e:
        read_history(p)
    assert str(p) in one_line(e) and "not text" in str(e.value)


@pytest.mark.parametrize("line", ['[1, 2]', '{"space": "tiny", "ops": 5}', '"text"',
                                  '{"space": "tiny", "ops": ["k3e1","k3e1","k3e1","k3e1","k3e1","k3e1"], '
                                  '"accuracy": "high", "flops": 1, "params": 1, "feasible": true, "evaluation": 1}'])
def test_a_bad_history_line_before_the_last_is_one_line(tmp_path, line):
    good = json.dumps({**create_space("tiny").sample(0).to_dict(), "accuracy": 50.0, "latency_ms": 0.1,
                       "flops": 1, "params": 1, "feasible": True, "evaluation": 2})
    p = tmp_path / "history.jsonl"
    p.write_text(line + "\n" + good + "\n")
    with pytest.raises(HwnasError) as e:
        read_history(p)
    assert str(p) in one_line(e) and "line 1" in str(e.value)


def test_history_latency_must_be_finite_and_not_negative(tmp_path):
    rec = {**create_space("tiny").sample(0).to_dict(), "accuracy": 50.0, "latency_ms": -45.0,
           "flops": 1, "params": 1, "feasible": True, "evaluation": 1}
    p = tmp_path / "history.jsonl"
    p.write_text(json.dumps(rec) + "\n" + json.dumps({**rec, "evaluation": 2}) + "\n")
    with pytest.raises(HwnasError, match="latency_ms"):
        read_history(p)


def test_a_corrupt_table_says_to_move_it_away_not_to_rebuild_it(tmp_path, hwnas_cli):
    """`hwnas profile` stops on a damaged table too, so "rebuild it" would send the user in a circle."""
    out = tmp_path / "host-tiny-onnxruntime.json"
    text = SHIPPED.read_text()
    out.write_text(text[: len(text) // 2])
    for args in (["arch", "info", "tiny:111111", "--table", str(out)],
                 ["profile", "--space", "tiny", "--out", str(out), "--runs", "1", "--rounds", "1"]):
        r = hwnas_cli(*args)
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 2 and len(lines) == 1, r.stderr
        assert "move it away" in lines[0] and f"mv '{out}'" in lines[0] and "rebuild" not in lines[0]
    assert out.read_text() == text[: len(text) // 2]  # nothing overwritten


# ---- paths taken from files (item: names and weights_file must stay where they belong) ----------
@pytest.mark.parametrize("name", ["../../x", "a/b", "..", "", "x y", "/abs"])
def test_a_device_profile_name_that_is_not_a_plain_name_is_refused(tmp_path, name):
    from hwnas.device.profiles import parse_device

    p = tmp_path / "evil.toml"
    p.write_text(f'name = {json.dumps(name)}\nkind = "host"\n')
    with pytest.raises(HwnasError) as e:
        parse_device(p)
    msg = one_line(e)
    assert str(p) in msg and "name" in msg and "letters" in msg


def test_profiling_with_a_crafted_device_name_writes_nothing_outside_latency_tables(tmp_path, hwnas_cli):
    """The default table path is latency_tables/<name>-...: "../../x" would write two folders up."""
    (tmp_path / "evil.toml").write_text('name = "../../x"\nkind = "host"\n')
    work = tmp_path / "a" / "work"
    work.mkdir(parents=True)
    r = hwnas_cli("profile", "--device", str(tmp_path / "evil.toml"), "--space", "tiny", "--runs", "1", "--rounds", "1",
                  cwd=work)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr, r.stderr
    assert not list(tmp_path.rglob("x-*"))


def test_a_checkpoint_whose_weights_file_points_outside_its_folder_is_refused(tmp_path):
    import torch

    from hwnas.train.checkpoint import read_checkpoint, save_checkpoint

    run = tmp_path / "run"
    jp = save_checkpoint(run, "supernet", {"model": {"w": torch.zeros(2)}}, {"space": "tiny"})
    outside = tmp_path / "secret.pt"
    outside.write_bytes((run / "supernet.pt").read_bytes())  # even a file whose hash matches
    for target in ("../secret.pt", str(outside)):
        meta = json.loads(jp.read_text())
        meta["weights_file"] = target
        jp.write_text(json.dumps(meta))
        with pytest.raises(HwnasError) as e:
            read_checkpoint(jp)
        msg = one_line(e)
        assert "weights_file" in msg and "outside" in msg and str(jp) in msg


# ---- the block cache: a killed export leaves no stray temp files -----------------------------------
def test_temp_files_of_killed_exports_are_cleaned_and_live_ones_kept(tmp_path):
    import os
    import subprocess
    import sys

    from hwnas.io import atomic_output_path
    from hwnas.latency.blocks import block_file, export_block
    from hwnas.latency.keys import space_slots

    sp = create_space("tiny")
    key, slot = next(iter(space_slots(sp).items()))
    cache = tmp_path / "cache"
    target = block_file(key, "onnx", cache)
    target.parent.mkdir(parents=True)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    tmp, _, abort = atomic_output_path(target)
    assert f".{os.getpid()}." in tmp.name  # a temp file names the process writing it
    stale = target.parent / tmp.name.replace(f".{os.getpid()}.", f".{dead_pid}.")
    stale.write_bytes(b"half an onnx file")
    tmp.write_bytes(b"being written by a live process")
    other_key = list(space_slots(sp))[1]
    export_block(other_key, space_slots(sp)[other_key], "onnx", cache)
    assert not stale.exists() and tmp.exists()  # the dead writer's file is gone, the live one is kept
    assert not target.exists()  # a temp file is never taken for the block
    abort()


def test_a_calibration_that_predicts_negative_latencies_is_refused(tmp_path):
    path = write_table(tmp_path, lambda d: d["calibration"].__setitem__("overhead_ms", -45.0))
    with pytest.raises(HwnasError) as e:
        LatencyTable.load(path)
    assert "calibration predicts the fastest arch" in one_line(e) and path in str(e.value)
