"""The report page: one HTML file with everything inline.

The page loads nothing: its Content-Security-Policy is ``default-src 'none'`` (inline styles
only), plots are inline SVG, and no script runs. What a run has not produced yet is said
where it would be shown.
"""

from __future__ import annotations

import json
import math
from html import escape
from typing import Any, Iterable, Sequence

from .collect import RunContents
from .figures import Plot, latency_check_plot, layer_latencies, pareto_plot, table_heatmap, training_plots, winner_plot

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

STYLE = """
body { font-family: sans-serif; margin: 0 auto; max-width: 1100px; padding: 0 16px 40px; color: #222; background: #fff; }
h1 { font-size: 1.5em; margin-top: 24px; } h2 { font-size: 1.2em; border-bottom: 1px solid #ccc; margin-top: 32px; }
table { border-collapse: collapse; margin: 8px 0; font-size: 0.9em; }
td, th { border: 1px solid #ddd; padding: 3px 8px; text-align: left; vertical-align: top; overflow-wrap: anywhere; }
table { max-width: 100%; }
th { background: #f4f4f4; }
figure.plot { margin: 12px 0; max-width: 760px; }
figure.plot.small { display: inline-block; width: 48%; max-width: 520px; vertical-align: top; margin-right: 1%; }
figcaption { font-size: 0.85em; color: #555; }
p.missing { background: #fff6e0; border-left: 4px solid #e0a000; padding: 6px 10px; }
pre { background: #f7f7f7; padding: 8px; overflow-x: auto; font-size: 0.8em; }
.ok { color: #1a7f37; } .bad { color: #b3261e; }
"""


def render(c: RunContents) -> str:
    """The whole page for a run's contents."""
    parts = [_header(c), _search(c), _latency(c), _winner(c), _table(c), _training(c), _manifest(c)]
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>hwnas run {escape(c.layout.name)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
            + "\n".join(parts) + "\n</body>\n</html>\n")


# ---- pieces ------------------------------------------------------------------------------------
def _figure(p: Plot, small: bool = False) -> str:
    cls = "plot small" if small else "plot"
    return f'<figure class="{cls}" id="{p.id}">{p.svg}<figcaption>{escape(p.caption)}</figcaption></figure>'


def _missing(text: str) -> str:
    return f'<p class="missing">{escape(text)}</p>'


def _rows(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    head = "".join(f"<th>{escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{escape(_fmt(v))}</td>" for v in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return "-" if not math.isfinite(v) else f"{v:.4g}"
    if isinstance(v, (dict, list)):
        return json.dumps(v)
    return str(v)


def _header(c: RunContents) -> str:
    m = c.manifest
    stages = m.get("stages") if isinstance(m.get("stages"), dict) else {}
    line = ", ".join(f"{name}: {(st or {}).get('status', '?')}" for name, st in stages.items()) if stages else "no stage recorded"
    return (f"<h1>hwnas run <code>{escape(c.layout.name)}</code></h1>\n"
            f"<p>Stages: {escape(line)}.</p>")


def _search(c: RunContents) -> str:
    out = ["<h2>Search: accuracy against predicted latency</h2>"]
    if "search" in c.missing:
        return "\n".join(out + [_missing(c.missing["search"])])
    algo = (c.best or {}).get("algorithm", "search")
    bound = (c.best or {}).get("latency_bound") or {}
    out.append(_figure(pareto_plot(c.history, c.front, c.best_record, c.budget_ms, f"{algo}: {len(c.history)} archs evaluated",
                                   bound.get("label"))))
    if bound.get("meaning"):
        out.append(f"<p>{escape(bound['meaning'])}.</p>")
    n_feasible = sum(r.feasible for r in c.history)
    out.append(f"<p>{len(c.history)} archs evaluated, {n_feasible} within the budget, {len(c.front)} on the Pareto front.</p>")
    if c.best_record is not None:
        b, lp = c.best_record, (c.best or {}).get("latency_prediction") or {}
        rows = [("arch", b.arch.get_space().to_compact(b.arch)), ("accuracy (%)", b.accuracy),
                (f"predicted latency (ms, {bound.get('label', 'as searched')})", b.latency_ms),
                ("predicted median (ms)", lp.get("median_ms")), ("latency budget (ms)", c.budget_ms),
                ("FLOPs (M)", b.flops / 1e6), ("params (M)", b.params / 1e6)]
        if lp.get("interval_ms"):
            lo, hi = lp["interval_ms"]
            rows.append((f"{lp.get('interval_confidence', 0.9):.0%} interval (ms)", f"{lo:.4g} - {hi:.4g}"))
        if "p_within_budget" in lp:
            rows.append(("P(meets the budget)", lp["p_within_budget"]))
        out.append("<h3>Winner</h3>" + _rows(("", "value"), rows))
    if "winner" in c.missing:
        out.append(_missing(c.missing["winner"]))
    return "\n".join(out)


def _latency(c: RunContents) -> str:
    out = ["<h2>Latency: predicted against measured</h2>"]
    lat = (c.sidecar or {}).get("latency")
    plot = latency_check_plot(c.validation, lat)
    if plot is not None:
        out.append(_figure(plot))
    for key in ("validation", "export", "export_latency"):
        if key in c.missing:
            out.append(_missing(c.missing[key]))
    if c.validation:
        v = c.validation
        out.append(f"<h3>Validation of the table</h3><p>{v.get('samples')} random archs of {escape(str(v.get('space')))} timed whole on "
                   f"{escape(str(v.get('device')))} ({escape(str(v.get('backend')))}), seed {v.get('seed')}.</p>")
        res = v.get("results") or {}
        out.append(_rows(("comparison", "archs", "within ±5%", "within ±10%", "RMSE (%)", "bias (%)"),
                         [(name, r.get("n"), _pct(r.get("within_5")), _pct(r.get("within_10")), r.get("rmse_pct"), r.get("bias_pct"))
                          for name, r in res.items()]))
        nz = v.get("noise") or {}
        if nz:
            out.append(f"<p>Noise floor (one network measured twice): median |difference| {_fmt(nz.get('median_abs_pct'))}%, "
                       f"max {_fmt(nz.get('max_abs_pct'))}%.</p>")
    if lat:
        rows = [("device", lat.get("device")), ("backend", lat.get("backend")), ("predicted (ms)", lat.get("predicted_ms")),
                ("measured (ms)", lat.get("measured_ms")), ("prediction error (%)", lat.get("error_pct")),
                ("budget (ms)", lat.get("budget_ms")), ("budget met", lat.get("budget_met")),
                ("device speed vs the table's (anchor ratio)", lat.get("device_speed_factor"))]
        out.append("<h3>The exported file</h3>" + _rows(("", "value"), rows))
        if lat.get("verdict"):
            out.append(f"<p>{escape(lat['verdict'])}</p>")
    if c.sidecar:
        par = c.sidecar.get("parity") or []
        cls = "ok" if c.sidecar.get("parity_verified") else "bad"
        out.append(f'<p>File <code>{escape(str(c.sidecar.get("file")))}</code> ({escape(str(c.sidecar.get("format")))} '
                   f'{escape(str(c.sidecar.get("precision")))}, {_fmt((c.sidecar.get("size_bytes") or 0) / 1e6)} MB): parity '
                   f'<span class="{cls}">{"verified" if c.sidecar.get("parity_verified") else "not verified"}</span>'
                   f'{"" if par else " (not checked)"}.</p>')
    return "\n".join(out)


def _pct(x: Any) -> str:
    return "-" if not isinstance(x, (int, float)) else f"{100 * x:.1f}%"


def _winner(c: RunContents) -> str:
    out = ["<h2>The winner, layer by layer</h2>"]
    if c.best_record is None:
        return "\n".join(out + [_missing(c.missing.get("winner") or c.missing.get("search") or "no winner yet")])
    arch = c.best_record.arch
    out.append(_figure(winner_plot(arch, c.table)))
    space = arch.get_space()
    lat = {i: (k, ms) for i, _, k, ms in layer_latencies(c.table, arch)} if c.table is not None else {}
    rows = []
    for layer, op in zip(space.layers, arch.ops):
        k, ms = lat.get(layer.index, (None, None))
        rows.append((layer.index, layer.stage, f"{layer.size}x{layer.size}x{layer.c_in}", layer.c_out, layer.stride, op, k or "-", ms))
    out.append(_rows(("layer", "stage", "input", "out channels", "stride", "op", "block", "table median (ms)"), rows))
    if c.table is None:
        out.append(_missing(c.missing.get("table", "no latency table")))
    return "\n".join(out)


def _table(c: RunContents) -> str:
    out = ["<h2>The latency table</h2>"]
    if c.table is None:
        return "\n".join(out + [_missing(c.missing.get("table", "no latency table"))])
    t = c.table
    winner = c.best_record.arch if c.best_record is not None and c.best_record.arch.space == t.space else None
    out.append(_figure(table_heatmap(t, winner)))
    cal = t.calibration or {}
    out.append(f"<p><code>{escape(str(t.path))}</code>: {len(t.entries)} blocks, created {escape(str(t.created))}; "
               f"calibration {escape(json.dumps({k: v for k, v in cal.items() if not isinstance(v, (list, dict))}))}.</p>")
    return "\n".join(out)


def _training(c: RunContents) -> str:
    out = ["<h2>Training</h2>"]
    if "training" in c.missing:
        return "\n".join(out + [_missing(c.missing["training"])])
    its = c.metrics.get("iteration") or []
    out.append(f"<p>{len(its)} logged iterations (last {_fmt(its[-1] if its else None)}).</p>")
    out.extend(_figure(p, small=True) for p in training_plots(c.metrics))
    return "\n".join(out)


def _manifest(c: RunContents) -> str:
    m = c.manifest
    out = ["<h2>Manifest</h2>"]
    stages = m.get("stages") if isinstance(m.get("stages"), dict) else {}
    if stages:
        keys = sorted({k for st in stages.values() if isinstance(st, dict) for k in st if k != "outputs"})
        out.append(_rows(("stage", *keys, "outputs"),
                         [(name, *((st or {}).get(k) for k in keys), (st or {}).get("outputs")) for name, st in stages.items()]))
    out.append(f"<details open><summary>run.json</summary><pre>{escape(json.dumps(m, indent=1, sort_keys=False))}</pre></details>")
    if c.config_text is not None:
        out.append(f"<details><summary>config.toml</summary><pre>{escape(c.config_text)}</pre></details>")
    return "\n".join(out)
