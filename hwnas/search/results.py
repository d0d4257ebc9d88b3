"""The files a search leaves: best.json, front.json, history.jsonl, summary.json, a Pareto plot.

Shared by every searcher so a user (and ``hwnas export --arch .../best.json``) reads the same
format whatever found the arch. best.json holds the arch at top level in ``Arch`` JSON form
(``space``, ``ops``) plus its predicted latency with uncertainty, FLOPs, params and score.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

from ..errors import HwnasError
from ..io import atomic_write_bytes, atomic_write_json
from .base import Record, SearchResult


def default_out_dir(root: str | Path = "exports") -> Path:
    """exports/search-<UTC time>; a suffix keeps two searches in the same second apart."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    base = Path(root) / f"search-{stamp}"
    p, n = base, 1
    while p.exists():
        n += 1
        p = Path(f"{base}-{n}")
    return p


def newest_search(root: str | Path = "exports") -> Path:
    """The ``best.json`` under ``root`` (one folder deep) written last: what ``hwnas export`` exports by default."""
    root = Path(root)
    found = [(p.stat().st_mtime, p) for p in root.glob("*/best.json") if p.is_file()] if root.is_dir() else []
    if not found:
        raise HwnasError(f"no search result in {str(root)!r}; run `hwnas search` first (or pass --arch FILE)")
    return max(found)[1]


def best_payload(result: SearchResult, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    if result.best is None:
        raise HwnasError(f"no evaluated arch met the budget ({result.budgets.describe()}); raise the budget or evaluate more archs")
    d = result.best.to_dict()
    d["algorithm"] = result.algorithm
    d["seed"] = result.seed
    d["budgets"] = result.budgets.to_dict()
    d["objective"] = result.objective.kind
    if extra:
        d.update(extra)
    return d


def write_results(result: SearchResult, out_dir: str | Path, extra: dict[str, Any] | None = None,
                  history: bool = True, plot: bool = True) -> dict[str, Path]:
    """Write every result file atomically into ``out_dir``; returns name -> path.

    ``history=False`` when the history was already streamed to history.jsonl during the run.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    paths["best"] = atomic_write_json(out / "best.json", best_payload(result, extra))
    paths["front"] = atomic_write_json(out / "front.json", {
        "objectives": ["accuracy (max)", "latency_ms (min)" if _has_latency(result) else "flops (min)"],
        "budgets": result.budgets.to_dict(), "front": [r.to_dict() for r in result.front]})
    if history:
        import json

        text = "".join(json.dumps(r.to_dict()) + "\n" for r in result.history)
        paths["history"] = atomic_write_bytes(out / "history.jsonl", text.encode())
    else:
        paths["history"] = out / "history.jsonl"
    summary = result.summary()
    if extra:
        summary.update(extra)
    summary["top10"] = [r.to_dict() for r in result.top(10)]
    paths["summary"] = atomic_write_json(out / "summary.json", summary)
    if plot:
        paths["plot"] = plot_front(result, out / "pareto.png")
    return paths


def _has_latency(result: SearchResult) -> bool:
    return any(r.latency_ms is not None for r in result.history)


def plot_front(result: SearchResult, path: str | Path) -> Path:
    """Every evaluated arch (grey: over budget), the Pareto front, the budget line and the winner, as a PNG."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=110)
    budget = result.budgets.latency_ms if _has_latency(result) else (result.budgets.flops / 1e6 if result.budgets.flops else None)
    draw_front(ax, result.history, result.front, result.best, budget, f"{result.algorithm}: {result.n_evaluations} archs evaluated")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())


def draw_front(ax: Any, history: Sequence[Record], front: Sequence[Record], best: Record | None, budget: float | None,
               title: str) -> None:
    """Draw a search on matplotlib axes: accuracy against predicted latency (FLOPs when no arch has a latency).

    ``budget`` is in the x axis' unit (ms, or M multiply-adds). The search's pareto.png and
    ``hwnas report`` draw the same picture through this one function.
    """
    use_lat = any(r.latency_ms is not None for r in history)

    def x_of(r: Record) -> float:
        return float(r.latency_ms) if use_lat and r.latency_ms is not None else r.flops / 1e6

    feas = [r for r in history if r.feasible]
    infeas = [r for r in history if not r.feasible]
    if infeas:
        ax.scatter([x_of(r) for r in infeas], [r.accuracy for r in infeas], s=8, c="0.75", label="over budget")
    if feas:
        ax.scatter([x_of(r) for r in feas], [r.accuracy for r in feas], s=8, c="tab:blue", alpha=0.6, label="evaluated")
    if front:
        fr = sorted(front, key=x_of)
        ax.step([x_of(r) for r in fr], [r.accuracy for r in fr], where="post", c="tab:orange", label="Pareto front")
    if budget is not None:
        ax.axvline(budget, c="tab:red", ls="--", lw=1, label="budget")
    if best is not None:
        ax.scatter([x_of(best)], [best.accuracy], marker="*", s=160, c="tab:red", zorder=5, label="best")
    ax.set_xlabel("predicted latency (ms)" if use_lat else "FLOPs (M multiply-adds)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
