"""The layer contract: a package never imports one above it (import-linter, ``pyproject.toml``)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ["space", "nn", "formats", "device", "latency", "train", "search", "export", "report", "pipeline", "commands", "cli"]


def lint_imports(cwd: Path) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("lint-imports")
    cmd = [str(exe)] if exe.exists() else ["lint-imports"]
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_contract_lists_the_layers_lowest_first():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (contract,) = [c for c in cfg["contracts"] if c["type"] == "layers"]
    names = [name.strip("()") for name in contract["layers"]]  # "(hwnas.x)": a layer that may not exist yet
    packages = [name.removeprefix("hwnas.") for name in names if name.startswith("hwnas.")]
    top_down = [p for p in packages if p in LAYERS]
    assert list(reversed(top_down)) == LAYERS


def test_lint_imports_passes():
    r = lint_imports(ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 kept, 0 broken" in r.stdout


def test_lint_imports_rejects_an_import_from_a_higher_layer(tmp_path):
    shutil.copytree(ROOT / "hwnas", tmp_path / "hwnas", ignore=shutil.ignore_patterns("__pycache__", "data"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    (tmp_path / "hwnas" / "latency" / "upward.py").write_text("from ..search import constraints  # noqa: F401\n")
    r = lint_imports(tmp_path)
    assert r.returncode != 0
    assert "hwnas.latency is not allowed to import hwnas.search" in r.stdout
