"""Atomic file writes (a crash never leaves a half-written table, journal, arch or checkpoint),
and reading a user's text files so that any unreadable content is one HwnasError line."""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Callable

from .errors import HwnasError


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
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
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
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.{os.getpid()}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)

    def commit() -> Path:
        os.chmod(tmp_path, _FILE_MODE)
        os.replace(tmp_path, path)
        return path

    def abort() -> None:
        tmp_path.unlink(missing_ok=True)

    return tmp_path, commit, abort


# A temp file of atomic_write_with/atomic_output_path: ".<name>.<pid>.<random><suffix>".
_TEMP_NAME = re.compile(r"^\..+\.(\d+)\.[A-Za-z0-9_]{6,}[^/]*$")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_stale_temp_files(folder: str | os.PathLike) -> int:
    """Delete the temp files in ``folder`` whose writing process is gone (killed mid-write).

    A temp file carries its writer's pid, so one still being written by a live process (a
    second profile sharing the block cache) is left alone. Returns how many were removed.
    """
    d = Path(folder)
    removed = 0
    for p in d.iterdir() if d.is_dir() else ():
        m = _TEMP_NAME.match(p.name)
        if m and int(m.group(1)) != os.getpid() and not _alive(int(m.group(1))):
            try:
                p.unlink()
                removed += 1
            except OSError:
                pass
    return removed


def read_text_file(path: str | os.PathLike, what: str, fix: str) -> str:
    """The UTF-8 text of a user's file; a binary or unreadable file is an HwnasError.

    ``what`` names the file for the message ("latency table"), ``fix`` is what to do about it.
    A missing file raises FileNotFoundError, so a caller can say how to make one.
    """
    p = Path(path)
    try:
        return p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise
    except UnicodeDecodeError as e:
        raise HwnasError(f"{what} {str(p)!r} is not text (byte {e.start} is not UTF-8); {fix}") from None
    except OSError as e:
        raise HwnasError(f"cannot read {what} {str(p)!r} ({e.strerror or type(e).__name__}); {fix}") from None


def parse_json(text: str | bytes, what: str, fix: str) -> Any:
    """``json.loads`` whose every failure (malformed, nested too deep) is one HwnasError line."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise HwnasError(f"{what} is corrupt: malformed JSON ({e.msg} at line {e.lineno} column {e.colno}); {fix}") from None
    except UnicodeDecodeError as e:
        raise HwnasError(f"{what} is not text (byte {e.start} is not UTF-8); {fix}") from None
    except (RecursionError, ValueError) as e:
        raise HwnasError(f"{what} is corrupt ({type(e).__name__}); {fix}") from None


def read_json_file(path: str | os.PathLike, what: str, fix: str) -> Any:
    """The parsed JSON of a user's file: ``read_text_file`` then ``parse_json``."""
    return parse_json(read_text_file(path, what, fix), f"{what} {str(Path(path))!r}", fix)


def file_sha256(path: str | os.PathLike) -> str:
    """The hex SHA-256 of a file's bytes, read in 1 MiB chunks: what a run manifest, an export
    sidecar and the phone's file cache identify a file by, so they agree on its identity."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
