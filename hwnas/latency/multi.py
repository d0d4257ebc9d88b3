"""Profiling on phones: which phones (``--host``, ``--serial A --serial B``, ``--all``) and one worker per phone.

Each phone gets its own backend, journal and table (``<device>-<serial>-<space>-<backend>.json``
when there are several), so phones never mix measurements and each resumes on its own.
Blocks are exported once, before the workers start, and shared through the block cache.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any, Callable

from ..device.profiles import DeviceProfile
from ..errors import HwnasError
from .backends.adb import BINARY_KINDS
from .prepare import prepare_blocks
from .profiler import TABLES_DIR, profile_space, resolve_space


def phone_targets(profile: DeviceProfile, host: str | None = None, serials: list[str] | None = None,
                  all_phones: bool = False, transport: str | None = None) -> list[str]:
    """The serials to profile on, in order; an error that says how to name a phone if there is none."""
    out: list[str] = []
    if host:
        out.append(host if ":" in host else f"{host}:5555")
    out += list(serials or [])
    if all_phones:
        from ..device.adb_cli import list_adb_devices

        attached = list_adb_devices()
        ready = [d["serial"] for d in attached if d["state"] == "device"]
        if not ready:
            states = ", ".join(f"{d['serial']} ({d['state']})" for d in attached) or "none"
            raise HwnasError(f"--all found no ready phone in `adb devices` (attached: {states}); plug one in and accept USB debugging")
        out += [s for s in ready if s not in out]
    if not out and profile.serial:
        out.append(profile.serial)
    if not out:
        raise HwnasError(f"which phone? pass --host HOST:PORT, --serial SERIAL (see `hwnas devices`), --all, or set serial in {profile.path or profile.name}")
    return out


def table_path_for(out: Path | None, device: str, serial: str, space: str, backend: str, several: bool) -> Path | None:
    if not several:
        return out
    tag = re.sub(r"[^A-Za-z0-9_.-]+", "_", serial)
    if out is not None:
        return out.with_name(f"{out.stem}-{tag}{out.suffix or '.json'}")
    return TABLES_DIR / f"{device}-{tag}-{space}-{backend}.json"


def profile_on_phones(profile: DeviceProfile, space: str, backend: str = "adb", out: Path | None = None, *,
                      protocol: Any = None, force: bool = False, progress: Callable | None = None,
                      host: str | None = None, serials: list[str] | None = None, all_phones: bool = False,
                      transport: str | None = None, log: Callable[[str], None] | None = None) -> list[Any]:
    """Profile ``space`` on every selected phone in parallel (one thread per phone); one table each."""
    if transport is not None and transport not in ("adb-shell", "adb-cli"):
        raise HwnasError(f"unknown transport {transport!r}; use adb-shell or adb-cli")
    if all_phones and transport is None:
        transport = "adb-cli"  # --all asks the adb server, which then owns the USB connections
    targets = phone_targets(profile, host, serials, all_phones, transport)
    several = len(targets) > 1
    sp = resolve_space(space)
    if several:
        _export_all(profile, sp, backend)
    results: dict[str, Any] = {}
    errors: dict[str, BaseException] = {}

    def work(serial: str) -> None:
        try:
            opts = {"serial": serial, "transport": transport}
            if log is not None:
                opts["log"] = (lambda m, s=serial: log(f"[{s}] {m}")) if several else log
            results[serial] = profile_space(profile, sp, backend, table_path_for(out, profile.name, serial, sp.name, backend, several),
                                            protocol=protocol, force=force, progress=None if several else progress,
                                            backend_options=opts)
        except BaseException as e:  # noqa: BLE001  (reported per phone below)
            errors[serial] = e

    if not several:
        work(targets[0])
    else:
        threads = [threading.Thread(target=work, args=(s,), name=f"phone-{s}") for s in targets]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    if errors:
        if not several:
            raise errors[targets[0]]
        msgs = "; ".join(f"{s}: {e}" for s, e in errors.items())
        done = ", ".join(str(results[s].path) for s in targets if s in results)
        raise HwnasError(f"{len(errors)} of {len(targets)} phones failed ({msgs}); finished tables: {done or 'none'}; run the same command again to continue")
    return [results[s] for s in targets]


def _export_all(profile: DeviceProfile, sp: Any, backend: str) -> None:
    """Export every block once up front, so parallel workers only read the cache."""
    fmt = BINARY_KINDS.get(profile.binary_kind, ("tflite",))[0] if backend == "adb" else None
    if fmt is None:
        return
    prepare_blocks(sp, fmt, anchor=False)  # failures: the profiler tries again and records them itself
