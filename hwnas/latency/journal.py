"""The profiling journal: one JSON line per finished measurement, appended and fsynced.

An interrupted ``hwnas profile`` (Ctrl-C, crash, kill -9) loses at most the measurement in
flight: the next run reads the journal and skips everything in it. The first line is a
header naming the table the journal belongs to, so a journal is never merged into a table
for another device, backend, space or protocol. A line cut short by a crash (the last one)
or a damaged line is skipped with a warning naming the lines (``JournalWarning``); the good
lines are kept. Only one process writes a table's journal (``latency.lock``), and a journal
removed under its writer starts again with its header.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

from ..errors import HwnasError

class JournalWarning(UserWarning):
    """Lines of a journal could not be read and were skipped (their measurements are taken again)."""


# Fields of the header that must agree for a journal to continue.
HEADER_FIELDS = ("backend", "space", "space_args", "protocol", "fingerprint")


def journal_path(table_path: Path) -> Path:
    return table_path.with_name(table_path.name + ".journal.jsonl")


class Journal:
    def __init__(self, path: Path, header: dict[str, Any]) -> None:
        self.path = Path(path)
        self.header = header
        self.records: list[dict[str, Any]] = []
        self.skipped_lines = 0

    def open(self, force: bool = False) -> "Journal":
        """Read what an earlier run finished (checking it is for this table), or start a new journal."""
        if self.path.exists():
            lines = self.path.read_bytes().split(b"\n")
            parsed: list[dict[str, Any]] = []
            skipped: list[int] = []
            for number, raw in enumerate(lines, 1):
                if not raw.strip():
                    continue
                try:
                    rec = json.loads(raw)
                    if not isinstance(rec, dict):
                        raise ValueError
                    parsed.append(rec)
                except (ValueError, RecursionError):  # JSON and UTF-8 decoding errors are ValueErrors
                    skipped.append(number)
            self.skipped_lines = len(skipped)
            if skipped:
                shown = ", ".join(map(str, skipped[:10])) + (", ..." if len(skipped) > 10 else "")
                warnings.warn(f"journal {str(self.path)!r}: skipped {len(skipped)} damaged line(s) (line {shown}); "
                              "what they held is measured again", JournalWarning, stacklevel=2)
            head = parsed[0] if parsed and parsed[0].get("journal") == 1 else None
            if head is None:
                if parsed:
                    raise HwnasError(f"journal {str(self.path)!r} has no valid header line; move it away to start over (its entries: {len(parsed)})")
            else:
                diffs = [k for k in HEADER_FIELDS if k in head and head.get(k) != self.header.get(k)]
                if diffs and not force:
                    raise HwnasError(f"journal {str(self.path)!r} belongs to another profile (different {', '.join(diffs)}); use --out for a new table, or --force to continue it anyway")
                self.records = [r for r in parsed[1:] if "key" in r]
            if head is None:
                self._write_header(rewrite=True)
            elif lines and lines[-1].strip():
                # a line cut short by a crash: end it so the next append starts on a fresh line
                with open(self.path, "ab") as f:
                    f.write(b"\n")
        else:
            self._write_header(rewrite=True)
        return self

    def _write_header(self, rewrite: bool) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "wb" if rewrite else "ab") as f:
            f.write((json.dumps({"journal": 1, **self.header}) + "\n").encode())
            f.flush()
            os.fsync(f.fileno())

    def append(self, record: dict[str, Any]) -> None:
        """Append one line; a journal removed meanwhile starts again with its header, never without."""
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        except FileNotFoundError:
            self._write_header(rewrite=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        with os.fdopen(fd, "ab") as f:
            f.write((json.dumps(record) + "\n").encode())
            f.flush()
            os.fsync(f.fileno())
        self.records.append(record)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
