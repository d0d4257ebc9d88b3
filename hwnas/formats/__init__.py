"""Model formats: how a PyTorch module becomes a deployable file, and how that file runs on the host.

Below ``device`` and ``latency`` in the layers: the profiler exports blocks and ``hwnas export``
exports whole networks through the same registry, so both get the same graph.
"""

from . import builtin  # noqa: F401  (registers onnx and tflite)
from .registry import (PRECISIONS, ModelFormat, Runner, check_format, export_module, exporter_tag, format_names,
                       format_of_file, get_format, load_runner, register_format, supported_precisions,
                       unregister_format)

__all__ = ["PRECISIONS", "ModelFormat", "Runner", "check_format", "export_module", "exporter_tag", "format_names",
           "format_of_file", "get_format", "load_runner", "register_format", "supported_precisions", "unregister_format"]
