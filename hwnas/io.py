"""Atomic file writes: a crash never leaves a half-written table, journal, arch or checkpoint."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable


def _process_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# The mode a plainly created file gets: temp files are private, the result should not be.
# Read once: os.umask can only be read by setting it, which would race with other threads.
_FILE_MODE = 0o666 & ~_process_umask()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return atomic_write_with(path, lambda f: f.write(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int | None = 1) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=indent, sort_keys=False) + "\n")


def atomic_write_with(path: str | os.PathLike, writer: Callable[[Any], Any]) -> Path:
    """Call ``writer(fileobj)`` on a temp file in the target's folder, fsync, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            writer(f)
            f.flush()
            os.fchmod(f.fileno(), _FILE_MODE)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def atomic_output_path(path: str | os.PathLike) -> tuple[Path, Callable[[], Path], Callable[[], None]]:
    """For tools that insist on writing a file themselves: (temp path, commit(), abort())."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)

    def commit() -> Path:
        os.chmod(tmp_path, _FILE_MODE)
        os.replace(tmp_path, path)
        return path

    def abort() -> None:
        tmp_path.unlink(missing_ok=True)

    return tmp_path, commit, abort
