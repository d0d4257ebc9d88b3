"""``hwnas devices`` and ``hwnas device check|setup``: phones over ADB (thin calls into hwnas.device)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from .common import console, err_console, new_app, print_json

HOST_HELP = "Phone over TCP (after `adb tcpip 5555`): HOST:PORT."
SERIAL_HELP = "Phone serial (see `hwnas devices`); default the profile's."
TRANSPORT_HELP = "adb-shell (in process) or adb-cli (the adb client); default the profile's."


def _phone(name: str, host: Optional[str], serial: Optional[str], transport: Optional[str]):
    from ..latency.multi import phone_targets
    from ..device.phone import Phone
    from ..device.profiles import load_device

    prof = load_device(name)
    if prof.kind != "adb":
        from ..errors import HwnasError

        raise HwnasError(f"device {name!r} is not a phone (kind {prof.kind!r}); pick an adb profile such as sd855")
    target = phone_targets(prof, host=host, serials=[serial] if serial else None)[0]
    return prof, Phone(prof, serial=target, transport=transport,
                       log=lambda m: err_console.print(m, markup=False, highlight=False))


def register(app: typer.Typer) -> None:
    @app.command("devices")
    def devices(host: Optional[list[str]] = typer.Option(None, "--host", help="Also ask this TCP phone (HOST:PORT); repeatable."),
                transport: str = typer.Option("adb-shell", "--transport", help="Transport for --host phones."),
                as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
        """List attached phones (serial, model, SoC, state) and known device profiles."""
        from ..device.discovery import attached_phones, known_profiles

        phones = attached_phones(host or [], transport)
        profiles = known_profiles()
        if as_json:
            print_json({"phones": phones, "profiles": [{"name": p.name, "kind": p.kind, "soc": p.soc, "path": p.path,
                                                         "description": p.description} for p in profiles]})
            return
        t = Table(title="attached phones")
        for col in ("serial", "model", "SoC", "Android", "state", "via"):
            t.add_column(col)
        for p in phones:
            t.add_row(p["serial"], p["model"], p["soc"], p["android"], p["state"], p["via"])
        if phones:
            console.print(t)
        else:
            console.print("no phone attached (adb devices is empty or adb is not installed; TCP phones: --host HOST:PORT)")
        t2 = Table(title="device profiles")
        for col in ("name", "kind", "SoC", "description"):
            t2.add_column(col)
        for p in profiles:
            t2.add_row(p.name, p.kind, p.soc, p.description)
        console.print(t2)

    device_app = new_app(help="One phone: preparation checks and set-up.", no_args_is_help=True)

    @device_app.command("check")
    def check(name: str = typer.Argument(..., help="Device profile, e.g. sd855."),
              host: Optional[str] = typer.Option(None, "--host", help=HOST_HELP),
              serial: Optional[str] = typer.Option(None, "--serial", help=SERIAL_HELP),
              transport: Optional[str] = typer.Option(None, "--transport", help=TRANSPORT_HELP),
              as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
        """Run the preparation checks (root, governor, temperature, taskset, space, binary) and say what is wrong."""
        from ..device.checks import FAIL, run_checks

        prof, phone = _phone(name, host, serial, transport)
        with phone:
            report = run_checks(phone, prof)
        if as_json:
            print_json({"fingerprint": report.fingerprint, "checks": [c.__dict__ for c in report.checks]})
        else:
            t = Table(title=f"{prof.name} on {phone.serial}")
            for col in ("check", "status", "details"):
                t.add_column(col)
            style = {"ok": "green", "warn": "yellow", "fail": "red"}
            for c in report.checks:
                t.add_row(c.name, f"[{style[c.status]}]{c.status}[/]", c.message)
            console.print(t)
            if not report.failures:
                console.print(f"ready to profile ({len(report.warnings)} warning(s))")
        bad = [c for c in report.checks if c.status == FAIL]
        if bad:
            from ..errors import HwnasError

            raise HwnasError(f"{prof.name} on {phone.serial} is not ready: " + "; ".join(c.message for c in bad))

    @device_app.command("setup")
    def setup(name: str = typer.Argument(..., help="Device profile, e.g. sd855."),
              benchmark_binary: Optional[Path] = typer.Option(None, "--benchmark-binary", help="Local arm64 benchmark_model (or onnxruntime_perf_test) to push."),
              pin_governor: bool = typer.Option(False, "--pin-governor", help="Set the profile's governor on its CPUs (rooted phones)."),
              host: Optional[str] = typer.Option(None, "--host", help=HOST_HELP),
              serial: Optional[str] = typer.Option(None, "--serial", help=SERIAL_HELP),
              transport: Optional[str] = typer.Option(None, "--transport", help=TRANSPORT_HELP)) -> None:
        """Prepare a phone: create the work folder, push the benchmark binary (verified), pin the governor."""
        from ..device.setup import setup_phone

        prof, phone = _phone(name, host, serial, transport)
        with phone:
            for line in setup_phone(phone, prof, benchmark_binary, pin_governor):
                console.print(line, markup=False, highlight=False)

    app.add_typer(device_app, name="device")
