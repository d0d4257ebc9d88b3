import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# Test data shipped with the repository (see tests/data/README.md): no test reads outside it.
BENCHMARK_LOG = REPO / "tests" / "data" / "benchmark_model_proxyless_mobile.txt"


def run_hwnas(*args: str, cwd: str | os.PathLike | None = None, timeout: float = 600, env: dict | None = None,
              module: str = "hwnas") -> subprocess.CompletedProcess:
    """Run the real CLI in a subprocess (exit code, stdout and stderr as a user sees them);
    ``module`` runs a wrapper of it instead (``tests.kill_after``)."""
    e = dict(os.environ)
    e.setdefault("PYTHONPATH", str(REPO))
    e["PYTHONPATH"] = str(REPO) + os.pathsep + e.get("PYTHONPATH", "")
    e["COLUMNS"] = "200"
    if env:
        e.update(env)
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd or REPO, capture_output=True, text=True, timeout=timeout, env=e)


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


@pytest.fixture
def timed_files(monkeypatch):
    """Every (file name, median ms) any backend made by ``create_backend`` measured, in order.

    Lets a test check a reported latency against the backend's own measurement of the file
    rather than against the report's other fields.
    """
    from hwnas.latency.backends import base

    seen: list[tuple[str, float]] = []
    make = base.create_backend

    def spying(*args, **kwargs):
        backend = make(*args, **kwargs)
        measure = backend.measure

        def recorded(model_path, protocol=None):
            m = measure(model_path, protocol)
            seen.append((Path(model_path).name, m.median_ms))
            return m

        backend.measure = recorded
        return backend

    monkeypatch.setattr(base, "create_backend", spying)
    return seen
