"""The ``hwnas`` command line: argument parsing and printing only.

Each command group lives in ``hwnas/commands/<group>.py`` and calls the library; this file
assembles them and turns every problem a user can fix -- an ``HwnasError`` from the library
or a usage error from the parser (unknown command or option, missing option, bad value) --
into one line ``error: ...`` on stderr and exit code 2, never a traceback.

Typer (0.29) parses with its own copy of click (``typer._click``): its exceptions are not
``click``'s, so they are caught here through typer's classes (the version range is pinned in
``pyproject.toml`` and ``tests/test_cli_usage.py`` covers every command).
"""

from __future__ import annotations

import sys
from typing import Sequence

import typer
from typer._click.exceptions import NoArgsIsHelpError, UsageError

from .commands.common import new_app
from .errors import HwnasError

PROG = "hwnas"
USAGE_EXIT = 2

app = new_app(
    name=PROG,
    help="Find the best network for a real phone under a latency budget measured on that phone.",
    no_args_is_help=True,
    add_completion=True,  # `hwnas --install-completion` (bash, zsh, fish, PowerShell)
)


def _print_version(value: bool) -> None:
    if value:
        from . import __version__

        print(f"{PROG} {__version__}")
        raise typer.Exit(0)


@app.callback()
def _options(version: bool = typer.Option(False, "--version", help="Print the version and exit.", is_eager=True,
                                          callback=_print_version)) -> None:
    """Find the best network for a real phone under a latency budget measured on that phone."""


def _register_commands() -> None:
    from .commands import arch, devices, export, filter as filter_cmd, latency, report, run as run_cmd, search, shrink, spaces, train

    for module in (run_cmd, spaces, arch, latency, devices, train, shrink, filter_cmd, search, export, report):
        module.register(app)


_register_commands()


def _command_path(argv: Sequence[str]) -> str:
    """``hwnas tables import`` from the arguments: the command whose options were refused."""
    cmd, names = typer.main.get_command(app), [PROG]
    for token in argv:
        sub = getattr(cmd, "commands", {}).get(token)
        if sub is None:
            break
        cmd = sub
        names.append(token)
    return " ".join(names)


def usage_error_line(e: UsageError, argv: Sequence[str]) -> str:
    """One line: what the parser refused and where to read the command's options."""
    ctx = e.ctx  # the parser's own errors (an option without its value, a value to a flag) carry none
    command = ctx.command_path if ctx is not None else _command_path(argv)
    msg = e.format_message().strip().rstrip(".")
    param = getattr(e, "param", None)
    if param is not None and getattr(param, "help", None) and msg.startswith("Missing"):
        msg += f" ({param.help.strip().rstrip('.')})"
    subcommands = getattr(ctx.command, "commands", None) if ctx is not None else None
    if subcommands and msg.startswith("No such command"):
        msg += f"; commands: {', '.join(sorted(subcommands))}"
    return f"error: {msg}; see `{command} --help`"


def run(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code (what ``main`` and the tests use)."""
    args = list(argv) if argv is not None else sys.argv[1:]
    try:
        # Outside standalone mode the parser returns a `typer.Exit`'s code instead of raising it.
        rc = app(args=args, prog_name=PROG, standalone_mode=False)
    except HwnasError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except typer.Exit as e:
        return e.exit_code
    except typer.Abort:
        print("aborted", file=sys.stderr)
        return 130
    except NoArgsIsHelpError as e:  # `hwnas` or `hwnas arch` alone: the help, then what is missing
        print(e.format_message())
        command = e.ctx.command_path if e.ctx is not None else PROG
        print(f"error: no command given; run one of the commands above, e.g. `{command} COMMAND --help`", file=sys.stderr)
        return USAGE_EXIT
    except UsageError as e:
        print(usage_error_line(e, args), file=sys.stderr)
        return USAGE_EXIT
    except typer.TyperException as e:  # e.g. a file the parser could not open
        print(f"error: {e.format_message()}", file=sys.stderr)
        return USAGE_EXIT
    except KeyboardInterrupt:
        print("interrupted; what was finished is saved, run the same command again to continue", file=sys.stderr)
        return 130
    return rc if isinstance(rc, int) else 0


def main() -> None:
    sys.exit(run())
