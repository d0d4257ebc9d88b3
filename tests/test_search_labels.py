"""What the search's outputs call their numbers: the results table's columns say which latency
bound and which score they show, and best.json names its latency bound in one field."""

import json

import pytest

from hwnas.export.api import search_result

from .test_constraints import synthetic_table


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    d = tmp_path_factory.mktemp("latency_tables")
    synthetic_table("nas-bench-macro").save(d / "host-nas-bench-macro-onnxruntime.json")
    synthetic_table("tiny").save(d / "host-tiny-onnxruntime.json")
    return d


def header(stdout: str) -> str:
    """The results table's header line (the one naming the arch column)."""
    return next(ln for ln in stdout.splitlines() if " arch " in ln and "#" in ln)


@pytest.mark.parametrize("extra, latency_title", [
    ((), "latency ms (0.9 quantile)"),
    (("--confidence", "0.5"), "latency ms (0.5 quantile)"),
    (("--latency-quantile", "0.9"), "latency ms (blocks' p90 sum)"),
])
def test_the_latency_column_names_the_bound_it_shows(hwnas_cli, tables, tmp_path, extra, latency_title):
    r = hwnas_cli("search", "--latency", "0.5ms", "--benchmark", "nas-bench-macro", "--tables-dir", str(tables),
                  "--population", "8", "--generations", "2", "--out", str(tmp_path / "o"), *extra)
    assert r.returncode == 0, r.stderr
    head = header(r.stdout)
    assert latency_title in head and "accuracy %" in head and "acc %" not in head
    best = json.loads((tmp_path / "o" / "best.json").read_text())
    # the row shows best.json's latency_ms, which is that bound
    assert f"{best['latency_ms']:.3f}" in r.stdout


def test_the_macs_proxy_column_is_not_called_accuracy(hwnas_cli, tables, tmp_path):
    r = hwnas_cli("search", "--latency", "0.5ms", "--space", "tiny", "--evaluator", "macs", "--tables-dir", str(tables),
                  "--population", "8", "--generations", "2", "--out", str(tmp_path / "o"))
    assert r.returncode == 0, r.stderr
    head = header(r.stdout)
    assert "MACs proxy (M)" in head and "acc" not in head.replace("MACs", "")


@pytest.mark.parametrize("extra, bound", [
    ((), {"kind": "confidence", "confidence": 0.9}),
    (("--confidence", "0.5"), {"kind": "confidence", "confidence": 0.5}),
    (("--latency-quantile", "0.9"), {"kind": "block quantile", "block_quantile": 0.9}),
])
def test_best_json_names_its_latency_bound_in_one_field(tables, tmp_path, extra, bound):
    from hwnas.search.api import run_search

    opts = dict(zip(extra[::2], extra[1::2]))
    kw = {}
    if "--confidence" in opts:
        kw["confidence"] = float(opts["--confidence"])
    if "--latency-quantile" in opts:
        kw["latency_quantile"] = float(opts["--latency-quantile"])
    o = run_search(latency="0.5ms", benchmark="nas-bench-macro", tables_dir=tables, population=8, generations=2,
                   out=tmp_path / "s", plot=False, **kw)
    for name in ("best", "summary"):
        d = json.loads(o.paths[name].read_text())
        # no pair of fields that read as two different quantiles
        assert "latency_quantile" not in d and "latency_confidence" not in d
        b = d["latency_bound"]
        assert {k: b[k] for k in bound} == bound
        assert "latency_ms" in b["meaning"]
    # the export reads the confidence it checks the budget with from the new field
    got = search_result(str(o.paths["best"]))
    assert got.get("confidence") == bound.get("confidence")


def test_an_older_best_json_is_still_read(tmp_path):
    old = {"space": "nas-bench-macro", "ops": [0] * 8, "budgets": {"latency_ms": 0.5}, "latency_quantile": 0.5,
           "latency_confidence": 0.9}
    p = tmp_path / "best.json"
    p.write_text(json.dumps(old))
    got = search_result(str(p))
    assert got["confidence"] == 0.9 and got["budget_ms"] == 0.5
