"""Where ``hwnas train`` leaves its runs, and which one a later command uses by default.

``hwnas train`` writes ``runs/<space>-<sampler>`` (or ``--out``) and ``hwnas run`` a
``supernet/`` folder inside ``runs/<run-name>``; ``hwnas search`` without ``--supernet`` takes
the newest finished training run of either, so the README's short commands work as
printed. A run still training is never taken silently: it is named with the command that
finishes it.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import HwnasError
from .checkpoint import FINAL_NAME, list_checkpoints

RUNS_DIR = Path("runs")


def newest_run(root: str | Path = RUNS_DIR) -> Path:
    """The run folder under ``root`` whose final supernet was written last (HwnasError if none)."""
    root = Path(root)
    tops = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    folders = [f for p in tops for f in (p, p / "supernet") if f.is_dir()]
    finished = [(final.stat().st_mtime, p) for p in folders if (final := p / f"{FINAL_NAME}.json").is_file()]
    if finished:
        return max(finished)[1]
    unfinished = [(ckpts[0].stat().st_mtime, p) for p in folders if (ckpts := list_checkpoints(p))]
    if unfinished:
        run = max(unfinished)[1]
        raise HwnasError(f"the training run {str(run)!r} is unfinished; finish it with `hwnas train --resume --out {run}` "
                         f"(or pass --supernet {run} to search its latest checkpoint)")
    raise HwnasError(f"no training run in {str(root)!r}; run `hwnas train` first (or pass --supernet RUN_FOLDER)")
