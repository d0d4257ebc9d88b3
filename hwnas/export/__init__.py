"""Export: a searched arch as a verified ONNX / TFLite file (parity and real latency checked).

``export_arch(arch, fmt=..., precision=...)`` is what ``hwnas export`` calls; the converters
themselves are the model-format registry ``hwnas.formats``, shared with the latency profiler.
"""

from .api import ExportResult, export_arch

__all__ = ["ExportResult", "export_arch"]
