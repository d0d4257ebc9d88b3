"""Budgets, table lookup and the vectorized latency model."""

import json

import numpy as np
import pytest

from hwnas.errors import HwnasError
from hwnas.latency.keys import space_slots
from hwnas.latency.table import LatencyTable
from hwnas.search.base import Budgets
from hwnas.search.constraints import (LatencyModel, check_budgets, find_table, load_table, parse_flops,
                                      parse_latency, parse_params)
from hwnas.space import create_space
from hwnas.space.cost import slot_cost


def synthetic_table(space_name="nas-bench-macro", device="host", seed=0, drop=None) -> LatencyTable:
    """A table whose block latency is FLOPs-proportional plus noise (stands in for a profile in unit tests)."""
    space = create_space(space_name)
    rng = np.random.default_rng(seed)
    entries = {}
    for key, slot in space_slots(space).items():
        if key == drop:
            continue
        med = 0.02 + slot_cost(slot)[0] / 2e8 * (1 + 0.2 * rng.random())
        entries[key] = {"median_ms": med, "p90_ms": med * 1.1, "mean_ms": med, "std_ms": med * 0.03, "n": 50}
    return LatencyTable(device={"name": device}, backend="onnxruntime-fp32-1thread", space=space_name,
                        entries=entries, calibration={"overhead_ms": 0.05, "scale": 1.02, "per_block_ms": 0.004})


@pytest.mark.parametrize("text,ms", [("80ms", 80.0), ("80 ms", 80.0), ("0.08s", 80.0),
                                     ("2500us", 2.5), ("1.5 MS", 1.5), (12, 12.0)])
def test_parse_latency(text, ms):
    assert parse_latency(text) == pytest.approx(ms)


@pytest.mark.parametrize("text", ["80", "0.25", " 80 "])
def test_parse_latency_needs_a_unit(text):
    """A bare number could be ms or s: it is refused, naming both readings (a Python float stays ms)."""
    with pytest.raises(HwnasError) as e:
        parse_latency(text)
    v = text.strip()
    assert str(e.value) == f"latency budget {text!r} has no unit; write {v}ms (or {v}s, {v}us)"


@pytest.mark.parametrize("text", ["fast", "80 mss", "-3ms", "0ms", "", "ms"])
def test_parse_latency_rejects(text):
    with pytest.raises(HwnasError) as e:
        parse_latency(text)
    assert "\n" not in str(e.value) and "80ms" in str(e.value)


@pytest.mark.parametrize("text,n", [("330M", 330_000_000), ("330MFLOPs", 330_000_000), ("330 MFLOPs", 330_000_000),
                                    ("0.33G", 330_000_000), ("330e6", 330_000_000), ("12345", 12345)])
def test_parse_flops(text, n):
    assert parse_flops(text) == n


@pytest.mark.parametrize("text,n", [("5Mparams", 5_000_000), ("5M", 5_000_000), ("500K", 500_000), ("4.5 M params", 4_500_000)])
def test_parse_params(text, n):
    assert parse_params(text) == n


@pytest.mark.parametrize("text", ["lots", "5Xparams", "330 MHz", "-1M"])
def test_parse_counts_reject(text):
    with pytest.raises(HwnasError):
        parse_flops(text)
    with pytest.raises(HwnasError):
        parse_params(text)


def test_latency_model_equals_table_prediction():
    space = create_space("nas-bench-macro")
    table = synthetic_table()
    for q in (0.5, 0.9):
        model = LatencyModel(table, space, quantile=q)
        rng = np.random.default_rng(1)
        for _ in range(50):
            arch = space.sample(rng)
            ms, std = model(arch)
            if q == 0.5:
                t_ms, t_std = table.predict(arch)
                assert ms == pytest.approx(t_ms, rel=1e-12) and std == pytest.approx(t_std, rel=1e-12)
            else:
                assert ms == pytest.approx(table.predict_quantile(arch, 0.9), rel=1e-12)
    lo, hi = LatencyModel(table, space).range()
    all_ms = LatencyModel(table, space).predict_indices(np.array([space.choice_indices(a) for a in space.iter_archs()]))[0]
    assert lo == pytest.approx(all_ms.min()) and hi == pytest.approx(all_ms.max())


def test_missing_keys_and_bad_quantile_are_clear_errors():
    space = create_space("nas-bench-macro")
    some_key = next(k for k in space_slots(space) if k.startswith("mbconv"))
    with pytest.raises(HwnasError, match="lacks 1 block"):
        LatencyModel(synthetic_table(drop=some_key), space)
    with pytest.raises(HwnasError, match="quantile"):
        LatencyModel(synthetic_table(), space, quantile=0.75)


def test_budget_below_smallest_arch_is_an_error():
    space = create_space("nas-bench-macro")
    model = LatencyModel(synthetic_table(), space)
    lo, _ = model.range()
    check_budgets(space, Budgets(latency_ms=lo * 1.001), model)
    with pytest.raises(HwnasError, match="below the fastest arch"):
        check_budgets(space, Budgets(latency_ms=lo * 0.99), model)
    with pytest.raises(HwnasError, match="below the smallest arch"):
        check_budgets(space, Budgets(flops=space.flops_range()[0] - 1))
    with pytest.raises(HwnasError, match="params budget"):
        check_budgets(space, Budgets(params=1000))


def test_find_table_newest_for_device_and_space(tmp_path):
    a = synthetic_table()
    a.created = "2026-01-01T00:00:00+00:00"
    a.save(tmp_path / "host-nas-bench-macro-onnxruntime.json")
    b = synthetic_table(seed=1)
    b.created = "2026-02-01T00:00:00+00:00"
    b.save(tmp_path / "host-nas-bench-macro-onnxruntime-v2.json")
    synthetic_table("tiny").save(tmp_path / "host-tiny-onnxruntime.json")
    synthetic_table(device="sd855").save(tmp_path / "sd855-nas-bench-macro-tflite.json")
    assert find_table("host", "nas-bench-macro", tmp_path).name == "host-nas-bench-macro-onnxruntime-v2.json"
    assert find_table("sd855", "nas-bench-macro", tmp_path).name.startswith("sd855-")
    with pytest.raises(HwnasError, match="only for other spaces: host-nas-bench-macro"):
        find_table("host", "proxyless", tmp_path)
    with pytest.raises(HwnasError, match="no latency table for device 'pixel'"):
        find_table("pixel", "tiny", tmp_path)


def test_load_table_refuses_other_space_and_device(tmp_path):
    space = create_space("nas-bench-macro")
    synthetic_table("tiny").save(tmp_path / "t.json")
    with pytest.raises(HwnasError, match="is for space 'tiny', not 'nas-bench-macro'"):
        load_table(space, table=tmp_path / "t.json")
    synthetic_table(device="sd855").save(tmp_path / "s.json")
    with pytest.raises(HwnasError, match="measured on device 'sd855', not 'host'"):
        load_table(space, device="host", table=tmp_path / "s.json")
    assert load_table(space, device="sd855", table=tmp_path / "s.json").space == "nas-bench-macro"


@pytest.mark.parametrize("name", ["nas-bench-macro", "tiny"])
def test_latency_model_matches_the_shipped_host_tables(name):
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "latency_tables" / f"host-{name}-onnxruntime.json"
    space = create_space(name)
    table = load_table(space, device="host", table=path)
    model = LatencyModel(table, space)
    rng = np.random.default_rng(0)
    for _ in range(30):
        arch = space.sample(rng)
        assert model(arch)[0] == pytest.approx(table.predict(arch)[0], rel=1e-9)
        assert model(arch)[1] == pytest.approx(table.predict(arch)[1], rel=1e-9)
    assert find_table("host", name, path.parent, backend="onnxruntime") == path
