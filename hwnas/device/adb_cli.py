"""``adb-cli`` transport: the ``adb`` command-line client (``adb -s SERIAL push/shell``).

For users who already run an adb server (Android Studio, scrcpy): the server owns the USB
connection and its own key (``~/.android/adbkey``). TCP serials (``host:port``) are attached
with ``adb connect`` first. ``ANDROID_ADB_SERVER_PORT`` selects the server as usual.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

from .transport import (AuthRefusedError, CommandTimeout, DeviceError, DeviceGoneError, PushError, Transport,
                        is_tcp_serial, register_transport)

_GONE_HINTS = ("not found", "offline", "closed", "no devices", "cannot connect", "failed to connect",
               "connection reset", "protocol fault", "device still connecting", "Connection refused")


def adb_binary() -> str:
    exe = shutil.which("adb")
    if not exe:
        raise DeviceError("the adb client is not installed (apt install adb, or Android platform-tools); or use --transport adb-shell")
    return exe


def run_adb(args: list[str], timeout_s: float) -> subprocess.CompletedProcess:
    try:
        return subprocess.run([adb_binary(), *args], capture_output=True, text=True, timeout=timeout_s,
                              stdin=subprocess.DEVNULL, errors="replace")
    except subprocess.TimeoutExpired:
        what = args[3] if len(args) > 3 and args[2] == "shell" else " ".join(args[:4])
        raise CommandTimeout(f"`{what[:80]}` did not finish within {timeout_s:.0f}s") from None


def list_adb_devices(timeout_s: float = 15.0) -> list[dict[str, str]]:
    """``adb devices -l`` as dicts (serial, state, model, product, ...); [] when adb is missing."""
    if not shutil.which("adb"):
        return []
    cp = run_adb(["devices", "-l"], timeout_s)
    out = []
    for line in cp.stdout.splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 2:
            d = {"serial": parts[0], "state": parts[1]}
            d.update(p.split(":", 1) for p in parts[2:] if ":" in p)
            out.append(d)
    return out


@register_transport("adb-cli")
class AdbCliTransport(Transport):
    name = "adb-cli"

    def state(self) -> str:
        cp = run_adb(["-s", self.serial, "get-state"], 15)
        text = (cp.stdout + cp.stderr).strip()
        if cp.returncode == 0:
            return text.splitlines()[-1].strip() if text else "unknown"
        if "unauthorized" in text:
            return "unauthorized"
        if "offline" in text:
            return "offline"
        return "missing"

    def connect(self) -> None:
        deadline = time.monotonic() + self.auth_timeout_s
        connected = False
        while True:
            if is_tcp_serial(self.serial) and not connected:
                cp = run_adb(["connect", self.serial], 30)
                text = (cp.stdout + cp.stderr).strip()
                if "cannot connect" in text or "failed to connect" in text or "Connection refused" in text:
                    raise DeviceGoneError(f"cannot reach phone {self.serial} ({text.splitlines()[-1] if text else 'no answer'})")
                connected = True
            st = self.state()
            if st == "device":
                return
            if st == "missing" and not is_tcp_serial(self.serial):
                raise DeviceGoneError(f"no phone with serial {self.serial!r} in `adb devices`; plug it in and enable USB debugging")
            if time.monotonic() > deadline:
                if st == "unauthorized" or (st in ("offline", "missing") and connected):
                    raise AuthRefusedError(f"phone {self.serial} did not authorize this computer: unlock it, accept 'Allow USB debugging?' "
                                           f"(tick 'Always allow'), then retry")
                raise DeviceGoneError(f"phone {self.serial} is {st} in adb; reconnect it and retry")
            if st in ("missing", "offline") and is_tcp_serial(self.serial):
                run_adb(["disconnect", self.serial], 15)  # drop the server's stale entry and dial again
                connected = False
            time.sleep(0.5)

    def close(self) -> None:
        pass  # the adb server owns the connection

    def _fail(self, cp: subprocess.CompletedProcess, what: str) -> None:
        text = (cp.stdout + cp.stderr).strip()
        last = text.splitlines()[-1] if text else f"exit {cp.returncode}"
        if "unauthorized" in text:
            raise AuthRefusedError(f"phone {self.serial} is unauthorized: accept 'Allow USB debugging?' on it, then retry")
        if any(h in text for h in _GONE_HINTS):
            raise DeviceGoneError(f"lost phone {self.serial} during {what} ({last})")
        raise DeviceError(f"{what} failed on {self.serial}: {last}")

    def _shell_raw(self, line: str, timeout_s: float) -> str:
        # One argument: adb joins its arguments with spaces and the phone's shell parses the line.
        cp = run_adb(["-s", self.serial, "shell", line], timeout_s)
        if cp.returncode != 0 and "__HWNAS_RC=" not in cp.stdout:
            self._fail(cp, "a shell command")
        return cp.stdout

    def _push_raw(self, local: Path, remote: str) -> None:
        cp = run_adb(["-s", self.serial, "push", str(local), remote], max(60.0, self.command_timeout_s))
        if cp.returncode != 0:
            text = (cp.stdout + cp.stderr)
            if any(h in text for h in _GONE_HINTS) and "No space" not in text:
                self._fail(cp, "push")
            last = text.strip().splitlines()[-1] if text.strip() else f"exit {cp.returncode}"
            raise PushError(f"pushing {local.name} to {remote!r} on {self.serial} failed: {last}")
