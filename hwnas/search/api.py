"""``run_search``: the library call behind ``hwnas search`` (the CLI only parses and prints).

It assembles the parts -- the space and evaluator (supernet checkpoint, tabular benchmark or
train-from-scratch), the device's latency table, the budgets, the objective and the searcher
-- runs the search, and leaves the result files in the output folder. The history is streamed
to ``history.jsonl`` while the search runs; running the same command with the same ``out``
again continues from it without paying again for archs already evaluated.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..errors import HwnasError, SkippedCheckpointWarning
from ..space.arch import Arch
from ..space.registry import create_space
from .base import Budgets, ProgressFn, SearchProblem, SearchResult, append_history, create_searcher, read_history
from ..latency.confidence import DEFAULT_CONFIDENCE
from .constraints import LatencyModel, check_budgets, load_table, parse_flops, parse_latency, parse_params
from .evaluator import Evaluator
from .reward import Objective
from .results import default_out_dir, write_results

BENCHMARKS = ("nas-bench-macro",)


@dataclass
class SearchOutcome:
    result: SearchResult
    out_dir: Path
    paths: dict[str, Path]
    table_path: Path | None
    evaluator: str
    resumed: int = 0
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # settings that defeat their purpose, e.g. a budget no arch exceeds
    latency: dict[str, Any] | None = None  # the winner's predicted median, interval and P(within budget) (LatencyModel.describe)


def build_evaluator(supernet: str | Path | None = None, benchmark: str | None = None, space: str | None = None,
                    evaluator: str | None = None, data: str = "builtin", scratch_epochs: float = 1.0,
                    n_eval: int = 1000, bn_batches: int = 4, seed: int = 0, threads: int | None = None) -> tuple[Any, Evaluator, list[Arch], str]:
    """(space, evaluator, candidate pool best-first, description) from the user's choice of source."""
    if supernet is not None and benchmark is not None:
        raise HwnasError("give either --supernet CKPT or --benchmark NAME, not both")
    if benchmark is not None:
        if benchmark not in BENCHMARKS:
            raise HwnasError(f"unknown benchmark {benchmark!r}; known: {', '.join(BENCHMARKS)}")
        if space is not None and space != benchmark:
            raise HwnasError(f"benchmark {benchmark!r} has its own space; drop --space {space}")
        from .evaluator import TabularEvaluator

        return create_space(benchmark), TabularEvaluator(), [], f"tabular ({benchmark})"
    if supernet is not None:
        from ..train.checkpoint import load_checkpoint

        trained = load_checkpoint(supernet, space=space)
        if evaluator == "scratch":
            from .evaluator import ScratchEvaluator

            ev: Evaluator = ScratchEvaluator(trained.datasets(), epochs=scratch_epochs, n_eval=n_eval, seed=seed, threads=threads)
            desc = f"train from scratch ({scratch_epochs:g} epoch(s)) on the supernet's data"
        else:
            from .evaluator import SupernetEvaluator

            ev = SupernetEvaluator(trained, n_eval=n_eval, bn_batches=bn_batches, seed=seed, threads=threads)
            desc = f"supernet {trained.path} (BN recalibrated, {len(ev.eval_set)} held-out images)"
        return trained.space, ev, [a for a, _ in trained.pool], desc
    if evaluator == "scratch":
        if space is None:
            raise HwnasError("train-from-scratch evaluation needs --space NAME (and --data, default builtin)")
        from ..train.data import build_datasets
        from .evaluator import ScratchEvaluator

        sp = create_space(space)
        ds = build_datasets(data, resolution=sp.resolution, seed=seed)
        return sp, ScratchEvaluator(ds, epochs=scratch_epochs, n_eval=n_eval, seed=seed, threads=threads), [], f"train from scratch ({scratch_epochs:g} epoch(s)) on {data}"
    raise HwnasError("nothing to judge accuracy with: pass --supernet CKPT (from `hwnas train`), --benchmark nas-bench-macro, "
                     "or --evaluator scratch --space NAME")


def _path_admission(ev: Any, path_filter: bool | None) -> Any:
    """The supernet's learned path filter and merges (greedy-v2), used unless ``path_filter`` is False."""
    trained = getattr(ev, "trained", None)
    admission = trained.path_admission() if trained is not None and path_filter is not False else None
    if path_filter and admission is None:
        raise HwnasError("--path-filter needs a supernet trained with --sampler greedy-v2; drop it or retrain")
    return admission


def run_search(
    latency: str | float | None = None,
    flops: str | float | None = None,
    params: str | float | None = None,
    device: str = "host",
    supernet: str | Path | None = None,
    benchmark: str | None = None,
    space: str | None = None,
    algorithm: str = "nsga2",
    objective: str = "hard",
    table: str | Path | None = None,
    tables_dir: str | Path = "latency_tables",
    backend: str | None = None,
    latency_quantile: float = 0.5,
    confidence: float | None = DEFAULT_CONFIDENCE,
    max_evaluations: int | None = None,
    population: int | None = None,
    generations: int | None = None,
    multi_objective: bool = False,
    evaluator: str | None = None,
    data: str = "builtin",
    scratch_epochs: float = 1.0,
    n_eval: int = 1000,
    bn_batches: int = 4,
    seed: int = 0,
    threads: int | None = None,
    out: str | Path | None = None,
    progress: ProgressFn | None = None,
    plot: bool = True,
    status: Callable[[dict[str, Any]], None] | None = None,
    path_filter: bool | None = None,
) -> SearchOutcome:
    """Search the best arch under the budgets; returns the result and where its files are."""
    budgets = Budgets(
        latency_ms=parse_latency(latency) if latency is not None else None,
        flops=parse_flops(flops) if flops is not None else None,
        params=parse_params(params) if params is not None else None,
    )
    if budgets.latency_ms is None and budgets.flops is None and budgets.params is None:
        raise HwnasError("no budget given; pass --latency (e.g. 80ms), --flops (e.g. 330M) and/or --params (e.g. 5M)")
    if objective not in ("hard", "mnas", "mnas-hard"):
        raise HwnasError(f"unknown objective {objective!r}; use hard, mnas or mnas-hard")
    if objective != "hard" and budgets.latency_ms is None:
        raise HwnasError(f"--objective {objective} is a latency reward; give its target with --latency")
    from ..device.profiles import load_device

    load_device(device)  # an unknown device is an error even when only FLOPs are constrained
    searcher_opts: dict[str, Any] = {}
    if algorithm in ("nsga2", "evolution"):
        if population is not None:
            searcher_opts["population"] = population
        if algorithm == "nsga2":
            if generations is not None:
                searcher_opts["generations"] = generations
            if multi_objective:
                searcher_opts["multi_objective"] = True
    elif multi_objective:
        raise HwnasError("--multi-objective needs --algorithm nsga2")
    searcher = create_searcher(algorithm, **searcher_opts)  # unknown name fails before any loading
    if status is not None and hasattr(searcher, "on_update"):  # searchers with per-update state (FNAS) report it
        searcher.on_update = status

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        sp, ev, pool, ev_desc = build_evaluator(supernet, benchmark, space, evaluator, data, scratch_epochs, n_eval, bn_batches, seed, threads)
    checkpoint_warnings = [str(w.message) for w in caught if issubclass(w.category, SkippedCheckpointWarning)]
    for w in caught:  # passed on to the caller as they came
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    notes: list[str] = []
    lat_model = None
    table_path = None
    try:
        t = load_table(sp, device=device, table=table, tables_dir=tables_dir, backend=backend)
        # the default constrains the latency met with probability `confidence`; --latency-quantile 0.9
        # instead bounds by the blocks' p90 sums (the two are alternatives)
        lat_model = LatencyModel(t, sp, quantile=latency_quantile, confidence=confidence if latency_quantile == 0.5 else None)
        if device == "host" and t.device.get("cpu"):
            from ..latency.backends.host import cpu_model

            if t.device["cpu"] != cpu_model():
                notes.append(f"latency table {t.path} was measured on a {t.device['cpu']!r} CPU, this host is {cpu_model()!r}; "
                             f"predictions hold for that machine: run `hwnas profile --device host --space {sp.name}` for this one")
        table_path = t.path
    except HwnasError as e:
        if budgets.latency_ms is not None or table is not None:
            raise
        notes.append(f"no latency prediction ({e})")
    budget_warnings = check_budgets(sp, budgets, lat_model)
    if objective == "mnas":  # the soft reward's target still ranks archs that all meet it
        budget_warnings = []
    budget_warnings = checkpoint_warnings + budget_warnings

    out_dir = Path(out) if out is not None else default_out_dir()
    history_path = out_dir / "history.jsonl"
    old = read_history(history_path)
    if old and old[0].arch.space != sp.name:
        raise HwnasError(f"{out_dir} holds a search of space {old[0].arch.space!r}; pick another --out")
    out_dir.mkdir(parents=True, exist_ok=True)
    if old:  # rewrite the file without a torn last line before appending to it
        from ..io import atomic_write_text

        import json

        atomic_write_text(history_path, "".join(json.dumps(r.to_dict()) + "\n" for r in old))
    problem = SearchProblem(sp, ev, latency=lat_model, budgets=budgets, objective=Objective(objective, budgets.latency_ms),
                            initial_pool=pool)
    admission = _path_admission(ev, path_filter)
    if admission is not None:  # GreedyNASv2: weak offspring and merged ops are infeasible, repaired before evaluation
        problem.constraints.admission = admission
        notes.append(f"offspring filtered by the supernet's {admission.describe()}")
    resumed = problem.preload(old)
    problem.on_record = lambda rec: append_history(history_path, rec)
    result = searcher.run(problem, max_evaluations=max_evaluations, seed=seed, progress=progress)
    extra = {
        "device": device, "table": str(table_path) if table_path else None, "latency_quantile": latency_quantile,
        "latency_confidence": lat_model.confidence if lat_model is not None else None,
        "evaluator": ev_desc, "resumed_evaluations": resumed, "candidate_pool": len(pool),
        "path_filter": admission.describe() if admission is not None else None,
    }
    if supernet is not None:  # `hwnas export --arch best.json --weights <this>` inherits the trained weights
        extra["supernet"] = str(supernet)
        if getattr(ev, "trained", None) is not None:  # the input statistics the exported net must be fed
            extra["normalization"] = ev.trained.normalization()
    if lat_model is not None and result.best is not None and result.best.latency_ms is not None:
        # the bound the budget constrained is the record's latency_ms; here what it is made of
        extra["latency_prediction"] = lat_model.describe(result.best.arch, budgets.latency_ms)
    paths = write_results(result, out_dir, extra=extra, history=False, plot=plot)
    return SearchOutcome(result, out_dir, paths, table_path, ev_desc, resumed, notes, budget_warnings, extra.get("latency_prediction"))
