import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"


def run_hwnas(*args: str, cwd: str | os.PathLike | None = None, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the real CLI in a subprocess (exit code, stdout and stderr as a user sees them)."""
    e = dict(os.environ)
    e.setdefault("PYTHONPATH", str(REPO))
    e["PYTHONPATH"] = str(REPO) + os.pathsep + e.get("PYTHONPATH", "")
    e["COLUMNS"] = "200"
    if env:
        e.update(env)
    return subprocess.run([sys.executable, "-m", "hwnas", *args], cwd=cwd or REPO, capture_output=True, text=True, timeout=timeout, env=e)


@pytest.fixture
def hwnas_cli():
    return run_hwnas


@pytest.fixture(scope="module")
def one_torch_thread():
    """The machine's cores are shared; one intra-op thread avoids spin-wait contention."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
