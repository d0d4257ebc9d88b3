"""A loopback stand-in for a Snapdragon 855 phone that speaks the device side of ADB over TCP.

``python -m tests.fakephone --port 5555 [--fault drop-after=20 ...]`` starts one, so the ADB
path can be tried by hand (``hwnas device check sd855 --host 127.0.0.1:5555``, or
``adb connect 127.0.0.1:5555``). Tests use :func:`spawn` (a separate process, as a phone is) or
:class:`FakePhoneServer` in-process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from .device import Device, Faults
from .server import FakePhoneServer

REPO = Path(__file__).resolve().parents[2]

__all__ = ["Device", "Faults", "FakePhoneServer", "FakePhoneProcess", "spawn", "start_in_thread"]


def start_in_thread(faults: list[str] | None = None, port: int = 0, auth: bool = True, serial: str = "FA7AP1A00855") -> FakePhoneServer:
    return FakePhoneServer(Device(Faults.parse(faults or []), serial=serial), port=port, auth_required=auth).start()


@dataclass
class FakePhoneProcess:
    proc: subprocess.Popen
    port: int

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> "FakePhoneProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def spawn(faults: list[str] | None = None, port: int = 0, auth: bool = True, log: str | os.PathLike | None = None,
          serial: str | None = None, clock: str | None = None, benchmark_format: str | None = None) -> FakePhoneProcess:
    """Start ``python -m tests.fakephone`` and wait for its 'listening on' line."""
    cmd = [sys.executable, "-m", "tests.fakephone", "--port", str(port)]
    if log:
        cmd += ["--log", str(log)]
    if serial:
        cmd += ["--serial", serial]
    if clock:
        cmd += ["--clock", clock]
    if benchmark_format:
        cmd += ["--benchmark-format", benchmark_format]
    for f in faults or []:
        cmd += ["--fault", f]
    if not auth:
        cmd.append("--no-auth")
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""), TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "listening on" not in line:
        proc.kill()
        raise RuntimeError(f"fake phone did not start: {line}{proc.stdout.read()}")
    threading.Thread(target=proc.stdout.read, daemon=True).start()  # keep its pipe drained
    return FakePhoneProcess(proc, int(line.rsplit(":", 1)[1]))
