"""The exporter functions: the same code writes profiled blocks and deployed networks.

Using one converter for both is what makes a sum of block latencies predict the deployed
file's latency; a different converter (or settings) changes the graph and breaks it.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
from pathlib import Path

import torch
from torch import nn

from ..errors import HwnasError
from ..io import atomic_output_path

ONNX_OPSET = 17


def export_onnx(module: nn.Module, example: torch.Tensor, path: str | Path, opset: int = ONNX_OPSET) -> Path:
    """TorchScript-based ONNX export (dynamo=False, weights inside the file), written atomically."""
    module = module.eval()
    tmp, commit, abort = atomic_output_path(path)
    try:
        with torch.no_grad(), _quiet():
            torch.onnx.export(module, (example,), str(tmp), dynamo=False, opset_version=opset,
                              input_names=["input"], output_names=["output"], external_data=False,
                              do_constant_folding=True)
        return commit()
    except BaseException:
        abort()
        raise


def export_tflite(module: nn.Module, example: torch.Tensor, path: str | Path) -> Path:
    """PyTorch -> TFLite with litert-torch (fp32), written atomically."""
    litert_torch = import_litert_torch()
    module = module.eval()
    tmp, commit, abort = atomic_output_path(path)
    try:
        with torch.no_grad(), _quiet():
            edge_model = litert_torch.convert(module, (example,))
            edge_model.export(str(tmp))
        return commit()
    except BaseException:
        abort()
        raise


def import_litert_torch():
    try:
        with _quiet():
            import litert_torch  # noqa: PLC0415
    except ImportError:
        raise HwnasError("TFLite export needs litert-torch; install hwnas with the 'litert' extra: pip install -e '.[litert]'") from None
    return litert_torch


@contextlib.contextmanager
def _quiet():
    """The converters print progress banners on stdout/stderr; keep the CLI's output readable."""
    level = logging.root.level
    logging.disable(logging.WARNING)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        logging.disable(logging.NOTSET)
        logging.root.setLevel(level)
