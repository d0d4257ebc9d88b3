"""The run folder's layout, as the pipeline names it.

``RunLayout`` lives in ``hwnas.report.layout``: the report reads run folders and sits below the
pipeline, so the one definition is there and the pipeline uses it through this module.
"""

from __future__ import annotations

from ..report.layout import RUNS_DIR, STAGES, STATUSES, RunLayout

__all__ = ["RUNS_DIR", "STAGES", "STATUSES", "RunLayout"]
