"""hwnas export: parity of exported files, quantized variants, sidecar, bad input (no partial output)."""

import json
import re
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from hwnas.cli import run
from hwnas.errors import HwnasError
from hwnas.export import export_arch
from hwnas.export import parity as parity_mod
from hwnas.export.api import N_PARITY_QUANTIZED
from hwnas.export.parity import check_parity, random_inputs
from hwnas.formats import load_runner
from hwnas.nn import build_network
from hwnas.space import create_space

# The default suite exports 2 random tiny archs (together they use all 7 of its ops) and 1 random
# proxyless arch that uses every op of its space (at 64x64: the graph of 21 MBConv layers, every op
# and weight, is the full one; only the feature maps are smaller). TFLite conversion takes seconds
# per net (the op count costs, not the resolution), so the full count -- 10 random archs of
# each space, and proxyless at 224x224 -- is in tests/test_export_slow.py.
PARITY_SPACES = [("tiny", {}, 2), ("proxyless", {"resolution": 64}, 1)]


def quiet_export(*args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return export_arch(*args, **kw)


def listing(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


def random_archs(space_name: str, args: dict, n: int, seed: int = 123, cover_ops: bool = False) -> list:
    """``n`` distinct seeded random archs; with ``cover_ops`` together they use every op of the space
    (random draws that add no missing op are skipped until every op is in)."""
    space = create_space(space_name, **args)
    rng = np.random.default_rng(seed)
    every_op = {op.id for op in space.ops}
    archs: list = []
    used: set = set()
    while len(archs) < n:
        a = space.sample(rng)
        if a in archs:
            continue
        if cover_ops and used != every_op:
            gained = used | set(a.ops)
            if gained != every_op and (len(archs) == n - 1 or gained == used):
                continue
        archs.append(a)
        used |= set(a.ops)
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
    archs = random_archs(space_name, args, n, cover_ops=True)
    assert set().union(*(a.ops for a in archs)) == {op.id for op in archs[0].get_space().ops}  # every op is exported
    worst = check_fp32_parity(tmp_path, archs)
    print(f"\n{space_name}{args}: worst fp32 max abs err onnx {worst['onnx']:.3g}, tflite {worst['tflite']:.3g} over {n} archs")


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_torch_thread):
    yield


# ---- quantized files of a trained net ---------------------------------------------------------
# An untrained net's logits are nearly tied, so any rounding flips its top-1: the agreement
# bounds are about trained nets. This one is trained briefly on the built-in data (the training
# split `hwnas train` uses, normalized the same way) and judged on its validation split.
TRAIN_ITERATIONS, TRAIN_BATCH = 150, 32  # the benchmark trains longer (benchmarks/export_bench.py --agreement)


@pytest.fixture(scope="module")
def trained_tiny(tmp_path_factory):
    from benchmarks.export_bench import AGREEMENT_OPS, train_tiny

    arch, net, xva, yva, acc = train_tiny(AGREEMENT_OPS, TRAIN_ITERATIONS, TRAIN_BATCH)
    print(f"\ntrained {arch.compact()} for {TRAIN_ITERATIONS} x {TRAIN_BATCH} images: val accuracy {acc:.1f}%")
    assert acc >= 40.0  # well above chance (10%): a trained net, not a random one
    path = tmp_path_factory.mktemp("w") / "tiny.pt"
    torch.save({"arch": arch.to_dict(), "state_dict": net.state_dict()}, path)
    return arch, net, path, xva, yva


@pytest.mark.parametrize("fmt,precision,bound", [("tflite", "fp16", 0.98), ("tflite", "int8", 0.95), ("onnx", "int8", 0.95)])
def test_quantized_top1_agreement_of_a_trained_net(tmp_path, trained_tiny, fmt, precision, bound):
    arch, net, weights, xva, yva = trained_tiny
    r = export_arch(arch, weights=weights, fmt=fmt, precision=precision, out=tmp_path)  # raises if the check fails
    (p,) = r.parity
    assert p.inputs == "built-in" and p.n == N_PARITY_QUANTIZED and p.precision == precision and p.passed
    assert p.top1_agreement >= bound, p.summary()
    assert r.warnings == []  # trained weights: the bound is enforced, not waived
    # independently: the held-out validation split, normalized by the training code, file vs PyTorch
    with torch.no_grad():
        ref = net(torch.from_numpy(xva)).numpy()
    got = load_runner(r.path)(xva)
    agree = float(np.mean(got.argmax(1) == ref.argmax(1)))
    assert np.bincount(ref.argmax(1), minlength=10).max() <= 0.3 * len(ref)  # agreement is not trivial
    acc_file, acc_torch = float(np.mean(got.argmax(1) == yva)), float(np.mean(ref.argmax(1) == yva))
    print(f"\n{fmt} {precision}: top-1 agreement vs fp32 {100 * agree:.1f}% on {len(xva)} held-out val images "
          f"(export check {100 * p.top1_agreement:.1f}% on {p.n}); accuracy {100 * acc_torch:.1f}% -> {100 * acc_file:.1f}%")
    assert agree >= bound
    side = json.loads(r.sidecar.read_text())
    assert side["precision"] == precision and side["weights"]["source"] == "state_dict"
    if precision == "int8":
        assert side["calibration"]["source"] == "built-in" and side["calibration"]["images"] == 256
        assert side["calibration"]["ranges"] == "global min/max"
    if precision == "int8" and fmt == "tflite":
        assert side["input"]["dtype"] == "int8" and side["input"]["quantization"]["scale"] > 0


def test_calibration_images_are_normalized_like_the_training_data():
    """The built-in calibration/parity images carry the training split's normalization, not their own."""
    from hwnas.export.calibration import builtin_images
    from hwnas.train.data import build_datasets, make_builtin

    ds = build_datasets("builtin", n_val=8, n_path_eval=1)
    x = builtin_images(32, 64, seed=3)
    raw = make_builtin(64, 3).images.float() / 255
    expect = ((raw - ds.train.mean) / ds.train.std).numpy()
    assert np.abs(x - expect).max() < 1e-5
    own = make_builtin(64, 3)  # normalized with its own 64 images' statistics: a different input
    assert np.abs(x - own.batch(list(range(64)))[0].numpy()).max() > 1e-2


def test_int8_calibration_from_an_image_folder(tmp_path):
    """A user folder calibrates the ranges; with no images beyond the calibration ones the
    agreement check says it used those same images."""
    from PIL import Image

    folder = tmp_path / "imgs" / "sub"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(6):
        Image.fromarray(rng.integers(0, 256, (40 + i, 48, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    r = quiet_export("tiny:123456", fmt="onnx", precision="int8", calibration_data=tmp_path / "imgs", out=tmp_path / "out")
    side = json.loads(r.sidecar.read_text())
    assert side["calibration"]["source"] == str(tmp_path / "imgs") and side["calibration"]["images"] == 6
    assert side["calibration"]["normalization"]["mean"] == pytest.approx([0.485, 0.456, 0.406])
    assert r.parity[0].inputs == "calibration-folder (calibration images)" and r.parity[0].n == 6


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
    # named after the search's folder and a hash of arch, weights and precision (every search writes a best.json)
    (model, side_file) = listing(out)
    assert re.fullmatch(re.escape(tmp_path.name) + r"-[0-9a-f]{8}-fp32\.onnx", model) and side_file == model + ".json"
    side = json.loads((out / side_file).read_text())
    space = arch.get_space()
    assert side["arch"] == arch.to_dict() and side["space"] == "tiny"
    assert (side["flops"], side["params"]) == space.flops_params(arch)
    assert side["input"]["shape"] == [1, 3, 32, 32] and side["hwnas_version"]
    assert side["parity"][0]["top1_agreement"] == 1.0 and side["parity_verified"] is True and side["latency_checked"] is False
    assert "parity fp32" in r.stdout and "warning" in r.stderr and "freshly initialized" in r.stderr


# what the TFLite toolchain prints on fd 2 when it loads (copied from a real `hwnas export --format tflite`)
BANNERS = """WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
I0000 00:00:1795653443.973859   12547 port.cc:153] oneDNN custom operations are on. You may see slightly different numerical results due to floating-point round-off errors from different computation orders. To turn them off, set the environment variable `TF_ENABLE_ONEDNN_OPTS=0`.
INFO: Created TensorFlow Lite XNNPACK delegate for CPU.
Failed to load /venv/lib/python3.11/site-packages/torchao/_C_mxfp8.cpython-310-x86_64-linux-gnu.so: Could not load this library: /venv/lib/python3.11/site-packages/torchao/_C_mxfp8.cpython-310-x86_64-linux-gnu.so
W1126 00:36:29.690000 12190 torch/utils/_pytree.py:630] <enum 'KernelPreference'> is an Enum subclass and is now natively supported by torch.compile as an opaque value type. Calling register_constant() on Enum subclasses is deprecated and will be an error in a future release.
"""


def test_converter_banners_are_filtered_but_other_stderr_output_is_kept(capfd):
    import os

    from hwnas.export.quiet import banners_filtered

    with banners_filtered():
        os.write(2, BANNERS.encode())
        os.write(2, b"E0000 real failure: model file truncated\n")
        print("python-level warning", file=sys.stderr)
    err = capfd.readouterr().err
    assert sorted(err.splitlines()) == ["E0000 real failure: model file truncated", "python-level warning"]
    with pytest.raises(RuntimeError), banners_filtered():  # an error inside: what it printed still shows
        os.write(2, b"converter: unsupported op\n")
        raise RuntimeError("conversion failed")
    assert capfd.readouterr().err == "converter: unsupported op\n"


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
    (side_file,) = out.glob("tiny-111111-*-fp32.onnx.json")
    side = json.loads(side_file.read_text())
    assert side["parity_verified"] is False and side["parity"] == [] and side["latency_checked"] is False


def test_failed_conversion_leaves_no_partial_file(tmp_path, monkeypatch):
    from hwnas.formats import get_format

    def broken(module, example, path):
        Path(path).write_bytes(b"half a model")  # what a converter that dies midway leaves
        raise RuntimeError("converter crashed")

    monkeypatch.setitem(get_format("onnx").exporters, "fp32", broken)
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


def test_latency_verified_against_the_table(tmp_path, capsys, timed_files):
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
    # the reported time is the backend's measurement of the exported file (between two anchor readings)
    assert [name for name, _ in timed_files][1] == r.path.name and len(timed_files) == 3
    file_ms = timed_files[1][1]
    assert lat.measured_ms == file_ms > 0
    predicted = LatencyTable.load(table_path).predict(arch)[0]
    assert lat.error_pct == pytest.approx(100 * (predicted / file_ms - 1))
    side = json.loads(r.sidecar.read_text())
    assert side["latency"]["predicted_ms"] == lat.predicted_ms and side["latency"]["table"].endswith("host-tiny-onnxruntime.json")
    # a table of another space is refused before anything is exported
    e = cli_error(capsys, "--arch", "proxyless-mobile", "--format", "onnx", "--table", str(table_path), "--out", str(tmp_path / "x"))
    assert "space 'tiny', not 'proxyless'" in e
    assert listing(tmp_path / "x") == []
