"""``hwnas train``: supernet training with the GreedyNAS sampler."""

from __future__ import annotations

import typer

from .common import not_available


def register(app: typer.Typer) -> None:
    @app.command("train", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
    def train() -> None:
        """Train a single-path supernet (GreedyNAS sampler)."""
        not_available("hwnas train")
