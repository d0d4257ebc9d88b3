"""Timing backends: onnxruntime and litert on the host, adb (benchmark_model) on a phone.

``create_backend(name, device=profile)`` / ``list_backends()``; the interface is in ``base.py``.
"""

from .base import (BACKENDS, Backend, Measurement, MeasurementError, Protocol, RunTimes, create_backend,
                   list_backends, register_backend, summarize)

__all__ = ["BACKENDS", "Backend", "Measurement", "MeasurementError", "Protocol", "RunTimes", "create_backend",
           "list_backends", "register_backend", "summarize"]
