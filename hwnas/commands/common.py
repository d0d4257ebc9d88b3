"""Helpers shared by command modules: the console, JSON printing and the command groups' settings."""

from __future__ import annotations

import json
import sys
from typing import Any

import typer
from rich.console import Console

# soft_wrap: a line longer than the terminal (or than 80 columns off a terminal) stays one line,
# so a printed command can be copied and a log grepped; tables still fit the width.
console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)


def new_app(**kwargs: Any) -> typer.Typer:
    """A typer app or command group with hwnas's settings.

    Help is plain click-style text (``rich_markup_mode=None``): typer's rich help prints
    ``<bool>`` after flags that take no value, the plain one shows flags as flags.
    """
    kwargs.setdefault("add_completion", False)
    return typer.Typer(rich_markup_mode=None, pretty_exceptions_enable=False, **kwargs)


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=1) + "\n")
