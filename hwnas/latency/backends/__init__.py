"""Timing backends: onnxruntime and litert on the host, adb (benchmark_model) on a phone."""
