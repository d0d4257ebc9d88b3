"""``hwnas export``: the winner as a verified TFLite/ONNX file."""

from __future__ import annotations

import typer

from .common import not_available


def register(app: typer.Typer) -> None:
    @app.command("export", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
    def export() -> None:
        """Export an arch to TFLite/ONNX, checked for parity and real latency."""
        not_available("hwnas export")
