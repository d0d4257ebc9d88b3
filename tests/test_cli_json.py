"""Scripting: `--json` prints one JSON document on stdout and nothing else; `hwnas --version`; shell completion."""

import json

from hwnas import __version__


def test_version(hwnas_cli):
    r = hwnas_cli("--version")
    assert r.returncode == 0 and r.stdout == f"hwnas {__version__}\n"


def test_search_json_is_the_outcome(hwnas_cli, tmp_path):
    out = tmp_path / "s"
    r = hwnas_cli("search", "--benchmark", "nas-bench-macro", "--latency", "0.9ms", "--population", "6", "--generations", "2",
                  "--out", str(out), "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    best = json.loads((out / "best.json").read_text())
    assert d["best"]["compact"] == best["compact"] and d["best"]["accuracy"] == best["accuracy"]
    assert d["evaluations"] == len((out / "history.jsonl").read_text().splitlines()) == d["evaluated_now"]
    assert d["best"]["latency_ms"] <= 0.9 and d["budgets"]["latency_ms"] == 0.9
    assert d["top10"][0] == d["best"] and d["files"]["best"] == str(out / "best.json")


def test_devices_and_arch_info_json_parse(hwnas_cli):
    r = hwnas_cli("devices", "--json")
    assert r.returncode == 0, r.stderr
    assert "host" in [p["name"] for p in json.loads(r.stdout)["profiles"]]
    r = hwnas_cli("arch", "info", "tiny:111111", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["arch"]["space"] == "tiny"


def test_shell_completion_completes_commands_and_options(hwnas_cli):
    """What the script of `hwnas --install-completion` asks the program (typer's bash protocol)."""
    env = {"_HWNAS_COMPLETE": "complete_bash", "COMP_WORDS": "hwnas ru", "COMP_CWORD": "1"}
    r = hwnas_cli(env=env)
    assert r.returncode == 0 and r.stdout.split() == ["run"], r.stderr
    r = hwnas_cli(env={**env, "COMP_WORDS": "hwnas run --na", "COMP_CWORD": "2"})
    assert r.stdout.split() == ["--name"]
