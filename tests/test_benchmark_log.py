"""One benchmark_model parser for the adb backend and log files: cut-off, TF 2.x and UTF-16 logs."""

import pytest

from hwnas.errors import HwnasError
from hwnas.latency.backends.adb import tflite_summary
from hwnas.latency.backends.base import MeasurementError
from hwnas.latency.benchmark_log import load_benchmark_log, parse_benchmark_log

from .conftest import BENCHMARK_LOG

FULL = BENCHMARK_LOG.read_text()
LINES = FULL.splitlines(keepends=True)


def cut_after(marker: str, extra_lines: int = 0) -> str:
    i = next(i for i, ln in enumerate(LINES) if ln.startswith(marker))
    return "".join(LINES[: i + 1 + extra_lines])


def test_a_log_cut_off_inside_the_run_order_table_gives_no_op_sum():
    text = cut_after("============================== Run Order", 31)  # header + 30 of 77 rows
    log = parse_benchmark_log(text)
    assert len(log.ops) == 30
    assert log.timed.avg_ms == pytest.approx(80.6702)  # the timed runs were printed before the table: still good
    for what in (lambda: log.op_sum_ms, lambda: log.group_ops()):
        with pytest.raises(HwnasError) as e:
            what()
        assert "30" in str(e.value) and "Run Order" in str(e.value) and "cut off" in str(e.value)
    # the complete log still sums all 77
    assert parse_benchmark_log(FULL).op_sum_ms == pytest.approx(80.637, abs=1e-6)


def test_a_row_count_that_disagrees_with_nodes_executed_is_refused():
    rows = [i for i, ln in enumerate(LINES) if ln.strip().startswith("CONV_2D")]
    text = "".join(ln for i, ln in enumerate(LINES) if i != rows[3])  # one row of Run Order lost
    with pytest.raises(HwnasError, match="76 rows.*77 nodes"):
        parse_benchmark_log(text).op_sum_ms


def test_a_log_cut_off_after_the_warm_up_is_refused_by_both_readers():
    text = cut_after("count=10 ")  # "Running benchmark for 10 iterations" + its stat line, nothing more
    with pytest.raises(HwnasError) as e:
        parse_benchmark_log(text).average_ms
    assert "warm-up" in str(e.value) and "timed runs" in str(e.value)
    with pytest.raises(MeasurementError) as e:
        tflite_summary(text)
    assert "warm-up" in str(e.value) and "timed runs" in str(e.value)
    nightly = ("INFO: Running benchmark for at least 50 iterations and at least 1 seconds but terminate if exceeding 150 seconds.\n"
               "INFO: count=50 first=1249964 curr=1240143 min=1238588 max=1252566 avg=1.24027e+06 std=2565\n")
    with pytest.raises(MeasurementError, match="warm-up"):
        tflite_summary(nightly)


def test_a_timed_stat_line_cut_short_is_refused():
    text = cut_after("count=100 ")
    text = text[: text.rindex("avg=") + 6]  # "avg=80" of "avg=80670.2 std=871"
    with pytest.raises(MeasurementError, match="cut short"):
        tflite_summary(text)


def test_tf2_rows_with_the_node_index_after_the_name_are_parsed():
    tf2 = "".join((ln.rstrip("\n") + f":{i}\n") if ln.rstrip().endswith("]") and "%" in ln else ln
                  for i, ln in enumerate(LINES))
    assert "]:30\n" in tf2
    log = parse_benchmark_log(tf2)
    assert len(log.ops) == 77 and log.op_sum_ms == pytest.approx(80.637, abs=1e-6)
    assert log.ops[0].name == "MNasNet/Conv/Relu6"


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-8-sig"])
def test_a_utf16_log_as_powershell_writes_it_is_read(tmp_path, encoding):
    p = tmp_path / "log.txt"
    p.write_bytes(FULL.replace("\n", "\r\n").encode(encoding))
    log = load_benchmark_log(p)
    assert log.average_ms == pytest.approx(80.6702) and len(log.ops) == 77 and log.op_sum_ms == pytest.approx(80.637, abs=1e-6)


def test_the_adb_backend_reads_the_timed_block_through_the_same_parser():
    s = tflite_summary(FULL)
    log = parse_benchmark_log(FULL)
    assert s["median_ms"] == log.timed.avg_ms == pytest.approx(80.6702) and s["n"] == log.timed.count == 100
