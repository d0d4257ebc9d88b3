"""benchmark_model log parser (on the real log in tests/data) and the ProxylessNAS YAML importer."""

import json

import pytest

from hwnas.errors import HwnasError
from hwnas.latency.benchmark_log import load_benchmark_log, parse_benchmark_log
from hwnas.latency.importer import PROXYLESS_TABLE_WIDTHS, proxyless_key
from hwnas.latency.keys import space_slots
from hwnas.latency.table import LatencyTable
from hwnas.space import create_space, resolve_arch

from .conftest import BENCHMARK_LOG as LOG


@pytest.fixture(scope="module")
def log():
    return load_benchmark_log(LOG)


def test_run_order_profile(log):
    assert len(log.ops) == 77 and log.nodes_executed == 77 and log.nodes_observed == 77
    counts = {}
    for op in log.ops:
        counts[op.node_type] = counts.get(op.node_type, 0) + 1
    assert counts == {"CONV_2D": 42, "DEPTHWISE_CONV_2D": 20, "ADD": 13, "AVERAGE_POOL_2D": 1, "RESHAPE": 1}
    assert log.op_sum_ms == pytest.approx(80.637, abs=1e-6)  # Top-by-time rows are not added twice
    assert len(log.top) == 10 and {o.name for o in log.top} <= {o.name for o in log.ops}
    assert log.ops[0].name == "MNasNet/Conv/Relu6" and log.ops[0].avg_ms == 3.246 and log.ops[-1].node_type == "RESHAPE"


def test_summary_and_averages(log):
    by = {k: v.avg_ms for k, v in log.by_type.items()}
    assert by == {"CONV_2D": 59.262, "DEPTHWISE_CONV_2D": 21.048, "ADD": 0.248, "AVERAGE_POOL_2D": 0.037, "RESHAPE": 0.001}
    assert log.timings.count == 100 and log.timings.values_us["avg"] == 80635.7 and log.timings.values_us["std"] == 870
    assert log.averages_us == {"Warmup": 83496.6, "Init": 47967.0, "no stats": 80670.2}
    assert log.average_ms == pytest.approx(80.6702)
    assert log.warmup.count == 10 and log.warmup.avg_ms == pytest.approx(83.4966)
    assert log.timed.count == 100 and log.timed.avg_ms == pytest.approx(80.6702)
    assert log.settings["Num threads"] == "1" and log.settings["Input shapes"] == "1,224,224,3" and log.init_ms == 47.967


def test_ops_grouped_per_block_vs_reported_average(log):
    blocks = log.group_ops()
    # stem conv, 20 expanded_conv blocks (the first unsuffixed), Conv_1, Logits
    assert list(blocks)[:3] == ["Conv", "expanded_conv", "expanded_conv_1"] and list(blocks)[-2:] == ["Conv_1", "Logits"]
    assert len(blocks) == 23
    total = sum(blocks.values())
    assert total == pytest.approx(80.637, abs=1e-6)
    assert abs(total - log.average_ms) / log.average_ms < 0.001  # the per-op profile accounts for the average


def test_newer_benchmark_model_format_and_garbage():
    text = """INFO: Loaded model m.tflite
INFO: The input model file size (MB): 1.2
count=12 first=9000 curr=8000 min=7900 max=9000 avg=8200 std=300
count=50 first=8100 curr=8050 min=7950 max=8300 avg=8080.5 std=60 p5=7960 median=8070 p95=8250
Inference timings in us: Init: 31000, First inference: 9000, Warmup (avg): 8200, Inference (avg): 8080.5
"""
    lg = parse_benchmark_log(text)
    assert lg.average_ms == pytest.approx(8.0805) and lg.timed.get_ms("median") == pytest.approx(8.07)
    with pytest.raises(HwnasError, match="no timing lines"):
        parse_benchmark_log("ERROR: Failed to load model m.tflite\n")


def _yaml_for(space, scale=1.0):
    """A ProxylessNAS-style table for every block of ``space`` (+ a key the space does not use)."""
    lines = []
    for i, slot in enumerate(space_slots(space).values()):
        lines += [f"{proxyless_key(slot)}:", "  count: 100", f"  mean: {scale * (1 + i * 0.01):.4f}", "  var: 0.0004"]
    lines += ["expanded_conv-input:9x9x9-output:9x9x9-expand:3-kernel:3-stride:1-idskip:1:", "  count: 1", "  mean: 1.0", "  var: 0.0"]
    return "\n".join(lines) + "\n"


def test_import_proxyless_yaml(hwnas_cli, tmp_path):
    sp = create_space("proxyless", widths=PROXYLESS_TABLE_WIDTHS)
    src = tmp_path / "mobile_trim.yaml"
    src.write_text(_yaml_for(sp))
    assert "expanded_conv-input:56x56x24-output:28x28x40-expand:6-kernel:5-stride:2-idskip:0" in src.read_text()
    out = tmp_path / "imported.json"
    r = hwnas_cli("tables", "import", str(src), "--device", "pixel1", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert "imported 70 entries (1 keys not in space 'proxyless')" in r.stdout.replace("\n", " ")
    # the widths it chose are said, with what the other variant would have mapped; the unused key with its reason
    assert "space 'proxyless' with widths=24,40,80,96,192,320 (input 224)" in r.stdout
    assert "tried resolution=224: 52 blocks mapped; resolution=224, widths=24,40,80,96,192,320: 70 blocks mapped" in r.stdout
    assert "dropped expanded_conv-input:9x9x9-output:9x9x9-expand:3-kernel:3-stride:1-idskip:1: no expanded_conv block takes input 9x9x9" in r.stdout
    d = json.loads(out.read_text())
    assert d["device"]["name"] == "pixel1" and d["space_args"] == {"widths": list(PROXYLESS_TABLE_WIDTHS)}
    e = d["entries"]["mbconv-in:56x56x24-out:28x28x40-k5-e6-s2-se0-relu6"]
    assert e["n"] == 100 and e["std_ms"] == pytest.approx(0.02) and e["source_key"].startswith("expanded_conv-input:56x56x24")
    table = LatencyTable.load(out, space="proxyless")
    arch = sp.arch(list(resolve_arch("proxyless-mobile").ops))
    ms, unc = table.predict(arch)
    assert ms > 20 and unc > 0


def test_import_bad_input(hwnas_cli, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    r = hwnas_cli("tables", "import", str(bad), "--device", "x")
    assert r.returncode == 2 and "not valid YAML" in r.stderr
    other = tmp_path / "other.yaml"
    other.write_text("Conv-input:1x1x1-output:1x1x1:\n  count: 1\n  mean: 1.0\n  var: 0\n")
    r = hwnas_cli("tables", "import", str(other), "--device", "x", "--out", str(tmp_path / "o.json"))
    assert r.returncode == 2 and "no key of" in r.stderr
    nomean = tmp_path / "nomean.yaml"
    nomean.write_text("Conv-input:1x1x1-output:1x1x1:\n  count: 1\n")
    r = hwnas_cli("tables", "import", str(nomean), "--device", "x")
    assert r.returncode == 2 and "has no 'mean'" in r.stderr


def test_current_prebuilt_log_lines_with_level_prefix_and_all_same_runs():
    """Current prebuilt binaries print 'INFO: ' before every line and 'curr=X(all same)' for identical runs."""
    text = ("INFO: Running benchmark for at least 10 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.\n"
            "INFO: count=10 curr=2(all same)\n\n"
            "INFO: Running benchmark for at least 50 iterations and at least 1 seconds but terminate if exceeding 150 seconds.\n"
            "INFO: count=500 first=3 curr=2 min=1 max=9 avg=1.54 std=0 p5=1 median=2 p95=2\n\n"
            "INFO: Inference timings in us: Init: 1480, First inference: 9, Warmup (avg): 2, Inference (avg): 1.54\n")
    log = parse_benchmark_log(text)
    assert [(n, r.avg_ms) for n, r in log.runs] == [(10, pytest.approx(0.002)), (50, pytest.approx(0.00154))]
    assert log.timed.get_ms("median") == pytest.approx(0.002) and log.averages_us["Inference (avg)"] == 1.54
