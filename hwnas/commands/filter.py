"""``hwnas filter evaluate``: GreedyNASv2's Table 4 on a tabular benchmark (a thin layer over
``hwnas.train.path_filter_eval.evaluate_filter``)."""

from __future__ import annotations

from typing import Any

import typer

from .common import console, err_console, print_json


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="The GreedyNASv2 path filter.", no_args_is_help=True)
    app.add_typer(group, name="filter")

    @group.command("evaluate")
    def evaluate(
        benchmark: str = typer.Option("nas-bench-macro", "--benchmark", help="tabular benchmark: nas-bench-macro"),
        fractions: str = typer.Option("0.01,0.1,0.5,1", "--fractions", help="shares of the archs to train on, comma-separated"),
        seeds: int = typer.Option(5, "--seeds", help="seeds per fraction and method"),
        methods: str = typer.Option("pu,pn", "--methods", help="pu (weak + unlabelled, VPU) and/or pn (weak vs good)"),
        iterations: int = typer.Option(3000, "--iterations", help="filter training iterations (the paper's 3000)"),
        batch: int = typer.Option(1024, "--batch", help="paths per mini-batch (the paper's 1024)"),
        dim: int = typer.Option(128, "--dim", help="embedding and hidden width (the paper's 128)"),
        threads: int = typer.Option(1, "--threads", help="torch threads"),
        as_json: bool = typer.Option(False, "--json", help="print the full result as JSON"),
    ) -> None:
        """Precision and recall of 'weak' over the whole space, filter trained PU vs PN on part of it."""
        import torch

        from ..errors import HwnasError
        from ..train.path_filter import FilterConfig
        from ..train.path_filter_eval import evaluate_filter

        try:
            fr = [float(x) for x in fractions.split(",") if x.strip()]
        except ValueError:
            raise HwnasError(f"--fractions {fractions!r} must be numbers separated by commas, e.g. 0.01,0.1,0.5,1") from None
        if seeds < 1:
            raise HwnasError("--seeds must be at least 1")
        torch.set_num_threads(max(1, threads))
        cfg = FilterConfig.from_dict({"iterations": iterations, "batch": batch, "dim": dim})

        def progress(rec: dict[str, Any]) -> None:
            if not as_json:
                err_console.print(f"{rec['method']} {rec['fraction']:g} seed {rec['seed']}: precision {rec['precision']:.2f} "
                                  f"recall {rec['recall']:.2f} ({rec['fit_seconds']:.0f}s)", highlight=False)

        res = evaluate_filter(benchmark, fr, range(seeds), [m.strip() for m in methods.split(",") if m.strip()], cfg=cfg,
                              progress=progress)
        if as_json:
            print_json(res)
            return
        console.print(f"{benchmark}: {res['n_archs']} archs, weak = all but the top {100 * res['good_share']:g}% by mean accuracy")
        for s in res["summary"]:
            console.print(f"{s['method'].upper():3s} {100 * s['fraction']:5g}% data: precision {s['precision']:6.2f} ± {s['precision_std']:.2f}  "
                          f"recall {s['recall']:6.2f} ± {s['recall_std']:.2f}  ({s['seeds']} seeds)", highlight=False)
