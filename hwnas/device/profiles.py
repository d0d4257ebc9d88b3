"""Device profiles (devices/*.toml): how to reach a device and how to measure on it.

Looked up by name in the user's config folder (``~/.config/hwnas/devices``), then in the
``devices/`` folder of the current directory and of the hwnas checkout, so a new phone is
one TOML file.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ..errors import HwnasError

REPO_DEVICES = Path(__file__).resolve().parent.parent.parent / "devices"


def config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "hwnas"


def device_dirs() -> list[Path]:
    dirs = []
    if os.environ.get("HWNAS_DEVICES_DIR"):
        dirs.append(Path(os.environ["HWNAS_DEVICES_DIR"]))
    dirs += [config_dir() / "devices", Path.cwd() / "devices", REPO_DEVICES]
    out: list[Path] = []
    for d in dirs:
        if d not in out:
            out.append(d)
    return out


# A device name is used in file names: a plain name, no path separators, not "." or "..".
SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


@dataclass
class DeviceProfile:
    name: str
    kind: str = "host"  # "host" (this machine) or "adb" (a phone)
    soc: str = ""
    description: str = ""
    # how to reach it (adb)
    transport: str = "adb-shell"  # "adb-shell" (TCP/USB in process) or "adb-cli" (the adb client)
    serial: str = ""  # USB serial, or host:port for TCP
    remote_dir: str = "/data/local/tmp/hwnas"
    benchmark_binary: str = "/data/local/tmp/hwnas/benchmark_model"
    binary_kind: str = "tflite"  # "tflite" (benchmark_model) or "onnxruntime" (onnxruntime_perf_test)
    # how to measure
    threads: int = 1
    cpu_mask: list[int] = field(default_factory=list)  # CPUs the measuring process is pinned to
    warmup_runs: int = 10
    runs: int = 50
    min_time_s: float = 0.1  # keep timing past ``runs`` until this long (benchmark_model's --min_secs)
    cv_bound: float = 0.05
    max_retries: int = 3
    cooldown_s: float = 0.0
    anchor_every: int = 0  # time the space's anchor network every N measurements to correct drift (0 = off)
    max_temp_c: float = 0.0  # 0 = do not check
    governor: str = ""  # governor the profile expects ("performance"), "" = any
    # phone handling (adb)
    thermal_zones: str = "cpu*"  # thermal zone types (glob) whose temperature is checked against max_temp_c
    thermal_wait_s: float = 300.0  # give up when the phone stays hotter than max_temp_c this long
    auth_timeout_s: float = 30.0  # time to accept "Allow USB debugging?" on the phone
    reconnect_timeout_s: float = 60.0  # wait this long for a phone that disappeared mid-profile
    command_timeout_s: float = 300.0  # one remote command (e.g. one benchmark_model run)
    min_free_mb: float = 50.0  # free space needed in remote_dir
    backends: list[str] = field(default_factory=list)
    path: str = ""

    @property
    def taskset_mask(self) -> str:
        """Hex CPU mask for ``taskset`` (e.g. cpus 4-7 -> f0)."""
        return format(sum(1 << c for c in self.cpu_mask), "x") if self.cpu_mask else ""

    def measurement_protocol(self) -> dict[str, Any]:
        return {"threads": self.threads, "cpu_mask": list(self.cpu_mask), "warmup_runs": self.warmup_runs,
                "runs": self.runs, "min_time_s": self.min_time_s, "cv_bound": self.cv_bound, "max_retries": self.max_retries,
                "cooldown_s": self.cooldown_s, "anchor_every": self.anchor_every}


def list_devices() -> list[str]:
    names: set[str] = set()
    for d in device_dirs():
        if d.is_dir():
            names.update(p.stem for p in d.glob("*.toml") if p.stem.lower() != "template")
    return sorted(names)


def load_device(name: str) -> DeviceProfile:
    """The profile called ``name`` (or a path to a TOML file); unknown names are a clear error."""
    candidates = [Path(name)] if name.endswith(".toml") else [d / f"{name}.toml" for d in device_dirs()]
    for p in candidates:
        if p.is_file():
            return parse_device(p)
    known = ", ".join(list_devices()) or "none"
    raise HwnasError(f"unknown device {name!r}; known: {known} (add devices/{name}.toml, see devices/TEMPLATE.toml)")


def parse_device(path: Path) -> DeviceProfile:
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise HwnasError(f"device profile {str(path)!r} is not valid TOML ({e}); fix the file") from None
    allowed = {f.name for f in fields(DeviceProfile)}
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise HwnasError(f"device profile {str(path)!r} has unknown field(s) {', '.join(unknown)}; see devices/TEMPLATE.toml")
    raw.setdefault("name", path.stem)
    name = raw["name"]
    if not isinstance(name, str) or not SAFE_NAME.fullmatch(name):
        # the name becomes part of file names (latency_tables/<name>-<space>-<backend>.json)
        raise HwnasError(f"device profile {str(path)!r}: name {name!r} must be letters, digits, '.', '_' or '-' "
                         "(it names table files); fix the name")
    prof = DeviceProfile(**raw)
    prof.path = str(path)
    if prof.kind not in ("host", "adb"):
        raise HwnasError(f"device profile {str(path)!r}: kind must be 'host' or 'adb', not {prof.kind!r}")
    return prof
