"""Property-based fuzzing of every reader of a user's file (Hypothesis).

Mutated real files and random inputs must give either a result or an HwnasError (the one-line
error type), never another exception, and never a non-finite or negative latency.
"""

import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwnas.errors import HwnasError
from hwnas.latency.benchmark_log import load_benchmark_log, parse_benchmark_log
from hwnas.latency.journal import Journal
from hwnas.latency.table import LatencyTable
from hwnas.search.base import read_history
from hwnas.space import create_space
from hwnas.space.arch import Arch
from hwnas.train.checkpoint import read_checkpoint, save_checkpoint

from .conftest import BENCHMARK_LOG, REPO

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                       HealthCheck.too_slow])
TABLE = (REPO / "latency_tables" / "host-tiny-onnxruntime.json").read_bytes()
LOG = BENCHMARK_LOG.read_bytes()
ARCH = json.dumps(create_space("tiny").sample(0).to_dict()).encode()
RECORD = json.dumps({**create_space("tiny").sample(0).to_dict(), "accuracy": 50.0, "latency_ms": 0.2, "latency_std_ms": 0.01,
                     "flops": 1000, "params": 10, "score": 50.0, "feasible": True, "evaluation": 1}).encode()
JOURNAL = (json.dumps({"journal": 1, "backend": "onnxruntime", "space": "tiny"}) + "\n"
           + json.dumps({"key": "a", "round": 0, "measurement": {"median_ms": 1.0}}) + "\n").encode()

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)


@st.composite
def mutated(draw, original: bytes):
    """The file with a few bytes flipped, inserted or removed, or cut short."""
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        if not data:
            break
        i = draw(st.integers(0, len(data) - 1))
        if kind == "flip":
            data[i] = draw(st.integers(0, 255))
        elif kind == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del data[i:i + draw(st.integers(1, 16))]
        else:
            del data[i:]
    return bytes(data)


def file_inputs(original: bytes):
    return mutated(original) | st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode())


@st.composite
def table_with_bad_field(draw):
    """The real table with one field, entry or entry field replaced by random JSON."""
    d = json.loads(TABLE)
    where = draw(st.sampled_from(["entry", "entry_field", "calibration", "protocol", "top"]))
    value = draw(json_values)
    key = draw(st.sampled_from(sorted(d["entries"])))
    if where == "entry":
        d["entries"][key] = value
    elif where == "entry_field":
        d["entries"][key][draw(st.sampled_from(["median_ms", "p90_ms", "std_ms", "mean_ms"]))] = value
    elif where == "calibration":
        d["calibration"][draw(st.sampled_from(["scale", "overhead_ms", "per_block_ms"]))] = value
    elif where == "protocol":
        d["protocol"][draw(st.sampled_from(["runs", "anchor", "rounds", "min_time_s"]))] = value
    else:
        d[draw(st.sampled_from(["device", "entries", "calibration", "space", "space_args", "protocol", "failed"]))] = value
    return json.dumps(d).encode()


def write(tmp_path, name: str, data: bytes):
    p = tmp_path / name
    p.write_bytes(data)
    return p


def finite_latency(x) -> bool:
    return x is None or (isinstance(x, float) and math.isfinite(x) and x >= 0)


@FUZZ
@given(data=file_inputs(TABLE) | table_with_bad_field())
def test_table_reader(tmp_path, data):
    try:
        t = LatencyTable.load(write(tmp_path, "t.json", data))
    except HwnasError:
        return
    for e in t.entries.values():
        assert math.isfinite(e["median_ms"]) and e["median_ms"] > 0
    try:
        ms, spread = t.predict(create_space("tiny").sample(3))
    except HwnasError:
        return
    assert math.isfinite(ms) and ms > 0 and math.isfinite(spread) and spread >= 0


@FUZZ
@given(data=file_inputs(ARCH))
def test_arch_reader(tmp_path, data):
    try:
        Arch.load(write(tmp_path, "a.json", data))
    except HwnasError:
        pass


@FUZZ
@given(data=file_inputs(JOURNAL))
def test_journal_reader(tmp_path, data):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            j = Journal(write(tmp_path, "j.jsonl", data), {"backend": "onnxruntime", "space": "tiny"}).open()
        except HwnasError:
            return
    assert all(isinstance(r, dict) for r in j.records)


@FUZZ
@given(data=file_inputs(RECORD + b"\n" + RECORD.replace(b'"evaluation": 1', b'"evaluation": 2') + b"\n"))
def test_history_reader(tmp_path, data):
    try:
        records = read_history(write(tmp_path, "history.jsonl", data))
    except HwnasError:
        return
    assert all(finite_latency(r.latency_ms) and math.isfinite(r.accuracy) for r in records)


@pytest.fixture(scope="module")
def checkpoint_json(tmp_path_factory):
    import torch

    run = tmp_path_factory.mktemp("ck")
    return save_checkpoint(run, "supernet", {"model": {"w": torch.zeros(2)}}, {"space": "tiny", "iteration": 1})


@FUZZ
@given(data=st.data())
def test_checkpoint_json_reader(checkpoint_json, data):
    original = checkpoint_json.read_bytes()
    try:
        checkpoint_json.write_bytes(data.draw(file_inputs(original)))
        try:
            read_checkpoint(checkpoint_json)
        except HwnasError:
            pass
    finally:
        checkpoint_json.write_bytes(original)


@FUZZ
@given(data=file_inputs(LOG) | st.text(max_size=400).map(str.encode)
       | st.lists(st.sampled_from(["Running benchmark for 10 iterations", "count=10 first=1 curr=1 min=1 max=1 avg=-5 std=1",
                                   "count=50 curr=nan(all same)", "count=5 avg=inf std=0", "Inference timings in us: Inference (avg): -3",
                                   "============================== Run Order ==============================",
                                   "CONV_2D 0.0 1.0 -1.5 1.0% 1.0% 0.0 1 [x]", "Number of nodes executed: 1", "count=0"]),
                  max_size=8).map(lambda ls: "\n".join(ls).encode()))
def test_benchmark_log_reader(tmp_path, data):
    from hwnas.latency.backends.adb import tflite_summary

    try:
        log = load_benchmark_log(write(tmp_path, "log.txt", data))
    except HwnasError:
        log = None
    if log is not None:
        for what in (lambda: log.average_ms, lambda: log.op_sum_ms):
            try:
                ms = what()
            except HwnasError:
                continue
            assert math.isfinite(ms) and ms >= 0
    text = data.decode("utf-8", errors="replace")
    for reader in (lambda: parse_benchmark_log(text).average_ms, lambda: tflite_summary(text)["median_ms"]):
        try:
            ms = reader()
        except HwnasError:
            continue
        assert math.isfinite(ms) and ms > 0
