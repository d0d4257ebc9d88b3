"""GreedyNASv2 Table 4: how well the path filter separates weak from good paths with true labels.

On a tabular benchmark (NAS-Bench-Macro, 6,561 archs) the top ``good_share`` by mean accuracy
are good and the rest weak. For each fraction of the archs (1%, 10%, 50%, 100%) and seed, the
filter is trained PU (positives = the weak archs of the sample, unlabelled = uniformly drawn
archs, ``unlabelled_factor`` times as many, labels unused) and PN (weak vs good archs of the
sample, binary cross-entropy), then judged on the whole space: precision and recall of "weak".
The library call behind ``hwnas filter evaluate`` and ``benchmarks/path_filter_bench.py``.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import HwnasError
from .path_filter import FilterConfig, PathFilter

BENCHMARKS = ("nas-bench-macro",)


def benchmark_matrix(name: str = "nas-bench-macro") -> tuple[np.ndarray, np.ndarray, list[int]]:
    """(every arch as a choice-index row, its mean accuracy, choices per layer) of a tabular benchmark."""
    if name not in BENCHMARKS:
        raise HwnasError(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}")
    from ..space.tabular import load_nas_bench_macro

    b = load_nas_bench_macro()
    sp = b.space
    keys = sorted(b.entries)
    X = np.array([sp.choice_indices(sp.from_compact(k)) for k in keys], dtype=np.int64)
    acc = np.array([b.entries[k].mean_acc for k in keys])
    return X, acc, [len(layer.choices) for layer in sp.layers]


def precision_recall(pred: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    tp = float(np.sum(pred & truth))
    return (100.0 * tp / max(float(pred.sum()), 1.0), 100.0 * tp / max(float(truth.sum()), 1.0))


def evaluate_filter(benchmark: str = "nas-bench-macro", fractions: Sequence[float] = (0.01, 0.1, 0.5, 1.0),
                    seeds: Sequence[int] = range(5), methods: Sequence[str] = ("pu", "pn"), good_share: float = 0.1,
                    unlabelled_factor: float = 10.0, cfg: FilterConfig | None = None,
                    progress: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Precision/recall of 'weak' over the whole space for each method, fraction and seed."""
    cfg = cfg or FilterConfig()
    if not 0.0 < good_share < 1.0:
        raise HwnasError(f"the good share must lie in (0, 1) (got {good_share})")
    for f in fractions:
        if not 0.0 < f <= 1.0:
            raise HwnasError(f"a data fraction must lie in (0, 1] (got {f}); e.g. 0.01,0.1,0.5,1")
    bad = sorted(set(methods) - {"pu", "pn"})
    if bad:
        raise HwnasError(f"unknown method(s) {', '.join(bad)}; use pu and/or pn")
    X, acc, n_choices = benchmark_matrix(benchmark)
    weak = acc < np.quantile(acc, 1.0 - good_share)
    runs = []
    for method in methods:
        for frac in fractions:
            for seed in seeds:
                rng = np.random.default_rng([int(seed), int(round(frac * 1e4))])
                idx = rng.choice(len(X), size=max(2, int(round(frac * len(X)))), replace=False)
                pos = X[idx][weak[idx]]
                filt = PathFilter(n_choices, cfg, seed=int(seed))
                t0 = time.perf_counter()
                if method == "pu":
                    unl = X[rng.integers(len(X), size=max(1, int(round(unlabelled_factor * len(pos)))))]
                    filt.fit(pos, unl, seed=int(seed))
                else:
                    neg = X[idx][~weak[idx]]
                    if len(neg) == 0:
                        neg = X[idx][:1]  # a sample without a good arch: PN has nothing to contrast
                    filt.fit(pos, None, seed=int(seed), negatives=neg)
                p, r = precision_recall(filt.is_weak(X), weak)
                rec = {"method": method, "fraction": frac, "seed": int(seed), "precision": p, "recall": r,
                       "n_weak_train": int(len(pos)), "fit_seconds": round(time.perf_counter() - t0, 2)}
                runs.append(rec)
                if progress is not None:
                    progress(rec)
    return {"benchmark": benchmark, "n_archs": int(len(X)), "good_share": good_share, "weak_share": float(weak.mean()),
            "unlabelled_factor": unlabelled_factor, "filter": cfg.to_dict(), "runs": runs, "summary": summarize(runs)}


def summarize(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and sample std over seeds per (method, fraction)."""
    out = []
    for key in sorted({(r["method"], r["fraction"]) for r in runs}):
        rs = [r for r in runs if (r["method"], r["fraction"]) == key]
        p, r = np.array([x["precision"] for x in rs]), np.array([x["recall"] for x in rs])
        sd = (lambda a: float(a.std(ddof=1)) if len(a) > 1 else 0.0)
        out.append({"method": key[0], "fraction": key[1], "seeds": len(rs), "precision": float(p.mean()), "precision_std": sd(p),
                    "recall": float(r.mean()), "recall_std": sd(r)})
    return out
