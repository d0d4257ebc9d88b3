"""The search budget `hwnas train` suggests fits the space (not a fixed 80 ms)."""

import re

import numpy as np

from hwnas.search.constraints import LatencyModel, load_table
from hwnas.space import create_space
from hwnas.train.hints import suggested_budget

from .conftest import REPO


def test_suggested_latency_is_the_median_of_the_shipped_host_table():
    hint = suggested_budget("tiny", tables_dir=REPO / "latency_tables")
    m = re.fullmatch(r"--latency ([0-9.]+)ms", hint)
    assert m, hint
    ms = float(m.group(1))
    space = create_space("tiny")
    model = LatencyModel(load_table(space, tables_dir=REPO / "latency_tables"), space)
    pred, _ = model.predict_indices(space.sample_indices(np.random.default_rng(123), 2000))
    lo, hi = model.range()
    assert lo < ms < hi
    assert 0.35 <= float(np.mean(pred <= ms)) <= 0.65  # about half the paths fit: a budget worth searching under


def test_without_a_table_the_hint_is_the_median_flops(tmp_path):
    hint = suggested_budget("tiny", tables_dir=tmp_path)
    m = re.fullmatch(r"--flops ([0-9.]+)M", hint)
    assert m, hint
    space = create_space("tiny")
    lo, hi = space.flops_range()
    assert lo < float(m.group(1)) * 1e6 < hi


def test_a_run_trained_under_a_latency_budget_suggests_that_budget():
    assert suggested_budget("tiny", max_latency_ms=0.3) == "--latency 0.30ms"
    assert suggested_budget("proxyless", max_latency_ms=81.4) == "--latency 81ms"
