"""Latency verification: time the exported file on the table's device, next to the prediction.

The file is timed through the same backend and protocol that filled the table (host
onnxruntime/LiteRT, or the phone over ADB), so the two numbers differ only by what the
block-sum model misses (per-op overhead between blocks, fusion across blocks). When the table
was profiled with drift correction, the space's anchor network is timed before and after the
file: a device running slower than when the table was made (a loaded host, a warm phone) is
reported as such, with the measurement in the table's reference state next to the raw one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import HwnasError
from ..latency.table import LatencyTable
from ..space.arch import Arch


@dataclass
class LatencyReport:
    table: str
    backend: str
    device: str
    predicted_ms: float
    uncertainty_ms: float
    measured_ms: float | None = None
    measured_p90_ms: float | None = None
    measured_cv: float | None = None
    error_pct: float | None = None  # (predicted - measured) / measured, in %
    serial: str | None = None  # the phone the file was timed on (ADB tables)
    device_speed_factor: float | None = None  # anchor now / anchor when the table was profiled (>1: slower now)
    measured_reference_ms: float | None = None  # measured_ms / device_speed_factor
    error_reference_pct: float | None = None  # prediction error against measured_reference_ms
    table_cpu: str | None = None  # host tables: the CPU the table was profiled on ...
    this_cpu: str | None = None  # ... and the one the file was timed on
    budget_ms: float | None = None
    budget_met: bool | None = None  # None: no budget, or not measured
    verdict: str = ""  # latency_verdict's sentence
    prediction: dict[str, Any] | None = None  # median, interval, P(within budget): latency.confidence.prediction_summary
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        where = f"{self.device} {self.serial}" if self.serial else self.device
        s = f"latency on {where} ({self.backend}): predicted {self.predicted_ms:.3f} ± {self.uncertainty_ms:.3f} ms"
        if self.measured_ms is not None:
            s += f", measured {self.measured_ms:.3f} ms (median), prediction error {self.error_pct:+.1f}%"
        if self.device_speed_factor is not None and self.measured_reference_ms is not None:
            s += (f"; the anchor network took {self.device_speed_factor:.3f}x its time when the table was profiled:"
                  f" {self.measured_reference_ms:.3f} ms in that state, error {self.error_reference_pct:+.1f}%")
        if self.note:
            s += f" [{self.note}]"
        return s


# A device this much slower than when the table was profiled (anchor ratio) is named as a cause.
SLOWER_FACTOR = 1.02


def latency_verdict(rep: LatencyReport, budget_ms: float | None) -> tuple[bool | None, str]:
    """(met, sentence): whether the measured file meets ``budget_ms`` on this machine, and if
    not, why, in words: another CPU than the table's, a device running slower than when the
    table was profiled (with the file's latency in the table's state), or a prediction that was
    off or already over the budget. ``met`` is None when there is no budget or no measurement."""
    if rep.measured_ms is None:
        return None, "latency not checked: " + (rep.note or "not measured")
    measured = f"measured {rep.measured_ms:.3f} ms (predicted {rep.predicted_ms:.3f} ms)"
    if budget_ms is None:
        return None, f"no latency budget to check: {measured}"
    slower = rep.device_speed_factor is not None and rep.device_speed_factor >= SLOWER_FACTOR and rep.measured_reference_ms is not None
    state = (f"it ran {rep.device_speed_factor:.2f}x slower than when the table was profiled: in the table's state the file takes "
             f"{rep.measured_reference_ms:.3f} ms (prediction error {rep.error_reference_pct:+.1f}%)") if slower else ""
    if rep.measured_ms <= budget_ms:
        return True, f"meets the {budget_ms:g} ms budget on this machine: {measured}" + (f"; {state}" if state else "")
    why = []
    if rep.table_cpu and rep.this_cpu and rep.table_cpu != rep.this_cpu:
        why.append(f"this CPU ({rep.this_cpu!r}) is not the one the table was profiled on ({rep.table_cpu!r})")
    if state:
        why.append(state)
    if rep.predicted_ms > budget_ms:
        why.append(f"the prediction ({rep.predicted_ms:.3f} ms) was already over the budget")
    else:
        err = rep.error_reference_pct if slower else rep.error_pct
        if err is not None and err < 0:
            why.append(f"the table predicted {rep.predicted_ms:.3f} ms, {-err:.1f}% under the measurement"
                       + (" in the table's state" if slower else ""))
    return False, (f"does not meet the {budget_ms:g} ms budget on this machine: {measured}, "
                   f"{100 * (rep.measured_ms / budget_ms - 1):+.1f}% over; why: " + "; ".join(why or ["measurement noise"]))


def verify_latency(table: LatencyTable, arch: Arch, model_path: str | Path, fmt: str, precision: str,
                   measure: bool = True, runs: int | None = None, serial: str | None = None,
                   transport: str | None = None) -> LatencyReport:
    """Predicted latency from ``table`` and, with ``measure``, the file timed on the table's device.

    A phone table (backend ``adb``) times the file on the phone over ADB with the table's
    protocol, through the same backend that profiled the blocks. ``serial`` (a USB serial or
    HOST:PORT) and ``transport`` choose the phone; by default the table's phone (its serial).
    A device that cannot be reached is reported in the note, not raised: the file is valid.
    """
    ms, unc = table.predict(arch)
    device_name = str(table.device.get("name") or table.device.get("model") or "host")
    rep = LatencyReport(table=str(table.path or ""), backend=table.backend, device=device_name, predicted_ms=ms, uncertainty_ms=unc)
    notes = []
    if precision != "fp32" and "fp32" not in table.backend.replace("-", "").lower() and precision not in table.backend:
        notes.append(f"the table times fp32 blocks; this file is {precision}")
    if not measure:
        rep.note = "; ".join(notes + ["not measured (--no-verify)"])
        return rep
    published = bool(table.device.get("imported_from"))  # a published table: no hwnas protocol, a phone hwnas never saw
    if published and not serial:
        label = table.device.get("label") or table.device.get("model") or device_name
        rep.note = "; ".join(notes + [f"predicted on the {label} table; not measured: no such phone attached "
                                      "(--serial or --host to time the file on one)"])
        return rep
    try:
        from ..device.profiles import load_device  # noqa: PLC0415
        from ..latency.backends.base import Protocol, create_backend  # noqa: PLC0415
    except ImportError:
        rep.note = "; ".join(notes + ["this build has no timing backends"])
        return rep
    try:
        device = load_device(device_name)
    except HwnasError as e:
        rep.note = "; ".join(notes + [f"not measured: {e}"])
        return rep
    options: dict[str, Any] = {}
    if getattr(device, "kind", "host") != "adb" and table.device.get("cpu"):
        from ..latency.backends.host import cpu_model  # noqa: PLC0415

        rep.table_cpu, rep.this_cpu = str(table.device["cpu"]), cpu_model()
    if getattr(device, "kind", "host") == "adb":
        rep.serial = serial or str(table.device.get("serial") or "") or None
        options = {"serial": rep.serial, "transport": transport or table.device.get("transport") or None}
    try:
        backend_name = "adb" if published and getattr(device, "kind", "host") == "adb" else table.backend
        backend = create_backend(backend_name, device=device, **options)
        try:
            if getattr(backend, "model_format", fmt) != fmt:
                rep.note = "; ".join(notes + [f"not measured: the table's backend {table.backend!r} times {backend.model_format} files, this is {fmt}"])
                return rep
            protocol = Protocol.from_dict(table.protocol) if table.protocol else backend.default_protocol()
            if runs is not None:
                protocol.runs = runs
            anchor, reference_ms = _anchor_for(table, arch, fmt)
            readings = [backend.measure(anchor, protocol).median_ms] if anchor else []
            m = backend.measure(model_path, protocol)
            if anchor:
                readings.append(backend.measure(anchor, protocol).median_ms)
        finally:
            backend.close()
    except HwnasError as e:
        if getattr(device, "kind", "host") != "adb":
            raise
        rep.note = "; ".join(notes + [f"not measured: {e}"])
        return rep
    rep.measured_ms, rep.measured_p90_ms, rep.measured_cv = m.median_ms, m.p90_ms, m.cv
    rep.error_pct = 100.0 * (ms - m.median_ms) / m.median_ms if m.median_ms > 0 else None
    if readings and m.median_ms > 0:
        rep.device_speed_factor = float(sum(readings) / len(readings)) / reference_ms
        rep.measured_reference_ms = m.median_ms / rep.device_speed_factor
        rep.error_reference_pct = 100.0 * (ms - rep.measured_reference_ms) / rep.measured_reference_ms
    if m.status != "ok":
        notes.append(f"measurement CV {m.cv:.3f} above the protocol bound")
    rep.note = "; ".join(notes)
    return rep


def _anchor_for(table: LatencyTable, arch: Arch, fmt: str) -> tuple[Path | None, float | None]:
    """The table's anchor network file and its reference latency, when the table has an anchor
    this version knows (else None, None)."""
    from ..latency.drift import anchor_file, table_anchor_reference  # noqa: PLC0415

    space = arch.get_space()
    reference_ms = table_anchor_reference(table.protocol, space)
    if reference_ms is None:
        return None, None
    try:
        return anchor_file(space, fmt), reference_ms
    except Exception:  # noqa: BLE001  (no anchor: the raw measurement still stands)
        return None, None
