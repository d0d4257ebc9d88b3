"""``hwnas train``: supernet training with uniform path sampling (SPOS) by default, or GreedyNAS / GreedyNASv2.

Thin: parses options into a ``TrainConfig`` and calls ``hwnas.train.trainer.train_supernet``;
draws the progress bar (loss, accuracy, ε, pool size, π) and prints the bookkeeping.
Under ``torchrun --nproc_per_node=N -m hwnas train ...`` it joins the process group and only
rank 0 prints and writes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

from .common import console, err_console, print_json


EXAMPLES = {"--space-arg": "num_classes=100", "--filter-arg": "iterations=300", "--set": "train.epochs=1"}


def _space_args(items: list[str], option: str = "--space-arg") -> dict[str, Any]:
    """``name=value`` options (``--space-arg``, ``--filter-arg``, ``hwnas run --set``) -> {name: value read as JSON, else text}."""
    from ..errors import HwnasError

    out: dict[str, Any] = {}
    for it in items:
        key, sep, value = it.partition("=")
        if not sep or not key:
            raise HwnasError(f"{option} {it!r} must look like name=value, e.g. {EXAMPLES.get(option, EXAMPLES['--space-arg'])}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def register(app: typer.Typer) -> None:
    @app.command("train")
    def train(
        space: str = typer.Option("tiny", "--space", help="Search space (see `hwnas spaces`)."),
        sampler: str = typer.Option("uniform", "--sampler", help="Path sampler: uniform (SPOS; the default: it ranked best on benchmarks/supernet_bench.py, see the README), greedy (GreedyNAS) or greedy-v2 (GreedyNASv2 path filter)."),
        data: str = typer.Option("builtin", "--data", help="builtin | cifar10:DIR | cifar100:DIR | folder:DIR"),
        out: Optional[Path] = typer.Option(None, "--out", help="Run folder (default: runs/SPACE-SAMPLER)."),
        resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its newest good checkpoint."),
        epochs: float = typer.Option(2.0, "--epochs", help="Planned epochs (the GreedyNAS stopping rule may end earlier)."),
        max_iters: Optional[int] = typer.Option(None, "--max-iters", help="Planned iterations (overrides --epochs)."),
        batch: int = typer.Option(64, "--batch", help="Global batch size (split across torchrun processes)."),
        eval_batch: int = typer.Option(64, "--eval-batch", help="Images of the path-eval subset used to rank paths."),
        lr: float = typer.Option(0.12, "--lr", help="Initial learning rate (SGD, Nesterov, cosine decay)."),
        weight_decay: float = typer.Option(4e-5, "--weight-decay"),
        label_smoothing: float = typer.Option(0.1, "--label-smoothing"),
        m: int = typer.Option(10, "--m-paths", help="GreedyNAS: paths sampled per round (m)."),
        k: int = typer.Option(5, "--k-paths", help="GreedyNAS: best paths kept and trained per round (k)."),
        pool_size: int = typer.Option(1000, "--pool-size", help="GreedyNAS: candidate pool size."),
        eps: float = typer.Option(0.8, "--eps", help="GreedyNAS: final pool-sampling probability ε."),
        warmup: float = typer.Option(0.2, "--warmup", help="GreedyNAS: uniform warm-up, fraction of planned iterations."),
        anneal: float = typer.Option(0.5, "--anneal", help="GreedyNAS: ε rises 0->eps over this fraction after warm-up."),
        alpha: float = typer.Option(0.08, "--alpha", help="GreedyNAS: stop when the pool's update frequency π <= α."),
        pi_window: Optional[int] = typer.Option(None, "--pi-window", help="Iterations over which π is measured (default: the pool size)."),
        no_early_stop: bool = typer.Option(False, "--no-early-stop", help="Train all planned iterations."),
        filter_arg: list[str] = typer.Option([], "--filter-arg", help="greedy-v2 path-filter option name=value (repeatable): "
                                             "iterations (3000), batch (1024), dim (128), lr, weight_decay, m (1000 paths per refresh), "
                                             "every (5/120 of training), q_start/q_end/q_anneal (0.5/0.99/0.75), beta (0.9), "
                                             "merge_threshold (0.8), merge (true), mix_alpha, mix_weight, agreement_paths, unlabelled_factor."),
        max_flops: Optional[str] = typer.Option(None, "--max-flops", help="Sample only paths under this many multiply-adds, e.g. 20M."),
        latency: Optional[str] = typer.Option(None, "--latency", help="Sample only paths under this predicted latency, e.g. 80ms (needs --table)."),
        table: Optional[Path] = typer.Option(None, "--table", help="Latency table (JSON) for --latency."),
        confidence: float = typer.Option(0.9, "--confidence", help="--latency is met with this probability (the bound `hwnas search` judges by; 0.5: the median)."),
        n_train: Optional[int] = typer.Option(None, "--n-train", help="Use at most this many training images."),
        n_val: Optional[int] = typer.Option(None, "--n-val", help="Size of the validation split."),
        n_path_eval: int = typer.Option(1000, "--n-path-eval", help="Size of the fixed path-evaluation subset of the val split."),
        seed: int = typer.Option(0, "--seed"),
        ckpt_every: int = typer.Option(100, "--ckpt-every", help="Checkpoint every N iterations."),
        threads: int = typer.Option(1, "--threads", help="Torch intra-op threads per process (more only on idle cores: oversubscribed OpenMP threads slow training many-fold)."),
        space_arg: list[str] = typer.Option([], "--space-arg", help="Space option name=value (repeatable)."),
        expand: Optional[int] = typer.Option(None, "--expand", help="SE-NAS: adjacent layers whose choices multiply to <= T train one weight copy per combination (T = 6 in the paper)."),
        expand_archs: int = typer.Option(50, "--expand-archs", help="SE-NAS with --expand: a space of at most this many archs shares no weight at all."),
        as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
        quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
    ) -> None:
        """Train a single-path supernet (uniform sampling unless --sampler) into a resumable run folder.

        The same command again reuses a finished run and continues an interrupted one."""
        import torch

        from ..train.distributed import init_distributed, shutdown_distributed

        cfg = _config(space=space, space_args=_space_args(space_arg), data=data, n_train=n_train, n_val=n_val,
                      n_path_eval=n_path_eval, sampler=sampler, m=m, k=k, pool_size=pool_size, eps_max=eps, warmup=warmup,
                      anneal=anneal, alpha=alpha, pi_window=pi_window, early_stop=not no_early_stop,
                      filter_args=_space_args(filter_arg, "--filter-arg"), epochs=epochs,
                      max_iters=max_iters, batch_size=batch, eval_batch=eval_batch, lr=lr, weight_decay=weight_decay,
                      label_smoothing=label_smoothing, max_flops=max_flops, latency=latency, table=table, latency_confidence=confidence,
                      seed=seed, ckpt_every=ckpt_every, expand=expand, expand_archs=expand_archs)
        out_dir = out or Path("runs") / f"{Path(space).stem if space.endswith('.json') else space}-{sampler}"
        ctx = init_distributed()
        torch.set_num_threads(max(1, threads))
        try:
            trainer, summary = _train(cfg, out_dir, resume, ctx, show_progress=ctx.is_main and not quiet and not as_json)
        finally:
            shutdown_distributed(ctx)
        if ctx.is_main:
            _report(trainer, summary, out_dir, as_json)


def _config(*, max_flops: Optional[str], latency: Optional[str], table: Optional[Path], **fields: Any):
    """The run's ``TrainConfig`` from the options, with the budgets parsed and checked."""
    from ..errors import HwnasError
    from ..search.constraints import parse_flops, parse_latency
    from ..train.trainer import TrainConfig

    if fields["sampler"] not in ("greedy", "greedy-v2", "uniform"):
        raise HwnasError(f"unknown sampler {fields['sampler']!r}; use greedy, greedy-v2 or uniform")
    if fields.get("expand") is not None and fields["expand"] < 2:
        raise HwnasError(f"--expand {fields['expand']} merges nothing; give a threshold >= 2 (6 in SE-NAS)")
    if fields.get("expand_archs", 50) < 1:
        raise HwnasError(f"--expand-archs {fields['expand_archs']} must be >= 1")
    if fields["filter_args"]:
        from ..train.path_filter import FilterConfig

        FilterConfig.from_dict(fields["filter_args"])  # a bad option fails before any data is built
    cfg = TrainConfig(**fields, max_flops=parse_flops(max_flops) if max_flops else None,
                      max_latency_ms=parse_latency(latency) if latency else None, table=str(table) if table else None)
    if cfg.max_latency_ms is not None and not cfg.table:
        raise HwnasError("--latency needs a latency table: pass --table FILE (build one with `hwnas profile`)")
    return cfg


def _train(cfg: Any, out_dir: Path, resume: bool, ctx: Any, show_progress: bool) -> tuple[Any, dict[str, Any]]:
    """Run ``train_supernet``, drawing the progress bar (loss, accuracy, ε, pool size, π) when asked."""
    from ..train.trainer import train_supernet

    def on_resume(meta: dict[str, Any], problems: list[str]) -> None:
        if not ctx.is_main:
            return
        for p in problems:
            err_console.print(f"warning: {p}; resuming from the previous good checkpoint", highlight=False, soft_wrap=True)
        err_console.print(f"resuming {out_dir} at iteration {meta.get('iteration')}", highlight=False, soft_wrap=True)

    if not show_progress:
        return train_supernet(cfg, out_dir, resume=resume, ctx=ctx, on_resume=on_resume)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    progress = Progress(TextColumn("[bold]train[/]"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                        TimeElapsedColumn(), TimeRemainingColumn(), console=err_console, transient=False)
    task: dict[str, Any] = {"id": None, "total": 0}

    def callback(rec: dict[str, Any]) -> None:
        if task["id"] is None:
            task["id"] = progress.add_task("train", total=task["total"], completed=rec["iteration"] - 1, info="")
        pi = "-" if rec["pi"] is None else f"{rec['pi']:.2f}"
        if cfg.sampler == "greedy-v2":  # the status carries the weak share q and the filter agreement u
            info = f"loss {rec['loss']:.3f} acc {rec['acc']:5.1f}% q {rec['epsilon']:.2f} u {pi}"
        else:
            info = f"loss {rec['loss']:.3f} acc {rec['acc']:5.1f}% ε {rec['epsilon']:.2f} pool {rec['pool']} π {pi}"
        progress.update(task["id"], completed=rec["iteration"], info=info)

    def on_start(tr: Any) -> None:  # the bar starts once the data and the supernet are ready
        task["total"] = tr.total_iters
        err_console.print(f"{tr.datasets.describe()}; {tr.total_iters} iterations of batch {tr.config.batch_size}, "
                          f"sampler {tr.config.sampler}, {tr.budget.describe()}, {ctx.world} process(es)")
        progress.start()

    try:
        return train_supernet(cfg, out_dir, resume=resume, callback=callback, ctx=ctx, on_resume=on_resume, on_start=on_start)
    finally:
        if task["total"]:  # stopping a bar that never started prints a stray line
            progress.stop()


def _report(trainer: Any, summary: dict[str, Any], out_dir: Path, as_json: bool) -> None:
    """The run's bookkeeping, its best paths and the search command to run next."""
    from ..train.hints import suggested_budget
    from ..train.trainer import format_bookkeeping

    summary["out"] = str(out_dir)
    if as_json:
        print_json(summary)
        return
    if summary.get("reused"):
        err_console.print(f"{out_dir} already holds this training run, finished after {summary['iterations']} iterations: "
                          f"reusing it (another --out trains anew)", highlight=False, soft_wrap=True)
    console.print(f"data: {summary['data']}", highlight=False)
    console.print(f"stopped: {summary['stop_reason']} after {summary['iterations']} iterations "
                  f"(train {summary['train_seconds']:.0f}s, path evaluation {summary['eval_seconds']:.0f}s)")
    console.print(format_bookkeeping(summary))
    if summary["best_paths"]:
        best = ", ".join(f"{a} ({loss:.3f})" for a, loss in summary["best_paths"][:3])
        console.print(f"candidate pool: {summary['pool_size']} paths; best by eval loss: {best}")
    pf = summary.get("path_filter")
    if pf:
        merged = ", ".join(f"layer {j} {d}->{k}" for j, d, k, _ in pf["merged_ops"]) or "none"
        u = "-" if pf["u"] is None else f"{pf['u']:.3f}"
        console.print(f"path filter: {pf['refreshes']} refreshes, last agreement u = {u}, merged ops: {merged}", highlight=False)
    tc = trainer.config
    hint = suggested_budget(tc.space, tc.space_args, max_latency_ms=tc.max_latency_ms)
    console.print(f"supernet: {out_dir / 'supernet.json'}  (next: hwnas search --supernet {out_dir} {hint})", highlight=False)
