"""The converters of the built-in model formats (ONNX, TFLite; fp32, fp16, int8).

The same functions write profiled blocks (``hwnas.latency.blocks``) and deployed networks
(``hwnas.export``): using one converter for both is what makes a sum of block latencies
predict the deployed file's latency; a different converter (or settings) changes the graph
and breaks it. Callers go through the format registry (``hwnas.formats.registry``).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
from pathlib import Path
from typing import Iterable

import numpy as np
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


# ---- precision variants ------------------------------------------------------------
# fp16 and int8 files start from the fp32 file written by the functions above, so the
# quantized network has exactly the graph that was profiled, only with narrower numbers.

TFLITE_SIGNATURE = "serving_default"
TFLITE_INPUT = "args_0"


def export_tflite_fp16(module: nn.Module, example: torch.Tensor, path: str | Path) -> Path:
    """TFLite with fp16 weights (float casting in ai-edge-quantizer); compute stays fp32 on CPU."""
    from ai_edge_quantizer import algorithm_manager, qtyping, quantizer  # noqa: PLC0415

    def recipe(qt) -> None:
        qt.add_weight_only_config(".*", qtyping.TFLOperationName.ALL_SUPPORTED, 16,
                                  algorithm_key=algorithm_manager.AlgorithmName.FLOAT_CASTING)

    return _quantize_tflite(module, example, path, recipe, calibration=None, quantizer=quantizer)


def export_tflite_int8(module: nn.Module, example: torch.Tensor, path: str | Path, calibration: Iterable[np.ndarray]) -> Path:
    """Full-integer TFLite (int8 weights and activations, int8 input/output) by post-training
    static quantization with ai-edge-quantizer, calibrated on ``calibration`` (NCHW float batches of 1).

    Weights are symmetric per-channel int8, activations asymmetric per-tensor int8 with ranges
    from the calibration images. The ranges are the global min/max over all images (as the
    TFLite converter and onnxruntime's MinMax calibrator do), not ai-edge-quantizer's default
    exponential moving average of per-image extremes: with batch-1 calibration that average
    under-estimates the ranges and clips activations (it cost 5-7 points of top-1 agreement
    with fp32 on a trained tiny net).
    """
    from ai_edge_quantizer import quantizer, recipe as aeq_recipe  # noqa: PLC0415

    def recipe(qt) -> None:
        qt.load_quantization_recipe(aeq_recipe.static_wi8_ai8())

    return _quantize_tflite(module, example, path, recipe, calibration=calibration, quantizer=quantizer)


def calibrate_min_max(fp32: str | Path, recipe, data: dict) -> dict:
    """Activation ranges (QSVs) of the ``fp32`` TFLite file over ``data``: each tensor's global min and max."""
    from ai_edge_quantizer import calibrator, recipe_manager  # noqa: PLC0415
    from ai_edge_quantizer.utils import qsv_utils  # noqa: PLC0415

    manager = recipe_manager.RecipeManager()
    manager.load_quantization_recipe(recipe)
    calib = calibrator.Calibrator(str(fp32), num_threads=1, qsv_update_func=qsv_utils.min_max_update)
    calib.calibrate(data, manager)
    return calib.get_model_qsvs()


def _quantize_tflite(module: nn.Module, example: torch.Tensor, path: str | Path, recipe, calibration, quantizer) -> Path:
    path = Path(path)
    tmp, commit, abort = atomic_output_path(path)
    try:
        with tempfile.TemporaryDirectory(dir=path.parent, prefix=".hwnas-fp32-") as d:
            fp32 = export_tflite(module, example, Path(d) / "fp32.tflite")
            with _quiet(), contextlib.redirect_stderr(io.StringIO()):
                qt = quantizer.Quantizer(str(fp32))
                recipe(qt)
                result = None
                if calibration is not None:
                    data = {TFLITE_SIGNATURE: [{TFLITE_INPUT: _as_batch(x, example)} for x in calibration]}
                    if not data[TFLITE_SIGNATURE]:
                        raise HwnasError("int8 export needs at least one calibration image; give --calibration-data DIR with images")
                    result = calibrate_min_max(fp32, qt.get_quantization_recipe(), data)
                out = qt.quantize(result, enable_progress_report=False)
                out.export_model(str(tmp), overwrite=True)
        return commit()
    except BaseException:
        abort()
        raise


def export_onnx_int8(module: nn.Module, example: torch.Tensor, path: str | Path, calibration: Iterable[np.ndarray]) -> Path:
    """ONNX with int8 weights and activations (QDQ format, per-channel weights) by onnxruntime's
    static quantization, calibrated on ``calibration`` (MinMax: global activation ranges); input
    and output stay float.

    ``reduce_range`` (7-bit weights) stays off: it only avoids int16 accumulator saturation of
    the u8s8 kernels on x86 CPUs without VNNI, and costs precision on every other target
    (phones' ARM kernels, VNNI CPUs); the activations here are signed (s8s8) anyway."""
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static  # noqa: PLC0415
    from onnxruntime.quantization.shape_inference import quant_pre_process  # noqa: PLC0415

    batches = [{"input": _as_batch(x, example)} for x in calibration]
    if not batches:
        raise HwnasError("int8 export needs at least one calibration image; give --calibration-data DIR with images")

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(batches)

        def get_next(self):
            return next(self._it, None)

    path = Path(path)
    tmp, commit, abort = atomic_output_path(path)
    try:
        with tempfile.TemporaryDirectory(dir=path.parent, prefix=".hwnas-fp32-") as d:
            fp32 = export_onnx(module, example, Path(d) / "fp32.onnx")
            pre = Path(d) / "pre.onnx"
            with _quiet(), contextlib.redirect_stderr(io.StringIO()):
                quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
                quantize_static(str(pre), str(tmp), Reader(), quant_format=QuantFormat.QDQ, per_channel=True, reduce_range=False,
                                activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax)
        return commit()
    except BaseException:
        abort()
        raise


def _as_batch(x, example: torch.Tensor) -> np.ndarray:
    a = np.asarray(x, dtype=np.float32)
    return a.reshape(tuple(example.shape))
