"""``hwnas report``: a run folder's results as one HTML page that opens offline."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .common import console


def register(app: typer.Typer) -> None:
    @app.command("report")
    def report(run_dir: Path = typer.Argument(..., help="The run folder `hwnas run` made (runs/<name>)."),
               out: Optional[Path] = typer.Option(None, "--out", help="HTML file to write (default: RUN_DIR/report.html).")) -> None:
        """Write a run's report: Pareto front, predicted vs measured latency, the winner, the table, training curves, manifest."""
        from ..report import write_report

        console.print(f"report: {write_report(run_dir, out)}", highlight=False)
