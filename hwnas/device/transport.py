"""The ADB transport interface: connect, shell with exit status and timeout, push verified by checksum.

Two implementations register here (timm-style, ``create_transport(name, ...)``):
``adb-shell`` (the adb-shell library in process, TCP ``host:port`` or USB serial, our own RSA
key) and ``adb-cli`` (the ``adb`` client, for users who already run an adb server). Everything
above this module (checks, the ``adb`` backend) only uses :class:`Transport`.

Every command line sent to a phone is built with :func:`command_line` (``shlex.quote`` on each
argument), so a file or folder name with spaces, quotes or ``;`` can never run anything extra.
"""

from __future__ import annotations

import re
import shlex
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ..errors import HwnasError
from ..io import file_sha256
from ..registry import Registry

# Printed after every command so the exit status survives adb's v1 shell protocol, which has none.
RC_MARK = "__HWNAS_RC="
_RC_RE = re.compile(re.escape(RC_MARK) + r"(\d+)\s*$")


class DeviceError(HwnasError):
    """Something went wrong talking to a phone."""


class DeviceGoneError(DeviceError):
    """The phone is not reachable (unplugged, rebooted, network down): worth reconnecting."""


class AuthRefusedError(DeviceError):
    """The phone did not accept this computer's ADB key."""


class CommandTimeout(DeviceError):
    """A remote command did not finish in time."""


class PushError(DeviceError):
    """A file could not be copied to the phone (no space, permission, checksum mismatch)."""


@dataclass
class ShellResult:
    output: str
    rc: int
    command: str = ""

    @property
    def ok(self) -> bool:
        return self.rc == 0


def command_line(args: Sequence[str | Path]) -> str:
    """One shell-safe command line: every argument quoted for the phone's /system/bin/sh."""
    return " ".join(shlex.quote(str(a)) for a in args)


def split_status(raw: str, command: str) -> ShellResult:
    """Cut the exit-status marker off a command's output (missing marker = the shell died)."""
    text = raw.replace("\r\n", "\n")
    idx = text.rfind(RC_MARK)
    if idx < 0 or not _RC_RE.search(text[idx:]):
        raise DeviceGoneError(f"the phone's shell ended before `{command[:80]}` finished (connection lost?)")
    rc = int(_RC_RE.search(text[idx:]).group(1))  # type: ignore[union-attr]
    return ShellResult(text[:idx], rc, command)



class Transport(ABC):
    """One phone reached over ADB. Subclasses implement the four ``_`` methods."""

    name = ""

    def __init__(self, serial: str, *, auth_timeout_s: float = 30.0, command_timeout_s: float = 300.0) -> None:
        self.serial = serial
        self.auth_timeout_s = auth_timeout_s
        self.command_timeout_s = command_timeout_s
        self.pushed_bytes = 0
        self.pushes = 0

    # ---- what a transport implements ------------------------------------------------
    @abstractmethod
    def connect(self) -> None:
        """Open the connection (raises DeviceGoneError or AuthRefusedError)."""

    @abstractmethod
    def close(self) -> None:
        """Drop the connection (safe to call twice)."""

    @abstractmethod
    def _shell_raw(self, line: str, timeout_s: float) -> str:
        """Run ``line`` in the phone's shell; return stdout+stderr as text."""

    @abstractmethod
    def _push_raw(self, local: Path, remote: str) -> None:
        """Copy a local file to ``remote`` (no verification)."""

    # ---- shared behaviour ---------------------------------------------------------------
    def shell(self, args: Sequence[str | Path] | str, timeout_s: float | None = None) -> ShellResult:
        """Run a command (a list of arguments, quoted here; or an already quoted line) -> output and exit status."""
        line = args if isinstance(args, str) else command_line(args)
        # In its own `sh -c` so that even an `exit` in the line cannot skip the status marker.
        raw = self._shell_raw(f"sh -c {shlex.quote(line)}; echo {RC_MARK}$?", timeout_s or self.command_timeout_s)
        return split_status(raw, line)

    def check(self, args: Sequence[str | Path] | str, what: str, timeout_s: float | None = None) -> str:
        """Run a command that must succeed; its output, or a DeviceError naming ``what`` failed."""
        res = self.shell(args, timeout_s)
        if not res.ok:
            last = (res.output.strip().splitlines() or ["no output"])[-1]
            raise DeviceError(f"{what} failed on {self.serial} (exit {res.rc}): {last}")
        return res.output

    def remote_sha256(self, remote: str) -> str | None:
        res = self.shell(["sha256sum", remote])
        if not res.ok:
            return None
        return res.output.split()[0] if res.output.split() else None

    def push(self, local: str | Path, remote: str, sha256: str | None = None) -> str:
        """Copy a file and verify it arrived intact (sha256 on both ends); returns the digest."""
        local = Path(local)
        digest = sha256 or file_sha256(local)
        parent = remote.rsplit("/", 1)[0] or "/"
        self.check(["mkdir", "-p", parent], f"creating folder {parent!r}")
        for attempt in range(2):
            self._push_raw(local, remote)
            self.pushes += 1
            self.pushed_bytes += local.stat().st_size
            got = self.remote_sha256(remote)
            if got == digest:
                return digest
        raise PushError(f"{local.name} arrived corrupted on {self.serial} (sha256 {got} != {digest}); check the cable/network and retry")

    def __enter__(self) -> "Transport":
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


TRANSPORTS: Registry[Transport] = Registry("ADB transport")
register_transport = TRANSPORTS.register


def create_transport(name: str, serial: str, **kw: object) -> Transport:
    """``adb-shell`` or ``adb-cli`` for ``serial`` (a USB serial or ``host:port``)."""
    from . import adb_cli, adb_shell_transport  # noqa: F401  (registration)

    return TRANSPORTS.create(name, serial=serial, **kw)


def is_tcp_serial(serial: str) -> bool:
    host, sep, port = serial.rpartition(":")
    return bool(sep and host and port.isdigit())
