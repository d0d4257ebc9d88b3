"""Read what a run folder holds, piece by piece, for the report.

Every piece may be missing (a run stopped after training has no search; a table never
validated has no validation report): each reader returns ``None`` and records in
``RunContents.missing`` why, in a sentence the page prints, so a partial run still gets a
report. Only a folder that is not a run at all is an error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import HwnasError
from ..io import read_json_file, read_text_file
from ..latency.table import LatencyTable
from ..latency.validate import validation_report_path
from ..search.base import Record, pareto_front, read_history
from ..train.metrics import read_metrics_csv
from .layout import RunLayout


@dataclass
class RunContents:
    """Everything the report shows; ``missing[section]`` says why a section has nothing."""

    layout: RunLayout
    manifest: dict[str, Any]
    config_text: str | None = None
    history: list[Record] = field(default_factory=list)
    front: list[Record] = field(default_factory=list)
    best: dict[str, Any] | None = None
    best_record: Record | None = None
    table: LatencyTable | None = None
    validation: dict[str, Any] | None = None
    sidecar: dict[str, Any] | None = None
    metrics: dict[str, list[float]] = field(default_factory=dict)  # column -> values; "iteration" first
    missing: dict[str, str] = field(default_factory=dict)

    @property
    def budget_ms(self) -> float | None:
        b = ((self.best or {}).get("budgets") or {}).get("latency_ms")
        return float(b) if isinstance(b, (int, float)) else None


def read_run(run_dir: str | Path) -> RunContents:
    """The run folder's contents; a folder without a manifest is an HwnasError (one line)."""
    layout = RunLayout(Path(run_dir))
    if not layout.root.is_dir():
        raise HwnasError(f"{str(layout.root)!r} is not a folder; give the run folder `hwnas run` made (runs/<name>)")
    if not layout.manifest.is_file():
        raise HwnasError(f"{str(layout.root)!r} is not a run folder (it has no run.json); give the folder `hwnas run` made (runs/<name>)")
    manifest = read_json_file(layout.manifest, "run manifest", "re-run `hwnas run` to rewrite it")
    if not isinstance(manifest, dict):
        raise HwnasError(f"{str(layout.manifest)!r} is not a run manifest (a JSON object); re-run `hwnas run` to rewrite it")
    c = RunContents(layout, manifest)
    if layout.config.is_file():
        c.config_text = read_text_file(layout.config, "run configuration", "re-run `hwnas run` to rewrite it")
    _read_search(c)
    _read_table(c)
    _read_sidecar(c)
    _read_metrics(c)
    return c


def _read_search(c: RunContents) -> None:
    lay = c.layout
    if not lay.history.is_file():
        c.missing["search"] = f"no search history ({_rel(lay.history, lay.root)}): the search stage has not run yet"
        return
    c.history = read_history(lay.history)
    if not c.history:
        c.missing["search"] = f"the search history {_rel(lay.history, lay.root)} is empty: no arch was evaluated yet"
        return
    use_latency = any(r.latency_ms is not None for r in c.history)
    c.front = pareto_front(c.history, use_latency=use_latency)
    if lay.best.is_file():
        c.best = read_json_file(lay.best, "search result", "re-run the search stage")
        try:
            c.best_record = Record.from_dict(c.best)
        except HwnasError as e:
            c.missing["winner"] = f"best.json could not be read as an arch record: {e}"
    else:
        c.missing["winner"] = "no best.json: the search has not finished (or no arch met the budget)"


def _table_path(c: RunContents) -> Path | None:
    """The manifest's table, else the one best.json names; a relative path is taken from the
    project folder the run folder sits in (runs/<name>), else from the working folder."""
    p = c.layout.table()
    if p is None and c.best and isinstance(c.best.get("table"), str):
        p = Path(c.best["table"])
    if p is None:
        return None
    if p.is_absolute():
        return p
    for base in (c.layout.root.parent.parent, Path.cwd(), c.layout.root):
        if (base / p).exists():
            return base / p
    return p


def _read_table(c: RunContents) -> None:
    p = _table_path(c)
    if p is None:
        c.missing["table"] = "the run names no latency table (the profile stage has not run, or the search used none)"
        c.missing["validation"] = "no latency table, so no validation"
        return
    if not p.is_file():
        c.missing["table"] = f"the latency table {str(p)!r} the run names is not there (moved or deleted)"
        c.missing["validation"] = "no latency table, so no validation"
        return
    c.table = LatencyTable.load(p, force=True)
    vp = validation_report_path(p)
    if vp.is_file():
        c.validation = read_json_file(vp, "validation report", f"run `hwnas validate --table {p}` again")
    else:
        c.missing["validation"] = (f"the table has not been validated on whole networks here yet (no {vp.name}); "
                                   f"run `hwnas validate --table {p} --calibrate` to measure it")


def _read_sidecar(c: RunContents) -> None:
    side = c.layout.exported_sidecar()
    if side is None:
        sides = sorted(c.layout.export.glob("*.json")) if c.layout.export.is_dir() else []
        side = sides[-1] if sides else None
    if side is None or not side.is_file():
        c.missing["export"] = "no exported file yet: the export stage has not run"
        return
    c.sidecar = read_json_file(side, "export sidecar", "re-run the export stage")
    if not (c.sidecar.get("latency") or {}).get("measured_ms"):
        c.missing["export_latency"] = "the exported file's latency was not measured (exported without a table or with --no-verify)"


def _read_metrics(c: RunContents) -> None:
    p = c.layout.metrics_csv
    if not p.is_file():
        c.missing["training"] = f"no training metrics ({_rel(p, c.layout.root)}): the train stage has not run yet"
        return
    c.metrics = numeric_columns(p)
    if not c.metrics.get("iteration"):
        c.missing["training"] = f"{_rel(p, c.layout.root)} holds no iterations yet"


def numeric_columns(path: Path) -> dict[str, list[float]]:
    """The CSV's columns that hold a number somewhere (an empty cell is NaN), through the
    trainer's own reader (``hwnas.train.metrics``)."""
    try:
        raw = read_metrics_csv(path)
    except (OSError, ValueError) as e:
        raise HwnasError(f"{str(path)!r} is not a metrics CSV ({e}); delete it and re-run the train stage") from None
    out: dict[str, list[float]] = {}
    for name, vals in raw.items():
        nums = [math.nan if v is None else float(v) for v in vals]
        if any(math.isfinite(v) for v in nums):
            out[name] = nums
    return out


def _rel(p: Path, root: Path) -> str:
    try:
        return str(p.relative_to(root))
    except ValueError:
        return str(p)
