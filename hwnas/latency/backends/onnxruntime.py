"""``onnxruntime``: ONNX files timed with ONNX Runtime's CPU execution provider on this machine.

Sequential execution, ``threads`` intra-op threads (1 by default), default graph optimizations
(the same a deployed ``.onnx`` gets), one fresh process per measurement (see ``host.py``).
"""

from __future__ import annotations

from .base import register_backend
from .host import HostWorkerBackend


@register_backend("onnxruntime")
class OnnxRuntimeBackend(HostWorkerBackend):
    name = "onnxruntime"
    model_format = "onnx"
    runtime = "onnxruntime"
    dist = "onnxruntime"
