"""The report's plots: matplotlib figures turned into inline SVG that needs nothing from outside.

Each plot is returned as ``Plot(id, svg)``: the page puts it in a ``<figure id=...>`` so the
plot has a stable element id (what the rendering test looks for). The SVG keeps its glyphs as
paths (no font is loaded) and loses matplotlib's XML prologue, DOCTYPE, metadata and namespace
declarations, so the page holds no address of any kind; element ids are prefixed with the
plot's id so several plots in one page never share one.
"""

from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ..latency.keys import block_key
from ..latency.table import LatencyTable
from ..latency.validate import draw_predicted_vs_measured
from ..search.base import Record
from ..search.results import draw_front
from ..space.arch import Arch


@dataclass(frozen=True)
class Plot:
    id: str
    svg: str
    caption: str = ""


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure_svg(fig: Any, plot_id: str) -> str:
    """The figure as an ``<svg>`` element to inline in HTML (see the module doc)."""
    import matplotlib

    plt = _pyplot()
    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "path", "svg.hashsalt": plot_id}):
        fig.savefig(buf, format="svg", metadata={"Date": None})
    plt.close(fig)
    s = buf.getvalue()
    s = s[s.index("<svg"):]
    s = re.sub(r"<metadata>.*?</metadata>\s*", "", s, flags=re.S)
    s = re.sub(r'\s+xmlns(:\w+)?="[^"]*"', "", s)
    s = re.sub(r'\bid="([^"]+)"', rf'id="{plot_id}-\1"', s)
    s = re.sub(r'href="#([^"]+)"', rf'href="#{plot_id}-\1"', s)
    s = re.sub(r"url\(#([^)]+)\)", rf"url(#{plot_id}-\1)", s)
    # scale with the page: the width/height matplotlib gives become the viewBox's aspect only
    s = re.sub(r'^<svg width="[^"]*" height="[^"]*"', '<svg width="100%"', s, count=1)
    return s.strip()


def pareto_plot(history: Sequence[Record], front: Sequence[Record], best: Record | None, budget_ms: float | None,
                title: str, latency_label: str | None = None) -> Plot:
    """``latency_label`` says which bound the records' latency is (best.json's ``latency_bound``)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.0, 4.4))
    draw_front(ax, history, front, best, budget_ms, title)
    if latency_label and any(r.latency_ms is not None for r in history):
        ax.set_xlabel(f"predicted latency (ms, {latency_label})")
    fig.tight_layout()
    return Plot("plot-pareto", figure_svg(fig, "plot-pareto"),
                "Every evaluated arch (grey: over the budget), the Pareto front of accuracy against predicted latency, "
                "the budget and the winner (star).")


def latency_check_plot(validation: dict[str, Any] | None, sidecar_latency: dict[str, Any] | None) -> Plot | None:
    """Predicted against measured: the validation's archs and the exported file (a star)."""
    series: dict[str, tuple[list[float], list[float]]] = {}
    for name, s in ((validation or {}).get("series") or {}).items():
        series[f"validation: {name}"] = (list(s.get("predicted_ms") or []), list(s.get("measured_ms") or []))
    lat = sidecar_latency or {}
    if lat.get("measured_ms") is not None and lat.get("predicted_ms") is not None:
        series["exported file"] = ([float(lat["predicted_ms"])], [float(lat["measured_ms"])])
    if not any(len(p) for p, _ in series.values()):
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.6, 5.0))
    n = (validation or {}).get("samples", 0)
    parts = ([f"{n} validation archs"] if n else []) + (["the exported file"] if "exported file" in series else [])
    draw_predicted_vs_measured(ax, series, " and ".join(parts))
    fig.tight_layout()
    return Plot("plot-latency-check", figure_svg(fig, "plot-latency-check"),
                "Predicted against measured whole-network latency: the table's validation archs and the exported file.")


def layer_latencies(table: LatencyTable, arch: Arch) -> list[tuple[int, str, str | None, float | None]]:
    """Per searchable layer of ``arch``: (layer index, op id, block key, the table's median ms).

    A true identity has no block (0 ms); a block the table lacks gets None."""
    space = arch.get_space()
    out = []
    for layer, op_id in zip(space.layers, arch.ops):
        op = next(o for o in layer.choices if o.id == op_id)
        key = block_key(layer.slot(op))
        entry = table.entries.get(key) if key is not None else None
        ms = 0.0 if key is None else (float(entry["median_ms"]) if entry and "median_ms" in entry else None)
        out.append((layer.index, op_id, key, ms))
    return out


def winner_plot(arch: Arch, table: LatencyTable | None) -> Plot:
    """The winner's predicted latency per layer (bars labelled with the op); FLOPs without a table."""
    from ..space.cost import slot_cost

    plt = _pyplot()
    space = arch.get_space()
    fig, ax = plt.subplots(figsize=(7.0, 3.6))
    labels = list(arch.ops)
    if table is not None:
        rows = layer_latencies(table, arch)
        vals = [r[3] if r[3] is not None else math.nan for r in rows]
        ax.set_ylabel("predicted latency (ms, table median)")
    else:
        vals = [slot_cost(layer.slot(next(o for o in layer.choices if o.id == op)))[0] / 1e6 for layer, op in zip(space.layers, arch.ops)]
        ax.set_ylabel("FLOPs (M multiply-adds)")
    x = np.arange(len(labels))
    ops = sorted(set(labels))
    cmap = plt.get_cmap("tab10" if len(ops) <= 10 else "tab20")
    colors = [cmap(ops.index(op) % cmap.N) for op in labels]
    ax.bar(x, [0 if math.isnan(v) else v for v in vals], color=colors)
    ax.set_xticks(x, [f"{layer.index}\n{op}" for layer, op in zip(space.layers, labels)], fontsize=7)
    ax.set_xlabel("layer and op")
    ax.set_title(f"winner {space.to_compact(arch)}")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return Plot("plot-winner", figure_svg(fig, "plot-winner"), "The winner's op in each searchable layer and what it costs.")


def table_heatmap(table: LatencyTable, winner: Arch | None = None) -> Plot:
    """The table as layer x op: each allowed op's block median (blank: not allowed there or not
    measured); the winner's ops are outlined."""
    from ..space.registry import create_space

    plt = _pyplot()
    space = create_space(table.space, **table.space_args)
    ops = [op.id for op in space.ops]
    grid = np.full((len(space.layers), len(ops)), np.nan)
    for i, layer in enumerate(space.layers):
        for op in layer.choices:
            key = block_key(layer.slot(op))
            entry = table.entries.get(key) if key is not None else None
            grid[i, ops.index(op.id)] = 0.0 if key is None else (float(entry["median_ms"]) if entry and "median_ms" in entry else np.nan)
    h = max(3.0, 0.28 * len(space.layers) + 1.6)
    fig, ax = plt.subplots(figsize=(max(5.0, 0.7 * len(ops) + 2.5), h))
    im = ax.imshow(np.ma.masked_invalid(grid), aspect="auto", cmap="viridis")
    fig.colorbar(im, ax=ax, label="block median (ms)")
    ax.set_xticks(range(len(ops)), ops, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(space.layers)), [str(layer.index) for layer in space.layers], fontsize=7)
    ax.set_xlabel("op")
    ax.set_ylabel("layer")
    if grid.size <= 300:
        finite = grid[np.isfinite(grid)]
        mid = float(np.median(finite)) if finite.size else 0.0
        for (i, j), v in np.ndenumerate(grid):
            if np.isfinite(v):
                ax.text(j, i, f"{v:.3g}", ha="center", va="center", fontsize=6, color="white" if v < mid else "black")
    if winner is not None and winner.space == table.space:
        from matplotlib.patches import Rectangle

        for i, op in enumerate(winner.ops):
            ax.add_patch(Rectangle((ops.index(op) - 0.5, i - 0.5), 1, 1, fill=False, ec="red", lw=1.6))
    ax.set_title(f"{table.space} on {table.device.get('name') or table.device.get('model')} ({table.backend})"
                 + ("; red: the winner" if winner is not None else ""), fontsize=9)
    fig.tight_layout()
    return Plot("plot-table", figure_svg(fig, "plot-table"), "The latency table: each layer's block median per op.")


def training_plots(metrics: dict[str, list[float]]) -> list[Plot]:
    """One plot per numeric column of metrics.csv against ``iteration``."""
    it = metrics.get("iteration") or []
    plt = _pyplot()
    out = []
    for name, vals in metrics.items():
        if name == "iteration" or not any(math.isfinite(v) for v in vals):
            continue
        fig, ax = plt.subplots(figsize=(4.6, 2.9))
        ax.plot(it[: len(vals)], vals, lw=1.2)
        ax.set_xlabel("iteration")
        ax.set_title(name, fontsize=10)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        pid = "plot-train-" + re.sub(r"[^A-Za-z0-9_-]", "_", name)
        out.append(Plot(pid, figure_svg(fig, pid), f"{name} against training iteration"))
    return out
