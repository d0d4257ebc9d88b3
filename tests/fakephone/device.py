"""The phone's state: a small filesystem, system properties, sysfs files and fault switches.

It behaves like an unrooted Snapdragon 855 (SM8150, ``msmnile``) phone on Android 12 as the
``shell`` user: /data/local/tmp is writable, sysfs is readable but not writable, and the
thermal zones report temperatures that the ``hot`` fault raises for a while.
"""

from __future__ import annotations

import posixpath
import stat
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

ELF_ARM64 = b"\x7fELF\x02\x01\x01\x00" + b"\0" * 8 + b"\x03\x00\xb7\x00"  # ET_DYN, EM_AARCH64

PROPS = {
    "ro.product.model": "Pixel 4",
    "ro.product.manufacturer": "Google",
    "ro.product.brand": "google",
    "ro.product.name": "flame",
    "ro.product.device": "flame",
    "ro.product.board": "flame",
    "ro.board.platform": "msmnile",
    "ro.hardware": "flame",
    "ro.soc.manufacturer": "QTI",
    "ro.soc.model": "SM8150",
    "ro.product.cpu.abi": "arm64-v8a",
    "ro.product.cpu.abilist": "arm64-v8a,armeabi-v7a,armeabi",
    "ro.build.version.release": "12",
    "ro.build.version.sdk": "31",
    "ro.build.id": "SQ3A.220705.003",
    "ro.build.fingerprint": "google/flame/flame:12/SQ3A.220705.003/8671607:user/release-keys",
    "ro.build.type": "user",
    "ro.debuggable": "0",
    "ro.secure": "1",
    "sys.boot_completed": "1",
}

# (cpus, max kHz) per cluster: 4x Kryo 485 Silver, 3x Gold, 1x Gold prime.
CLUSTERS = (((0, 1, 2, 3), 1785600), ((4, 5, 6), 2419200), ((7,), 2841600))
THERMAL_ZONES = ("cpu-0-0-usr", "cpu-1-0-usr", "cpu-1-1-usr", "cpu-1-2-usr", "cpu-1-3-usr", "battery")
DATA_CAPACITY_KB = 52_000_000


@dataclass
class Faults:
    drop_after: int = 0  # close every connection and stop answering after N shell commands (0 = never)
    down_for: float = -1.0  # after a drop, come back after this many seconds (-1 = never)
    refuse_auth: bool = False  # never accept this computer's key (the user does not tap "Allow")
    slow_kbps: float = 0.0  # throttle the link to this many KB/s (0 = full speed)
    disk_full: bool = False  # /data has no space left
    binary_missing: bool = False  # no benchmark_model on the phone
    hot_s: float = 0.0  # CPU thermal zones above the limit for this many seconds once benchmarking starts
    rooted: bool = False  # `su` works and sysfs is writable

    @classmethod
    def parse(cls, specs: list[str]) -> "Faults":
        f = cls()
        for spec in specs:
            name, _, value = spec.partition("=")
            name = name.replace("_", "-")
            if name == "drop-after":
                f.drop_after = int(value)
            elif name == "down-for":
                f.down_for = float(value)
            elif name == "refuse-auth":
                f.refuse_auth = True
            elif name == "slow":
                f.slow_kbps = float(value or 64)
            elif name == "disk-full":
                f.disk_full = True
            elif name == "binary-missing":
                f.binary_missing = True
            elif name == "hot":
                f.hot_s = float(value or 5)
            elif name == "rooted":
                f.rooted = True
            else:
                raise ValueError(f"unknown fault {spec!r}")
        return f


@dataclass
class Node:
    data: bytes | Callable[[], bytes] = b""
    mode: int = stat.S_IFREG | 0o644
    mtime: int = 0
    writable: Callable[[], bool] | None = None  # for sysfs: None = normal file permissions

    def read(self) -> bytes:
        return self.data() if callable(self.data) else self.data


@dataclass
class Device:
    faults: Faults = field(default_factory=Faults)
    serial: str = "FA7AP1A00855"
    files: dict[str, Node] = field(default_factory=dict)
    dirs: set[str] = field(default_factory=set)
    lock: threading.RLock = field(default_factory=threading.RLock)
    shell_commands: int = 0
    log: list[str] = field(default_factory=list)  # every shell command line received, in order
    pushes: list[str] = field(default_factory=list)  # every file written over sync
    hot_since: float | None = None
    used_kb: int = 31_000_000
    governors: dict[int, dict[str, bytes]] = field(default_factory=dict)
    log_path: str = ""  # also append "shell: LINE" / "push: PATH" lines to this file
    # what benchmark_model's NowMicros() reads here (see programs.py): "core" = the measuring
    # thread's CPU clock, i.e. the time a big core reserved for the benchmark would show;
    # "wall" = this shared computer's wall clock (other processes' time slices included)
    clock: str = "core"
    benchmark_format: str = "nightly"  # what benchmark_model prints: "nightly" (current prebuilt) or "2019" (older build)

    def record(self, what: str, text: str) -> None:
        if self.log_path:
            with self.lock, open(self.log_path, "a", encoding="utf-8") as f:
                f.write(f"{what}: {text}\n")

    def __post_init__(self) -> None:
        for d in ("/", "/data", "/data/local", "/data/local/tmp", "/system", "/system/bin", "/sdcard",
                  "/sys/devices/system/cpu", "/sys/class/thermal", "/proc"):
            self.mkdirs(d)
        for name in ("sh", "toybox", "getprop", "taskset", "cat", "ls", "df", "sha256sum"):
            self.files[f"/system/bin/{name}"] = Node(ELF_ARM64, stat.S_IFREG | 0o755)
        if not self.faults.binary_missing:
            self.mkdirs("/data/local/tmp/hwnas")
            self.files["/data/local/tmp/hwnas/benchmark_model"] = Node(ELF_ARM64 + b"benchmark_model", stat.S_IFREG | 0o755, int(time.time()))
        self.files["/proc/cpuinfo"] = Node(b"Processor\t: AArch64 Processor rev 14 (aarch64)\nHardware\t: Qualcomm Technologies, Inc SM8150\n")
        for cpus, khz in CLUSTERS:
            for c in cpus:
                base = f"/sys/devices/system/cpu/cpu{c}/cpufreq"
                self.mkdirs(base)
                state = {"governor": b"schedutil\n"}
                self.files[f"{base}/scaling_governor"] = Node(
                    (lambda s=state: s["governor"]), writable=lambda: self.faults.rooted)
                self.files[f"{base}/scaling_available_governors"] = Node(b"conservative powersave interactive performance schedutil\n", stat.S_IFREG | 0o444)
                self.files[f"{base}/scaling_cur_freq"] = Node(f"{khz}\n".encode(), stat.S_IFREG | 0o444)
                self.files[f"{base}/cpuinfo_max_freq"] = Node(f"{khz}\n".encode(), stat.S_IFREG | 0o444)
                self.governors[c] = state
        self.files["/sys/devices/system/cpu/online"] = Node(b"0-7\n", stat.S_IFREG | 0o444)
        for i, ztype in enumerate(THERMAL_ZONES):
            z = f"/sys/class/thermal/thermal_zone{i}"
            self.mkdirs(z)
            self.files[f"{z}/type"] = Node(f"{ztype}\n".encode(), stat.S_IFREG | 0o444)
            base_mc = 36000 + 700 * i if ztype != "battery" else 31000
            self.files[f"{z}/temp"] = Node(lambda b=base_mc, t=ztype: self._temp(b, t), stat.S_IFREG | 0o444)

    # ---- dynamic files -------------------------------------------------------------------
    def heat(self) -> None:
        """Benchmarking started: with the ``hot`` fault the CPU zones now read hot for a while."""
        with self.lock:
            if self.hot_since is None:
                self.hot_since = time.monotonic()

    def _temp(self, base_mc: int, ztype: str) -> bytes:
        now = time.monotonic()
        with self.lock:
            since = self.hot_since
            hot = self.faults.hot_s > 0 and since is not None and now - since < self.faults.hot_s
        return f"{base_mc + (22000 if hot and ztype.startswith('cpu') else 0)}\n".encode()

    def write_sysfs(self, path: str, data: bytes) -> None:
        for c, state in self.governors.items():
            if path == f"/sys/devices/system/cpu/cpu{c}/cpufreq/scaling_governor":
                state["governor"] = data.strip() + b"\n"

    # ---- filesystem ----------------------------------------------------------------------
    def mkdirs(self, path: str) -> None:
        path = posixpath.normpath(path)
        while path not in self.dirs:
            self.dirs.add(path)
            if path == "/":
                break
            path = posixpath.dirname(path)

    def is_dir(self, path: str) -> bool:
        return posixpath.normpath(path) in self.dirs

    def exists(self, path: str) -> bool:
        path = posixpath.normpath(path)
        return path in self.files or path in self.dirs

    def writable_dir(self, path: str) -> bool:
        path = posixpath.normpath(path)
        return self.faults.rooted or path == "/data/local/tmp" or path.startswith("/data/local/tmp/") or path.startswith("/sdcard")

    def free_kb(self) -> int:
        if self.faults.disk_full:
            return 0
        return DATA_CAPACITY_KB - self.used_kb - sum(len(n.data) for p, n in self.files.items()
                                                     if p.startswith("/data/") and isinstance(n.data, bytes)) // 1024

    def write_file(self, path: str, data: bytes, mode: int = 0o644, mtime: int | None = None) -> str | None:
        """Write a file as the shell user would; returns an error string (errno text) or None."""
        path = posixpath.normpath(path)
        parent = posixpath.dirname(path)
        if path in self.dirs:
            return "Is a directory"
        node = self.files.get(path)
        if node is not None and node.writable is not None:
            if not node.writable():
                return "Permission denied"
            self.write_sysfs(path, data)
            return None
        if not self.writable_dir(parent):
            return "Permission denied" if self.is_dir(parent) else "No such file or directory"
        if self.faults.disk_full or len(data) // 1024 > self.free_kb():
            return "No space left on device"
        self.mkdirs(parent)
        self.files[path] = Node(bytes(data), stat.S_IFREG | (mode & 0o7777), int(mtime or time.time()))
        return None

    def listdir(self, path: str) -> list[str]:
        path = posixpath.normpath(path)
        prefix = path.rstrip("/") + "/"
        names = {p[len(prefix):].split("/", 1)[0] for p in list(self.files) + list(self.dirs)
                 if p.startswith(prefix) and p != path}
        return sorted(n for n in names if n)
