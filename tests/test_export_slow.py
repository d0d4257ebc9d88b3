"""Slow export checks: the issue's full count -- 10 random archs of tiny and of proxyless (at the
full 224x224 input, and 10 more at 64x64) to ONNX and TFLite fp32; proxyless-mobile int8 TFLite
size and full-integer I/O (two conversions of the full net)."""

import numpy as np
import pytest

from hwnas.space import create_space
from tests.test_export import check_fp32_parity, quiet_export, random_archs
from hwnas.export.api import N_PARITY_QUANTIZED

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_torch_thread):
    yield


def test_ten_random_tiny_archs_fp32_parity(tmp_path):
    worst = check_fp32_parity(tmp_path, random_archs("tiny", {}, 10, seed=456, cover_ops=True))
    print(f"\ntiny: worst fp32 max abs err onnx {worst['onnx']:.3g}, tflite {worst['tflite']:.3g} over 10 archs")


@pytest.mark.parametrize("resolution", [224, 64])
def test_ten_random_proxyless_archs_fp32_parity(tmp_path, resolution):
    worst = check_fp32_parity(tmp_path, random_archs("proxyless", {"resolution": resolution} if resolution != 224 else {}, 10, seed=456))
    print(f"\nproxyless@{resolution}: worst fp32 max abs err onnx {worst['onnx']:.3g}, tflite {worst['tflite']:.3g} over 10 archs")


def test_tflite_int8_is_full_integer_and_small(tmp_path):
    """proxyless-mobile's weights (4.08M params): int8 file <= 0.3x the fp32 file, int8 in and out."""
    from ai_edge_litert.interpreter import Interpreter

    from hwnas.space.named import NAMED_ARCHS

    arch = create_space("proxyless", resolution=64).arch(list(NAMED_ARCHS.create("proxyless-mobile").ops))
    fp32 = quiet_export(arch, fmt="tflite", precision="fp32", out=tmp_path, verify=False)
    int8 = quiet_export(arch, fmt="tflite", precision="int8", out=tmp_path)
    ratio = int8.size_bytes / fp32.size_bytes
    print(f"\nproxyless-mobile TFLite sizes: fp32 {fp32.size_bytes / 1e6:.2f} MB, int8 {int8.size_bytes / 1e6:.2f} MB, ratio {ratio:.3f}; "
          f"int8 top-1 agreement {100 * int8.parity[0].top1_agreement:.1f}%")
    assert ratio <= 0.3
    p = int8.parity[0]
    assert p.precision == "int8" and p.n == N_PARITY_QUANTIZED
    if not p.passed:  # fresh weights: reported, not enforced (see test_quantized_top1_agreement_of_a_trained_net)
        assert any("not enforced" in w for w in int8.warnings)
    interp = Interpreter(model_path=str(int8.path))
    assert interp.get_input_details()[0]["dtype"] == np.int8 and interp.get_output_details()[0]["dtype"] == np.int8
    types = {d["dtype"] for d in interp.get_tensor_details()}
    assert np.int8 in types
