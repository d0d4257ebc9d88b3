"""``run.json``: what a run is (versions, configuration, seeds, device, table) and how far it got.

Each stage has ``status`` (pending, running, done, failed, skipped), ``started``/``finished``
(UTC), ``seconds`` (wall clock) and ``cpu_seconds`` (CPU time of this process and its
children: on a shared machine the wall clock also counts others' load), ``attempts`` and
``outputs`` (paths relative to the run folder, plus the figures the stage produced). A
stage found ``running`` was interrupted (killed): it runs again from its own saved state.
Every write replaces the file atomically.
"""

from __future__ import annotations

import platform
import resource
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import HwnasError
from ..io import file_sha256
from ..io import atomic_write_json, read_json_file
from .layout import STAGES, RunLayout

FORMAT = 1


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def versions() -> dict[str, str]:
    import torch

    return {"hwnas": __version__, "torch": torch.__version__, "python": platform.python_version()}


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (profiling workers, exporters)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


class Manifest:
    """The run folder's ``run.json`` in memory; every change is saved at once."""

    def __init__(self, layout: RunLayout, data: dict[str, Any]) -> None:
        self.layout = layout
        self.data = data
        self._clock: dict[str, tuple[float, float]] = {}

    @classmethod
    def load(cls, layout: RunLayout) -> "Manifest | None":
        if not layout.manifest.exists():
            return None
        fix = f"move {str(layout.root)!r} away to start the run anew, or run under another --name"
        data = read_json_file(layout.manifest, "run manifest", fix)
        if not isinstance(data, dict) or not isinstance(data.get("stages"), dict) or not isinstance(data.get("config"), dict):
            raise HwnasError(f"run manifest {str(layout.manifest)!r} is not an hwnas run manifest; {fix}")
        return cls(layout, data)

    @classmethod
    def create(cls, layout: RunLayout, config: dict[str, Any], seeds: dict[str, int]) -> "Manifest":
        data = {
            "format": FORMAT, "name": layout.name, "created": now_iso(), "updated": now_iso(),
            "versions": versions(), "config": config, "seeds": seeds,
            "device": None, "table": None,
            "stages": {s: {"status": "pending", "started": None, "finished": None, "seconds": None, "cpu_seconds": None,
                           "attempts": 0, "outputs": {}} for s in STAGES},
            "report": None,
        }
        m = cls(layout, data)
        m.save()
        return m

    def save(self) -> None:
        self.data["updated"] = now_iso()
        atomic_write_json(self.layout.manifest, self.data)

    def stage(self, name: str) -> dict[str, Any]:
        return self.data["stages"][name]

    def status(self, name: str) -> str:
        return self.stage(name)["status"]

    @property
    def finished(self) -> bool:
        return all(self.status(s) in ("done", "skipped") for s in STAGES)

    def first_unfinished(self) -> str | None:
        return next((s for s in STAGES if self.status(s) not in ("done", "skipped")), None)

    def start(self, name: str) -> None:
        st = self.stage(name)
        st.update(status="running", started=now_iso(), finished=None, seconds=None, cpu_seconds=None,
                  attempts=int(st.get("attempts") or 0) + 1, error=None)
        self._clock[name] = (time.perf_counter(), cpu_seconds())
        self.save()

    def end(self, name: str, status: str, outputs: dict[str, Any] | None = None, error: str | None = None) -> None:
        st = self.stage(name)
        t0, c0 = self._clock.pop(name, (time.perf_counter(), cpu_seconds()))
        st.update(status=status, finished=now_iso(), seconds=round(time.perf_counter() - t0, 3),
                  cpu_seconds=round(cpu_seconds() - c0, 3))
        if outputs is not None:
            st["outputs"] = outputs
        if error is not None:
            st["error"] = error
        self.save()

    def reset_from(self, name: str) -> None:
        """Mark ``name`` and every later stage pending again (their outputs are kept on disk to resume from)."""
        for s in STAGES[STAGES.index(name):]:
            if self.status(s) != "pending":
                self.stage(s)["status"] = "pending"
        self.save()

    def set_table(self, path: Path, fingerprint: dict[str, Any], device: str, backend: str) -> None:
        self.data["table"] = {"path": str(path), "sha256": file_sha256(path)}
        self.data["device"] = {"name": device, "backend": backend, "fingerprint": fingerprint}
        self.save()
