"""Host runners of the built-in formats (onnxruntime, the LiteRT interpreter); look them up with
``hwnas.formats.load_runner``.

Parity is judged on what a user's app would compute, so int8 TFLite files are fed the way an
app feeds them: float input quantized with the file's own input scale/zero point, int8 output
dequantized with the output's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .registry import Runner


def onnx_runner(path: Path, threads: int) -> Runner:
    import onnxruntime as ort  # noqa: PLC0415

    opts = ort.SessionOptions()
    # Basic graph optimizations only: the extended ones fuse an int8 file's QDQ pairs into x86
    # integer kernels whose 16-bit accumulators saturate on CPUs without VNNI (a trained tiny net's
    # top-1 agreement fell from 96.9% to 83.2%, max error 0.25 -> 5.3, on an AVX2-only EPYC).
    # Parity judges the file's numerics, which a phone's kernels compute without that saturation.
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    batch = sess.get_inputs()[0].shape[0]

    def run(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        if batch == x.shape[0] or not isinstance(batch, int):
            return sess.run(None, {name: x})[0]
        return np.concatenate([sess.run(None, {name: x[i:i + 1]})[0] for i in range(x.shape[0])])

    return run


def tflite_runner(path: Path, threads: int) -> Runner:
    from ai_edge_litert.interpreter import Interpreter  # noqa: PLC0415

    interp = Interpreter(model_path=str(path), num_threads=threads)
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]
    out = interp.get_output_details()[0]
    in_scale, in_zero = inp["quantization"]
    out_scale, out_zero = out["quantization"]
    in_dtype = inp["dtype"]

    def one(x: np.ndarray) -> np.ndarray:
        if np.issubdtype(in_dtype, np.integer):
            info = np.iinfo(in_dtype)
            x = np.clip(np.round(x / in_scale) + in_zero, info.min, info.max).astype(in_dtype)
        interp.set_tensor(inp["index"], x.astype(in_dtype, copy=False))
        interp.invoke()
        y = interp.get_tensor(out["index"])
        if np.issubdtype(y.dtype, np.integer):
            y = (y.astype(np.float32) - out_zero) * out_scale
        return y.astype(np.float32, copy=False)

    def run(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        return np.concatenate([one(x[i:i + 1]) for i in range(x.shape[0])])

    return run


def tflite_io_quantization(path: str | Path) -> dict:
    """The int8 input/output encoding of a full-integer TFLite file (what an app must apply)."""
    from ai_edge_litert.interpreter import Interpreter  # noqa: PLC0415

    interp = Interpreter(model_path=str(path))
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    return {"dtype": np.dtype(inp["dtype"]).name,
            "quantization": {"scale": float(inp["quantization"][0]), "zero_point": int(inp["quantization"][1])},
            "output_quantization": {"dtype": np.dtype(out["dtype"]).name, "scale": float(out["quantization"][0]),
                                    "zero_point": int(out["quantization"][1])}}
