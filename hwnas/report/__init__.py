"""The run report: one self-contained HTML page of what a run folder holds (``hwnas report``)."""

from .api import write_report

__all__ = ["write_report"]
