"""Which phones are attached: ``adb devices -l`` (when the adb client is installed) plus TCP phones
named with ``--host``, each asked for its model, SoC and Android version."""

from __future__ import annotations

from typing import Any

from .adb_cli import list_adb_devices
from .phone import PLATFORM_SOC
from .profiles import DeviceProfile, list_devices, load_device
from .transport import DeviceError, create_transport


def _describe(transport_name: str, serial: str, auth_timeout_s: float = 10.0) -> dict[str, Any]:
    info: dict[str, Any] = {"serial": serial, "state": "device", "model": "", "soc": "", "android": "", "via": transport_name}
    try:
        with create_transport(transport_name, serial, auth_timeout_s=auth_timeout_s, command_timeout_s=20) as t:
            out = t.check(["getprop"], "getprop")
    except DeviceError as e:
        info["state"] = "unauthorized" if "authoriz" in str(e) else "unreachable"
        info["error"] = str(e)
        return info
    import re

    props = dict(re.findall(r"^\[([^\]]+)\]: \[(.*)\]\s*$", out, re.M))
    info.update(model=props.get("ro.product.model", ""), android=props.get("ro.build.version.release", ""),
                soc=props.get("ro.soc.model") or PLATFORM_SOC.get(props.get("ro.board.platform", ""), props.get("ro.board.platform", "")))
    return info


def attached_phones(hosts: list[str] | None = None, transport: str = "adb-shell") -> list[dict[str, Any]]:
    """Phones in ``adb devices`` (queried through the adb client) and the given ``host:port`` phones."""
    out: list[dict[str, Any]] = []
    for d in list_adb_devices():
        if d["state"] == "device":
            info = _describe("adb-cli", d["serial"])
        else:
            info = {"serial": d["serial"], "state": d["state"], "model": d.get("model", ""), "soc": "", "android": "", "via": "adb-cli"}
        out.append(info)
    seen = {d["serial"] for d in out}
    for h in hosts or []:
        serial = h if ":" in h else f"{h}:5555"
        if serial not in seen:
            out.append(_describe(transport, serial))
    return out


def known_profiles() -> list[DeviceProfile]:
    return [load_device(n) for n in list_devices()]
