"""``run_search``: the library call behind ``hwnas search`` (the CLI only parses and prints).

It assembles the parts -- the space and evaluator (supernet checkpoint, tabular benchmark or
train-from-scratch), the device's latency table, the budgets, the objective and the searcher
-- runs the search, and leaves the result files in the output folder. The history is streamed
to ``history.jsonl`` while the search runs; running the same command with the same ``out``
again continues from it without paying again for archs already evaluated. The settings a
history's numbers depend on (space, budgets, objective, latency table, evaluator) are kept
in ``search.json`` beside it: a resume with other settings is refused in one line.

Searchers and evaluators come from their registries (``SEARCHERS``, ``EVALUATORS``); a
searcher's options are the ones it declares, so nothing here names an algorithm.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from ..errors import HwnasError, SkippedCheckpointWarning
from ..space.arch import Arch
from ..space.shrunk import space_args_json
from ..io import atomic_write_json, atomic_write_text
from .base import (Budgets, ProgressFn, Record, SearchProblem, SearchResult, Searcher, list_searchers, read_history,
                   searcher_class)
from ..latency.confidence import DEFAULT_CONFIDENCE
from .constraints import LatencyModel, check_budgets, load_table, parse_flops, parse_latency, parse_params
from .evaluator import EVALUATORS, EvaluatorRequest, Evaluator
from .reward import Objective
from .results import default_out_dir, write_results
from .termination import HistoryWriter


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
    latency_bound: dict[str, Any] | None = None  # what the records' latency_ms is (LatencyModel.bound)
    score_label: str = "accuracy %"  # what the records' accuracy is (Evaluator.score_label)


def build_evaluator(supernet: str | Path | None = None, benchmark: str | None = None, space: str | None = None,
                    evaluator: str | None = None, data: str = "builtin", scratch_epochs: float = 1.0,
                    n_eval: int = 1000, bn_batches: int = 4, seed: int = 0, threads: int | None = None,
                    space_args: dict[str, Any] | None = None, halving: int | None = None,
                    halving_keep: float = 0.25, halving_rank: int = 50) -> tuple[Any, Evaluator, list[Arch], str]:
    """(space, evaluator, candidate pool best-first, description) from the user's choice of source."""
    if supernet is not None and benchmark is not None:
        raise HwnasError("give either --supernet CKPT or --benchmark NAME, not both")
    name = "tabular" if benchmark is not None else evaluator or ("supernet" if supernet is not None else None)
    if name is None:
        raise HwnasError("nothing to judge accuracy with: pass --supernet CKPT (from `hwnas train`), --benchmark nas-bench-macro, "
                         "--evaluator scratch --space NAME, or --evaluator macs --space NAME (a MACs proxy, no accuracy)")
    if halving is not None and name != "supernet":
        raise HwnasError(f"--halving screens archs with a supernet; the {name} evaluator has no cheaper first stage: drop --halving")
    request = EvaluatorRequest(supernet=supernet, benchmark=benchmark, space=space, data=data, scratch_epochs=scratch_epochs,
                               n_eval=n_eval, bn_batches=bn_batches, seed=seed, threads=threads, space_args=dict(space_args or {}),
                               halving=halving, halving_keep=halving_keep, halving_rank=halving_rank)
    return EVALUATORS.create(name, request=request)


def parse_budgets(latency: str | float | None, flops: str | float | None, params: str | float | None,
                  objective: str) -> tuple[Budgets, Objective]:
    """The user's budgets and objective, or a one-line error on a missing or contradictory one."""
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
    return budgets, Objective(objective, budgets.latency_ms)


def _quick_sizes(algorithm: str, population: int | None, generations: int | None, max_evaluations: int | None,
                 n_eval: int) -> tuple[int | None, int | None, int | None, int]:
    """The search's sizes under ``HWNAS_QUICK`` (hwnas.quick); unchanged without it."""
    from .. import quick

    if not quick.enabled():
        return population, generations, max_evaluations, n_eval
    options = searcher_class(algorithm).options
    if "population" in options:
        population = quick.cap("search_population", population)
    if "generations" in options:
        generations = quick.cap("search_generations", generations)
    return population, generations, quick.cap("search_evaluations", max_evaluations), quick.cap("eval_images", n_eval)  # type: ignore[return-value]


def make_searcher(algorithm: str, options: dict[str, Any], status: Callable[[dict[str, Any]], None] | None = None) -> Searcher:
    """The registered searcher with the options the user set (None/False: not set); an option the
    searcher does not declare is a one-line error naming the searchers that take it."""
    given = {k: v for k, v in options.items() if v is not None and v is not False}
    cls = searcher_class(algorithm)
    unknown = [k for k in given if k not in cls.options]
    if unknown:
        takers = [n for n in list_searchers() if unknown[0] in searcher_class(n).options]
        flag = "--" + unknown[0].replace("_", "-")
        raise HwnasError(f"{flag} needs --algorithm {' or '.join(takers)}; drop it to search with {algorithm}")
    searcher = cls(**given)
    if status is not None and hasattr(searcher, "on_update"):  # searchers with per-update state (FNAS) report it
        searcher.on_update = status
    return searcher


def load_latency(sp: Any, budgets: Budgets, device: str, table: str | Path | None, tables_dir: str | Path,
                 backend: str | None, latency_quantile: float, confidence: float | None,
                 notes: list[str]) -> tuple[LatencyModel | None, Any]:
    """The device table's latency model for the space (None when none is needed and none is found)."""
    try:
        t = load_table(sp, device=device, table=table, tables_dir=tables_dir, backend=backend)
    except HwnasError as e:
        if budgets.latency_ms is not None or table is not None:
            raise
        notes.append(f"no latency prediction ({e})")
        return None, None
    if device == "host" and t.device.get("cpu"):
        from ..latency.backends.host import cpu_model

        if t.device["cpu"] != cpu_model():
            notes.append(f"latency table {t.path} was measured on a {t.device['cpu']!r} CPU, this host is {cpu_model()!r}; "
                         f"predictions hold for that machine: run `hwnas profile --device host --space {sp.name}` for this one")
    # the default constrains the latency met with probability `confidence`; --latency-quantile 0.9
    # instead bounds by the blocks' p90 sums (the two are alternatives)
    return LatencyModel(t, sp, quantile=latency_quantile, confidence=confidence if latency_quantile == 0.5 else None), t


def search_settings(sp: Any, budgets: Budgets, objective: Objective, table: Any, lat_model: Any,
                    evaluator: dict[str, Any], admission: Any = None) -> dict[str, Any]:
    """What a history's numbers depend on: a resumed search must match every field."""
    table_id = None
    if table is not None:
        digest = hashlib.sha256(json.dumps(table.to_dict(), sort_keys=True).encode()).hexdigest()[:16]
        table_id = {"path": str(table.path), "sha256": digest}
    return {"space": sp.name, "space_args": space_args_json(sp),
            "budgets": budgets.to_dict(),
            "objective": {"kind": objective.kind, "target_ms": objective.target},
            "latency_quantile": lat_model.quantile if lat_model is not None else None,
            "latency_confidence": lat_model.confidence if lat_model is not None else None,
            "table": table_id, "evaluator": evaluator,
            "path_filter": admission.describe() if admission is not None else None}


SETTINGS_FILE = "search.json"


def open_history(out_dir: Path, settings: dict[str, Any]) -> list[Record]:
    """The records of an earlier search in ``out_dir`` made with the same settings (refused otherwise)."""
    history_path = out_dir / "history.jsonl"
    old = read_history(history_path)
    settings_path = out_dir / SETTINGS_FILE
    if old:
        if old[0].arch.space != settings["space"]:
            raise HwnasError(f"{out_dir} holds a search of space {old[0].arch.space!r}; pick another --out")
        try:
            before = json.loads(settings_path.read_text())
        except (OSError, ValueError):
            raise HwnasError(f"{out_dir} holds a search without readable settings ({SETTINGS_FILE}); "
                             f"use a new --out to search with these settings") from None
        for key, now in settings.items():
            if before.get(key) != now:
                raise HwnasError(f"{out_dir} holds a search with another {key.replace('_', ' ')} "
                                 f"({_show(before.get(key))}, now {_show(now)}); use a new --out, or the same settings to resume it")
    out_dir.mkdir(parents=True, exist_ok=True)
    if old:  # rewrite the file without a torn last line before appending to it
        atomic_write_text(history_path, "".join(json.dumps(r.to_dict()) + "\n" for r in old))
    atomic_write_json(settings_path, settings)
    return old


def open_shared_history(out_dir: Path, settings: dict[str, Any], dist: Any = None) -> list[Record]:
    """``open_history`` on rank 0 of a torchrun launch, its records (or its refusal) sent to every rank:
    all ranks resume from the same history and run the same search."""
    if dist is None or not dist.enabled:
        return open_history(out_dir, settings)
    reply: tuple[str, Any] = ("ok", None)
    if dist.is_main:
        try:
            reply = ("ok", [r.to_dict() for r in open_history(out_dir, settings)])
        except HwnasError as e:
            reply = ("error", str(e))
    kind, value = dist.broadcast_object(reply)
    if kind == "error":
        raise HwnasError(value)
    return [Record.from_dict(d) for d in value]


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k} {v}" for k, v in value.items() if v is not None) or "none"
    return str(value)


def result_extras(out_dir: Path, device: str, table: Any, lat_model: Any, ev: Evaluator,
                  ev_desc: str, resumed: int, pool: list[Arch], supernet: str | Path | None, result: SearchResult,
                  budgets: Budgets, admission: Any) -> dict[str, Any]:
    """What best.json and summary.json record besides the result (table, evaluator, supernet...)."""
    extra: dict[str, Any] = {
        "device": device, "table": str(table.path) if table is not None else None,
        "latency_bound": lat_model.bound() if lat_model is not None else None, "score_label": ev.score_label,
        "evaluator": ev_desc, "resumed_evaluations": resumed, "candidate_pool": len(pool),
        "path_filter": admission.describe() if admission is not None else None,
    }
    if supernet is not None:  # `hwnas export --arch best.json` inherits the trained weights; relative to best.json's folder
        extra["supernet"] = os.path.relpath(Path(supernet).resolve(), out_dir.resolve())
        if getattr(ev, "trained", None) is not None:  # the input statistics the exported net must be fed
            extra["normalization"] = ev.trained.normalization()
    if lat_model is not None and result.best is not None and result.best.latency_ms is not None:
        # the bound the budget constrained is the record's latency_ms; here what it is made of
        extra["latency_prediction"] = lat_model.describe(result.best.arch, budgets.latency_ms)
    return extra


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
    callbacks: Sequence[Any] = (),
    resolution: str | None = None,
    space_args: dict[str, Any] | None = None,
    halving: int | None = None,
    halving_keep: float = 0.25,
    dist: Any = None,
    on_resolution: Callable[[int, int, int], None] | None = None,
) -> SearchOutcome:
    """Search the best arch under the budgets; returns the result and where its files are.

    ``dist`` (a ``DistContext`` of a ``torchrun`` launch): every rank runs the same search and
    evaluates its share of each batch of archs; rank 0 alone reads and writes the files.

    ``resolution`` ("160-224") searches the input resolution too: see ``search_resolutions``
    (``on_resolution`` hears each resolution's search begin).
    ``space_args`` picks a variant of ``space`` (e.g. ``{"resolution": 192}``).
    """
    if resolution is not None and dist is not None and dist.enabled:
        raise HwnasError("--resolution scores archs with the MACs proxy, which is too cheap to spread: run it without torchrun")
    if resolution is not None:
        return search_resolutions(resolution, latency=latency, flops=flops, params=params, device=device, supernet=supernet,
                                  benchmark=benchmark, space=space, algorithm=algorithm, objective=objective, table=table,
                                  tables_dir=tables_dir, backend=backend, latency_quantile=latency_quantile, confidence=confidence,
                                  max_evaluations=max_evaluations, population=population, generations=generations,
                                  multi_objective=multi_objective, evaluator=evaluator, data=data, scratch_epochs=scratch_epochs,
                                  n_eval=n_eval, bn_batches=bn_batches, seed=seed, threads=threads, out=out, progress=progress,
                                  plot=plot, status=status, path_filter=path_filter, callbacks=callbacks,
                                  on_resolution=on_resolution)
    budgets, obj = parse_budgets(latency, flops, params, objective)
    population, generations, max_evaluations, n_eval = _quick_sizes(algorithm, population, generations, max_evaluations, n_eval)
    from ..device.profiles import load_device

    load_device(device)  # an unknown device is an error even when only FLOPs are constrained
    searcher = make_searcher(algorithm, {"population": population, "generations": generations,
                                         "multi_objective": multi_objective}, status)  # fails before any loading
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        sp, ev, pool, ev_desc = build_evaluator(supernet, benchmark, space, evaluator, data, scratch_epochs, n_eval, bn_batches, seed, threads,
                                                space_args=space_args, halving=halving, halving_keep=halving_keep,
                                                halving_rank=getattr(searcher, "population", None) or 50)
    checkpoint_warnings = [str(w.message) for w in caught if issubclass(w.category, SkippedCheckpointWarning)]
    for w in caught:  # passed on to the caller as they came
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    notes: list[str] = []
    lat_model, lat_table = load_latency(sp, budgets, device, table, tables_dir, backend, latency_quantile, confidence, notes)
    budget_warnings = check_budgets(sp, budgets, lat_model)
    if objective == "mnas":  # the soft reward's target still ranks archs that all meet it
        budget_warnings = []
    budget_warnings = checkpoint_warnings + budget_warnings

    out_dir = Path(out) if out is not None else default_out_dir()
    if dist is not None and dist.enabled:  # every rank must write to (and resume from) the same folder
        out_dir = Path(dist.broadcast_object(str(out_dir)))
    main = dist is None or dist.is_main
    ev.dist = dist
    admission = _path_admission(ev, path_filter)
    settings = search_settings(sp, budgets, obj, lat_table, lat_model, ev.settings(), admission)
    old = open_shared_history(out_dir, settings, dist)
    problem = SearchProblem(sp, ev, latency=lat_model, budgets=budgets, objective=obj, initial_pool=pool)
    if admission is not None:  # GreedyNASv2: weak offspring and merged ops are infeasible, repaired before evaluation
        problem.constraints.admission = admission
        notes.append(f"offspring filtered by the supernet's {admission.describe()}")
    resumed = problem.preload(old)
    listeners = [HistoryWriter(out_dir / "history.jsonl"), *callbacks] if main else []
    result = searcher.run(problem, max_evaluations=max_evaluations, seed=seed, progress=progress if main else None,
                          callbacks=listeners)
    extra = result_extras(out_dir, device, lat_table, lat_model, ev, ev_desc, resumed, pool, supernet,
                          result, budgets, admission)
    paths = write_results(result, out_dir, extra=extra, history=False, plot=plot) if main else {}
    return SearchOutcome(result, out_dir, paths, lat_table.path if lat_table is not None else None, ev_desc, resumed,
                         notes, budget_warnings, extra.get("latency_prediction"), extra["latency_bound"], ev.score_label)


def parse_resolutions(text: str) -> tuple[int, int]:
    """``160-224`` -> (160, 224); ``192`` -> (192, 192)."""
    parts = text.replace(" ", "").split("-")
    try:
        lo, hi = (int(parts[0]), int(parts[-1])) if len(parts) in (1, 2) else (0, -1)
    except ValueError:
        lo, hi = 0, -1
    if lo <= 0 or hi < lo:
        raise HwnasError(f"resolution range {text!r} is not LOW-HIGH in pixels; give e.g. 160-224 or 192")
    return lo, hi


def search_resolutions(resolution: str, *, space: str | None, device: str, out: str | Path | None,
                       tables_dir: str | Path = "latency_tables", backend: str | None = None, table: str | Path | None = None,
                       supernet: str | Path | None = None, benchmark: str | None = None, evaluator: str | None = None,
                       plot: bool = True, on_resolution: Callable[[int, int, int], None] | None = None,
                       **search: Any) -> SearchOutcome:
    """Search the input resolution with the blocks: one search per resolution in the range the
    device has a table for (each with its own table and the same budgets, in
    ``out/resolution-<R>/``), then the best arch over all of them by score.

    The winner's ``best.json`` holds its arch with its resolution (``space_args``), so
    ``hwnas export --arch best.json`` builds and times it at that input size. Scores must be
    comparable across resolutions, so the evaluator must judge any input size (``macs``).
    ``on_resolution(resolution, i, n)`` hears each search begin (the i-th of n).
    """
    if space is None:
        raise HwnasError("--resolution needs --space NAME (e.g. --space ofa-mbv3)")
    if table is not None:
        raise HwnasError("--resolution picks the device's table of each resolution; drop --table (use --device and --tables-dir)")
    if supernet is not None or benchmark is not None or evaluator not in (None, "macs"):
        raise HwnasError("--resolution compares archs of several input sizes, which only the MACs proxy scores alike; "
                         "use --evaluator macs (or search one resolution with your supernet)")
    from ..latency.lookup import find_table
    from ..space.registry import create_space

    lo, hi = parse_resolutions(resolution)
    found: list[int] = []
    without: list[int] = []
    for r in range(lo, hi + 1):
        try:
            sp = create_space(space, resolution=r)
        except (HwnasError, TypeError):
            continue  # not an input size of the space
        try:
            find_table(device, space, tables_dir, backend, space_args=sp.args)
        except HwnasError:
            without.append(r)
            continue
        found.append(r)
    if not found:
        raise HwnasError(f"device {device!r} has no {space} table for a resolution in {lo}-{hi}"
                         + (f" (tried {without[0]}-{without[-1]})" if without else "")
                         + f"; profile one or import a published one with `hwnas tables import`, or widen --resolution")
    out_dir = Path(out) if out is not None else default_out_dir()
    outcomes: dict[int, SearchOutcome] = {}
    notes: list[str] = []
    if without:
        notes.append(f"no {device} table for resolution(s) {', '.join(map(str, without))}: not searched")
    for i, r in enumerate(found, 1):
        if on_resolution is not None:
            on_resolution(r, i, len(found))
        try:
            outcomes[r] = run_search(space=space, device=device, out=out_dir / f"resolution-{r}", tables_dir=tables_dir,
                                     backend=backend, evaluator="macs", plot=False, space_args={"resolution": r}, **search)
        except HwnasError as e:  # the budget admits no arch at this resolution
            notes.append(f"resolution {r}: {e}")
    done = {r: o for r, o in outcomes.items() if o.result.best is not None}
    if not done:
        raise HwnasError(f"no arch at any resolution in {found[0]}-{found[-1]} meets the budget; raise the budget "
                         f"({'; '.join(notes[-3:])})")
    best_r = max(done, key=lambda r: (done[r].result.best.score, -r))  # type: ignore[union-attr]
    win = done[best_r]
    per_res = {str(r): {"score": o.result.best.score, "latency_ms": o.result.best.latency_ms,  # type: ignore[union-attr]
                        "compact": o.result.best.arch.get_space().to_compact(o.result.best.arch)} for r, o in done.items()}  # type: ignore[union-attr]
    extra = {"device": device, "table": str(win.table_path) if win.table_path else None, "evaluator": win.evaluator,
             "resolution": best_r, "resolutions_searched": per_res, "latency_bound": win.latency_bound,
             "score_label": win.score_label}
    if win.latency is not None:
        extra["latency_prediction"] = win.latency
    paths = write_results(win.result, out_dir, extra=extra, history=True, plot=plot)
    notes.append(f"searched {len(done)} resolution(s) {found[0]}-{found[-1]}; best at {best_r} (one search each in {out_dir}/resolution-<R>)")
    return SearchOutcome(win.result, out_dir, paths, win.table_path, win.evaluator, sum(o.resumed for o in outcomes.values()),
                         notes + win.notes, win.warnings, win.latency, win.latency_bound, win.score_label)
