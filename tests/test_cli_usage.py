"""Usage errors: every command, run as a user runs it, answers a mistake with one line and exit 2.

The commands are enumerated from the typer app, so a command added later is covered without
editing this file. For each: a missing required option/argument, an option given without its
value, an unknown option and a bad value (text for a number, a value for a flag).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import typer

from hwnas.cli import app

from .conftest import run_hwnas

USAGE_EXIT = 2


def _commands(cmd=None, path=()) -> list[tuple[tuple[str, ...], object]]:
    """(path, click command) of every command a user can invoke, groups with a callback included."""
    cmd = cmd if cmd is not None else typer.main.get_command(app)
    subs = getattr(cmd, "commands", None) or {}
    out = []
    for name, sub in sorted(subs.items()):
        out += _commands(sub, path + (name,))
    if path and (not subs or getattr(cmd, "invoke_without_command", False)):
        out.append((path, cmd))
    return out


COMMANDS = _commands()


def _is_number(p) -> bool:
    return p.type_descriptor.annotation in (int, float)


def _required_args(cmd) -> list[str]:
    """Placeholder values for every required parameter (so that only the mistake under test is wrong)."""
    args: list[str] = []
    for p in cmd.params:
        if p.required:
            args += ["X"] if p.param_type_name == "argument" else [p.opts[0], "X"]
    return args


def _cases() -> list[tuple[str, tuple[str, ...]]]:
    cases = []
    for path, cmd in COMMANDS:
        name = " ".join(path)
        required = [p for p in cmd.params if p.required]
        options = [p for p in cmd.params if p.param_type_name == "option"]
        valued = [p for p in options if not p.is_flag]
        flags = [p for p in options if p.is_flag]
        base = list(path) + _required_args(cmd)
        if required:
            cases.append((f"{name}: missing {required[0].name}", tuple(path)))
        if valued:
            cases.append((f"{name}: {valued[-1].opts[0]} without its value", tuple(base + [valued[-1].opts[0]])))
        cases.append((f"{name}: unknown option", tuple(base + ["--no-such-option", "1"])))
        numbers = [p for p in valued if _is_number(p)]
        if numbers:
            cases.append((f"{name}: {numbers[0].opts[0]} abc", tuple(base + [numbers[0].opts[0], "abc"])))
        elif flags:
            cases.append((f"{name}: {flags[0].opts[0]}=abc", tuple(base + [f"{flags[0].opts[0]}=abc"])))
    cases += [
        ("unknown command", ("nosuchcmd",)),
        ("unknown subcommand", ("arch", "nosuchcmd")),
        ("issue: export --format tflite without --arch, newest search missing", ("export", "--format", "tflite")),
        ("issue: search --latncy", ("search", "--latncy", "1ms")),
        ("issue: search --population abc", ("search", "--population", "abc")),
        ("issue: tables import without --device", ("tables", "import", "x.yaml")),
    ]
    return cases


CASES = _cases()


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict[tuple[str, ...], object]:
    """Every case run once as a subprocess, two at a time (each is a fresh interpreter), in an empty folder."""
    cwd = tmp_path_factory.mktemp("usage")
    with ThreadPoolExecutor(max_workers=2) as pool:
        done = pool.map(lambda argv: (argv, run_hwnas(*argv, cwd=cwd, timeout=120)), [argv for _, argv in CASES])
        return dict(done)


def test_every_command_is_enumerated():
    names = {" ".join(p) for p, _ in COMMANDS}
    assert {"train", "search", "export", "profile", "validate", "tables import", "arch info", "spaces",
            "spaces show", "devices", "device check", "device setup"} <= names


@pytest.mark.parametrize("label,argv", CASES, ids=[c[0] for c in CASES])
def test_usage_error_is_one_line_exit_2(results, label, argv):
    r = results[argv]
    assert r.returncode == USAGE_EXIT, (argv, r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr + r.stdout
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert "hwnas" in lines[0]  # names the command to run next: its --help, or the one to run first


def test_unknown_option_names_the_command_and_suggests():
    r = run_hwnas("search", "--latncy", "1ms")
    assert "--latncy" in r.stderr and "--latency" in r.stderr and "`hwnas search --help`" in r.stderr


def test_option_without_value_names_its_subcommand():
    r = run_hwnas("train", "--space")
    assert r.returncode == USAGE_EXIT
    assert r.stderr.strip() == "error: Option '--space' requires an argument; see `hwnas train --help`"


def test_unknown_command_lists_the_commands():
    r = run_hwnas("nosuchcmd")
    assert "'nosuchcmd'" in r.stderr and "train" in r.stderr and "export" in r.stderr


def test_bare_hwnas_prints_help_and_exits_2():
    for argv in ((), ("arch",), ("tables",), ("device",)):
        r = run_hwnas(*argv)
        assert r.returncode == USAGE_EXIT, argv
        assert "Usage: hwnas" in r.stdout and "Traceback" not in r.stderr
        assert r.stderr.strip().startswith("error: no command given") and len(r.stderr.strip().splitlines()) == 1


def test_bad_widths_is_one_line(tmp_path):
    table = tmp_path / "t.yaml"
    table.write_text("{}\n")
    r = run_hwnas("tables", "import", str(table), "--device", "d", "--widths", "a,b", cwd=tmp_path)
    assert r.returncode == USAGE_EXIT and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == ["error: --widths 'a,b' must be positive whole numbers separated by commas, e.g. 24,40,80,96,192,320"]


def test_help_shows_flags_as_flags():
    """Item 4: no `<bool>` after a flag that takes no value; every flag is still listed."""
    for path, cmd in COMMANDS:
        r = run_hwnas(*path, "--help")
        assert r.returncode == 0, path
        assert "<bool>" not in r.stdout, (path, r.stdout)
        for p in cmd.params:
            if p.param_type_name == "option" and p.is_flag:
                assert p.opts[0] in r.stdout
        assert f"Usage: hwnas {' '.join(path)}" in r.stdout  # the program's name, not `python -m hwnas`
