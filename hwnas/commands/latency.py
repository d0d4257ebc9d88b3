"""``hwnas profile``, ``hwnas validate``, ``hwnas tables``: latency tables (thin calls into hwnas.latency)."""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from .common import console, err_console, new_app, print_json


@contextmanager
def progress_bar() -> Iterator:
    """A rich progress bar fed by ``ProfileEvent``s / ``(phase, done, total)`` callbacks, with ETA."""
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("eta"), TimeRemainingColumn(), TextColumn("{task.fields[note]}"), console=err_console,
                  transient=False) as prog:
        tasks: dict[str, int] = {}

        def update(ev) -> None:
            if ev.phase not in tasks:
                tasks[ev.phase] = prog.add_task(ev.phase, total=ev.total, note="")
            prog.update(tasks[ev.phase], completed=ev.done, total=ev.total, note=(ev.note + " " + ev.key[-60:]).strip())

        yield update


def _parse_widths(text: str) -> tuple[int, ...]:
    """``24,40,80`` -> (24, 40, 80); anything else is a one-line error."""
    try:
        widths = tuple(int(w) for w in text.split(","))
    except ValueError:
        widths = ()
    if not widths or min(widths) <= 0:
        from ..errors import HwnasError

        raise HwnasError(f"--widths {text!r} must be positive whole numbers separated by commas, e.g. 24,40,80,96,192,320")
    return widths


EXPORT_ONLY_HELP = ("Only convert each {what} into the cache the timed run reads, then stop (no timing, no table written): "
                    "run it at low priority (nice) before the timed run, which then only times.")


def _print_prepared(prepared) -> None:
    console.print(f"{prepared.ready} of {prepared.total} {prepared.what} ready to time ({prepared.converted} converted now, "
                  f"{len(prepared.failed)} failed); run the same command without --export-only to time them", markup=False, highlight=False)
    for key, reason in list(prepared.failed.items())[:10]:
        err_console.print(f"failed {key}: {reason}", markup=False, highlight=False)


def register(app: typer.Typer) -> None:
    @app.command("profile")
    def profile(device: str = typer.Option("host", "--device", help="Device profile name (devices/NAME.toml) or a .toml path."),
                space: str = typer.Option("tiny", "--space", help="Search space whose blocks to time."),
                backend: Optional[str] = typer.Option(None, "--backend", help="Timing backend: onnxruntime or litert (host), adb (phone); default the device's first."),
                out: Optional[Path] = typer.Option(None, "--out", help="Table file (default latency_tables/<device>-<space>-<backend>.json)."),
                rounds: Optional[int] = typer.Option(None, "--rounds", help="Measurements per block, interleaved across blocks (default 3)."),
                runs: Optional[int] = typer.Option(None, "--runs", help="Timed runs per measurement (default: the device profile's)."),
                warmup: Optional[int] = typer.Option(None, "--warmup", help="Warm-up runs per measurement (default: the device profile's)."),
                min_time: Optional[float] = typer.Option(None, "--min-time", help="Keep timing past --runs until this many seconds of runs (default 0.1)."),
                anchor_every: Optional[int] = typer.Option(None, "--anchor-every", help="Time the space's anchor network every N measurements to correct drift (0 = off; default: the device profile's)."),
                force: bool = typer.Option(False, "--force", help="Continue a table/journal made for another device or protocol."),
                host: Optional[str] = typer.Option(None, "--host", help="Phone over TCP (after `adb tcpip 5555`): HOST:PORT."),
                serial: Optional[list[str]] = typer.Option(None, "--serial", help="Phone serial; repeat for several phones (one worker and one table per phone)."),
                all_phones: bool = typer.Option(False, "--all", help="Every phone attached to adb, in parallel (one table per phone)."),
                transport: Optional[str] = typer.Option(None, "--transport", help="adb-shell (in process, default) or adb-cli (the adb client)."),
                export_only: bool = typer.Option(False, "--export-only", help=EXPORT_ONLY_HELP.format(what="block"))) -> None:
        """Time every candidate block on a device -> latency table (resumable: run it again to continue)."""
        from ..latency.backends.base import Protocol
        from ..latency.journal import JournalWarning
        from ..latency.profiler import profile_space, resolve_device

        dev = resolve_device(device)
        if export_only:
            from ..latency.prepare import backend_format, prepare_blocks

            backend = backend or (dev.backends[0] if dev.backends else "onnxruntime")
            with progress_bar() as update:
                _print_prepared(prepare_blocks(space, backend_format(dev, backend), progress=update))
            return
        proto = Protocol.from_device(dev, runs=runs, warmup_runs=warmup, min_time_s=min_time,
                                       anchor_every=anchor_every, rounds=rounds if rounds is not None else 3)
        backend = backend or (dev.backends[0] if dev.backends else "onnxruntime")
        if dev.kind == "adb" or host or serial or all_phones or transport:
            from ..latency.multi import profile_on_phones

            with progress_bar() as update:
                tables = profile_on_phones(dev, space, backend, out, protocol=proto, force=force, progress=update, host=host,
                                           serials=serial, all_phones=all_phones, transport=transport,
                                           log=lambda m: err_console.print(m, markup=False, highlight=False))
            for table in tables:
                d = table.device
                console.print(f"{d.get('manufacturer', '')} {d.get('model', '')} ({d.get('soc', '')}, Android {d.get('android', '')}, "
                              f"serial {d.get('serial', '')}): {len(table.entries)} blocks timed, {len(table.failed)} failed -> {table.path}",
                              markup=False, highlight=False)
                for key, reason in list(table.failed.items())[:10]:
                    err_console.print(f"failed {key}: {reason}", markup=False, highlight=False)
            return
        with warnings.catch_warnings(record=True) as caught, progress_bar() as update:
            warnings.simplefilter("always", JournalWarning)
            table = profile_space(dev, space, backend, out, protocol=proto, force=force, progress=update)
        for w in caught:
            if issubclass(w.category, JournalWarning):
                err_console.print(f"warning: {w.message}", markup=False, highlight=False)
        console.print(f"{len(table.entries)} blocks timed, {len(table.failed)} failed -> {table.path}")
        for key, reason in list(table.failed.items())[:10]:
            err_console.print(f"[yellow]failed[/] {key}: {reason}")

    @app.command("validate")
    def validate(device: str = typer.Option("host", "--device", help="Device profile to measure whole networks on."),
                 table: Path = typer.Option(..., "--table", help="Latency table to validate."),
                 samples: int = typer.Option(20, "--samples", help="Number of random archs to export and time whole."),
                 seed: int = typer.Option(0, "--seed", help="Seed of the arch sample."),
                 calibrate: bool = typer.Option(False, "--calibrate", help="Fit overhead/scale on half the archs, report on the other half, store it in the table."),
                 plot: Optional[Path] = typer.Option(None, "--plot", help="Scatter plot PNG (default next to the table)."),
                 repeat: bool = typer.Option(True, "--noise/--no-noise", help="Also time each network a second time (the noise floor)."),
                 force: bool = typer.Option(False, "--force", help="Use a table made for another device anyway."),
                 as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
                 export_only: bool = typer.Option(False, "--export-only", help=EXPORT_ONLY_HELP.format(what="network"))) -> None:
        """Predicted vs. measured whole-network latency for sampled archs (resumes an interrupted run)."""
        from ..latency.validate import validate_table

        if export_only:
            from ..latency.prepare import prepare_validation

            with progress_bar() as update:
                _print_prepared(prepare_validation(device, table, samples=samples, seed=seed, force=force, progress=update))
            return
        with progress_bar() as update:
            report = validate_table(device, table, samples=samples, seed=seed, calibrate=calibrate, plot=plot,
                                    noise=repeat, force=force, progress=update)
        if as_json:
            print_json(report)
            return
        for name, part in report["results"].items():
            console.print(f"[bold]{name}[/] ({part['n']} archs): within ±5% {part['within_5'] * 100:.1f}%  ±10% {part['within_10'] * 100:.1f}%"
                          f"  RMSE {part['rmse_ms']:.3f} ms ({part['rmse_pct']:.2f}%)  bias {part['bias_pct']:+.2f}%")
        dr = report.get("drift", {})
        if dr.get("corrected") and dr.get("readings"):
            console.print(f"drift: anchor timed {dr['readings']}x, device speed vs the table's reference {dr['min_factor']:.3f}-{dr['max_factor']:.3f}"
                          f" (median {dr['median_factor']:.3f}); figures above are corrected, uncorrected ones are in --json")
        if report.get("noise"):
            nz = report["noise"]
            console.print(f"noise floor (same net, two fresh measurements): median |diff| {nz['median_abs_pct']:.2f}%, max {nz['max_abs_pct']:.2f}%")
        if report.get("calibration"):
            console.print(f"calibration stored: {report['calibration']}")
            model = report.get("calibration_model") or {}
            if model.get("rejected"):
                console.print(f"calibration model: {model['why']}")
        console.print(f"plot: {report['plot']}")

    tables = new_app(help="Latency table files.", no_args_is_help=True)

    @tables.command("import")
    def tables_import(files: list[Path] = typer.Argument(..., help="ProxylessNAS- or OFA-style YAML latency tables (one table each; OFA's: one per resolution)."),
                      device: str = typer.Option(..., "--device", help="Name of the device the table was measured on."),
                      space: Optional[str] = typer.Option(None, "--space", help="Space whose block keys to map the entries to (default: the one that maps the most)."),
                      width: Optional[str] = typer.Option(None, "--widths", help="Stage widths of the table's skeleton, e.g. 24,40,80,96,192,320 (default: read off the table)."),
                      backend: str = typer.Option("imported", "--backend", help="Backend name to record."),
                      model: Optional[str] = typer.Option(None, "--model", help="The device's model name for its fingerprint, e.g. 'Samsung Galaxy Note10'."),
                      source: Optional[str] = typer.Option(None, "--source", help="Where the table comes from (recorded in the table's protocol)."),
                      license_: Optional[str] = typer.Option(None, "--license", help="The source's license (recorded in the table's protocol)."),
                      out: Optional[Path] = typer.Option(None, "--out", help="Output table (default latency_tables/<device>-<space>[-<resolution>]-<backend>.json); one input file only."),
                      force: bool = typer.Option(False, "--force", help="Replace an existing table at the output path.")) -> None:
        """Import published YAML tables (count/mean/var or std per key) as hwnas tables; says what it dropped and why."""
        from ..errors import HwnasError
        from ..latency.importer import import_yaml_table

        if out is not None and len(files) > 1:
            raise HwnasError(f"--out names one table but {len(files)} files were given; drop --out (each gets its default name)")
        widths = _parse_widths(width) if width else None
        fingerprint = {"model": model} if model else None
        provenance = {k: v for k, v in (("source_url", source), ("license", license_)) if v}
        for f in files:
            table, plan = import_yaml_table(f, device=device, space=space, backend=backend, out=out, widths=widths,
                                            fingerprint=fingerprint, provenance=provenance, force=force)
            args = ", ".join(f"{k}={','.join(map(str, v)) if isinstance(v, (tuple, list)) else v}"
                             for k, v in sorted(plan.space.args.items())) or "its default args"
            console.print(f"{f.name}: space {plan.space.name!r} with {args} (input {plan.space.resolution}): {plan.why}", markup=False, highlight=False)
            console.print(f"imported {len(plan.entries)} entries ({len(plan.dropped)} keys not in space {table.space!r}) -> {table.path}",
                          markup=False, highlight=False)
            for key, reason in sorted(plan.dropped.items()):
                console.print(f"  dropped {key}: {reason}", markup=False, highlight=False)
            if plan.missing:
                err_console.print(f"  the table lacks {len(plan.missing)} block(s) of the space (e.g. {plan.missing[0]}): "
                                  f"archs using them cannot be predicted", markup=False, highlight=False)

    app.add_typer(tables, name="tables")
