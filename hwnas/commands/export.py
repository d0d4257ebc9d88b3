"""``hwnas export``: the winner as a verified TFLite/ONNX file."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from .common import console, err_console, print_json


def register(app: typer.Typer) -> None:
    @app.command("export")
    def export(arch: Optional[str] = typer.Option(None, "--arch", help="A JSON file (e.g. a search's best.json), a named arch (proxyless-mobile) or space:compact (default: the newest search's best.json under exports/)."),
               weights: Optional[Path] = typer.Option(None, "--weights", help="A state dict of the arch's net, or a supernet checkpoint from `hwnas train` (default: the supernet a search's best.json names; else fresh init, warned)."),
               fmt: str = typer.Option("tflite", "--format", help="tflite or onnx."),
               precision: str = typer.Option("fp32", "--precision", help="fp32, fp16 (tflite only) or int8 (full-integer post-training quantization)."),
               calibration_data: Optional[Path] = typer.Option(None, "--calibration-data", help="Folder of images for int8 calibration (default: the built-in data)."),
               out: Path = typer.Option(Path("exports"), "--out", help="Output folder."),
               name: Optional[str] = typer.Option(None, "--name", help="File name stem (default: the search folder's or arch's name and a short hash of arch, weights and precision)."),
               table: Optional[Path] = typer.Option(None, "--table", help="Latency table: predicted latency, and the file timed on the table's device (default: the table a search's best.json names)."),
               latency: Optional[str] = typer.Option(None, "--latency", help="Latency budget to judge the measured file against, e.g. 0.25ms (default: best.json's)."),
               force: bool = typer.Option(False, "--force", help="Replace an existing export of another arch, weights or precision."),
               force_table: bool = typer.Option(False, "--force-table", help="Use a table made for another space anyway."),
               no_verify: bool = typer.Option(False, "--no-verify", help="Skip the parity check and the latency measurement."),
               runs: Optional[int] = typer.Option(None, "--runs", help="Timed runs for the latency check (default: the table's protocol)."),
               serial: Optional[str] = typer.Option(None, "--serial", help="Phone for a phone table's latency check (see `hwnas devices`); default the table's phone."),
               host: Optional[str] = typer.Option(None, "--host", help="Phone over TCP for a phone table's latency check: HOST:PORT."),
               transport: Optional[str] = typer.Option(None, "--transport", help="adb-shell (in process) or adb-cli (the adb client); default the table's."),
               as_json: bool = typer.Option(False, "--json", help="Print the sidecar as JSON.")) -> None:
        """Export an arch to TFLite/ONNX, checked for parity and real latency."""
        if arch is None:
            from ..search.results import newest_search

            arch = str(newest_search())
            err_console.print(f"exporting the newest search's best arch {arch} (--arch to choose another)", highlight=False)
        from ..export.quiet import banners_filtered

        with warnings.catch_warnings(), banners_filtered():
            from ..export import export_arch
            from ..search.constraints import parse_latency

            warnings.simplefilter("ignore")
            budget = parse_latency(latency) if latency is not None else None
            with console.status(f"exporting {arch} as {fmt} {precision}...") if not as_json else _null():
                r = export_arch(arch, weights=weights, fmt=fmt, precision=precision, calibration_data=calibration_data, out=out,
                                name=name, table=table, verify=not no_verify, latency_runs=runs, force_table=force_table,
                                serial=host or serial, transport=transport, force=force, budget_ms=budget)
        for w in r.warnings:
            if w != r.latency_verdict:  # the verdict gets its own line below
                err_console.print(f"[yellow]warning:[/] {w}", markup=True, highlight=False)
        if as_json:
            print_json(r.sidecar_data)
            return
        if r.reused:
            console.print(f"reused {r.path}: it already holds this arch with these weights at {r.precision} (checked again; --force re-exports it)")
        console.print(f"[bold]{r.path}[/] ({r.size_bytes / 1e6:.2f} MB, {r.fmt} {r.precision}, weights: {r.weights}) in {r.export_s:.1f}s; sidecar {r.sidecar}")
        console.print(f"{r.arch.compact()}  FLOPs={r.flops / 1e6:.2f}M  params={r.params / 1e6:.3f}M")
        for p in r.parity:
            console.print(("[green]ok[/] " if p.passed else "[red]FAIL[/] ") + p.summary())
        if not r.parity:
            console.print("[yellow]not verified[/] (--no-verify)")
        if r.latency is not None:
            lat = r.latency
            t = Table("device", "backend", "predicted ms", "measured ms", "error", "table", title="latency")
            t.add_row(f"{lat.device} {lat.serial}" if lat.serial else lat.device, lat.backend, f"{lat.predicted_ms:.3f} ± {lat.uncertainty_ms:.3f}",
                      "-" if lat.measured_ms is None else f"{lat.measured_ms:.3f}",
                      "-" if lat.error_pct is None else f"{lat.error_pct:+.1f}%", lat.table)
            console.print(t)
            if lat.device_speed_factor is not None and lat.measured_reference_ms is not None:
                console.print(f"the anchor network took {lat.device_speed_factor:.3f}x its time when the table was profiled:"
                              f" {lat.measured_reference_ms:.3f} ms in the table's state, error {lat.error_reference_pct:+.1f}%")
            if lat.prediction:
                lp = lat.prediction
                lo, hi = lp["interval_ms"]
                p = f", P(meets the budget) = {lp['p_within_budget']:.2f}" if "p_within_budget" in lp else ""
                console.print(f"predicted {lp['median_ms']:.3f} ms (median), {lp['interval_confidence']:.0%} interval {lo:.3f}-{hi:.3f} ms{p}",
                              highlight=False)
            if lat.note:
                console.print(f"note: {lat.note}", markup=False, highlight=False)
        colour = {True: "green", False: "red"}.get(r.sidecar_data.get("budget_met"), "yellow")
        console.print(f"[{colour}]latency:[/] {r.latency_verdict}", highlight=False)


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False
