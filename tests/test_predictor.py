"""One latency predictor: training budget, search constraint, table and export check agree exactly."""

from pathlib import Path

import numpy as np
import pytest

from hwnas.errors import HwnasError
from hwnas.export.latency_check import verify_latency
from hwnas.latency.keys import arch_keys, space_slots
from hwnas.latency.predictor import LatencyPredictor, calibrate
from hwnas.latency.table import LatencyTable
from hwnas.search.base import Budgets, SearchProblem
from hwnas.search.constraints import LatencyModel
from hwnas.search.evaluator import Evaluator
from hwnas.space import create_space
from hwnas.space.cost import slot_cost
from hwnas.train.samplers import PathBudget

REPO = Path(__file__).resolve().parent.parent
# the tables, not the reports `hwnas validate` leaves beside them (<table>.validate.json)
SHIPPED = sorted(p for p in (REPO / "latency_tables").glob("*.json") if not p.name.endswith(".validate.json"))
N_ARCHS = 10_000


class _NoAccuracy(Evaluator):
    """Costs only: these tests never ask for accuracy."""

    def _evaluate(self, archs):
        raise AssertionError("no accuracy is needed to predict latency")


def synthetic_table(space_name: str, seed: int = 0) -> LatencyTable:
    """Blocks FLOPs-proportional with noise; non-zero per-block term, overhead and scale."""
    space = create_space(space_name)
    rng = np.random.default_rng(seed)
    entries = {}
    for key, slot in space_slots(space).items():
        med = 0.02 + slot_cost(slot)[0] / 2e8 * (1 + 0.2 * rng.random())
        entries[key] = {"median_ms": med, "p90_ms": med * (1.05 + 0.1 * rng.random()), "std_ms": med * 0.03, "n": 50}
    return LatencyTable(device={"name": "host"}, backend="onnxruntime-fp32-1thread", space=space_name, entries=entries,
                        calibration={"overhead_ms": 0.05, "scale": 1.02, "per_block_ms": 0.0137})


def _tables() -> list[tuple[str, LatencyTable]]:
    out = [(p.name, LatencyTable.load(p)) for p in SHIPPED]
    out += [(f"synthetic-{s}", synthetic_table(s)) for s in ("tiny", "nas-bench-macro")]
    return out


def test_shipped_tables_carry_a_per_block_term():
    """The defect only shows with a per-block term: make sure the shipped tables have one."""
    # the host tables calibrated by `hwnas validate --calibrate` (the Note10 tables are imported
    # per-block figures: no calibration to carry; the ofa-mbv3 LiteRT host table's validation is
    # not finished, which the README says)
    not_validated = {"host-ofa-mbv3-litert.json"}
    calibrated = [p for p in SHIPPED if p.name.startswith("host-") and p.name not in not_validated]
    assert len(calibrated) == 7
    for n in not_validated:  # listed only while true: no fitted calibration yet
        assert "fitted_on" not in LatencyTable.load(REPO / "latency_tables" / n).calibration
    assert all(LatencyTable.load(p).calibration.get("per_block_ms", 0.0) != 0.0 for p in calibrated)


@pytest.mark.parametrize("name,table", _tables(), ids=lambda x: x if isinstance(x, str) else "")
def test_budget_constraint_table_and_export_check_predict_identically(name, table):
    space = create_space(table.space, **table.space_args)
    X = space.sample_indices(np.random.default_rng(7), N_ARCHS)
    archs = [space.from_indices(r) for r in X]

    # the median everywhere (training's default judges the 0.9 bound: compared with the search's below)
    training = PathBudget(space, table=table, max_latency_ms=1e9, confidence=None).latency_of(X)
    model = LatencyModel(table, space)
    problem = SearchProblem(space, _NoAccuracy(), latency=model, budgets=Budgets(latency_ms=1e9))
    search = problem.latency_of_indices(X)
    scalar = np.array([table.predict(a)[0] for a in archs])
    export = np.array([verify_latency(table, a, "unused.onnx", "onnx", "fp32", measure=False).predicted_ms
                       for a in archs[:2000]])

    np.testing.assert_allclose(training, scalar, rtol=0, atol=1e-9)
    np.testing.assert_allclose(search, scalar, rtol=0, atol=1e-9)
    np.testing.assert_allclose(export, scalar[:2000], rtol=0, atol=1e-9)
    bound_training = PathBudget(space, table=table, max_latency_ms=1e9).latency_of(X)
    bound_search = LatencyModel(table, space, confidence=PathBudget(space).confidence).predict_indices(X)[0]
    np.testing.assert_allclose(bound_training, bound_search, rtol=0, atol=1e-9)
    assert (bound_training >= training - 1e-12).all()
    # the per-block term counts the blocks each arch really has (identities are no block)
    nblocks = np.array([len(arch_keys(space, a)) for a in archs[:200]])
    raw = np.array([sum(table.entries[k]["median_ms"] for k in arch_keys(space, a)) for a in archs[:200]])
    c = table.calibration
    by_hand = c.get("scale", 1.0) * raw + c.get("overhead_ms", 0.0) + c.get("per_block_ms", 0.0) * nblocks
    np.testing.assert_allclose(scalar[:200], by_hand, rtol=0, atol=1e-9)
    # p90: the search's conservative bound and the table's quantile prediction
    p90 = LatencyModel(table, space, quantile=0.9).predict_indices(X[:2000])[0]
    np.testing.assert_allclose(p90, [table.predict_quantile(a, 0.9) for a in archs[:2000]], rtol=0, atol=1e-9)
    # feasibility at the median budget: train and search agree on every arch
    T = float(np.median(scalar))
    assert np.array_equal(PathBudget(space, table=table, max_latency_ms=T, confidence=None).ok(X), search <= T)


def test_predictor_distribution_median_p90_and_spread():
    table = synthetic_table("tiny")
    space = create_space("tiny")
    pred = LatencyPredictor(table, space)
    X = space.sample_indices(np.random.default_rng(1), 500)
    dist = pred.distribution(X)
    archs = [space.from_indices(r) for r in X]
    for i in range(0, 500, 50):
        keys = arch_keys(space, archs[i])
        std = np.sqrt(sum(table.entries[k]["std_ms"] ** 2 for k in keys)) * 1.02
        p90 = calibrate(sum(table.entries[k]["p90_ms"] for k in keys), len(keys), table.calibration)
        assert dist.spread_ms[i] == pytest.approx(std, rel=1e-12)
        assert dist.p90_ms[i] == pytest.approx(p90, rel=1e-12)
        assert pred.predict(archs[i]) == pytest.approx(dist.median_ms[i], abs=1e-12)
    assert np.all(dist.p90_ms > dist.median_ms)


def test_a_partial_table_predicts_archs_it_covers_and_names_a_missing_block():
    space = create_space("tiny")
    full = synthetic_table("tiny")
    arch = space.sample(np.random.default_rng(3))
    used = set(arch_keys(space, arch))
    dropped = next(k for k in full.entries if k not in used)
    partial = LatencyTable(device=full.device, backend=full.backend, space=full.space, calibration=full.calibration,
                           entries={k: v for k, v in full.entries.items() if k != dropped})
    assert partial.predict(arch) == full.predict(arch)
    other = next(a for a in (space.from_indices(r) for r in space.sample_indices(np.random.default_rng(4), 2000))
                 if dropped in arch_keys(space, a))
    with pytest.raises(HwnasError, match="lacks"):
        partial.predict(other)
    with pytest.raises(HwnasError, match="lacks"):
        LatencyPredictor(partial, space).predict_indices(np.array([space.choice_indices(other)]))
