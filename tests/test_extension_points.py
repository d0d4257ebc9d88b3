"""ARCHITECTURE.md's "where to add things" holds: a new model format or searcher is one file that
calls the documented registration point, and the pipeline (profiler blocks, export and parity;
``run_search``) uses it."""

import contextlib
import importlib
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hwnas.formats import format_names, get_format, unregister_format

ROOT = Path(__file__).resolve().parents[1]

# The one new file a user writes: TorchScript files as a toy format, run on the host by torch.
TOY_FORMAT = '''
from pathlib import Path

import numpy as np
import torch

from hwnas.formats import ModelFormat, register_format


def export_fp32(module, example, path):
    with torch.no_grad():
        torch.jit.trace(module.eval(), example).save(str(path))
    return Path(path)


def runner(path, threads):
    net = torch.jit.load(str(path)).eval()

    def run(x):
        with torch.no_grad():
            return net(torch.from_numpy(np.asarray(x, dtype=np.float32))).numpy()

    return run


register_format(ModelFormat(name="toyscript", extension=".toypt", exporters={"fp32": export_fp32}, runner=runner,
                            version_tag=lambda: "toyscript-1", host_runtime="torch.jit"))
'''


def documented_files(what: str) -> int:
    """The plug-in file count ARCHITECTURE.md gives for adding ``what``."""
    text = (ROOT / "ARCHITECTURE.md").read_text()
    m = re.search(rf"^\| {re.escape(what)} \| \d+ \| (\d+) \|", text, re.M)
    assert m, f"ARCHITECTURE.md has no row for {what!r}"
    return int(m.group(1))


def hwnas_tree_state() -> str:
    return subprocess.run(["git", "status", "--porcelain", "--", "hwnas"], cwd=ROOT, capture_output=True, text=True).stdout


@contextlib.contextmanager
def user_plugin(folder: Path, module: str, source: str, monkeypatch, unregister):
    """A plug-in as a user writes it: one file in their own folder, imported before use; on the
    way out it is unregistered and hwnas/ must be as it was (nothing of hwnas/ edited to add it)."""
    folder.mkdir()
    (folder / f"{module}.py").write_text(source)
    monkeypatch.syspath_prepend(str(folder))
    before = hwnas_tree_state()
    sys.modules.pop(module, None)
    importlib.import_module(module)
    yield sorted(p.name for p in folder.iterdir() if p.suffix == ".py")
    unregister()
    sys.modules.pop(module, None)
    assert hwnas_tree_state() == before


@pytest.fixture
def toy_format(tmp_path, monkeypatch):
    with user_plugin(tmp_path / "plugin", "toyformat", TOY_FORMAT, monkeypatch, lambda: unregister_format("toyscript")) as files:
        yield files


def test_a_model_format_is_one_file_through_register_format(toy_format, tmp_path):
    from hwnas.export.api import export_arch
    from hwnas.latency.blocks import export_block
    from hwnas.latency.keys import space_slots
    from hwnas.space import create_space

    assert toy_format == ["toyformat.py"] and len(toy_format) == documented_files("a model format")
    assert "toyscript" in format_names() and get_format("toyscript").precisions == ["fp32"]

    # the profiler exports a block through it (cached under the format's version tag and extension)
    key, slot = next(iter(space_slots(create_space("tiny")).items()))
    block = export_block(key, slot, "toyscript", tmp_path / "cache")
    assert block.suffix == ".toypt" and block.parent.name == "toyscript-1" and block.stat().st_size > 0

    # hwnas export writes it and checks its parity on the format's own runner
    r = export_arch("tiny:111111", fmt="toyscript", out=tmp_path / "out")
    assert r.path.name.startswith("tiny-111111-") and r.path.name.endswith("-fp32.toypt") and r.path.is_file()
    (p,) = r.parity
    assert p.passed and p.runtime == "torch.jit" and p.max_abs_err < 1e-4
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    from hwnas.formats import load_runner

    assert load_runner(r.path)(x).shape == (2, 10)


def test_an_unknown_precision_of_the_new_format_is_a_one_line_error(toy_format):
    from hwnas.errors import HwnasError
    from hwnas.formats import check_format

    with pytest.raises(HwnasError, match="not supported for toyscript export; use one of: fp32"):
        check_format("toyscript", "int8")


# The one new file of a searcher plug-in: uniformly random feasible archs.
TOY_SEARCHER = '''
from hwnas.search.base import Searcher, register_searcher


@register_searcher("toy-feasible-random")
class ToyFeasibleRandom(Searcher):
    name = "toy-feasible-random"
    options = ()

    def _run(self, problem, max_evaluations, rng):
        while not self.terminated(problem):
            row = problem.sample_feasible(rng, 1)[0]
            problem.evaluate([problem.encoding.decode(row)])
        return {"toy": True}
'''


@pytest.fixture
def toy_searcher(tmp_path, monkeypatch):
    from hwnas.search.base import SEARCHERS

    with user_plugin(tmp_path / "splugin", "toysearcher", TOY_SEARCHER, monkeypatch,
                     lambda: SEARCHERS.unregister("toy-feasible-random")) as files:
        yield files


def test_a_searcher_is_one_file_through_register_searcher(toy_searcher, tmp_path):
    from hwnas.search.api import run_search

    assert toy_searcher == ["toysearcher.py"] and len(toy_searcher) == documented_files("a searcher")
    out = run_search(flops="200M", benchmark="nas-bench-macro", algorithm="toy-feasible-random", max_evaluations=10,
                     out=tmp_path / "toy", plot=False)
    res = out.result
    assert res.algorithm == "toy-feasible-random" and res.n_evaluations == 10 and res.info["toy"] is True
    assert all(r.flops <= 200e6 for r in res.history)  # the problem's constraint, through the documented contract
    assert (tmp_path / "toy" / "best.json").is_file()
