"""``hwnas search``: latency-constrained architecture search (a thin layer over ``hwnas.search.api.run_search``)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import typer

from .common import console, err_console, print_json


def register(app: typer.Typer) -> None:
    @app.command("search")
    def search(
        latency: Optional[str] = typer.Option(None, "--latency", help="latency budget, e.g. 80ms, '80 ms', 0.08s"),
        flops: Optional[str] = typer.Option(None, "--flops", help="FLOPs (multiply-adds) budget, e.g. 330M or 330MFLOPs"),
        params: Optional[str] = typer.Option(None, "--params", help="parameter budget, e.g. 5M or 5Mparams"),
        device: str = typer.Option("host", "--device", help="device whose latency table predicts latency"),
        supernet: Optional[Path] = typer.Option(None, "--supernet", help="trained supernet (run folder or checkpoint of `hwnas train`; default the newest finished run under runs/)"),
        benchmark: Optional[str] = typer.Option(None, "--benchmark", help="tabular benchmark instead of a supernet: nas-bench-macro"),
        space: Optional[str] = typer.Option(None, "--space", help="search space (checked against the checkpoint; needed for --evaluator scratch)"),
        algorithm: str = typer.Option("nsga2", "--algorithm", help="nsga2, random, evolution or fnas"),
        objective: str = typer.Option("hard", "--objective", help="hard (budget is a constraint) or mnas (ACC x (LAT/T)^-0.07)"),
        table: Optional[Path] = typer.Option(None, "--table", help="latency table file (default: newest latency_tables/<device>-<space>-*.json)"),
        tables_dir: Path = typer.Option(Path("latency_tables"), "--tables-dir", help="where to look for latency tables"),
        backend: Optional[str] = typer.Option(None, "--backend", help="pick the table of this backend (e.g. onnxruntime)"),
        confidence: float = typer.Option(0.9, "--confidence", help="probability that the winner meets the budget on the device: the search constrains this quantile of the predicted latency (blocks' spread, the table's validated error, the device's drift); 0.5: the median"),
        latency_quantile: float = typer.Option(0.5, "--latency-quantile", help="instead of --confidence: 0.9 bounds by the sum of the blocks' p90"),
        max_evaluations: Optional[int] = typer.Option(None, "--max-evaluations", help="archs to evaluate at most (default: population x generations)"),
        population: Optional[int] = typer.Option(None, "--population", help="NSGA-II/evolution population (default 50)"),
        generations: Optional[int] = typer.Option(None, "--generations", help="NSGA-II generations (default 20)"),
        multi_objective: bool = typer.Option(False, "--multi-objective", help="NSGA-II on (accuracy, latency): the Pareto front is the result"),
        evaluator: Optional[str] = typer.Option(None, "--evaluator", help="supernet (default with --supernet), scratch (short training per arch) or macs (a MACs proxy, no accuracy; default with --resolution)"),
        data: str = typer.Option("builtin", "--data", help="data for --evaluator scratch without a checkpoint"),
        scratch_epochs: float = typer.Option(1.0, "--scratch-epochs", help="training epochs per arch for --evaluator scratch"),
        n_eval: int = typer.Option(1000, "--eval-images", help="held-out images per accuracy evaluation"),
        bn_batches: int = typer.Option(4, "--bn-batches", help="training batches for BN recalibration per path"),
        seed: int = typer.Option(0, "--seed"),
        threads: Optional[int] = typer.Option(1, "--threads", help="torch threads for accuracy evaluation (1 is fastest on a busy CPU)"),
        out: Optional[Path] = typer.Option(None, "--out", help="output folder (default exports/search-<time>); an existing one is resumed"),
        path_filter: Optional[bool] = typer.Option(None, "--path-filter/--no-path-filter", help="drop offspring the supernet's GreedyNASv2 path filter calls weak or that use merged ops (default: on for a greedy-v2 supernet)"),
        halving: Optional[int] = typer.Option(None, "--halving", help="successive halving: score each generation's archs on the first N held-out images, then on all only the best --halving-keep share and those that may still rank among the population's best (supernet evaluator)"),
        halving_keep: float = typer.Option(0.25, "--halving-keep", help="share of a generation always completed on all held-out images under --halving"),
        resolution: Optional[str] = typer.Option(None, "--resolution", help="search the input resolution too, e.g. 160-224: one search per resolution the device has a table for (needs --space; --evaluator macs)"),
        as_json: bool = typer.Option(False, "--json", help="print the outcome as JSON (the winner, the top 10, the files; stdout holds nothing else)"),
    ) -> None:
        """Search the best arch under a latency (and/or FLOPs/params) budget: NSGA-II, random, evolution or FNAS.

        Under ``torchrun --nproc_per_node=N [--nnodes=M ...] -m hwnas search ...`` every process
        evaluates its share of each generation; rank 0 writes the results."""
        if evaluator not in (None, "supernet", "scratch", "macs"):
            from ..errors import HwnasError

            raise HwnasError(f"unknown evaluator {evaluator!r}; use supernet, scratch or macs")
        if supernet is None and benchmark is None and evaluator not in ("scratch", "macs") and resolution is None:
            from ..train.runs import newest_run

            supernet = newest_run()
            err_console.print(f"using the newest training run {supernet} (--supernet to choose another)", highlight=False)
        from ..train.distributed import init_distributed, shutdown_distributed

        ctx = init_distributed()  # under torchrun: each rank evaluates its share of every generation
        try:
            outcome = _search(ctx, latency=latency, flops=flops, params=params, device=device, supernet=supernet,
                              benchmark=benchmark, space=space, algorithm=algorithm, objective=objective, table=table,
                              tables_dir=tables_dir, backend=backend, latency_quantile=latency_quantile, confidence=confidence,
                              max_evaluations=max_evaluations, population=population, generations=generations,
                              multi_objective=multi_objective, evaluator=evaluator, data=data,
                              scratch_epochs=scratch_epochs, n_eval=n_eval, bn_batches=bn_batches, seed=seed,
                              threads=threads, out=out, path_filter=path_filter, resolution=resolution,
                              halving=halving, halving_keep=halving_keep)
        finally:
            shutdown_distributed(ctx)
        if ctx.is_main:
            _report(outcome, as_json)


def _search(ctx, **options):
    """``run_search`` with a progress bar (rank 0 only)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from ..search.api import run_search
    from ..search.termination import ProgressLines

    on_terminal = err_console.is_terminal and ctx.is_main
    lines = [] if on_terminal else [ProgressLines(lambda text: err_console.print(text, highlight=False, markup=False))]
    with Progress(TextColumn("[bold]search[/]"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
                  TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=err_console, transient=True,
                  disable=not on_terminal) as bar:
        task = bar.add_task("", total=None)

        def progress(done: int, total: int, best) -> None:  # after every evaluated arch
            desc = f"best {best.accuracy:.2f}%" if best is not None else ""
            bar.update(task, completed=done, total=total, description=desc)

        def status(line: dict) -> None:  # FNAS: reward, trusted share, buffer use, evaluations spent
            bar.update(task, description=f"R {line['mean_reward']:.2f}  trusted {line['trusted']}/{line['batch']}  "
                                         f"replayed {line['replayed']}  buffer {line['buffer']}  evals {line['evaluations']}")

        def on_resolution(r: int, i: int, n: int) -> None:  # --resolution: one search per input size
            if ctx.is_main:
                err_console.print(f"searching resolution {r} ({i} of {n})", highlight=False, markup=False)

        return run_search(progress=progress, status=status, callbacks=lines if ctx.is_main else [], dist=ctx,
                          on_resolution=on_resolution, **options)


def _report(outcome, as_json: bool = False) -> None:
    """The result table, notes and next step (what rank 0 prints); with ``as_json`` the outcome as JSON."""
    import math

    from rich.table import Table

    res = outcome.result
    for note in outcome.notes:
        err_console.print(f"note: {note}", highlight=False)
    for warning in outcome.warnings:
        err_console.print(f"[yellow]warning:[/] {warning}", highlight=False)
    if as_json:
        print_json(outcome_dict(outcome))
        return
    space_name = res.history[0].arch.space if res.history else ""
    t = Table(title=f"top {len(res.top(10))} of {res.n_evaluations} {space_name} archs evaluated ({res.algorithm}, {res.budgets.describe()})")
    bound = outcome.latency_bound
    lat_title = f"latency ms ({bound['label']})" if bound else "latency ms"
    for col in ("#", "arch", outcome.score_label, lat_title, "MFLOPs", "Mparams", "score", "eval"):
        t.add_column(col, justify="left" if col == "arch" else "right")
    for i, r in enumerate(res.top(10), 1):
        lat = "-" if r.latency_ms is None else f"{r.latency_ms:.3f}±{r.latency_std_ms or 0:.3f}"
        score = f"{r.score:.3f}" if math.isfinite(r.score) else "-"
        t.add_row(str(i), r.arch.get_space().to_compact(r.arch), f"{r.accuracy:.2f}", lat, f"{r.flops / 1e6:.1f}", f"{r.params / 1e6:.3f}",
                  score, str(r.evaluation))
    console.print(t)
    if outcome.latency:
        lp = outcome.latency
        lo, hi = lp["interval_ms"]
        p = f", P(meets the budget) = {lp['p_within_budget']:.2f}" if "p_within_budget" in lp else ""
        console.print(f"winner's latency: predicted median {lp['median_ms']:.3f} ms, {lp['interval_confidence']:.0%} interval "
                      f"{lo:.3f}-{hi:.3f} ms{p} (constrained: {lp['constrained']}; error model: {lp['error_model']})", highlight=False)
    console.print(f"evaluator: {outcome.evaluator}" + (f"; latency table: {outcome.table_path}" if outcome.table_path else ""))
    new = int(res.info.get("evaluations_this_run", 0) or 0)
    if outcome.resumed:
        done = "nothing new to evaluate: the search was complete" if new == 0 else f"{new} evaluated now"
        console.print(f"resumed: {outcome.resumed} evaluations taken from {outcome.out_dir / 'history.jsonl'}; {done}",
                      highlight=False)
    pace = f", {res.wall_time_s / new:.3f} s per evaluated arch" if new else ""
    console.print(f"wrote {outcome.paths['best']} (and front.json, history.jsonl, summary.json, pareto.png) "
                  f"in {res.wall_time_s:.1f} s{pace}", highlight=False)
    table_arg = f" --table {outcome.table_path}" if outcome.table_path else ""
    console.print(f"next: hwnas export --arch {outcome.paths['best']} --format tflite{table_arg}",
                  highlight=False, markup=False, soft_wrap=True)


def outcome_dict(outcome) -> dict:
    """What ``--json`` prints: the winner, the top 10, the evaluation counts and the files written."""
    res = outcome.result
    return {"best": res.best.to_dict() if res.best is not None else None, "top10": [r.to_dict() for r in res.top(10)],
            "algorithm": res.algorithm, "budgets": res.budgets.to_dict(), "evaluations": res.n_evaluations,
            "evaluated_now": int(res.info.get("evaluations_this_run", 0) or 0), "resumed": outcome.resumed,
            "evaluator": outcome.evaluator, "table": str(outcome.table_path) if outcome.table_path else None,
            "latency": outcome.latency, "notes": outcome.notes, "warnings": outcome.warnings,
            "out_dir": str(outcome.out_dir), "files": {k: str(v) for k, v in outcome.paths.items()},
            "wall_time_s": round(res.wall_time_s, 3)}
