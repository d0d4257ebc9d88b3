"""The ``hwnas`` command line: argument parsing and printing only.

Each command group lives in ``hwnas/commands/<group>.py`` and calls the library; this file
assembles them and turns ``HwnasError`` into a one-line message and exit code 2.
"""

from __future__ import annotations

import sys
from typing import Sequence

import click
import typer

from .errors import HwnasError

app = typer.Typer(
    name="hwnas",
    help="Find the best network for a real phone under a latency budget measured on that phone.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register_commands() -> None:
    from .commands import arch, devices, export, latency, search, spaces, train

    for module in (spaces, arch, latency, devices, train, search, export):
        module.register(app)


_register_commands()


def run(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code (what ``main`` and the tests use)."""
    try:
        # Outside standalone mode click returns a `typer.Exit`'s code instead of raising it.
        rc = app(args=list(argv) if argv is not None else None, standalone_mode=False)
    except HwnasError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except click.exceptions.Exit as e:
        return e.exit_code
    except click.exceptions.Abort:
        print("aborted", file=sys.stderr)
        return 130
    except click.ClickException as e:
        e.show()
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted; what was finished is saved, run the same command again to continue", file=sys.stderr)
        return 130
    return rc if isinstance(rc, int) else 0


def main() -> None:
    sys.exit(run())
