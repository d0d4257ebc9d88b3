"""``hwnas search``: latency-constrained architecture search."""

from __future__ import annotations

import typer

from .common import not_available


def register(app: typer.Typer) -> None:
    @app.command("search", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
    def search() -> None:
        """Search the best arch under a latency budget (NSGA-II or FNAS)."""
        not_available("hwnas search")
