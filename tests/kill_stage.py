"""``python -m tests.kill_stage STAGE N ARGS...``: run ``hwnas ARGS...`` and SIGKILL the process in
the middle of a stage of ``hwnas run`` (a crash with no chance to clean up, for resume tests).

Where it dies: ``profile`` at the N-th block measurement, ``train`` after iteration N,
``search`` after the N-th evaluated arch is written to the history, ``export`` once the model
file is converted (before it is moved into place), ``verify`` in the parity check.
``STAGE none`` never kills. Every run through this module also has the ``fixed`` timing
backend: a deterministic latency per model file name (the same table on every profile), so
an interrupted and an uninterrupted run can be compared file for file.
"""

import hashlib
import os
import signal
import sys
from pathlib import Path

from hwnas.cli import main
from hwnas.latency.backends.base import Backend, RunTimes, register_backend


@register_backend("fixed")
class FixedBackend(Backend):
    """A pretend device: each file's latency is a fixed function of its name (no timing)."""

    name = "fixed"
    model_format = "onnx"

    def fingerprint(self):
        return {"model": "fixed", "soc": "", "android": "", "cpu": "fixed", "runtime": "fixed", "runtime_version": "1",
                "benchmark_binary_sha256": ""}

    def _time_runs(self, model_path, protocol):
        h = int(hashlib.sha256(Path(model_path).name.encode()).hexdigest()[:6], 16) / 0xFFFFFF
        return RunTimes([0.01 + 0.04 * h] * max(protocol.runs, 1))


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def arm(stage: str, n: int) -> None:
    if stage == "profile":
        measure = FixedBackend._time_runs
        count = [0]

        def measure_then_die(self, model_path, protocol):
            count[0] += 1
            if count[0] >= n:
                die()
            return measure(self, model_path, protocol)

        FixedBackend._time_runs = measure_then_die
    elif stage == "train":
        from hwnas.train.trainer import SupernetTrainer

        step = SupernetTrainer.step

        def step_then_die(self):
            rec = step(self)
            if self.counters.iteration >= n:
                die()
            return rec

        SupernetTrainer.step = step_then_die
    elif stage == "search":
        from hwnas.search import base

        append = base.append_history
        count = [0]

        def append_then_die(path, record):
            append(path, record)
            count[0] += 1
            if count[0] >= n:
                die()

        base.append_history = append_then_die
    elif stage == "export":
        from hwnas.export import api

        convert = api.export_module

        def convert_then_die(*args, **kwargs):
            convert(*args, **kwargs)
            die()

        api.export_module = convert_then_die
    elif stage == "verify":
        from hwnas.export import api

        api.verify_parity = lambda *args, **kwargs: die()
    elif stage != "none":
        raise SystemExit(f"unknown stage {stage!r}")


if __name__ == "__main__":
    arm(sys.argv[1], int(sys.argv[2]))
    sys.argv = ["hwnas", *sys.argv[3:]]
    main()
