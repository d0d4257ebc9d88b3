"""The README runs itself: every shell block marked ``<!-- runnable -->`` is run, in order, in a
temporary copy of the repository, with ``HWNAS_QUICK=1`` (the reduced sizes the README
documents), and must finish without an error.

Blocks marked ``<!-- runnable slow -->`` (the tour: training, search and a TFLite export,
about 1.5 CPU-minutes even at the quick sizes) run with the others, in README order, in the
slow-marked test only (``pytest -m slow tests/test_readme_runs.py``); the default suite runs
the quick blocks.

The blocks run one after another in the same copy (the tour's search uses the supernet its
training left), each under ``bash -euo pipefail`` so a failing command anywhere in a block fails
it. ``hwnas`` on the PATH is the copy's CLI.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO

MARK = "<!-- runnable -->"
SLOW_MARK = "<!-- runnable slow -->"


def runnable_blocks(text: str, slow: bool = False) -> list[str]:
    """The body of every fenced shell block whose fence directly follows a marker line (with
    ``slow``, the slow-marked blocks too), in README order."""
    marks = f"(?:{re.escape(MARK)}|{re.escape(SLOW_MARK)})" if slow else re.escape(MARK)
    blocks = re.findall(r"^" + marks + r"[ \t]*\n```(?:bash|sh|shell)[ \t]*\n(.*?)^```[ \t]*$", text, flags=re.M | re.S)
    return [b for b in blocks if b.strip()]


def test_marked_blocks_are_found_and_every_marker_has_a_block():
    text = (REPO / "README.md").read_text()
    quick, every = runnable_blocks(text), runnable_blocks(text, slow=True)
    lines = [line.strip() for line in text.splitlines()]
    assert lines.count(MARK) == len(quick) >= 1 and lines.count(SLOW_MARK) == len(every) - len(quick) >= 1
    assert "HWNAS_QUICK=1" in text  # the README documents the reduced sizes the blocks run with here
    # the parser: only a block right after a marker counts
    sample = f"```bash\nnot me\n```\n{MARK}\n```bash\nhwnas spaces\n```\n{SLOW_MARK}\n```bash\nhwnas train\n```\n"
    assert runnable_blocks(sample) == ["hwnas spaces\n"]
    assert runnable_blocks(sample, slow=True) == ["hwnas spaces\n", "hwnas train\n"]


def repo_copy(dest: Path) -> Path:
    """The files git tracks, copied to ``dest`` (what a fresh clone holds)."""
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.splitlines()
    for f in files:
        src = REPO / f
        if src.is_file():
            (dest / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / f)
    return dest


def run_blocks(tmp_path: Path, slow: bool) -> None:
    copy = repo_copy(tmp_path / "repo")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "hwnas"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m hwnas "$@"\n')
    shim.chmod(0o755)
    env = {**os.environ, "HWNAS_QUICK": "1", "PYTHONPATH": str(copy), "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
           "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    blocks = runnable_blocks((copy / "README.md").read_text(), slow=slow)
    for i, block in enumerate(blocks):
        r = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=copy, env=env, capture_output=True, text=True, timeout=1800)
        assert r.returncode == 0, f"README runnable block {i + 1} failed (exit {r.returncode}):\n{block}\n--- stderr ---\n{r.stderr[-3000:]}"
        if "hwnas train" in block or "hwnas search" in block:
            assert "HWNAS_QUICK=1: " in r.stderr  # the reduced sizes are said, never silent


def test_readme_runnable_blocks_run(tmp_path):
    run_blocks(tmp_path, slow=False)


@pytest.mark.slow
def test_readme_runnable_blocks_run_with_the_slow_ones(tmp_path):
    run_blocks(tmp_path, slow=True)
