"""Training curves on disk: ``metrics.csv`` always, TensorBoard event files when installed.

The CSV is rewritten (atomically) from the trainer's history whenever a checkpoint is
saved, so after a crash and a resume it holds exactly the iterations the checkpoint holds,
never a row twice. TensorBoard gets every iteration as it happens; a resumed run reopens its
event files with ``purge_step`` at the checkpoint's iteration, so TensorBoard drops the
events written after that checkpoint and before the crash. Without the ``tensorboard`` extra
(``pip install hwnas[tensorboard]``) only the CSV is written.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any, Sequence

from ..io import atomic_write_text

METRICS_CSV = "metrics.csv"
TENSORBOARD_DIR = "tensorboard"
# A history row: iteration, loss, accuracy (%), then the sampler's three status figures, then lr.
BASE_COLUMNS = ("iteration", "loss", "accuracy")


def columns(status_names: Sequence[str]) -> list[str]:
    """The CSV header: iteration first, then loss, accuracy, the sampler's status figures, lr."""
    return [*BASE_COLUMNS, *status_names, "lr"]


def _cell(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""  # unknown (π before the pool has turned over once, lr of an older checkpoint)
    if isinstance(v, float):
        return repr(v)
    return str(v)


def metrics_csv_text(history: Sequence[Sequence[float]], status_names: Sequence[str]) -> str:
    """The CSV of a trainer's history rows (``[iteration, loss, acc, s1, s2, s3, lr]``)."""
    cols = columns(status_names)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    for row in history:
        cells = list(row)[: len(cols)] + [None] * (len(cols) - len(row))
        cells[0] = int(cells[0])
        if cells[5] == -1.0:  # the history's mark for a status figure not known yet (π, u)
            cells[5] = None
        w.writerow([_cell(c) for c in cells])
    return buf.getvalue()


def write_metrics_csv(out_dir: str | Path, history: Sequence[Sequence[float]], status_names: Sequence[str]) -> Path:
    return atomic_write_text(Path(out_dir) / METRICS_CSV, metrics_csv_text(history, status_names))


def read_metrics_csv(path: str | Path) -> dict[str, list[float | None]]:
    """Column name -> values (None for an empty cell): what a report or a test reads back."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        return {}
    header, body = rows[0], rows[1:]
    return {name: [float(r[i]) if i < len(r) and r[i] != "" else None for r in body] for i, name in enumerate(header)}


class TensorBoardLog:
    """Scalars per iteration under ``<run>/tensorboard`` (a no-op without the tensorboard package)."""

    def __init__(self, out_dir: str | Path, purge_step: int | None = None) -> None:
        self.writer: Any = None
        try:
            from torch.utils.tensorboard import SummaryWriter  # noqa: PLC0415  (optional extra)
        except ImportError:
            return
        self.writer = SummaryWriter(log_dir=str(Path(out_dir) / TENSORBOARD_DIR), purge_step=purge_step)

    @property
    def enabled(self) -> bool:
        return self.writer is not None

    def add(self, iteration: int, values: dict[str, float | None]) -> None:
        if self.writer is None:
            return
        for name, v in values.items():
            if v is not None and not (isinstance(v, float) and math.isnan(v)):
                self.writer.add_scalar(f"train/{name}", float(v), iteration)

    def flush(self) -> None:
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
