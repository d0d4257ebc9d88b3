"""One writer per latency table: ``hwnas profile`` and ``hwnas validate --calibrate`` (which
stores the calibration in the table) hold ``<table>.lock`` while they work.

Two profiles of one table would both measure everything, and once one removed the journal the
other would go on appending to a journal without its header. The lock is an ``flock`` on the
lock file, so the kernel releases it when its holder dies however it dies (kill -9 included):
the lock of a killed profile is simply taken by the next one. The file also records who holds
it (pid, host, start time, what it is doing: profiled or calibrated), which a refused second
writer names.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

from ..errors import HwnasError


def lock_path(table_path: Path) -> Path:
    return Path(table_path).with_name(Path(table_path).name + ".lock")


@contextmanager
def table_lock(table_path: str | Path, doing: str = "profiled") -> Iterator[Path]:
    """Hold the table's lock for the ``with`` block; an HwnasError naming the holder if taken.

    ``doing`` (``profiled``, ``calibrated``) is recorded for the message a refused writer prints."""
    with file_lock(lock_path(Path(table_path)), doing,
                   lambda holder, what: f"latency table {str(table_path)!r} is being {what} by {holder}; wait for it to finish "
                                        f"(or stop it), then run this again") as path:
        yield path


@contextmanager
def file_lock(path: Path, doing: str, busy: Callable[[str, str], str]) -> Iterator[Path]:
    """Hold an ``flock`` on ``path`` for the ``with`` block (released however the holder dies);
    if another process holds it, an HwnasError with ``busy(holder, what it is doing)``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder, what = _holder(fd)
            os.close(fd)
            raise HwnasError(busy(holder, what)) from None
        # the holder before us may have removed the file after we opened it: lock the file at the path
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        info = {"pid": os.getpid(), "host": socket.gethostname(), "doing": doing,
                "started": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        yield path
    finally:
        try:
            path.unlink()  # while still locked: a waiting process re-checks the inode
        except FileNotFoundError:
            pass
        os.close(fd)


def _holder(fd: int) -> tuple[str, str]:
    """Who holds the lock and what it is doing to the table (a lock file of an older version: profiled)."""
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
        return f"pid {info['pid']} on {info['host']} since {info['started']}", str(info.get("doing", "profiled"))
    except (ValueError, KeyError, TypeError, UnicodeDecodeError, AttributeError):
        return "another process (its lock file gives no details)", "written"
