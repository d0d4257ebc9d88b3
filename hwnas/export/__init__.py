"""Export: ONNX / TFLite files of blocks and whole networks, with verification.

``export_arch(arch, fmt=..., precision=...)`` is what ``hwnas export`` calls; the exporter
functions in ``exporters`` are shared with the latency profiler (blocks).
"""

from .api import ExportResult, export_arch
from .exporters import EXPORTERS, FORMATS, PRECISIONS, export_module, export_onnx, export_tflite, supported_precisions

__all__ = ["ExportResult", "export_arch", "EXPORTERS", "FORMATS", "PRECISIONS", "export_module", "export_onnx",
           "export_tflite", "supported_precisions"]
