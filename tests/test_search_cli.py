"""`hwnas search` as a user runs it: result files, the top-10 table, resume and bad input."""

import json

import pytest

from hwnas.space import Arch

from .test_constraints import synthetic_table


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    d = tmp_path_factory.mktemp("latency_tables")
    synthetic_table("nas-bench-macro").save(d / "host-nas-bench-macro-onnxruntime.json")
    synthetic_table("tiny").save(d / "host-tiny-onnxruntime.json")
    synthetic_table("nas-bench-macro", device="sd855").save(d / "sd855-nas-bench-macro-tflite.json")
    return d


def test_search_writes_results_and_resumes(hwnas_cli, tables, tmp_path):
    out = tmp_path / "s"
    args = ["search", "--latency", "0.5 ms", "--benchmark", "nas-bench-macro", "--tables-dir", str(tables),
            "--population", "20", "--generations", "5", "--out", str(out)]
    r = hwnas_cli(*args)
    assert r.returncode == 0, r.stderr
    assert "top 10 of" in r.stdout and "latency <= 0.5 ms" in r.stdout
    best = json.loads((out / "best.json").read_text())
    arch = Arch.load(out / "best.json")  # what `hwnas export --arch .../best.json` reads
    table = synthetic_table("nas-bench-macro")
    # by default the budget constrains the latency met with probability 0.9 (the table's median is stated too)
    from hwnas.search.constraints import LatencyModel

    bound = LatencyModel(table, arch.get_space(), confidence=0.9)
    assert best["latency_ms"] == pytest.approx(bound(arch)[0]) and best["latency_ms"] <= 0.5
    assert best["latency_prediction"]["median_ms"] == pytest.approx(table.predict(arch)[0], abs=1e-6)
    assert best["latency_prediction"]["median_ms"] < best["latency_ms"]
    assert best["latency_std_ms"] > 0 and best["flops"] > 0 and best["params"] > 0 and best["score"] == best["accuracy"]
    lines = (out / "history.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    summary = json.loads((out / "summary.json").read_text())
    # one line per distinct evaluated arch, at most population x generations of them
    assert len({r["compact"] for r in records}) == len(records) == summary["n_evaluations"] <= 100
    assert records[0]["evaluation"] == 1 and [r["evaluation"] for r in records] == list(range(1, len(records) + 1))
    # the winner and the front, recomputed from the benchmark's accuracies and the table
    from hwnas.search.evaluator import TabularEvaluator

    truth = TabularEvaluator().benchmark
    points = {r["compact"]: (bound(Arch.from_dict(r))[0], truth.accuracy(Arch.from_dict(r))) for r in records}
    within = {c: p for c, p in points.items() if p[0] <= 0.5}
    assert len(within) == len(points)  # NSGA-II only asks for archs that meet the budget
    assert best["accuracy"] == pytest.approx(max(acc for _, acc in within.values()))
    dominated = {c for c, (lat, acc) in within.items()
                 if any(l2 <= lat and a2 >= acc and (l2, a2) != (lat, acc) for l2, a2 in within.values())}
    front = json.loads((out / "front.json").read_text())["front"]
    # (equivalent archs with the same latency and accuracy are one point of the front)
    expected = {tuple(round(v, 9) for v in within[c]) for c in set(within) - dominated}
    assert len(front) == len(expected)
    assert {tuple(round(v, 9) for v in points[f["compact"]]) for f in front} == expected
    # the plot: the evaluated archs (blue), the front (orange) and the budget line (red) are drawn
    from PIL import Image

    img = Image.open(out / "pareto.png").convert("RGB")
    assert img.size == (704, 484)
    colours = {c for _, c in img.getcolors(maxcolors=1 << 20)}
    # tab:blue at alpha 0.6 over white, tab:orange, tab:red
    for rgb in ((121, 173, 210), (0xFF, 0x7F, 0x0E), (0xD6, 0x27, 0x28)):
        assert any(max(abs(a - b) for a, b in zip(rgb, c)) <= 2 for c in colours), rgb
    assert len(summary["top10"]) == 10 and summary["top10"][0]["ops"] == best["ops"]
    # the same command again continues from history.jsonl: nothing evaluated twice, same winner
    r2 = hwnas_cli(*args)
    assert r2.returncode == 0, r2.stderr
    assert f"resumed: {len(lines)} evaluations" in r2.stdout
    assert "nothing new to evaluate: the search was complete" in r2.stdout and "per evaluated arch" not in r2.stdout
    assert (out / "history.jsonl").read_text().splitlines() == lines
    assert json.loads((out / "best.json").read_text())["ops"] == best["ops"]


@pytest.mark.parametrize("args,message", [
    (["--latency", "fast"], "cannot read latency budget 'fast'"),
    (["--latency", "80"], "latency budget '80' has no unit; write 80ms"),
    (["--latency", "1ms", "--table", "{tables}/sd855-nas-bench-macro-tflite.json"], "measured on device 'sd855', not 'host'"),
])
def test_bad_input_is_one_line_and_exit_2(hwnas_cli, tables, tmp_path, args, message):
    args = [a.replace("{tables}", str(tables)) for a in args]
    r = hwnas_cli("search", "--benchmark", "nas-bench-macro", "--tables-dir", str(tables), "--out", str(tmp_path / "o"), *args)
    assert r.returncode == 2
    assert r.stderr.startswith("error: ") and message in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert not (tmp_path / "o" / "best.json").exists()


@pytest.mark.parametrize("kw,message", [
    ({"latency": "0.05ms"}, "below the fastest arch of space 'nas-bench-macro'"),
    ({"flops": "1M"}, "FLOPs budget 1M is below the smallest arch"),
    ({"params": "5Xparams"}, "cannot read params budget"),
    ({"latency": "1ms", "device": "sd855", "table": "{tables}/host-tiny-onnxruntime.json"}, "is for space 'tiny', not 'nas-bench-macro'"),
    ({"latency": "1ms", "algorithm": "bogus"}, "unknown search algorithm 'bogus'"),
    ({"latency": "1ms", "device": "nokia3310"}, "unknown device 'nokia3310'"),
    ({"latency": "1ms", "objective": "fast"}, "unknown objective 'fast'"),
    ({"objective": "mnas", "flops": "50M"}, "give its target with --latency"),
    ({}, "no budget given"),
])
def test_bad_input_library(tables, tmp_path, kw, message):
    from hwnas.errors import HwnasError
    from hwnas.search.api import run_search

    kw = {k: (v.replace("{tables}", str(tables)) if isinstance(v, str) else v) for k, v in kw.items()}
    with pytest.raises(HwnasError) as e:
        run_search(benchmark="nas-bench-macro", tables_dir=tables, out=tmp_path / "o", **kw)
    assert message in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "o" / "best.json").exists()


def test_missing_table_for_device_is_explained(tmp_path):
    from hwnas.errors import HwnasError
    from hwnas.search.api import run_search

    with pytest.raises(HwnasError, match="no latency table for device 'host' and space 'nas-bench-macro'"):
        run_search(latency="80ms", benchmark="nas-bench-macro", tables_dir=tmp_path, out=tmp_path / "o")


def test_run_search_objectives_and_multi_objective(tables, tmp_path):
    from hwnas.search.api import run_search

    soft = run_search(latency="0.3ms", benchmark="nas-bench-macro", tables_dir=tables, objective="mnas",
                      population=20, generations=5, out=tmp_path / "soft", plot=False)
    T = 0.3
    assert soft.result.objective.kind == "mnas"
    b = soft.result.best
    assert b.score == pytest.approx(b.accuracy * (b.latency_ms / T) ** -0.07)
    assert any(r.latency_ms > T for r in soft.result.history)  # soft: over-budget archs are explored
    mo = run_search(latency="0.6ms", benchmark="nas-bench-macro", tables_dir=tables, multi_objective=True,
                    population=20, generations=5, out=tmp_path / "mo", plot=False)
    front = json.loads((tmp_path / "mo" / "front.json").read_text())["front"]
    assert len(front) >= 3 and all(f["latency_ms"] <= 0.6 for f in front)
    accs = [f["accuracy"] for f in front]
    assert accs == sorted(accs)  # cheaper to dearer, each one more accurate than the last
    with pytest.raises(Exception, match="needs --algorithm nsga2"):
        run_search(latency="0.6ms", benchmark="nas-bench-macro", tables_dir=tables, algorithm="random",
                   multi_objective=True, out=tmp_path / "x")
    flops_only = run_search(flops="60M", benchmark="nas-bench-macro", tables_dir=tmp_path / "none", algorithm="random",
                            max_evaluations=50, out=tmp_path / "f", plot=False)
    assert flops_only.notes and "no latency table" in flops_only.notes[0]  # FLOPs alone need no table
    assert flops_only.result.best.latency_ms is None and flops_only.result.best.flops <= 60_000_000


def test_p90_quantile_is_the_conservative_bound(tables, tmp_path):
    from hwnas.search.api import run_search

    table = synthetic_table("nas-bench-macro")
    o = run_search(latency="0.5ms", benchmark="nas-bench-macro", tables_dir=tables, latency_quantile=0.9,
                   algorithm="random", max_evaluations=80, out=tmp_path / "p90", plot=False)
    for r in o.result.history[:20]:
        assert r.latency_ms == pytest.approx(table.predict_quantile(r.arch, 0.9))
        assert r.latency_ms > table.predict(r.arch)[0]
    assert o.result.best.latency_ms <= 0.5


def test_budget_above_the_slowest_arch_warns(hwnas_cli, tables, tmp_path):
    """A budget every arch of the space meets constrains nothing: the search says so, with the slowest arch's latency."""
    import itertools
    import re

    from hwnas.space import create_space

    table = synthetic_table("nas-bench-macro")
    space = create_space("nas-bench-macro")
    slowest = max(table.predict(space.from_indices(ix))[0]
                  for ix in itertools.product(*[range(len(layer.choices)) for layer in space.layers]))
    r = hwnas_cli("search", "--latency", "5ms", "--benchmark", "nas-bench-macro", "--tables-dir", str(tables),
                  "--algorithm", "random", "--max-evaluations", "10", "--out", str(tmp_path / "o"))
    assert r.returncode == 0, r.stderr
    m = re.search(r"warning: latency budget 5 ms is above the slowest arch of space 'nas-bench-macro' \(([0-9.]+) ms predicted by "
                  r"\S+host-nas-bench-macro-onnxruntime.json\): it constrains nothing", " ".join(r.stderr.split()))
    assert m, r.stderr
    assert float(m.group(1)) == pytest.approx(slowest, abs=5e-4)
    # a budget between the fastest and the slowest arch: no such warning
    r2 = hwnas_cli("search", "--latency", f"{slowest * 0.8:.3f}ms", "--benchmark", "nas-bench-macro", "--tables-dir", str(tables),
                   "--algorithm", "random", "--max-evaluations", "10", "--out", str(tmp_path / "o2"))
    assert r2.returncode == 0 and "constrains nothing" not in r2.stderr, r2.stderr


def test_search_ends_with_the_export_command(hwnas_cli, tables, tmp_path):
    """Item 5: the last line says what to run next, with this search's best.json and table."""
    out = tmp_path / "s"
    r = hwnas_cli("search", "--latency", "0.5ms", "--benchmark", "nas-bench-macro", "--tables-dir", str(tables),
                  "--algorithm", "random", "--max-evaluations", "10", "--out", str(out))
    assert r.returncode == 0, r.stderr
    last = r.stdout.strip().splitlines()[-1]
    assert last == (f"next: hwnas export --arch {out / 'best.json'} --format tflite "
                    f"--table {tables / 'host-nas-bench-macro-onnxruntime.json'}"), last
