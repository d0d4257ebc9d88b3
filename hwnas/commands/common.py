"""Helpers shared by command modules: the console and JSON printing."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console

console = Console()
err_console = Console(stderr=True)


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=1) + "\n")


def not_available(what: str) -> None:
    from ..errors import NotAvailableError

    raise NotAvailableError(f"{what} is not yet available in this version of hwnas")
