"""hwnas export: parity of exported files, quantized variants, sidecar, bad input (no partial output)."""

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from hwnas.cli import run
from hwnas.errors import HwnasError
from hwnas.export import export_arch
from hwnas.export import parity as parity_mod
from hwnas.export.calibration import builtin_images
from hwnas.export.parity import check_parity, random_inputs
from hwnas.export.runtime import load_runner
from hwnas.nn import build_network
from hwnas.space import create_space

# proxyless at a reduced input resolution keeps the default suite fast: the graph (21 MBConv
# layers, every op and weight) is the full one, only the feature maps are smaller. The
# 224x224 nets are exported in tests/test_export_slow.py.
# TFLite conversion of a proxyless net takes seconds each (it is the op count, not the
# resolution, that costs), so the default suite converts 3 of them and the slow test 10 more
# at 224x224 plus 10 at reduced resolution.
PARITY_SPACES = [("tiny", {}, 10), ("proxyless", {"resolution": 64}, 3)]


def quiet_export(*args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return export_arch(*args, **kw)


def listing(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


def random_archs(space_name: str, args: dict, n: int, seed: int = 123) -> list:
    space = create_space(space_name, **args)
    rng = np.random.default_rng(seed)
    archs: list = []
    while len(archs) < n:
        a = space.sample(rng)
        if a not in archs:
            archs.append(a)
    return archs


def check_fp32_parity(tmp_path: Path, archs: list) -> dict:
    """ONNX and TFLite fp32 of each arch: max abs err <= 1e-4, top-1 100% on 64 random inputs."""
    worst = {"onnx": 0.0, "tflite": 0.0}
    for i, arch in enumerate(archs):
        for fmt in ("onnx", "tflite"):
            r = quiet_export(arch, fmt=fmt, out=tmp_path, name=f"a{i}", seed=i)
            (p,) = r.parity
            assert p.n == 64 and p.inputs == "random" and p.precision == "fp32"
            assert p.max_abs_err <= 1e-4, (arch.compact(), fmt, p.max_abs_err)
            assert p.top1_agreement == 1.0, (arch.compact(), fmt, p.top1_agreement)
            assert p.logit_scale > 0  # a net whose output is all zeros would match trivially
            worst[fmt] = max(worst[fmt], p.max_abs_err)
            side = json.loads(r.sidecar.read_text())
            assert side["arch"] == arch.to_dict() and side["parity"][0]["passed"] is True
    # archs x 2 formats, each a file + its sidecar, and no temp leftovers
    assert len(listing(tmp_path)) == len(archs) * 2 * 2
    return worst


@pytest.mark.parametrize("space_name,args,n", PARITY_SPACES, ids=[s for s, _, _ in PARITY_SPACES])
def test_random_archs_fp32_parity_onnx_and_tflite(tmp_path, space_name, args, n):
    worst = check_fp32_parity(tmp_path, random_archs(space_name, args, n))
    print(f"\n{space_name}{args}: worst fp32 max abs err onnx {worst['onnx']:.3g}, tflite {worst['tflite']:.3g} over {n} archs")


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_torch_thread):
    yield


@pytest.fixture(scope="module")
def calibrated_tiny(tmp_path_factory):
    """A tiny net whose BN statistics are those of the built-in data (forward passes in train
    mode), so its activations have the ranges of a trained net's, and whose logits are
    class-centred; saved as a state dict."""
    from hwnas.train.data import make_builtin

    space = create_space("tiny")
    arch = space.arch(["k3e3", "k5e3", "k3e6", "k3e3", "k5e6", "k3e3"])
    torch.manual_seed(0)
    net = build_network(arch)
    data = make_builtin(256, seed=5)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None  # cumulative average over the batches
    net.train()
    with torch.no_grad():
        for s in range(0, len(data), 64):
            net(data.batch(list(range(s, s + 64)))[0])
    net.eval()
    # centre and scale the logits over the data: an untrained net's top-1 is one class for most
    # images, which would make agreement trivial; now the top-1 is spread over the classes
    fc = net.head[-1].fc
    with torch.no_grad():
        logits = net(data.batch(list(range(len(data))))[0])
        fc.bias -= logits.mean(0)
        scale = 2.0 / (logits - logits.mean(0)).std()
        fc.weight *= scale
        fc.bias *= scale
    path = tmp_path_factory.mktemp("w") / "tiny.pt"
    torch.save({"arch": arch.to_dict(), "state_dict": net.state_dict()}, path)
    return arch, net, path


INT8_GAP = ("int8 top-1 agreement with fp32 on this untrained, class-balanced net is 80-92% (min-max PTQ, 64 or 512 "
            "calibration images), below the 95% bound; not yet shown on a trained net")


@pytest.mark.parametrize("fmt,precision,bound", [
    ("tflite", "fp16", 0.98),
    pytest.param("tflite", "int8", 0.95, marks=pytest.mark.xfail(strict=True, raises=HwnasError, reason=INT8_GAP)),
    pytest.param("onnx", "int8", 0.95, marks=pytest.mark.xfail(strict=True, raises=HwnasError, reason=INT8_GAP)),
])
def test_quantized_top1_agreement_on_builtin_data(tmp_path, calibrated_tiny, fmt, precision, bound):
    arch, net, weights = calibrated_tiny
    r = export_arch(arch, weights=weights, fmt=fmt, precision=precision, out=tmp_path)
    (p,) = r.parity
    assert p.inputs == "built-in" and p.n == 64 and p.precision == precision
    assert p.top1_agreement >= bound, p.summary()
    # independently: 256 more built-in images, file vs the trained PyTorch net
    x = builtin_images(32, 256, seed=4242)
    with torch.no_grad():
        ref = net(torch.from_numpy(x)).numpy()
    got = load_runner(r.path)(x)
    agree = float(np.mean(got.argmax(1) == ref.argmax(1)))
    assert np.bincount(ref.argmax(1), minlength=10).max() <= 0.4 * len(ref)  # agreement is not trivial
    print(f"\n{fmt} {precision}: top-1 agreement vs fp32 {100 * agree:.1f}% on 256 built-in images "
          f"(export check {100 * p.top1_agreement:.1f}% on 64), max abs err {p.max_abs_err:.3g}")
    assert agree >= bound
    side = json.loads(r.sidecar.read_text())
    assert side["precision"] == precision and side["weights"]["source"] == "state_dict"
    if precision == "int8" and fmt == "tflite":
        assert side["input"]["dtype"] == "int8" and side["input"]["quantization"]["scale"] > 0


def test_state_dict_weights_are_exported(tmp_path):
    space = create_space("tiny")
    arch = space.sample(11)
    torch.manual_seed(42)
    net = build_network(arch).eval()
    for m in net.modules():  # non-default BN statistics, so a fresh net would not match
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    torch.save(net.state_dict(), tmp_path / "w.pt")
    r = quiet_export(arch.compact(), weights=tmp_path / "w.pt", fmt="onnx", out=tmp_path / "out")
    assert r.weights == "state_dict" and r.warnings == []
    x = random_inputs(32, 4, seed=5)
    with torch.no_grad():
        ref = net(torch.from_numpy(x)).numpy()
    assert np.abs(load_runner(r.path)(x) - ref).max() <= 1e-4
    # the check can fail: another net's logits do not match the file
    torch.manual_seed(43)
    assert not check_parity(build_network(arch).eval(), r.path, x, "fp32").passed


def test_fresh_init_warns(tmp_path):
    with pytest.warns(UserWarning, match="freshly initialized"):
        from hwnas.export.weights import load_network

        load_network(create_space("tiny").sample(0), None)
    r = quiet_export("tiny:123456", fmt="onnx", out=tmp_path)
    assert r.weights == "fresh+bn-stats" and any("freshly initialized" in w for w in r.warnings)


def test_cli_export_search_result_file(tmp_path, hwnas_cli):
    """The documented flow: a search's result file (arch nested under "arch") -> hwnas export."""
    arch = create_space("tiny").sample(3)
    best = tmp_path / "best.json"
    best.write_text(json.dumps({"arch": arch.to_dict(), "score": 0.5}))
    out = tmp_path / "exports"
    r = hwnas_cli("export", "--arch", str(best), "--format", "onnx", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert listing(out) == ["best-fp32.onnx", "best-fp32.onnx.json"]
    side = json.loads((out / "best-fp32.onnx.json").read_text())
    space = arch.get_space()
    assert side["arch"] == arch.to_dict() and side["space"] == "tiny"
    assert (side["flops"], side["params"]) == space.flops_params(arch)
    assert side["input"]["shape"] == [1, 3, 32, 32] and side["hwnas_version"]
    assert side["parity"][0]["top1_agreement"] == 1.0 and side["verified"] is True
    assert "parity fp32" in r.stdout and "warning" in r.stderr and "freshly initialized" in r.stderr


# ---- bad input: one-line error, exit 2, nothing written ------------------------------------
def cli_error(capsys, *argv) -> str:
    code = run(["export", *argv])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


@pytest.fixture
def tiny_state_dict(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "tiny.pt"
    torch.save(build_network(create_space("tiny").sample(0)).state_dict(), path)
    return path


def test_bad_inputs_one_line_errors_and_no_output(tmp_path, capsys, tiny_state_dict):
    out = tmp_path / "out"
    tiny = "tiny:" + "1" * 6
    e = cli_error(capsys, "--arch", "no-such-net", "--out", str(out))
    assert "unknown arch 'no-such-net'" in e and "proxyless-mobile" in e
    e = cli_error(capsys, "--arch", "proxyless-mobile", "--weights", str(tiny_state_dict), "--format", "onnx", "--out", str(out))
    assert "do not fit arch" in e and "another arch or space" in e
    e = cli_error(capsys, "--arch", tiny, "--weights", str(tmp_path / "missing.pt"), "--out", str(out))
    assert "not found" in e
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00not a checkpoint" * 50)
    e = cli_error(capsys, "--arch", tiny, "--weights", str(garbage), "--out", str(out))
    assert "corrupt" in e
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(tiny_state_dict.read_bytes()[:2000])
    e = cli_error(capsys, "--arch", tiny, "--weights", str(truncated), "--out", str(out))
    assert "corrupt" in e
    e = cli_error(capsys, "--arch", tiny, "--format", "onnx", "--precision", "fp16", "--out", str(out))
    assert "not supported for onnx" in e and "fp32, int8" in e
    e = cli_error(capsys, "--arch", tiny, "--format", "pdf", "--out", str(out))
    assert "unknown export format" in e
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images here")
    e = cli_error(capsys, "--arch", tiny, "--format", "onnx", "--precision", "int8", "--calibration-data", str(empty), "--out", str(out))
    assert "has no images" in e
    assert listing(out) == []


def test_parity_failure_is_an_error_and_leaves_nothing(tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("user file")
    monkeypatch.setitem(parity_mod.THRESHOLDS, "fp32", (-1.0, 1.0))  # an impossible bound: every file fails
    with pytest.raises(HwnasError, match="failed the parity check"):
        quiet_export("tiny:111111", fmt="onnx", out=out)
    assert listing(out) == ["keep.txt"]
    # with --no-verify the same export is written, marked unverified
    assert run(["export", "--arch", "tiny:111111", "--format", "onnx", "--out", str(out), "--no-verify"]) == 0
    side = json.loads((out / "tiny-111111-fp32.onnx.json").read_text())
    assert side["verified"] is False and side["parity"] == []


def test_failed_conversion_leaves_no_partial_file(tmp_path, monkeypatch):
    from hwnas.export import exporters

    def broken(module, example, path):
        Path(path).write_bytes(b"half a model")  # what a converter that dies midway leaves
        raise RuntimeError("converter crashed")

    monkeypatch.setitem(exporters.EXPORTERS, ("onnx", "fp32"), broken)
    with pytest.raises(RuntimeError):
        quiet_export("tiny:111111", fmt="onnx", out=tmp_path)
    assert listing(tmp_path) == []


@pytest.fixture(scope="module")
def tiny_supernet_checkpoint(tmp_path_factory):
    """A supernet checkpoint in the format `hwnas train` writes (weights perturbed so that
    inherited weights differ from a fresh init)."""
    from hwnas.nn import SuperNet
    from hwnas.train.checkpoint import save_checkpoint

    torch.manual_seed(1)
    space = create_space("tiny")
    supernet = SuperNet(space)
    with torch.no_grad():
        for m in supernet.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    folder = tmp_path_factory.mktemp("run")
    save_checkpoint(folder, "supernet", {"model": supernet.state_dict()},
                    {"space": "tiny", "space_args": {}, "data": "builtin", "config": {}, "pool": {"entries": []}})
    return folder, supernet.eval()


def test_weights_inherited_from_supernet_checkpoint(tmp_path, tiny_supernet_checkpoint, capsys):
    folder, supernet = tiny_supernet_checkpoint
    arch = create_space("tiny").sample(21)
    best = tmp_path / "best.json"
    best.write_text(json.dumps({**arch.to_dict(), "supernet": str(folder)}))  # as `hwnas search` writes it
    for weights in (folder, folder / "supernet.json", None):
        r = export_arch(str(best), weights=weights, fmt="onnx", out=tmp_path / "out")
        assert r.weights == "supernet" and r.parity[0].passed
        x = random_inputs(32, 8, seed=1)
        with torch.no_grad():
            ref = supernet(torch.from_numpy(x), arch).numpy()
        assert np.abs(load_runner(r.path)(x) - ref).max() <= 1e-4
    # an arch of another space than the checkpoint's, and a corrupt checkpoint: one-line errors, nothing written
    out = tmp_path / "bad"
    e = cli_error(capsys, "--arch", "proxyless-mobile", "--weights", str(folder), "--format", "onnx", "--out", str(out))
    assert "space 'tiny'" in e and "proxyless" in e
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in folder.iterdir():
        (broken / f.name).write_bytes(f.read_bytes())
    pt = broken / "supernet.pt"
    pt.write_bytes(pt.read_bytes()[:-100])
    e = cli_error(capsys, "--arch", str(best), "--weights", str(broken / "supernet.json"), "--format", "onnx", "--out", str(out))
    assert "corrupt" in e
    assert listing(out) == []


def test_latency_verified_against_the_table(tmp_path, capsys):
    """With --table: the table's prediction, and the file timed by the table's backend on its device."""
    from hwnas.latency.table import LatencyTable

    table_path = Path(__file__).resolve().parents[1] / "latency_tables" / "host-tiny-onnxruntime.json"
    if not table_path.is_file():
        pytest.skip("no host tiny onnxruntime table in latency_tables/")
    arch = create_space("tiny").sample(5)
    r = quiet_export(arch, fmt="onnx", out=tmp_path, table=table_path, latency_runs=10)
    lat = r.latency
    assert lat is not None and lat.backend == "onnxruntime" and lat.device == "host"
    assert lat.predicted_ms == pytest.approx(LatencyTable.load(table_path).predict(arch)[0])
    assert lat.measured_ms is not None and lat.measured_ms > 0
    assert lat.error_pct == pytest.approx(100 * (lat.predicted_ms - lat.measured_ms) / lat.measured_ms)
    side = json.loads(r.sidecar.read_text())
    assert side["latency"]["predicted_ms"] == lat.predicted_ms and side["latency"]["table"].endswith("host-tiny-onnxruntime.json")
    # a table of another space is refused before anything is exported
    e = cli_error(capsys, "--arch", "proxyless-mobile", "--format", "onnx", "--table", str(table_path), "--out", str(tmp_path / "x"))
    assert "space 'tiny', not 'proxyless'" in e
    assert listing(tmp_path / "x") == []
