"""``hwnas profile``, ``hwnas validate``, ``hwnas tables``: latency tables."""

from __future__ import annotations

import typer

from .common import not_available


def register(app: typer.Typer) -> None:
    @app.command("profile", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
    def profile() -> None:
        """Time every candidate block on a device -> latency table."""
        not_available("hwnas profile")

    @app.command("validate", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
    def validate() -> None:
        """Predicted vs. measured whole-network latency for sampled archs."""
        not_available("hwnas validate")
