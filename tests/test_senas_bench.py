"""The NAS-Bench-Macro simulation of ``benchmarks/senas_bench.py`` shrinks as ``hwnas shrink`` does."""

import sys

import numpy as np

from hwnas.search.senas.shrink import ShrinkConfig
from hwnas.train.path_filter_eval import benchmark_matrix

from .conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
from senas_bench import shrink_tabular  # noqa: E402


def test_simulation_stops_shrinking_once_the_space_holds_at_most_max_archs():
    X, acc, _ = benchmark_matrix("nas-bench-macro")
    # noise-free SE-NAS with 10 drops empties five layers down to one op: 3^3 = 27 archs <= 50 after stage 1
    r = shrink_tabular(X, acc, 0.0, "senas", 0, stages=2, drop=10, samples=200)
    assert r["stages_run"] == 1 and r["archs"] == 27 and r["ops_kept"] == 14
    assert ShrinkConfig().max_archs == 50  # the paper's threshold, the library's default
    # with room left, both stages run
    r2 = shrink_tabular(X, acc, 0.0, "senas", 0, stages=2, drop=4, samples=200)
    assert r2["stages_run"] == 2 and r2["ops_kept"] == 16 and r2["archs"] > 50
    assert np.isfinite(r2["best_rank_left"])
