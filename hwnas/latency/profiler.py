"""The profiler: time every distinct block of a space on a device -> a LatencyTable.

``profile_space(device, space, backend)`` is generic over devices and backends: it exports
each distinct block key with the exporter of the backend's ``model_format`` (cached on disk
by key), times it with ``backend.measure`` (the backend decides how: a host worker process,
or benchmark_model on a phone) and journals every finished measurement, so a killed run
continues where it stopped. Each key is measured ``protocol.rounds`` times, the rounds
interleaved across keys (a burst of load from other processes then hits one round of many
keys, not every round of one key), and the entry is the median of the round medians.
With ``protocol.anchor_every`` > 0 the space's anchor network is timed between measurements
and every measurement is expressed in the speed the device had at the table's reference
(``hwnas.latency.drift``), so a slow minute on a shared host or a warm phone does not
leave its mark on the blocks timed during it.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..device.profiles import DeviceProfile, load_device
from ..errors import HwnasError
from ..space.registry import create_space
from ..space.space import SearchSpace
from .backends.base import Backend, Measurement, MeasurementError, Protocol, create_backend, CV_DEFINITION
from ..formats import exporter_tag
from .blocks import default_cache_dir, export_block, export_failure
from .drift import AnchoredTimer, AnchorLog, anchor_arch, anchor_file, corrected, journal_anchor
from .journal import Journal, journal_path
from .keys import space_slots
from .lock import table_lock
from .table import LatencyTable, now_iso

DEFAULT_ROUNDS = 3
# Protocol fields that change what a number in the table means: a table is only extended
# with measurements taken the same way.
MEASURE_FIELDS = ("warmup_runs", "runs", "threads", "cpu_mask", "clock", "exporter", "model_format")
TABLES_DIR = Path("latency_tables")


def default_table_path(device: str, space: str, backend: str) -> Path:
    return TABLES_DIR / f"{device}-{space}-{backend}.json"


@dataclass
class ProfileEvent:
    """What the progress callback gets: a phase ("export"/"measure"), counts and the key."""

    phase: str
    done: int
    total: int
    key: str
    note: str = ""


ProgressFn = Callable[[ProfileEvent], None]


def resolve_device(device: DeviceProfile | str) -> DeviceProfile:
    return load_device(device) if isinstance(device, str) else device


def resolve_space(space: SearchSpace | str, space_args: dict[str, Any] | None = None) -> SearchSpace:
    return create_space(space, **(space_args or {})) if isinstance(space, str) else space


def entry_from_rounds(rounds: list[Measurement | dict[str, Any]]) -> dict[str, Any]:
    """One table entry from a key's round measurements (median of round medians)."""
    ms = [r if isinstance(r, Measurement) else Measurement.from_dict(r) for r in rounds]
    med = [m.median_ms for m in ms]
    median = float(np.median(med))
    n = sum(m.n for m in ms)
    # pooled per-run spread: within-round variance plus the spread of the round means
    mean = float(sum(m.mean_ms * m.n for m in ms) / n)
    var = sum((m.n - 1) * m.std_ms ** 2 + m.n * (m.mean_ms - mean) ** 2 for m in ms) / max(n - 1, 1)
    return {"median_ms": median, "p90_ms": float(np.median([m.p90_ms for m in ms])), "mean_ms": mean,
            "std_ms": math.sqrt(var), "n": n, "cv": float(np.median([m.cv for m in ms])),
            "round_medians_ms": [round(x, 6) for x in med],
            "round_spread": (max(med) - min(med)) / median if median > 0 else 0.0,
            "retries": sum(m.retries for m in ms),
            "status": "ok" if all(m.status == "ok" for m in ms) else "cv_exceeded",
            "measured": max(m.measured for m in ms)}


def profile_space(device: DeviceProfile | str, space: SearchSpace | str, backend: Backend | str, out: str | Path | None = None, *,
                  space_args: dict[str, Any] | None = None, protocol: Protocol | None = None, rounds: int | None = None,
                  cache_dir: Path | None = None, force: bool = False, keys: list[str] | None = None,
                  progress: ProgressFn | None = None, backend_options: dict[str, Any] | None = None) -> LatencyTable:
    """Profile every distinct block of ``space`` on ``device`` with ``backend``; return the saved table.

    Resumable: finished measurements are read back from the journal next to ``out`` (and
    entries already in an existing table at ``out`` are kept, not re-measured). The phases:
    open the table, replay the journal, export the blocks, measure them in interleaved
    rounds (timing the anchor in between), then write the entries.
    """
    dev = resolve_device(device)
    sp = resolve_space(space, space_args)
    be = create_backend(backend, device=dev, **(backend_options or {})) if isinstance(backend, str) else backend
    own_backend = isinstance(backend, str)
    proto = _resolve_protocol(dev, protocol, rounds)
    out_path = Path(out) if out is not None else default_table_path(dev.name, sp.name, be.name)
    try:
        with table_lock(out_path):  # one writer per table
            return _profile_locked(dev, sp, be, own_backend, proto, out_path, cache_dir=cache_dir, force=force, keys=keys,
                                   progress=progress)
    except BaseException:
        if own_backend:  # refused by the lock or stopped early: no worker left running (close is idempotent)
            be.close()
        raise


def _profile_locked(dev: DeviceProfile, sp: SearchSpace, be: Backend, own_backend: bool, proto: Protocol, out_path: Path, *,
                    cache_dir: Path | None, force: bool, keys: list[str] | None, progress: ProgressFn | None) -> LatencyTable:
    """``profile_space``'s phases, run while holding the table's lock."""
    fingerprint = be.fingerprint()
    table, table_protocol, space_args_d = _open_table(out_path, dev, sp, be, proto, fingerprint, force)

    slots = space_slots(sp)
    wanted = list(slots) if keys is None else [k for k in keys if k in slots]
    header = {"backend": be.name, "space": sp.name, "space_args": space_args_d, "protocol": proto.to_dict(),
              "fingerprint": {k: v for k, v in fingerprint.items()}, "device": dev.name, "started": now_iso()}
    journal = Journal(journal_path(out_path), header).open(force=force)
    done, times, failed = _replay_journal(journal)
    # drift correction: a table's entries share one reference speed, so a table that was
    # measured without an anchor is extended without one
    anchor_info = dict(table.protocol.get("anchor") or {})
    use_anchor = proto.anchor_every > 0 and (bool(anchor_info) or not table.entries)
    anchor_note = ""
    todo = [k for k in wanted if k not in table.entries and k not in failed]
    cache = cache_dir or default_cache_dir()

    try:
        need = [k for k in todo if len(done.get(k, [])) < proto.rounds]
        files = _export_blocks(need, slots, be.model_format, cache, failed, journal, progress)
        anchor_log = AnchorLog.from_journal(journal)
        anchor_path = None
        if use_anchor and any(len(done.get(k, [])) < proto.rounds for k in files):
            try:
                anchor_path = anchor_file(sp, be.model_format, cache)
            except Exception as e:  # noqa: BLE001  (the table is still valid without drift correction)
                anchor_note = f"anchor export failed ({type(e).__name__}); no drift correction"
        timer = AnchoredTimer(be, proto, anchor_path, proto.anchor_every if use_anchor else 0, anchor_log, on_anchor=journal_anchor(journal))
        _measure_rounds(interleaved_plan([k for k in need if k in files], proto.rounds), files, timer, proto,
                        done, times, failed, journal, progress)
        timer.finish()
    finally:
        if own_backend:
            be.close()

    reference = anchor_info.get("reference_ms") or anchor_log.median_ms()
    _write_entries(table, todo, done, times, failed, proto.rounds, anchor_log, reference, use_anchor)
    table.protocol = {**table_protocol, **{k: v for k, v in table.protocol.items() if k not in table_protocol}}
    if use_anchor and reference:
        table.protocol["anchor"] = {"arch": anchor_arch(sp).compact(), "seed_note": "hwnas.latency.drift.anchor_arch",
                                    "reference_ms": round(float(reference), 6), "every": proto.anchor_every, "window": anchor_log.window,
                                    **{k: v for k, v in anchor_log.summary(reference).items() if k != "reference_ms"}}
    elif anchor_note:
        table.protocol["anchor_note"] = anchor_note
    table.save(out_path)
    if all(k in table.entries or k in table.failed for k in wanted):
        journal.remove()
    return table


def _resolve_protocol(dev: DeviceProfile, protocol: Protocol | None, rounds: int | None) -> Protocol:
    """The given protocol or the device's, with ``rounds`` (default ``DEFAULT_ROUNDS``), validated."""
    proto = protocol or Protocol.from_device(dev)
    if rounds is not None:
        proto.rounds = int(rounds)
    elif protocol is None:
        proto.rounds = DEFAULT_ROUNDS
    proto.validate()
    return proto


def _open_table(out_path: Path, dev: DeviceProfile, sp: SearchSpace, be: Backend, proto: Protocol, fingerprint: dict[str, Any],
                force: bool) -> tuple[LatencyTable, dict[str, Any], dict[str, Any]]:
    """(table to extend or a new one, the protocol it records, the space args as JSON); a table
    measured with another protocol or for other space args is refused unless ``force``."""
    space_args_d = {k: list(v) if isinstance(v, tuple) else v for k, v in dict(sp.args).items()}
    table_protocol = {**proto.to_dict(), "process": be.describe_process(), "clock_used": be.describe_clock(proto), "cv_definition": getattr(be, "cv_definition", CV_DEFINITION),
                      "entry": f"median of {proto.rounds} round medians, rounds interleaved across keys",
                      "exporter": exporter_tag(be.model_format), "model_format": be.model_format}
    if out_path.exists():
        table = LatencyTable.load(out_path, space=sp.name, backend=be.name, device=fingerprint, force=force)
        old = {k: table.protocol.get(k) for k in MEASURE_FIELDS if k in table.protocol}
        new = {k: table_protocol.get(k) for k in old}
        if old != new and not force:
            diff = ", ".join(f"{k} {old[k]!r}->{new[k]!r}" for k in old if old[k] != new[k])
            raise HwnasError(f"table {str(out_path)!r} was measured with another protocol ({diff}); use --out for a new table or --force to mix them")
    else:
        table = LatencyTable(device={**fingerprint, "name": dev.name}, backend=be.name, space=sp.name,
                             protocol=table_protocol, space_args=space_args_d)
    if table.space_args != space_args_d and not force:
        raise HwnasError(f"table {str(out_path)!r} is for space args {table.space_args}, not {space_args_d}; use another --out")
    return table, table_protocol, space_args_d


def _replay_journal(journal: Journal) -> tuple[dict[str, list[dict[str, Any]]], dict[str, list[float | None]], dict[str, str]]:
    """(measurements per key, their times, failures) already in the journal."""
    done: dict[str, list[dict[str, Any]]] = {}
    times: dict[str, list[float | None]] = {}
    failed: dict[str, str] = {}
    for rec in journal.records:
        if "failed" in rec:
            failed[rec["key"]] = rec["failed"]
        elif "measurement" in rec:
            done.setdefault(rec["key"], []).append(rec["measurement"])
            times.setdefault(rec["key"], []).append(rec.get("t"))  # None: journaled without a time (no correction)
    return done, times, failed


def _export_blocks(need: list[str], slots: dict[str, Any], model_format: str, cache: Path, failed: dict[str, str],
                   journal: Journal, progress: ProgressFn | None) -> dict[str, Path]:
    """Each block's file (cached by key); a block that fails to export is recorded and skipped."""
    files: dict[str, Path] = {}
    for i, key in enumerate(need):
        try:
            files[key] = export_block(key, slots[key], model_format, cache)
        except Exception as e:  # noqa: BLE001  (any converter error: record it and go on)
            reason = export_failure(e)
            failed[key] = reason
            journal.append({"key": key, "failed": reason, "at": now_iso()})
        if progress:
            progress(ProfileEvent("export", i + 1, len(need), key))
    return files


def interleaved_plan(keys: list[str], rounds: int) -> list[tuple[int, str]]:
    """(round, key) in measuring order: every round times every key, each round starting at a
    shifted key and every other round reversed, so slow drift spreads over all keys."""
    plan: list[tuple[int, str]] = []
    for r in range(rounds):
        order = list(keys)
        if order:
            shift = (r * max(1, len(order) // rounds)) % len(order)
            order = order[shift:] + order[:shift]
            if r % 2 == 1:
                order.reverse()
        plan += [(r, k) for k in order]
    return plan


def _measure_rounds(plan: list[tuple[int, str]], files: dict[str, Path], timer: AnchoredTimer, proto: Protocol,
                    done: dict[str, list[dict[str, Any]]], times: dict[str, list[float | None]], failed: dict[str, str],
                    journal: Journal, progress: ProgressFn | None) -> None:
    """Time every (round, key) of ``plan`` not measured yet, journaling each result at once."""
    total = sum(1 for r, k in plan if r >= len(done.get(k, [])))
    step = 0
    for r, key in plan:
        if key in failed or r < len(done.get(key, [])):
            continue
        if proto.cooldown_s > 0 and step:
            time.sleep(proto.cooldown_s)
        try:
            m, t = timer.measure(files[key])
            rec = m.to_dict()
            done.setdefault(key, []).append(rec)
            times.setdefault(key, []).append(t)
            journal.append({"key": key, "round": r, "measurement": rec, "t": t})
        except MeasurementError as e:
            failed[key] = f"measure failed: {e}"[:500]
            journal.append({"key": key, "failed": failed[key], "at": now_iso()})
        step += 1
        if progress:
            progress(ProfileEvent("measure", step, total, key, f"round {r + 1}/{proto.rounds}"))


def _write_entries(table: LatencyTable, todo: list[str], done: dict[str, list[dict[str, Any]]], times: dict[str, list[float | None]],
                   failed: dict[str, str], rounds: int, anchor_log: AnchorLog, reference: float | None, use_anchor: bool) -> None:
    """Drift-corrected entries of the keys measured in every round; failures of the rest."""
    for key in todo:
        rs = done.get(key, [])
        if key not in failed and len(rs) >= rounds:
            rs = [corrected(m, anchor_log.factor(t, reference)) for m, t in zip(rs[:rounds], times[key])]
            table.entries[key] = entry_from_rounds(rs)
            if use_anchor and reference:
                table.entries[key]["drift_factors"] = [round(float(m.get("drift_factor", 1.0)), 4) for m in rs]
    for key, reason in failed.items():
        if key not in table.entries:
            table.failed[key] = reason
