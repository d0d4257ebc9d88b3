"""``hwnas devices`` and ``hwnas device``: phones over ADB."""

from __future__ import annotations

import typer

from .common import not_available


def register(app: typer.Typer) -> None:
    @app.command("devices")
    def devices() -> None:
        """List attached phones and known device profiles."""
        not_available("hwnas devices")
