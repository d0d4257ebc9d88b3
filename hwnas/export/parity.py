"""Parity: does the exported file compute what the PyTorch net computes?

fp32 files must match to float round-off (max abs error, top-1 identical); fp16 and int8
files lose precision by design, so they are judged by top-1 agreement with the fp32 net on
representative images.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..formats import format_of_file, load_runner

# precision -> (max abs error bound or None, minimum top-1 agreement)
THRESHOLDS: dict[str, tuple[float | None, float]] = {"fp32": (1e-4, 1.0), "fp16": (None, 0.98), "int8": (None, 0.95)}


@dataclass
class ParityReport:
    precision: str
    runtime: str
    inputs: str
    n: int
    max_abs_err: float
    mean_abs_err: float
    top1_agreement: float
    logit_scale: float  # max |logit| of the reference, the scale the error is relative to
    max_abs_err_bound: float | None
    top1_bound: float

    @property
    def passed(self) -> bool:
        ok = self.top1_agreement >= self.top1_bound
        if self.max_abs_err_bound is not None:
            ok = ok and self.max_abs_err <= self.max_abs_err_bound * max(1.0, self.logit_scale)
        return ok

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}

    def summary(self) -> str:
        bound = "" if self.max_abs_err_bound is None else f" (bound {self.max_abs_err_bound:g}x max(1, |logit| {self.logit_scale:.3g}))"
        return (f"parity {self.precision} on {self.runtime}, {self.n} {self.inputs} inputs: max abs err {self.max_abs_err:.3g}{bound}, "
                f"top-1 agreement {100 * self.top1_agreement:.1f}% (need >= {100 * self.top1_bound:.0f}%)")


def random_inputs(resolution: int, n: int = 64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 3, resolution, resolution), dtype=np.float32)


def torch_logits(net: nn.Module, x: np.ndarray, batch: int = 32) -> np.ndarray:
    net = net.eval()
    with torch.no_grad():
        return np.concatenate([net(torch.from_numpy(x[i:i + batch])).numpy() for i in range(0, len(x), batch)])


def check_parity(net: nn.Module, path: str | Path, inputs: np.ndarray, precision: str = "fp32",
                 inputs_name: str = "random", reference: np.ndarray | None = None) -> ParityReport:
    """Run ``path`` on the host runtime and ``net`` in PyTorch (fp32) on the same ``inputs``."""
    ref = torch_logits(net, inputs) if reference is None else reference
    got = load_runner(path)(inputs)
    err = np.abs(got - ref)
    bound, top1 = THRESHOLDS[precision]
    runtime = format_of_file(path).host_runtime
    return ParityReport(precision=precision, runtime=runtime, inputs=inputs_name, n=len(inputs),
                        max_abs_err=float(err.max()), mean_abs_err=float(err.mean()),
                        top1_agreement=float(np.mean(got.argmax(1) == ref.argmax(1))),
                        logit_scale=float(np.abs(ref).max()), max_abs_err_bound=bound, top1_bound=top1)
