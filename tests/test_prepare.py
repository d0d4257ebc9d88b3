"""``--export-only``: profile and validate convert their files into the caches the timed runs read,
time nothing and write no table, and the timed run that follows converts nothing."""

import hashlib
import json
import shutil

import pytest

from hwnas.latency import prepare
from hwnas.latency.blocks import block_file
from hwnas.latency.drift import anchor_arch
from hwnas.latency.keys import space_slots
from hwnas.latency.table import LatencyTable
from hwnas.latency.validate import network_file, validation_archs
from hwnas.space import create_space

from .conftest import REPO, run_hwnas

FAST = ["--runs", "1", "--warmup", "0", "--rounds", "1", "--min-time", "0", "--anchor-every", "0"]


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_torch_thread):
    yield


def _cli(tmp_path, *args):
    return run_hwnas(*args, env={"HWNAS_CACHE_DIR": str(tmp_path / "cache")})


def _mtimes(paths):
    return {p: p.stat().st_mtime_ns for p in paths}


def test_profile_export_only_converts_every_block_and_the_timed_run_converts_none(tmp_path):
    out = tmp_path / "t.json"
    r = _cli(tmp_path, "profile", "--space", "tiny", "--export-only", "--out", str(out))
    assert r.returncode == 0, r.stderr
    slots = space_slots(create_space("tiny"))
    assert f"{len(slots)} of {len(slots)} blocks ready to time ({len(slots)} converted now, 0 failed)" in r.stdout
    assert not out.exists() and not list(tmp_path.glob("t.json*"))  # no table, no journal, no lock left
    files = [block_file(k, "onnx", tmp_path / "cache" / "blocks") for k in slots]
    anchor = network_file(anchor_arch(create_space("tiny")), "onnx", tmp_path / "cache" / "blocks")
    assert all(p.stat().st_size > 0 for p in files + [anchor])

    again = _cli(tmp_path, "profile", "--space", "tiny", "--export-only", "--out", str(out))
    assert again.returncode == 0 and f"({0} converted now, 0 failed)" in again.stdout

    before = _mtimes(files)
    timed = _cli(tmp_path, "profile", "--space", "tiny", "--out", str(out), *FAST)
    assert timed.returncode == 0, timed.stderr
    assert _mtimes(files) == before  # the timed run read the converted files, it converted none
    assert len(LatencyTable.load(out).entries) == len(slots)


def test_validate_export_only_converts_the_networks_validate_times(tmp_path):
    table = tmp_path / "host-tiny-onnxruntime.json"
    shutil.copy(REPO / "latency_tables" / "host-tiny-onnxruntime.json", table)
    digest = hashlib.sha256(table.read_bytes()).hexdigest()
    r = _cli(tmp_path, "validate", "--table", str(table), "--samples", "4", "--seed", "3", "--export-only")
    assert r.returncode == 0, r.stderr
    assert "4 of 4 networks ready to time (4 converted now, 0 failed)" in r.stdout
    _, archs = validation_archs(LatencyTable.load(table), 4, 3)
    assert all(network_file(a, "onnx", tmp_path / "cache" / "blocks").stat().st_size > 0 for a in archs)
    assert hashlib.sha256(table.read_bytes()).hexdigest() == digest  # nothing calibrated, nothing stored
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", table.name]  # no report, journal or plot


def test_a_block_that_fails_to_convert_is_reported_and_the_others_convert(tmp_path, monkeypatch):
    real = prepare.export_block
    bad = next(k for k in space_slots(create_space("tiny")) if k.startswith("mbconv"))

    def export_block(key, *a, **kw):
        if key == bad:
            raise RuntimeError("unsupported op\nsecond line")
        return real(key, *a, **kw)

    monkeypatch.setattr(prepare, "export_block", export_block)
    done = prepare.prepare_blocks("tiny", "onnx", cache_dir=tmp_path, anchor=False)
    assert done.failed == {bad: "export failed: RuntimeError: unsupported op"}
    assert done.ready == done.total - 1 == done.converted
    assert not block_file(bad, "onnx", tmp_path).exists()
    assert json.dumps(done.failed)  # plain data, printable by the CLI
