"""A phone as hwnas uses it: a transport plus reconnect-with-backoff, properties and sysfs readings.

``Phone.call(fn)`` runs a transport operation; if the phone disappears it reconnects with
exponential backoff for at most ``reconnect_timeout_s`` and then raises a DeviceGoneError that
tells the user the work so far is saved and how to continue.
"""

from __future__ import annotations

import fnmatch
import re
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, TypeVar

from .profiles import DeviceProfile
from .transport import AuthRefusedError, DeviceGoneError, ShellResult, Transport, create_transport

T = TypeVar("T")

# SoC of a board platform name, for phones older than Android 12 (no ro.soc.model).
PLATFORM_SOC = {"msmnile": "SM8150", "kona": "SM8250", "lahaina": "SM8350", "taro": "SM8450", "sdm845": "SDM845",
                "sdm710": "SDM710", "trinket": "SM6125", "lito": "SM7250", "exynos9820": "Exynos 9820"}


def stderr_log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


@dataclass
class Thermal:
    zones: dict[str, float] = field(default_factory=dict)  # zone type -> degrees C

    def hottest(self, pattern: str = "cpu*") -> tuple[str, float] | None:
        sel = {k: v for k, v in self.zones.items() if fnmatch.fnmatch(k, pattern)} or self.zones
        if not sel:
            return None
        k = max(sel, key=sel.__getitem__)
        return k, sel[k]


class Phone:
    def __init__(self, profile: DeviceProfile, serial: str | None = None, transport: str | None = None,
                 log: Callable[[str], None] = stderr_log, reconnect_timeout_s: float | None = None) -> None:
        self.profile = profile
        self.serial = serial or profile.serial
        if not self.serial:
            raise DeviceGoneError(f"device {profile.name!r} has no serial: pass --host HOST:PORT or --serial SERIAL (see `hwnas devices`)")
        self.transport: Transport = create_transport(transport or profile.transport, self.serial,
                                                     auth_timeout_s=profile.auth_timeout_s,
                                                     command_timeout_s=profile.command_timeout_s)
        self.log = log
        self.reconnect_timeout_s = profile.reconnect_timeout_s if reconnect_timeout_s is None else reconnect_timeout_s
        self.connected = False
        self.reconnects = 0

    # ---- connection ------------------------------------------------------------------------
    def connect(self) -> "Phone":
        self.transport.connect()
        self.connected = True
        return self

    def close(self) -> None:
        self.transport.close()
        self.connected = False

    def __enter__(self) -> "Phone":
        return self.connect()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, fn: Callable[[Transport], T]) -> T:
        """Run ``fn(transport)``; while the phone is lost, reconnect with backoff (for at most
        ``reconnect_timeout_s`` in all) and run it again."""
        if not self.connected:
            self.connect()
        deadline: float | None = None
        while True:
            try:
                return fn(self.transport)
            except DeviceGoneError as e:
                self.connected = False
                if deadline is None:
                    deadline = time.monotonic() + self.reconnect_timeout_s
                    self.log(f"phone {self.serial} disconnected ({e}); waiting up to {self.reconnect_timeout_s:.0f}s for it to come back")
                self._wait_for_phone(e, deadline)

    def _wait_for_phone(self, why: Exception, deadline: float) -> None:
        delay = 0.25
        last: Exception = why
        while time.monotonic() < deadline:
            time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 2, 5.0)
            try:
                self.transport.connect()
                self.connected = True
                self.reconnects += 1
                self.log(f"phone {self.serial} is back")
                return
            except AuthRefusedError:
                raise
            except DeviceGoneError as e:
                last = e
        raise DeviceGoneError(f"phone {self.serial} disappeared and did not come back within {self.reconnect_timeout_s:.0f}s ({last}); "
                              f"reconnect it and run the same command again to continue (finished work is saved)")

    # ---- queries ---------------------------------------------------------------------------
    def shell(self, args: Any, timeout_s: float | None = None) -> ShellResult:
        return self.call(lambda t: t.shell(args, timeout_s))

    def props(self) -> dict[str, str]:
        out = self.call(lambda t: t.check(["getprop"], "getprop"))
        return dict(re.findall(r"^\[([^\]]+)\]: \[(.*)\]\s*$", out, re.M))

    def rooted(self) -> bool:
        if self.shell(["id", "-u"]).output.strip() == "0":
            return True
        res = self.shell(["su", "-c", "id -u"])
        return res.ok and res.output.strip().endswith("0")

    def read_files(self, pattern_dir: str, pattern_file: str) -> dict[str, str]:
        """``grep -H . DIR/FILE`` with shell globs (the only unquoted part is the fixed pattern)."""
        line = f"grep -H . {pattern_dir}/{pattern_file}"
        res = self.shell(line)
        out: dict[str, str] = {}
        for ln in res.output.splitlines():
            path, sep, val = ln.partition(":")
            if sep and path.startswith("/"):
                out[path] = val.strip()
        return out

    def governors(self) -> dict[int, dict[str, str]]:
        """cpu -> {governor, cur_khz, max_khz}."""
        out: dict[int, dict[str, str]] = {}
        for f in ("scaling_governor", "scaling_cur_freq", "cpuinfo_max_freq"):
            for path, val in self.read_files("/sys/devices/system/cpu/cpu[0-9]*/cpufreq", f).items():
                m = re.search(r"/cpu(\d+)/cpufreq/", path)
                if m:
                    out.setdefault(int(m.group(1)), {})[f] = val
        return dict(sorted(out.items()))

    def thermal(self) -> Thermal:
        types = self.read_files("/sys/class/thermal/thermal_zone[0-9]*", "type")
        temps = self.read_files("/sys/class/thermal/thermal_zone[0-9]*", "temp")
        zones: dict[str, float] = {}
        for tpath, ztype in types.items():
            raw = temps.get(tpath[: -len("type")] + "temp")
            try:
                v = float(raw) if raw is not None else None
            except ValueError:
                v = None
            if v is None:
                continue
            c = v / 1000.0 if abs(v) >= 1000 else v
            if -30 < c < 150:  # real phones have zones that report nonsense; skip them
                zones[ztype] = c
        return Thermal(zones)

    def free_kb(self, path: str) -> int | None:
        res = self.shell(["df", "-k", path])
        for ln in res.output.splitlines()[1:]:
            parts = ln.split()
            if len(parts) >= 4 and parts[3].isdigit():
                return int(parts[3])
        return None

    def soc(self, props: dict[str, str]) -> str:
        return props.get("ro.soc.model") or PLATFORM_SOC.get(props.get("ro.board.platform", ""), props.get("ro.board.platform", ""))

    def fingerprint(self, props: dict[str, str] | None = None) -> dict[str, Any]:
        p = props or self.props()
        return {"model": p.get("ro.product.model", ""), "manufacturer": p.get("ro.product.manufacturer", ""),
                "soc": self.soc(p), "board_platform": p.get("ro.board.platform", ""),
                "android": p.get("ro.build.version.release", ""), "sdk": p.get("ro.build.version.sdk", ""),
                "build": p.get("ro.build.fingerprint", ""), "cpu": p.get("ro.product.cpu.abi", ""),
                "serial": p.get("ro.serialno", self.serial), "device_profile": self.profile.name}

    # ---- waiting ---------------------------------------------------------------------------
    def wait_cool(self, max_temp_c: float, max_wait_s: float, poll_s: float = 1.0) -> float:
        """Block while the hottest CPU zone is above ``max_temp_c``; returns the seconds waited."""
        if max_temp_c <= 0:
            return 0.0
        t0 = time.monotonic()
        announced = False
        while True:
            hot = self.thermal().hottest(self.profile.thermal_zones)
            if hot is None or hot[1] <= max_temp_c:
                if announced:
                    self.log(f"phone {self.serial} cooled down to {hot[1] if hot else 0:.1f} C after {time.monotonic() - t0:.0f}s")
                return time.monotonic() - t0
            waited = time.monotonic() - t0
            if waited > max_wait_s:
                from .transport import DeviceError

                raise DeviceError(f"phone {self.serial} stayed above {max_temp_c:.0f} C ({hot[0]} at {hot[1]:.1f} C) for "
                                  f"{max_wait_s:.0f}s; let it cool (screen off, no charging, out of the sun) and run the same command again")
            if not announced:
                self.log(f"phone {self.serial} is hot ({hot[0]} at {hot[1]:.1f} C > {max_temp_c:.0f} C); waiting for it to cool down")
                announced = True
            time.sleep(poll_s)
