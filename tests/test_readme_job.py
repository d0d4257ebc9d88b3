"""The README's main-job command, as printed, run twice in a row from a clean folder: both succeed,
the second does nothing (the first takes several minutes on 2 cores, so slow-marked)."""

from __future__ import annotations

import shlex
import shutil

import pytest

from .conftest import REPO, run_hwnas

SETUP_PREFIX = 'python3.11 -m venv .venv && . .venv/bin/activate && pip install -e ".[litert]" && '


def main_job_commands() -> list[list[str]]:
    """The `hwnas ...` steps of the README's set-up line that installs and runs the main job."""
    lines = [line for line in (REPO / "README.md").read_text().splitlines() if line.startswith(SETUP_PREFIX)]
    assert len(lines) == 1, "the README's set-up has one main-job line"
    steps = [shlex.split(step) for step in lines[0][len(SETUP_PREFIX):].split(" && ")]
    assert [s[:2] for s in steps] == [["hwnas", "run"]]
    return [s[1:] for s in steps]


def test_readme_main_job_line_is_found():
    (step,) = main_job_commands()
    assert step[step.index("--device") + 1] == "host" and "--latency" in step


@pytest.mark.slow
def test_readme_main_job_runs_twice(tmp_path):
    shutil.copytree(REPO / "latency_tables", tmp_path / "latency_tables", ignore=shutil.ignore_patterns("*.journal*"))
    steps = main_job_commands()
    first = [run_hwnas(*step, cwd=tmp_path, timeout=7200) for step in steps]
    for r in first:
        assert r.returncode == 0, r.stderr
    model = {p.name: p.read_bytes() for p in (tmp_path / "runs").glob("*/export/*.tflite")}
    assert len(model) == 1
    second = [run_hwnas(*step, cwd=tmp_path, timeout=7200) for step in steps]
    for r in second:
        assert r.returncode == 0, r.stderr
    assert "is finished: nothing to do" in second[0].stderr
    assert {p.name: p.read_bytes() for p in (tmp_path / "runs").glob("*/export/*.tflite")} == model  # same winner, same file
