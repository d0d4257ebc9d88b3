"""Drift correction with the anchor network, and resumable validation."""

import json
import os
import zlib

import numpy as np
import pytest

from hwnas.errors import HwnasError
from hwnas.latency.backends.base import Backend, Protocol, RunTimes
from hwnas.latency.drift import AnchorLog, anchor_arch, anchor_file, corrected
from hwnas.latency.journal import Journal
from hwnas.latency.keys import space_slots
from hwnas.latency.profiler import profile_space
from hwnas.latency.validate import measure_networks, network_file, sample_archs
from hwnas.space import create_space


def base_ms(path) -> float:
    """A fixed 'true' latency per model file (0.5 .. 2.5 ms)."""
    return 0.5 + (zlib.crc32(path.name.encode()) % 1000) / 500


class Drifting(Backend):
    """A device that gets slower and slower: call i runs at (1 + slope * i) times its true speed."""

    name = "drifting"
    model_format = "onnx"

    def __init__(self, slope=0.01, fail_after=None):
        super().__init__(None)
        self.slope, self.calls, self.fail_after = slope, 0, fail_after
        self.timed: list[str] = []

    def fingerprint(self):
        return {"model": "drifting"}

    def _time_runs(self, model_path, protocol):
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise KeyboardInterrupt  # the user pressed Ctrl-C
        v = base_ms(model_path) * (1 + self.slope * self.calls)
        self.calls += 1
        self.timed.append(model_path.name)
        return RunTimes([v] * 5)


def test_anchor_log_factor_is_the_local_median():
    log = AnchorLog(window=3)
    for t, ms in [(0, 1.0), (1, 1.0), (2, 5.0), (3, 1.2), (4, 1.2), (10, 2.0), (11, 2.0), (12, 2.0)]:
        log.add(t, ms)
    assert log.factor(2.1, 1.0) == pytest.approx(1.2)  # the disturbed reading 5.0 does not move it
    assert log.factor(11, 1.0) == pytest.approx(2.0)
    assert log.factor(None, 1.0) == 1.0 and AnchorLog().factor(3, 1.0) == 1.0
    c = corrected({"median_ms": 3.0, "p90_ms": 4.0, "mean_ms": 3.0, "std_ms": 0.3}, 1.5)
    assert c["median_ms"] == pytest.approx(2.0) and c["raw_median_ms"] == 3.0 and c["drift_factor"] == 1.5


def test_anchor_is_fixed_per_space():
    sp = create_space("tiny")
    assert anchor_arch(sp) == anchor_arch(create_space("tiny"))
    sp.validate(anchor_arch(sp))  # a valid arch of the space
    assert anchor_arch(sp) != anchor_arch(create_space("nas-bench-macro"))


def test_profiler_removes_a_steady_slowdown(tmp_path):
    """Blocks timed late in a run (when the device is 40% slower) are brought back to the reference speed."""
    sp = create_space("tiny")
    keys = list(space_slots(sp))[:16]
    cache = tmp_path / "blocks"
    proto = Protocol(runs=5, warmup_runs=0, rounds=1, min_time_s=0.0, max_retries=0, anchor_every=2)
    be = Drifting(slope=0.01)
    table = profile_space("host", sp, be, tmp_path / "d.json", cache_dir=cache, keys=keys, protocol=proto)
    anchor = anchor_file(sp, "onnx", cache)
    ref = table.protocol["anchor"]["reference_ms"]
    assert table.protocol["anchor"]["arch"] == anchor_arch(sp).compact() and table.protocol["anchor"]["readings"] >= 9
    assert table.protocol["anchor"]["max_factor"] / table.protocol["anchor"]["min_factor"] > 1.2  # the drift was seen
    # entries in the reference state: true latency times the anchor's reference slowdown
    unit = ref / base_ms(anchor)
    errs_corr, errs_raw = [], []
    from hwnas.latency.blocks import block_file

    for k in keys:
        truth = base_ms(block_file(k, "onnx", cache)) * unit
        e = table.entries[k]
        errs_corr.append(abs(e["median_ms"] / truth - 1))
        errs_raw.append(abs(e["round_medians_ms"][0] * e["drift_factors"][0] / truth - 1))
    assert max(errs_corr) < 0.06, errs_corr
    assert max(errs_raw) > 0.08 and max(errs_raw) > 3 * np.median(errs_corr)  # what the table would hold without the anchor
    saved = json.loads((tmp_path / "d.json").read_text())
    assert saved["protocol"]["anchor"]["reference_ms"] == ref and saved["protocol"]["anchor_every"] == 2


def test_profiler_without_anchor_keeps_raw_times(tmp_path):
    sp = create_space("tiny")
    keys = list(space_slots(sp))[:4]
    proto = Protocol(runs=5, warmup_runs=0, rounds=1, min_time_s=0.0, max_retries=0, anchor_every=0)
    be = Drifting(slope=0.0)
    table = profile_space("host", sp, be, tmp_path / "n.json", cache_dir=tmp_path / "b", keys=keys, protocol=proto)
    assert "anchor" not in table.protocol and be.calls == 4


def test_validation_resumes_without_remeasuring(tmp_path):
    """Ctrl-C in the middle of measuring whole networks, then the same call: only the rest is timed."""
    sp = create_space("tiny")
    archs = sample_archs(sp, 4, seed=3)
    proto = Protocol(runs=5, warmup_runs=0, rounds=2, min_time_s=0.0, max_retries=0)
    jpath = tmp_path / "v.journal.jsonl"
    header = {"backend": "drifting", "space": "tiny", "space_args": {}, "protocol": proto.to_dict(), "fingerprint": {"model": "drifting"}}
    be = Drifting(slope=0.0, fail_after=5)
    with pytest.raises(KeyboardInterrupt):
        measure_networks(archs, be, proto, tmp_path / "blocks", journal=Journal(jpath, header).open())
    assert be.calls == 5
    be2 = Drifting(slope=0.0)
    rounds, stats = measure_networks(archs, be2, proto, tmp_path / "blocks", journal=Journal(jpath, header).open())
    assert be2.calls == 3 and stats["resumed_measurements"] == 5
    for a, rr in zip(archs, rounds):
        assert [r["median_ms"] for r in rr] == pytest.approx([base_ms(network_file(a, "onnx", tmp_path / "blocks"))] * 2)
    # a journal made with another protocol is refused, not mixed in
    other = {**header, "protocol": {**proto.to_dict(), "runs": 9}}
    with pytest.raises(HwnasError, match="belongs to another profile"):
        Journal(jpath, other).open()


def test_validate_corrects_drift_against_the_table_reference(tmp_path):
    """A table made at one speed, validated while the device is 30% slower: the corrected figures agree."""
    from hwnas.latency.validate import validate_table

    sp = create_space("tiny")
    cache = tmp_path / "blocks"
    proto = Protocol(runs=5, warmup_runs=0, rounds=1, min_time_s=0.0, max_retries=0, anchor_every=3)
    table = profile_space("host", sp, Drifting(slope=0.0), tmp_path / "t.json", cache_dir=cache, protocol=proto)

    class Slower(Drifting):
        def _time_runs(self, model_path, protocol):
            rt = super()._time_runs(model_path, protocol)
            return RunTimes([x * 1.3 for x in rt.times_ms])

    proto_v = Protocol.from_dict({**table.protocol, "rounds": 2})
    rep = validate_table("host", table, samples=6, seed=1, backend=Slower(slope=0.0), protocol=proto_v, cache_dir=cache,
                         plot=tmp_path / "p.png")
    assert rep["drift"]["corrected"] and rep["drift"]["median_factor"] == pytest.approx(1.3, rel=1e-6)
    raw = np.array([a["raw_rounds_ms"][0] for a in rep["archs"]])
    corr = np.array([a["rounds_ms"][0] for a in rep["archs"]])
    assert corr == pytest.approx(raw / 1.3)
    assert rep["results_without_drift_correction"]["uncalibrated"]["bias_pct"] < rep["results"]["uncalibrated"]["bias_pct"]
    assert not any(tmp_path.glob("*.validate-seed1.journal.jsonl"))  # a finished validation leaves no journal


def test_export_latency_check_reports_the_device_speed_against_the_table(tmp_path, monkeypatch, timed_files):
    """The shipped host table has an anchor: an export's latency check times it around the file."""
    from hwnas.export.latency_check import verify_latency
    from hwnas.latency.blocks import export_network
    from hwnas.latency.table import LatencyTable

    from .conftest import REPO

    monkeypatch.setenv("HWNAS_CACHE_DIR", str(tmp_path / "cache"))
    table = LatencyTable.load(REPO / "latency_tables" / "host-tiny-onnxruntime.json", force=True)
    assert table.protocol["anchor"]["reference_ms"] > 0
    sp = create_space("tiny")
    arch = sp.sample(5)
    f = export_network(arch, "onnx", tmp_path / "net.onnx")
    table.protocol = {**table.protocol, "runs": 10, "warmup_runs": 2, "min_time_s": 0.0, "rounds": 1}
    rep = verify_latency(table, arch, f, "onnx", "fp32")
    # anchor, file, anchor: the device's speed is the anchor's mean reading against the table's reference
    (a1, anchor1), (name, file_ms), (a2, anchor2) = timed_files
    assert a1 == a2 != name == "net.onnx" and rep.measured_ms == file_ms > 0
    speed = (anchor1 + anchor2) / 2 / table.protocol["anchor"]["reference_ms"]
    assert rep.device_speed_factor == pytest.approx(speed) and 0.2 < speed < 5
    assert rep.measured_reference_ms == pytest.approx(file_ms / speed)
    assert rep.error_reference_pct == pytest.approx(100 * (table.predict(arch)[0] * speed / file_ms - 1))
    assert "when the table was profiled" in rep.summary()
    assert (tmp_path / "cache" / "networks").is_dir()  # the anchor was exported into the cache, not the user's folder


def test_validate_calibrate_holds_the_table_lock_while_it_measures_and_writes(tmp_path):
    """``validate --calibrate`` writes the table: it is one of its writers and takes the profile's lock."""
    from hwnas.latency.lock import table_lock
    from hwnas.latency.validate import validate_table

    sp, cache, proto, path = profiled_tiny_table(tmp_path)
    refused: list[str] = []

    class Probing(Drifting):
        def _time_runs(self, model_path, protocol):
            try:
                with table_lock(path):
                    pass
            except HwnasError as e:
                refused.append(str(e))
            return super()._time_runs(model_path, protocol)

    proto_v = Protocol.from_dict({**proto.to_dict(), "rounds": 2})
    rep = validate_table("host", path, samples=6, seed=1, calibrate=True, backend=Probing(slope=0.0), protocol=proto_v,
                         cache_dir=cache, plot=tmp_path / "p.png")
    assert rep["calibration"]["residual_n"] == 3
    # the table states its noise floor (two fresh measurements of one network), what a closed loop judges against
    assert rep["calibration"]["noise_floor_pct"] == pytest.approx(rep["noise"]["median_abs_pct"], abs=1e-4)
    assert refused and all("being calibrated" in m and str(os.getpid()) in m for m in refused)
    assert not path.with_name(path.name + ".lock").exists()  # released when done
    # and a table another writer holds is refused before anything is measured, the table unchanged
    before = path.read_bytes()
    be = Drifting(slope=0.0)
    with table_lock(path):
        with pytest.raises(HwnasError, match="being profiled by pid"):
            validate_table("host", path, samples=6, seed=2, calibrate=True, backend=be, protocol=proto_v, cache_dir=cache,
                           plot=tmp_path / "p2.png")
    assert be.calls == 0 and path.read_bytes() == before


def profiled_tiny_table(tmp_path):
    """tiny profiled on a steady fake device without an anchor: (space, block cache, protocol, table path)."""
    sp = create_space("tiny")
    cache = tmp_path / "blocks"
    proto = Protocol(runs=5, warmup_runs=0, rounds=1, min_time_s=0.0, max_retries=0, anchor_every=0)
    path = tmp_path / "t.json"
    profile_space("host", sp, Drifting(slope=0.0), path, cache_dir=cache, protocol=proto)
    return sp, cache, proto, path


def test_a_stored_calibration_never_predicts_an_arch_of_the_space_at_zero_or_less(tmp_path):
    """Whole networks far cheaper than their blocks' sum: a free fit of scale, overhead and per-block
    cost extrapolates below zero for the space's fastest arch, which the table's loader refuses. The
    calibration ``validate --calibrate`` stores is the most detailed one that keeps every arch of the
    space positive, and the report says which one it chose and why."""
    from hwnas.latency.predictor import LatencyPredictor, arch_sums
    from hwnas.latency.table import LatencyTable
    from hwnas.latency.validate import validate_table

    sp, cache, proto, path = profiled_tiny_table(tmp_path)
    tab = LatencyTable.load(path)
    archs = sample_archs(sp, 8, seed=1)
    sums = {a: arch_sums(tab, a) for a in archs}
    raw_min_sampled = min(s[0] for s in sums.values())
    fastest_raw = LatencyPredictor(tab, sp).range()[0]
    assert fastest_raw < raw_min_sampled - 0.2  # the fastest arch lies outside what is sampled
    overhead = -(raw_min_sampled - 0.1)  # every sampled network >= 0.1 ms, the fastest arch would be < 0
    net_ms = {network_file(a, "onnx", cache).name: s[0] + overhead for a, s in sums.items()}

    class Cheap(Drifting):
        def _time_runs(self, model_path, protocol):
            self.calls += 1
            return RunTimes([net_ms.get(model_path.name, base_ms(model_path))] * 5)

    proto_v = Protocol.from_dict({**proto.to_dict(), "rounds": 2})
    rep = validate_table("host", path, samples=8, seed=1, calibrate=True, backend=Cheap(slope=0.0), protocol=proto_v,
                         cache_dir=cache, plot=tmp_path / "p.png")
    stored = LatencyTable.load(path)  # refused today: "its calibration predicts the fastest arch ... at -x ms"
    assert LatencyPredictor(stored, sp).range()[0] > 0
    chosen = rep["calibration_model"]
    assert chosen["terms"] != ["scale", "overhead_ms", "per_block_ms"] and "fastest arch" in chosen["why"]
    # the model it fell back from really was the exact (negative-extrapolating) fit of the measurements
    assert chosen["rejected"][0]["overhead_ms"] == pytest.approx(overhead, abs=1e-6)
    assert chosen["rejected"][0]["fastest_ms"] < 0
    # a table holding such a calibration is refused, and the repair the refusal advises works
    import json as _json

    d = _json.loads(path.read_text())
    d["calibration"] = {k: chosen["rejected"][0][k] for k in ("scale", "overhead_ms", "per_block_ms")}
    path.write_text(_json.dumps(d))
    with pytest.raises(HwnasError, match="recalibrate it with `hwnas validate --calibrate`"):
        LatencyTable.load(path)
    validate_table("host", path, samples=8, seed=1, calibrate=True, backend=Cheap(slope=0.0), protocol=proto_v,
                   cache_dir=cache, plot=tmp_path / "p.png")
    assert LatencyPredictor(LatencyTable.load(path), sp).range()[0] > 0


def test_calibrating_a_table_that_lacks_blocks_of_the_space_fits_as_before(tmp_path):
    """A table that lacks some block of its space (a partial profile, or a failed conversion) has
    no known fastest arch: the calibration is fitted with every term, as the table's loader
    accepts such a table, instead of failing on the blocks it lacks."""
    from hwnas.latency.keys import arch_keys
    from hwnas.latency.predictor import arch_sums
    from hwnas.latency.table import LatencyTable
    from hwnas.latency.validate import CALIBRATION_MODELS, fit_calibration, fit_space_calibration

    sp, cache, proto, path = profiled_tiny_table(tmp_path)
    tab = LatencyTable.load(path)
    archs = sample_archs(sp, 8, seed=1)
    sums = [arch_sums(tab, a) for a in archs]
    raw, nblocks = np.array([s[0] for s in sums]), np.array([s[2] for s in sums])
    meas = raw * 0.9 + 0.05 - 0.01 * nblocks
    used = {k for a in archs for k in arch_keys(sp, a)}
    unused = sorted(k for k in tab.entries if k not in used)
    assert unused  # some block of the space no sampled arch needs
    del tab.entries[unused[0]]
    cal, model = fit_space_calibration(tab, sp, raw, nblocks, meas)
    assert model["terms"] == list(CALIBRATION_MODELS[0]) and model["fastest_ms"] is None and not model["rejected"]
    assert cal == pytest.approx(fit_calibration(raw, nblocks, meas))
    assert cal == pytest.approx({"scale": 0.9, "overhead_ms": 0.05, "per_block_ms": -0.01})
