"""``hwnas arch info``: FLOPs, params, ops per layer and (with a table) predicted latency."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from .common import console, new_app, print_json


def arch_info(arch_text: str, table_path: Optional[Path] = None, force: bool = False) -> dict:
    """Everything ``hwnas arch info`` reports, as a dict (the library call behind the command)."""
    from ..space import resolve_arch

    arch = resolve_arch(arch_text)
    space = arch.get_space()
    flops, params = space.flops_params(arch)
    info = {"arch": arch.to_dict(), "compact": space.to_compact(arch), "flops": flops, "params": params,
            "layers": [{"index": layer.index, "stage": layer.stage, "op": op, "in": f"{layer.size}x{layer.size}x{layer.c_in}",
                        "c_out": layer.c_out, "stride": layer.stride} for layer, op in zip(space.layers, arch.ops)]}
    if table_path is not None:
        from ..latency.table import LatencyTable

        table = LatencyTable.load(table_path, space=space.name, force=force)
        at = arch.at_space_args(table.space_args)  # a table of another input resolution predicts the same ops at its own
        ms, unc = table.predict(at)
        info["latency"] = {"table": str(table_path), "predicted_ms": ms, "uncertainty_ms": unc, "backend": table.backend,
                           "resolution": at.get_space().resolution}
    return info


def register(app: typer.Typer) -> None:
    group = new_app(help="Inspect architectures.", no_args_is_help=True)

    @group.command("info")
    def info(arch: str = typer.Argument(..., help="A JSON file, a named arch (e.g. proxyless-mobile) or space:compact."),
             table: Optional[Path] = typer.Option(None, "--table", help="Latency table to predict the arch's latency from."),
             force: bool = typer.Option(False, "--force", help="Use a table made for another space/device anyway."),
             as_json: bool = typer.Option(False, "--json", help="Print as JSON for scripts.")) -> None:
        """FLOPs (multiply-adds), params, ops per layer, and predicted latency with --table."""
        d = arch_info(arch, table, force)
        if as_json:
            print_json(d)
            return
        console.print(f"[bold]{d['compact']}[/] space={d['arch']['space']}  FLOPs={d['flops'] / 1e6:.2f}M  params={d['params'] / 1e6:.3f}M")
        if "latency" in d:
            lat = d["latency"]
            console.print(f"predicted latency: {lat['predicted_ms']:.3f} ± {lat['uncertainty_ms']:.3f} ms at input {lat['resolution']} ({lat['backend']}, {lat['table']})")
        t = Table("layer", "stage", "input", "out ch", "stride", "op")
        for r in d["layers"]:
            t.add_row(str(r["index"]), str(r["stage"]), r["in"], str(r["c_out"]), str(r["stride"]), r["op"])
        console.print(t)

    app.add_typer(group, name="arch")
