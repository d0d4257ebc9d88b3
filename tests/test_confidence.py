"""A latency budget met with a stated confidence: the quantile arithmetic, the search's bound,
and the fields best.json and the export sidecar state."""

import json
import math

import numpy as np
import pytest

from hwnas.errors import HwnasError
from hwnas.latency.confidence import LatencyUncertainty, uncertainty_record
from hwnas.search.base import Budgets, SearchProblem, create_searcher
from hwnas.search.constraints import LatencyModel
from hwnas.search.evaluator import TabularEvaluator
from hwnas.space import create_space

from .test_constraints import synthetic_table

UNC = LatencyUncertainty(residual_log_mean=0.01, residual_log_std=0.03, residual_n=40, drift_log_std=0.04, drift_n=30)


def test_quantile_interval_and_probability_against_hand_computed_values():
    # sigma = sqrt(0.03^2 + 0.04^2) = 0.05; z(0.9) = 1.28155; 2 * exp(0.01 + 0.05 * 1.28155) = 2.15378
    assert float(UNC.quantile(2.0, 0.0, 0.9)) == pytest.approx(2.1537807, rel=1e-6)
    # P(L <= 2.1) = Phi((ln 2.1 - ln 2 - 0.01) / 0.05) = Phi(0.77580) = 0.78107
    assert float(UNC.p_within(2.0, 0.0, 2.1)) == pytest.approx(0.7810674, rel=1e-6)
    # validated: the held-out residuals already hold the blocks' noise, their spread adds nothing
    assert float(UNC.quantile(2.0, 0.1, 0.9)) == pytest.approx(2.1537807, rel=1e-6)
    # not validated: the blocks' spread 0.1 ms on 2 ms adds 5%: sigma = sqrt(0.04^2 + 0.05^2) = 0.0640312
    drift_only = LatencyUncertainty(drift_log_std=0.04, drift_n=30)
    assert float(drift_only.quantile(2.0, 0.1, 0.9)) == pytest.approx(2.0 * math.exp(1.2815516 * 0.0640312), rel=1e-6)
    lo, hi = UNC.interval(2.0, 0.1, 0.9)  # central 90%: z = -+1.64485, sigma 0.05
    assert (float(lo), float(hi)) == (pytest.approx(2 * math.exp(0.01 - 1.6448536 * 0.05), rel=1e-6),
                                      pytest.approx(2 * math.exp(0.01 + 1.6448536 * 0.05), rel=1e-6))
    # vectorized: elementwise the same
    q = drift_only.quantile(np.array([2.0, 2.0]), np.array([0.0, 0.1]), 0.9)
    assert q.tolist() == pytest.approx([2.0 * math.exp(1.2815516 * 0.04), 2.0 * math.exp(1.2815516 * 0.0640312)], rel=1e-6)
    with pytest.raises(HwnasError, match="between 0 and 1"):
        UNC.quantile(2.0, 0.0, 1.0)


def test_the_drift_mean_is_not_a_shift():
    """The anchor's mean while validating is the device's state then (a busy host ran 4x slower):
    only its spread widens the interval."""
    busy = LatencyUncertainty(drift_log_mean=1.4, drift_log_std=0.04, drift_n=7)
    assert float(busy.quantile(2.0, 0.0, 0.9)) == pytest.approx(2.0 * math.exp(1.2815516 * 0.04), rel=1e-6)
    assert float(busy.quantile(2.0, 0.0, 0.5)) == 2.0


def test_zero_spread_reduces_to_the_median():
    zero = LatencyUncertainty()
    for c in (0.5, 0.9, 0.99):
        assert float(zero.quantile(1.234, 0.0, c)) == 1.234
    assert float(zero.p_within(1.0, 0.0, 1.0)) == 1.0 and float(zero.p_within(1.0, 0.0, 0.999)) == 0.0


def test_uncertainty_record_from_residuals_and_anchor_readings():
    rec = uncertainty_record([1.1, 0.9, 1.0], [1.0, 1.0, 1.0], [1.0, 1.05, 0.95, 0.0])
    r = np.log([1.1, 0.9, 1.0])
    d = np.log([1.0, 1.05, 0.95])  # a zero reading is not a speed
    assert rec["residual_n"] == 3 and rec["residual_log_mean"] == pytest.approx(r.mean(), abs=1e-6)
    assert rec["residual_log_std"] == pytest.approx(r.std(ddof=1), abs=1e-6)
    assert rec["drift_n"] == 3 and rec["drift_log_std"] == pytest.approx(d.std(ddof=1), abs=1e-6)
    assert LatencyUncertainty.from_calibration({"scale": 1.0, **rec}).residual_log_std == rec["residual_log_std"]


def zero_spread_table():
    t = synthetic_table()
    for e in t.entries.values():
        e["std_ms"] = 0.0
    return t


def test_a_search_on_a_zero_spread_table_is_the_median_search():
    space = create_space("nas-bench-macro")
    t = zero_spread_table()
    median, conf = LatencyModel(t, space), LatencyModel(t, space, confidence=0.9)
    X = np.array([space.choice_indices(space.sample(i)) for i in range(50)])
    assert np.array_equal(median.predict_indices(X)[0], conf.predict_indices(X)[0])
    T = float(np.median(median.predict_indices(X)[0]))
    best = []
    for model in (median, conf):
        prob = SearchProblem(space, TabularEvaluator(), latency=model, budgets=Budgets(latency_ms=T))
        best.append(create_searcher("nsga2", population=10, generations=3).run(prob, seed=0).best.arch)
    assert best[0] == best[1]


def test_confidence_bound_is_the_quantile_and_costs_a_margin():
    space = create_space("nas-bench-macro")
    t = synthetic_table()
    t.calibration.update(residual_log_mean=0.0, residual_log_std=0.03, residual_n=40, drift_log_std=0.04, drift_n=30)
    median, conf = LatencyModel(t, space), LatencyModel(t, space, confidence=0.9)
    arch = space.sample(3)
    m, s = median(arch)
    unc = LatencyUncertainty(residual_log_std=0.03, residual_n=40, drift_log_std=0.04, drift_n=30)
    assert conf(arch)[0] == pytest.approx(m * math.exp(1.2815516 * math.sqrt(0.03 ** 2 + 0.04 ** 2)), rel=1e-6)
    # a table without validation statistics: the blocks' spread is the only information
    raw = LatencyModel(synthetic_table(), space, confidence=0.9)
    assert raw(arch)[0] == pytest.approx(m * math.exp(1.2815516 * s / m), rel=1e-6)
    assert conf(arch)[0] == pytest.approx(float(unc.quantile(m, s, 0.9)), rel=1e-12)
    with pytest.raises(HwnasError, match="give one of them"):
        LatencyModel(t, space, quantile=0.9, confidence=0.9)


def test_best_json_states_median_interval_and_probability(tmp_path):
    from hwnas.search.api import run_search

    t = synthetic_table()
    t.calibration.update(residual_log_mean=0.005, residual_log_std=0.03, residual_n=40, drift_log_std=0.04, drift_n=30)
    tables = tmp_path / "tables"
    t.save(tables / "host-nas-bench-macro-onnxruntime.json")
    space = create_space("nas-bench-macro")
    lo, hi = LatencyModel(t, space).range()
    T = lo + 0.5 * (hi - lo)
    o = run_search(latency=f"{T}ms", benchmark="nas-bench-macro", tables_dir=tables, population=10, generations=3,
                   out=tmp_path / "s", plot=False)
    best = json.loads(o.paths["best"].read_text())
    arch = space.from_compact(best["compact"]) if "compact" in best else o.result.best.arch
    median, spread = LatencyModel(t, space)(arch)
    unc = LatencyUncertainty.from_calibration(t.calibration)
    lp = best["latency_prediction"]
    assert best["latency_bound"]["kind"] == "confidence" and best["latency_bound"]["confidence"] == 0.9
    assert lp["median_ms"] == pytest.approx(median, abs=1e-6) and lp["interval_confidence"] == 0.9
    assert lp["interval_ms"] == pytest.approx([float(v) for v in unc.interval(median, spread, 0.9)], abs=1e-6)
    assert lp["p_within_budget"] == pytest.approx(float(unc.p_within(median, spread, T)), abs=1e-4)
    # the constraint was the 0.9 quantile: the winner meets the budget with probability >= 0.9
    assert best["latency_ms"] == pytest.approx(float(unc.quantile(median, spread, 0.9))) and best["latency_ms"] <= T
    assert lp["p_within_budget"] >= 0.9
    summary = json.loads(o.paths["summary"].read_text())
    assert summary["latency_prediction"] == lp
