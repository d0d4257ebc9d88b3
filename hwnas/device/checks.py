"""Phone preparation checks: what ``hwnas device check`` prints and ``hwnas profile`` runs first.

Each check is one small function ``(phone, profile) -> Check``; ``run_checks`` assembles them.
A failure stops profiling (binary missing, no space, taskset refused); a warning does not
(not rooted so the governor cannot be pinned, a SoC other than the profile's).
"""

from __future__ import annotations

import posixpath
import shlex
from dataclasses import dataclass, field
from typing import Any, Callable

from .phone import Phone
from .profiles import DeviceProfile

OK, WARN, FAIL = "ok", "warn", "fail"


@dataclass
class Check:
    name: str
    status: str
    message: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Report:
    checks: list[Check]
    fingerprint: dict[str, Any]

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if c.status == FAIL]

    @property
    def warnings(self) -> list[Check]:
        return [c for c in self.checks if c.status == WARN]


CheckFn = Callable[[Phone, DeviceProfile, dict[str, Any]], Check]
CHECKS: list[CheckFn] = []


def check(fn: CheckFn) -> CheckFn:
    CHECKS.append(fn)
    return fn


def cpus_of_mask(profile: DeviceProfile) -> list[int]:
    return list(profile.cpu_mask)


@check
def soc_check(phone: Phone, profile: DeviceProfile, ctx: dict[str, Any]) -> Check:
    fp = ctx["fingerprint"]
    what = f"{fp['manufacturer']} {fp['model']}, {fp['soc']}, Android {fp['android']}"
    if profile.soc and fp["soc"] and fp["soc"].upper() != profile.soc.upper():
        return Check("phone", WARN, f"{what}: profile {profile.name!r} is for {profile.soc}; tables will record {fp['soc']}")
    return Check("phone", OK, what)


@check
def root_check(phone: Phone, profile: DeviceProfile, ctx: dict[str, Any]) -> Check:
    rooted = phone.rooted()
    ctx["rooted"] = rooted
    if rooted:
        return Check("root", OK, "rooted: the CPU governor can be pinned")
    return Check("root", WARN, "not rooted: the CPU governor cannot be pinned, so DVFS may add noise (close apps, keep the screen on, unplug the charger)")


@check
def governor_check(phone: Phone, profile: DeviceProfile, ctx: dict[str, Any]) -> Check:
    gov = phone.governors()
    ctx["governors"] = gov
    cpus = cpus_of_mask(profile) or sorted(gov)
    seen = {c: gov.get(c, {}) for c in cpus}
    if not any(seen.values()):
        return Check("governor", WARN, "cannot read cpufreq for the profiled CPUs")
    desc = ", ".join(f"cpu{c} {g.get('scaling_governor', '?')} {int(g.get('scaling_cur_freq', 0) or 0) // 1000}/"
                     f"{int(g.get('cpuinfo_max_freq', 0) or 0) // 1000} MHz" for c, g in seen.items())
    wrong = [c for c, g in seen.items() if profile.governor and g.get("scaling_governor") != profile.governor]
    if wrong:
        how = "run `hwnas device setup` to pin it" if ctx.get("rooted") else "it cannot be changed without root"
        return Check("governor", WARN, f"{desc}; profile wants {profile.governor!r} on cpu{','.join(map(str, wrong))} ({how})",
                     {"cpus": seen})
    return Check("governor", OK, desc, {"cpus": seen})


@check
def thermal_check(phone: Phone, profile: DeviceProfile, ctx: dict[str, Any]) -> Check:
    hot = phone.thermal().hottest(profile.thermal_zones)
    if hot is None:
        return Check("temperature", WARN, "no readable thermal zone")
    zone, temp = hot
    if profile.max_temp_c > 0 and temp > profile.max_temp_c:
        return Check("temperature", WARN, f"{zone} at {temp:.1f} C is above the limit {profile.max_temp_c:.0f} C: profiling will wait for it to cool",
                     {"zone": zone, "temp_c": temp})
    limit = f" (limit {profile.max_temp_c:.0f} C)" if profile.max_temp_c > 0 else ""
    return Check("temperature", OK, f"hottest {zone} {temp:.1f} C{limit}", {"zone": zone, "temp_c": temp})


@check
def taskset_check(phone: Phone, profile: DeviceProfile, ctx: dict[str, Any]) -> Check:
    if not profile.taskset_mask:
        return Check("taskset", OK, "no CPU pinning requested")
    res = phone.shell(["taskset", profile.taskset_mask, "true"])
    if not res.ok:
        return Check("taskset", FAIL, f"`taskset {profile.taskset_mask}` fails on the phone: {res.output.strip()[-200:]}")
    return Check("taskset", OK, f"mask {profile.taskset_mask} (cpu {','.join(map(str, profile.cpu_mask))})")


@check
def workdir_check(phone: Phone, profile: DeviceProfile, ctx: dict[str, Any]) -> Check:
    d = profile.remote_dir
    res = phone.shell(["mkdir", "-p", d])
    if not res.ok:
        return Check("work dir", FAIL, f"cannot create {d!r}: {res.output.strip()[-200:]} (use a folder under /data/local/tmp)")
    free = phone.free_kb(d)
    if free is not None and free < profile.min_free_mb * 1024:
        return Check("space", FAIL, f"no space on the phone: {free // 1024} MB free in {d!r}, need {profile.min_free_mb:.0f} MB; delete files or use another folder")
    return Check("space", OK, f"{d}: {free // 1024 if free is not None else '?'} MB free")


@check
def binary_check(phone: Phone, profile: DeviceProfile, ctx: dict[str, Any]) -> Check:
    b = profile.benchmark_binary
    res = phone.shell(["test", "-x", b])
    if not res.ok:
        kind = "benchmark_model" if profile.binary_kind == "tflite" else "onnxruntime_perf_test"
        return Check("binary", FAIL, f"{kind} missing on the phone at {b!r}: run `hwnas device setup {profile.name} --benchmark-binary PATH` "
                                     f"(an arm64 build of TensorFlow Lite's {kind})")
    digest = phone.shell(["sha256sum", b]).output.split()
    ctx["binary_sha256"] = digest[0] if digest else ""
    return Check("binary", OK, f"{posixpath.basename(b)} at {b}")


def run_checks(phone: Phone, profile: DeviceProfile) -> Report:
    props = phone.props()
    ctx: dict[str, Any] = {"fingerprint": phone.fingerprint(props), "props": props}
    checks = [fn(phone, profile, ctx) for fn in CHECKS]
    fp = dict(ctx["fingerprint"])
    fp["rooted"] = bool(ctx.get("rooted"))
    fp["benchmark_binary_sha256"] = ctx.get("binary_sha256", "")
    if ctx.get("governors"):
        fp["governor"] = {str(c): g.get("scaling_governor", "") for c, g in ctx["governors"].items()}
    return Report(checks, fp)


def pin_governor(phone: Phone, profile: DeviceProfile) -> list[str]:
    """Set the profile's governor on the profiled CPUs (root only); returns what was changed."""
    if not profile.governor:
        return []
    changed = []
    for c in cpus_of_mask(profile) or sorted(phone.governors()):
        path = f"/sys/devices/system/cpu/cpu{c}/cpufreq/scaling_governor"
        inner = f"echo {shlex.quote(profile.governor)} > {path}"
        res = phone.shell(f"su -c {shlex.quote(inner)}")
        if res.ok:
            changed.append(f"cpu{c}")
    return changed
