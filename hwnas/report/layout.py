"""Where ``hwnas run`` puts each stage's outputs: one folder per run.

``hwnas report`` and the pipeline both read the paths from here, so a run folder has one
layout, written down once::

    runs/<run-name>/
      run.json        the manifest: versions, resolved config, seeds, device fingerprint,
                      latency table path + sha256, each stage's status/times/outputs
      config.toml     the resolved configuration (every default filled in)
      supernet/       the training run folder of ``hwnas train`` (supernet.json/.pt,
                      checkpoints/, metrics.csv, tensorboard/ when the extra is installed)
      search/         the search result folder (history.jsonl, best.json, front.json,
                      summary.json, search.json, pareto.png)
      export/         the exported model file and its JSON sidecar
      report.html     the report (``hwnas report``)

The latency table stays in ``latency_tables/``; the manifest names it and its hash.

It lives in ``hwnas.report``, the lower of the two packages that use it: the pipeline (which
writes a run folder) imports it from here, the report (which reads one) too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RUNS_DIR = Path("runs")
STAGES = ("profile", "train", "search", "export", "verify")
STATUSES = ("pending", "running", "done", "failed", "skipped")


@dataclass(frozen=True)
class RunLayout:
    """The paths of one run folder (nothing is created by building it)."""

    root: Path

    @classmethod
    def for_name(cls, name: str, runs_dir: str | Path = RUNS_DIR) -> "RunLayout":
        return cls(Path(runs_dir) / name)

    @property
    def name(self) -> str:
        return self.root.name

    @property
    def manifest(self) -> Path:
        return self.root / "run.json"

    @property
    def config(self) -> Path:
        return self.root / "config.toml"

    @property
    def supernet(self) -> Path:
        """The training run folder (what ``hwnas search --supernet`` takes)."""
        return self.root / "supernet"

    @property
    def metrics_csv(self) -> Path:
        return self.supernet / "metrics.csv"

    @property
    def tensorboard(self) -> Path:
        return self.supernet / "tensorboard"

    @property
    def search(self) -> Path:
        return self.root / "search"

    @property
    def history(self) -> Path:
        return self.search / "history.jsonl"

    @property
    def best(self) -> Path:
        return self.search / "best.json"

    @property
    def front(self) -> Path:
        return self.search / "front.json"

    @property
    def search_summary(self) -> Path:
        return self.search / "summary.json"

    @property
    def export(self) -> Path:
        return self.root / "export"

    @property
    def report(self) -> Path:
        return self.root / "report.html"

    def exported_model(self) -> Path | None:
        """The exported model file the manifest's export stage names (None before export)."""
        outputs = _stage_outputs(self.manifest, "export")
        model = outputs.get("model")
        return self.root / model if isinstance(model, str) else None

    def exported_sidecar(self) -> Path | None:
        model = self.exported_model()
        return model.with_name(model.name + ".json") if model is not None else None

    def table(self) -> Path | None:
        """The latency table the run used (the manifest's ``table.path``; None before profiling)."""
        try:
            d = json.loads(self.manifest.read_text())
        except (OSError, ValueError):
            return None
        path = (d.get("table") or {}).get("path") if isinstance(d, dict) else None
        return Path(path) if isinstance(path, str) else None


def _stage_outputs(manifest: Path, stage: str) -> dict[str, Any]:
    try:
        d = json.loads(manifest.read_text())
    except (OSError, ValueError):
        return {}
    st = (d.get("stages") or {}).get(stage) if isinstance(d, dict) else None
    out = st.get("outputs") if isinstance(st, dict) else None
    return out if isinstance(out, dict) else {}
