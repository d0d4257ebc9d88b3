"""``litert``: TFLite files timed with the LiteRT interpreter (ai-edge-litert) on this machine.

The interpreter's default CPU path (XNNPACK delegate, as ``benchmark_model`` uses on a
phone), ``threads`` threads (1 by default), one fresh process per measurement (see ``host.py``).
"""

from __future__ import annotations

from .base import register_backend
from .host import HostWorkerBackend


@register_backend("litert")
class LiteRTBackend(HostWorkerBackend):
    name = "litert"
    model_format = "tflite"
    runtime = "litert"
    dist = "ai-edge-litert"
