"""``hwnas spaces``: list the search spaces and show one's skeleton."""

from __future__ import annotations

import typer
from rich.table import Table

from .common import console, new_app, print_json


def register(app: typer.Typer) -> None:
    group = new_app(help="List search spaces (with their sizes) and show one's skeleton.", invoke_without_command=True)

    @group.callback()
    def spaces(ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help="Print as JSON.")) -> None:
        """List the search spaces with their sizes."""
        if ctx.invoked_subcommand is not None:
            return
        from ..space import create_space, list_spaces

        rows = []
        for name in list_spaces():
            s = create_space(name)
            lo, hi = s.flops_range()
            rows.append({"name": name, "layers": s.num_layers, "ops": len(s.ops), "archs": s.size,
                         "resolution": s.resolution, "flops_min": lo, "flops_max": hi, "description": s.description})
        if as_json:
            print_json(rows)
            return
        t = Table("space", "layers", "ops", "archs", "input", "MFLOPs")
        for r in rows:
            t.add_row(r["name"], str(r["layers"]), str(r["ops"]), f"{r['archs']:.3e}" if r["archs"] > 1e6 else str(r["archs"]),
                      f"{r['resolution']}x{r['resolution']}", f"{r['flops_min'] / 1e6:.1f}-{r['flops_max'] / 1e6:.1f}")
        console.print(t)

    @group.command("show")
    def show(name: str = typer.Argument(..., help="Space name, see `hwnas spaces`."),
             as_json: bool = typer.Option(False, "--json", help="Print as JSON.")) -> None:
        """Show a space's skeleton: stem, searchable layers with their choices, head."""
        from ..space import create_space

        s = create_space(name)
        layers = s.describe_layers()
        if as_json:
            print_json({"name": s.name, "resolution": s.resolution, "layers": layers,
                        "stem": [sl.op.id for sl in s.stem], "head": [sl.op.id for sl in s.head]})
            return
        t = Table("layer", "stage", "input", "output", "stride", "choices", title=f"{s.name}: {s.description}")
        for sl in s.stem:
            t.add_row("stem", "-", f"{sl.size}x{sl.size}x{sl.c_in}", f"{sl.out_size}x{sl.out_size}x{sl.c_out}", str(sl.stride), sl.op.id)
        for r in layers:
            t.add_row(str(r["index"]), str(r["stage"]), r["in"], r["out"], str(r["stride"]), " ".join(r["choices"]))
        for sl in s.head:
            t.add_row("head", "-", f"{sl.size}x{sl.size}x{sl.c_in}", f"{sl.out_size}x{sl.out_size}x{sl.c_out}", str(sl.stride), sl.op.id)
        console.print(t)

    app.add_typer(group, name="spaces")
