"""Slow export checks: 10 random proxyless archs at the full 224x224 input (and 10 at 64x64)."""

import pytest
import torch

from tests.test_export import check_fp32_parity, random_archs

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.mark.parametrize("resolution", [224, 64])
def test_ten_random_proxyless_archs_fp32_parity(tmp_path, resolution):
    worst = check_fp32_parity(tmp_path, random_archs("proxyless", {"resolution": resolution} if resolution != 224 else {}, 10, seed=456))
    print(f"\nproxyless@{resolution}: worst fp32 max abs err onnx {worst['onnx']:.3g}, tflite {worst['tflite']:.3g} over 10 archs")
