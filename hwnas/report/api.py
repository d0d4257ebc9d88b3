"""``write_report``: a run folder -> its ``report.html`` (what ``hwnas report`` and ``hwnas run`` call)."""

from __future__ import annotations

from pathlib import Path

from ..io import atomic_write_text
from .collect import read_run
from .page import render


def write_report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write the run's self-contained HTML report (default ``<run_dir>/report.html``) and return its path.

    What the run has not produced yet is stated in the page; a folder that is not a run is an
    ``HwnasError``.
    """
    contents = read_run(run_dir)
    return atomic_write_text(out if out is not None else contents.layout.report, render(contents))
