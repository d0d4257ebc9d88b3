"""The built-in formats: ONNX (fp32, int8) and TFLite (fp32, fp16, int8).

The converters import torch and the quantizers, so they are loaded on first use: looking up a
format's extension (the profiler, ``hwnas search``) stays cheap.
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path
from typing import Any, Callable

from . import runtime
from .registry import ModelFormat, register_format


def _converter(name: str) -> Callable[..., Path]:
    def export(*args: Any, **kwargs: Any) -> Path:
        from . import convert  # noqa: PLC0415

        return getattr(convert, name)(*args, **kwargs)

    export.__name__ = export.__qualname__ = name
    return export


def _onnx_tag() -> str:
    from .convert import ONNX_OPSET  # noqa: PLC0415

    return f"onnx-opset{ONNX_OPSET}-torch{metadata.version('torch')}"


def _tflite_tag() -> str:
    try:
        v = metadata.version("litert-torch")
    except metadata.PackageNotFoundError:
        v = "none"
    return f"tflite-fp32-litert_torch{v}-torch{metadata.version('torch')}"


ONNX = register_format(ModelFormat(
    name="onnx", extension=".onnx", runner=runtime.onnx_runner, version_tag=_onnx_tag, host_runtime="onnxruntime",
    exporters={"fp32": _converter("export_onnx"), "int8": _converter("export_onnx_int8")}))
TFLITE = register_format(ModelFormat(
    name="tflite", extension=".tflite", runner=runtime.tflite_runner, version_tag=_tflite_tag, host_runtime="litert",
    exporters={"fp32": _converter("export_tflite"), "fp16": _converter("export_tflite_fp16"),
               "int8": _converter("export_tflite_int8")}))
