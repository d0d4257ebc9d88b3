"""``hwnas validate``: does the table's prediction match the latency measured end to end?

K random archs of the table's space are exported whole (with the same exporter as the
blocks), timed with the same backend and protocol as the table (rounds interleaved across
archs, a fresh process per measurement), and compared with the table's prediction:
share within ±5% / ±10%, RMSE, bias, worst arch, and a scatter plot. Two measurements of the
same network in fresh processes give the noise floor the prediction cannot beat.

``calibrate=True`` fits the calibration (scale, overhead, and a per-block term for the
per-call overhead each separately timed block carries but a whole network pays once) on
half of the archs, reports on the other half, and stores it in the table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..device.profiles import DeviceProfile
from ..errors import HwnasError
from ..space.arch import Arch
from ..space.registry import create_space
from ..space.space import SearchSpace
from .backends.base import Backend, Protocol, create_backend
from ..formats import exporter_tag, get_format
from .blocks import default_cache_dir, export_network
from .confidence import uncertainty_record
from .drift import DEFAULT_WINDOW, AnchoredTimer, AnchorLog, anchor_file, journal_anchor, table_anchor_reference
from .journal import Journal
from .keys import arch_keys
from .lock import table_lock
from . import predictor
from .predictor import arch_sums
from .profiler import ProfileEvent, resolve_device
from .table import LatencyTable

# Drawing k distinct archs gives up after this many draws per arch (+ a floor), so a space with
# fewer than k archs ends instead of looping.
SAMPLE_DRAWS_PER_ARCH = 50
SAMPLE_DRAWS_FLOOR = 100
# The calibration fit/held-out split is seeded apart from the arch sample.
SPLIT_SEED_OFFSET = 1


def sample_archs(space: SearchSpace, k: int, seed: int = 0) -> list[Arch]:
    """``k`` distinct uniformly random archs (fewer if the space is smaller)."""
    rng = np.random.default_rng(seed)
    out: dict[Arch, None] = {}
    tries = 0
    while len(out) < k and tries < SAMPLE_DRAWS_PER_ARCH * k + SAMPLE_DRAWS_FLOOR:
        out.setdefault(space.sample(rng), None)
        tries += 1
    return list(out)


def network_file(arch: Arch, model_format: str, cache_dir: Path | None = None) -> Path:
    space = arch.get_space()
    ext = get_format(model_format).extension
    args = "-".join(f"{k}{v}" for k, v in arch.space_args).replace(" ", "").replace(",", "_").replace("(", "").replace(")", "")
    name = f"{space.name}{('-' + args) if args else ''}-{space.to_compact(arch)}{ext}"
    return (cache_dir or default_cache_dir()).parent / "networks" / exporter_tag(model_format) / name


def export_networks(archs: list[Arch], model_format: str, cache_dir: Path | None = None,
                    progress: Callable[[ProfileEvent], None] | None = None) -> tuple[list[Path], int, float]:
    """Each arch exported whole into the network cache (unless cached): (files, how many were converted now, seconds)."""
    import time

    files = []
    t0 = time.perf_counter()
    exported = 0
    for i, a in enumerate(archs):
        p = network_file(a, model_format, cache_dir)
        if not (p.is_file() and p.stat().st_size > 0):
            export_network(a, model_format, p)
            exported += 1
        files.append(p)
        if progress:
            progress(ProfileEvent("export networks", i + 1, len(archs), a.compact()))
    return files, exported, time.perf_counter() - t0


def measure_networks(archs: list[Arch], backend: Backend, protocol: Protocol, cache_dir: Path | None = None,
                     progress: Callable[[ProfileEvent], None] | None = None, *, journal: Journal | None = None,
                     anchor: Path | None = None, anchor_log: AnchorLog | None = None) -> tuple[list[list[dict[str, Any]]], dict[str, Any]]:
    """Export each arch whole (cached) and time it ``protocol.rounds`` times, rounds interleaved.

    Returns, per arch, one record per round (``median_ms`` and the time ``t`` it was taken)
    and export statistics. With a ``journal``, finished measurements are appended to it and
    the ones it already holds are not taken again (an interrupted validation resumes). With
    an ``anchor`` file and ``protocol.anchor_every`` > 0, the anchor is timed in between and
    its readings are added to ``anchor_log``.
    """
    files, exported, export_s = export_networks(archs, backend.model_format, cache_dir, progress)
    done: dict[tuple[str, int], dict[str, Any]] = {}
    log = anchor_log if anchor_log is not None else AnchorLog()
    if journal is not None:
        log.readings.extend(AnchorLog.from_journal(journal).readings)
        for rec in journal.records:
            if "round" in rec and "median_ms" in rec:
                done[(rec["key"], int(rec["round"]))] = {"median_ms": float(rec["median_ms"]), "t": rec.get("t")}

    timer = AnchoredTimer(backend, protocol, anchor, protocol.anchor_every, log, on_anchor=journal_anchor(journal))
    rounds: list[list[dict[str, Any]]] = [[] for _ in archs]
    total = protocol.rounds * len(archs)
    step = 0
    resumed = 0
    for r in range(protocol.rounds):
        order = list(range(len(archs)))
        if r % 2:
            order.reverse()
        for i in order:
            key = archs[i].compact()
            rec = done.get((key, r))
            if rec is None:
                m, t = timer.measure(files[i])
                rec = {"median_ms": m.median_ms, "t": t}
                if journal is not None:
                    journal.append({"key": key, "round": r, **rec})
            else:
                resumed += 1
            rounds[i].append(rec)
            step += 1
            if progress:
                progress(ProfileEvent("measure networks", step, total, key, f"round {r + 1}/{protocol.rounds}"))
    timer.finish()
    return rounds, {"exported": exported, "export_s": export_s, "resumed_measurements": resumed}


def errors_report(pred: np.ndarray, meas: np.ndarray) -> dict[str, Any]:
    rel = (pred - meas) / meas
    return {"n": int(len(meas)), "within_5": float(np.mean(np.abs(rel) <= 0.05)), "within_10": float(np.mean(np.abs(rel) <= 0.10)),
            "rmse_ms": float(np.sqrt(np.mean((pred - meas) ** 2))), "rmse_pct": float(100 * np.sqrt(np.mean(rel ** 2))),
            "bias_pct": float(100 * np.mean(rel)), "max_abs_pct": float(100 * np.max(np.abs(rel))) if len(rel) else 0.0}


CALIBRATION_MODELS: tuple[tuple[str, ...], ...] = (("scale", "overhead_ms", "per_block_ms"), ("scale", "overhead_ms"), ("scale",))


def fit_calibration(raw: np.ndarray, nblocks: np.ndarray, meas: np.ndarray,
                    terms: tuple[str, ...] = CALIBRATION_MODELS[0]) -> dict[str, float]:
    """Least squares on relative error: meas ~ scale*raw [+ overhead] [+ per_block*nblocks].

    The per-block term is left out when the block count does not vary (or too few archs).
    """
    w = 1.0 / meas
    cols = [raw]
    use_oh = "overhead_ms" in terms
    use_nb = "per_block_ms" in terms and len(set(nblocks.tolist())) > 1 and len(meas) >= 6
    if use_oh:
        cols.append(np.ones_like(raw))
    if use_nb:
        cols.append(nblocks.astype(float))
    A = np.stack(cols, axis=1) * w[:, None]
    coef, *_ = np.linalg.lstsq(A, meas * w, rcond=None)
    return {"scale": float(coef[0]), "overhead_ms": float(coef[1]) if use_oh else 0.0,
            "per_block_ms": float(coef[1 + use_oh]) if use_nb else 0.0}


def fit_space_calibration(table: LatencyTable, space: SearchSpace, raw: np.ndarray, nblocks: np.ndarray,
                          meas: np.ndarray) -> tuple[dict[str, float], dict[str, Any]]:
    """The most detailed calibration whose prediction stays positive over the whole space.

    A negative overhead or per-block cost is physical (a separately timed block pays a call a
    whole network pays once), but fitted on sampled archs it can extrapolate below zero for the
    space's fastest arch, which no table may predict (``LatencyTable`` refuses to load it). Such
    a fit falls back to fewer terms, and the returned record says which terms were kept and why.
    """
    rejected: list[dict[str, Any]] = []
    for terms in CALIBRATION_MODELS:
        cal = fit_calibration(raw, nblocks, meas, terms)
        positive, fastest = predictor.predicts_above_zero(table, space, {**table.calibration, **cal})
        if positive and cal["scale"] > 0:
            if rejected:
                why = (f"{'/'.join(rejected[-1]['terms'])} put the space's fastest arch at {rejected[-1]['fastest_ms']:.4g} ms "
                       f"(extrapolated beyond the sampled archs); fitted with {'/'.join(terms)} instead")
            elif fastest is None:
                why = "the table lacks blocks of the space, so no fastest arch is known: fitted with every term"
            else:
                why = "the full model predicts every arch of the space above zero"
            return cal, {"terms": list(terms), "why": why, "fastest_ms": fastest, "rejected": rejected}
        rejected.append({"terms": list(terms), **cal, "fastest_ms": fastest})
    raise HwnasError("no calibration predicts this table's archs above zero (the measured networks are not "
                     "proportional to their blocks' sum): re-profile the table and validate again")


def scatter_plot(path: Path, series: dict[str, tuple[np.ndarray, np.ndarray]], title: str) -> Path:
    """The validation's scatter plot as a PNG (see ``draw_predicted_vs_measured``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..io import atomic_write_bytes

    fig, ax = plt.subplots(figsize=(5.5, 5))
    draw_predicted_vs_measured(ax, series, title)
    import io as _io

    buf = _io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())


def draw_predicted_vs_measured(ax: Any, series: dict[str, tuple[Any, Any]], title: str) -> None:
    """Predicted against measured latency on matplotlib axes, with the ±5% and ±10% bands.

    ``series`` maps a label to (predicted, measured) arrays; ``hwnas validate``'s plot and
    ``hwnas report`` (which adds the exported file's point) draw through this one function.
    """
    series = {k: (np.asarray(p, dtype=float), np.asarray(m, dtype=float)) for k, (p, m) in series.items() if len(p)}
    if not series:
        return
    lo = min(float(min(m.min(), p.min())) for p, m in series.values())
    hi = max(float(max(m.max(), p.max())) for p, m in series.values())
    xs = np.linspace(lo * 0.9, hi * 1.1, 10)
    ax.plot(xs, xs, "k-", lw=1, label="predicted = measured")
    for f, style in ((0.05, "--"), (0.10, ":")):
        ax.plot(xs, xs * (1 + f), "k" + style, lw=0.7, label=f"±{int(f * 100)}%")
        ax.plot(xs, xs * (1 - f), "k" + style, lw=0.7)
    for name, (p, m) in series.items():
        big = len(p) == 1  # a single file (the export) stands out
        ax.scatter(m, p, s=140 if big else 12, alpha=1.0 if big else 0.7, marker="*" if big else "o", zorder=5 if big else 3, label=name)
    ax.set_xlabel("measured (ms)")
    ax.set_ylabel("predicted (ms)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)


def validation_report_path(table_path: str | Path) -> Path:
    """Where ``hwnas validate`` leaves its report as JSON: next to the table (read by ``hwnas report``)."""
    return Path(table_path).with_suffix(".validate.json")


def validate_table(device: DeviceProfile | str, table: LatencyTable | str | Path, *, samples: int = 20, seed: int = 0,
                   calibrate: bool = False, plot: str | Path | None = None, noise: bool = True, force: bool = False,
                   backend: Backend | None = None, protocol: Protocol | None = None, cache_dir: Path | None = None,
                   progress: Callable[[ProfileEvent], None] | None = None) -> dict[str, Any]:
    """Predicted vs. measured for ``samples`` random archs; the report as a dict (see module doc)."""
    from .. import quick

    samples = quick.cap("validate_samples", samples) or samples
    if samples < 2:
        raise HwnasError(f"--samples must be at least 2 (got {samples}); use 20 or more for a meaningful share")
    if calibrate:  # the calibration is stored in the table: one writer per table, as while profiling
        path = table.path if isinstance(table, LatencyTable) else table
        if path:
            with table_lock(path, doing="calibrated"):
                if not isinstance(table, LatencyTable):
                    table = LatencyTable.load(table, force=force, recalibrating=True)  # read under the lock: the state it will write over
                return _validate(device, table, samples=samples, seed=seed, calibrate=calibrate, plot=plot, noise=noise,
                                 force=force, backend=backend, protocol=protocol, cache_dir=cache_dir, progress=progress)
    return _validate(device, table, samples=samples, seed=seed, calibrate=calibrate, plot=plot, noise=noise, force=force,
                     backend=backend, protocol=protocol, cache_dir=cache_dir, progress=progress)


def _validate(device: DeviceProfile | str, table: LatencyTable | str | Path, *, samples: int, seed: int, calibrate: bool,
              plot: str | Path | None, noise: bool, force: bool, backend: Backend | None, protocol: Protocol | None,
              cache_dir: Path | None, progress: Callable[[ProfileEvent], None] | None) -> dict[str, Any]:
    dev = resolve_device(device)
    tab = table if isinstance(table, LatencyTable) else LatencyTable.load(table, force=force)
    be = backend or create_backend(tab.backend, device=dev)
    try:
        run = _plan(tab, be, protocol, samples, seed, noise, force, cache_dir)
        journal = Journal(validation_journal_path(tab, seed), run.journal_header(seed)).open(force=force)
        rounds, export_stats = measure_networks(run.archs, be, run.proto, cache_dir, progress, journal=journal,
                                                anchor=run.anchor, anchor_log=run.log)
    finally:
        if backend is None:
            be.close()
    timed = _timed(run, rounds)
    report: dict[str, Any] = {"table": str(tab.path), "device": dev.name, "backend": tab.backend, "space": tab.space,
                              "space_args": tab.space_args, "samples": len(run.archs), "seed": seed,
                              "protocol": {**run.proto.to_dict(), "process": be.describe_process(), "clock_used": be.describe_clock(run.proto)},
                              "export": export_stats}
    series = _compare(run, timed, calibrate, seed, report)
    _noise_and_archs(run, timed, noise, report)
    plot_path = Path(plot) if plot else (Path(tab.path).with_suffix(".validate.png") if tab.path else Path("validate.png"))
    report["plot"] = str(scatter_plot(plot_path, series, f"{tab.space} on {dev.name} ({tab.backend}): {len(run.archs)} archs"))
    report["series"] = {name: {"predicted_ms": [float(x) for x in p], "measured_ms": [float(x) for x in m]} for name, (p, m) in series.items()}
    if tab.path:
        from ..io import atomic_write_json

        report["report"] = str(atomic_write_json(validation_report_path(tab.path), report))
    journal.remove()
    return report


@dataclass
class _Run:
    """What a validation measures and how: the archs, the protocol and the drift correction."""

    tab: LatencyTable
    fingerprint: dict[str, Any]
    space: SearchSpace
    proto: Protocol
    archs: list[Arch]
    anchor: Path | None
    reference: float
    drift_note: str
    log: AnchorLog = field(default_factory=AnchorLog)

    def journal_header(self, seed: int) -> dict[str, Any]:
        return {"backend": self.tab.backend, "space": self.tab.space, "space_args": self.tab.space_args,
                "protocol": self.proto.to_dict(), "fingerprint": self.fingerprint, "table": str(self.tab.path), "seed": seed}


def validation_archs(tab: LatencyTable, samples: int, seed: int) -> tuple[SearchSpace, list[Arch]]:
    """The table's space and the archs a validation of ``samples`` archs with ``seed`` times."""
    space = create_space(tab.space, **tab.space_args)
    return space, sample_archs(space, samples, seed)


def _plan(tab: LatencyTable, be: Backend, protocol: Protocol | None, samples: int, seed: int, noise: bool, force: bool,
          cache_dir: Path | None) -> _Run:
    """Phase 1: check the table against the device, draw the archs, choose protocol and drift correction."""
    fingerprint = be.fingerprint()
    tab.check(device=fingerprint, force=force)
    space, archs = validation_archs(tab, samples, seed)
    proto = protocol or Protocol.from_dict(tab.protocol or {})
    if noise and proto.rounds < 2:
        proto.rounds = 2
    missing = sorted({k for a in archs for k in tab.missing_keys(arch_keys(space, a))})
    if missing:
        raise HwnasError(f"table {str(tab.path)!r} lacks {len(missing)} block(s) these archs need (e.g. {missing[0]}); run `hwnas profile` to complete it")
    reference = table_anchor_reference(tab.protocol, space) or 0.0
    anchor = None
    note = "the table has no anchor (profiled without drift correction): measurements are used as timed"
    if (tab.protocol.get("anchor") or {}).get("reference_ms") and proto.anchor_every > 0:
        if reference:
            anchor = anchor_file(space, be.model_format, cache_dir)
            note = ("each measurement divided by the device's speed at that moment relative to the table's reference "
                    "(the anchor network timed every %d measurements, median of the %d nearest readings)" % (proto.anchor_every, DEFAULT_WINDOW))
        else:
            note = "the table's anchor is not this version's anchor arch: measurements are used as timed"
    return _Run(tab, fingerprint, space, proto, archs, anchor, reference, note)


@dataclass
class _Timed:
    """Phase 2's output: per arch the measured latency (drift-corrected and as timed) and the prediction's parts."""

    raw_rounds: np.ndarray
    corr_rounds: np.ndarray
    meas: np.ndarray
    meas_raw: np.ndarray
    raw: np.ndarray
    nblocks: np.ndarray


def _timed(run: _Run, rounds: list[list[dict[str, Any]]]) -> _Timed:
    """Phase 2: the rounds corrected for drift, their medians, and each arch's raw block sum and block count."""
    raw_rounds = np.array([[r["median_ms"] for r in rr] for rr in rounds])
    factors = np.array([[run.log.factor(r.get("t"), run.reference) if run.anchor is not None else 1.0 for r in rr] for rr in rounds])
    corr_rounds = raw_rounds / factors
    sums = [arch_sums(run.tab, a) for a in run.archs]
    return _Timed(raw_rounds, corr_rounds, np.median(corr_rounds, axis=1), np.median(raw_rounds, axis=1),
                  np.array([x[0] for x in sums]), np.array([x[2] for x in sums]))


def _compare(run: _Run, t: _Timed, calibrate: bool, seed: int, report: dict[str, Any]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Phase 3: prediction errors (uncalibrated, the table's calibration, or a calibration fitted on half
    and judged on the other half, then stored in the table); returns the plot's series."""
    tab, raw, nblocks, meas = run.tab, t.raw, t.nblocks, t.meas
    results: dict[str, Any] = {"uncalibrated": errors_report(raw, meas)}
    series = {"uncalibrated": (raw, meas)}
    if calibrate:
        idx = np.random.default_rng(seed + SPLIT_SEED_OFFSET).permutation(len(run.archs))
        fit, held = idx[: len(idx) // 2], idx[len(idx) // 2:]
        cal, report["calibration_model"] = fit_space_calibration(tab, run.space, raw[fit], nblocks[fit], meas[fit])
        cal_pred = predictor.calibrate(raw, nblocks, cal)
        results["uncalibrated_heldout"] = errors_report(raw[held], meas[held])
        results["calibrated_heldout"] = errors_report(cal_pred[held], meas[held])
        results["calibrated_fit_half"] = errors_report(cal_pred[fit], meas[fit])
        series = {"uncalibrated (held-out)": (raw[held], meas[held]), "calibrated (held-out)": (cal_pred[held], meas[held])}
        # what the prediction's confidence is built from (latency.confidence): the held-out residuals
        # and the device's speed drift seen by the anchor while validating
        drift = [ms / run.reference for _, ms in run.log.readings] if run.anchor is not None else []
        tab.calibration = {**{k: round(v, 6) for k, v in cal.items()}, "fitted_on": int(len(fit)), "seed": seed,
                           **uncertainty_record(meas[held], cal_pred[held], drift)}
        if t.corr_rounds.shape[1] >= 2:  # the noise floor a closed loop judges overshoots against
            tab.calibration["noise_floor_pct"] = round(noise_floor(t.corr_rounds)["median_abs_pct"], 4)
        tab.save()
        report["calibration"] = tab.calibration
    elif any(tab.calibration.get(k, d) != d for k, d in (("scale", 1.0), ("overhead_ms", 0.0), ("per_block_ms", 0.0))):
        table_pred = predictor.calibrate(raw, nblocks, tab.calibration)
        results["table_calibration"] = errors_report(table_pred, meas)
        series["table calibration"] = (table_pred, meas)
    report["results"] = results
    report["drift"] = {"corrected": run.anchor is not None, "how": run.drift_note,
                       **run.log.summary(run.reference if run.anchor is not None else None)}
    if run.anchor is not None:  # the same comparison on the measurements as timed, for reference
        raw_results: dict[str, Any] = {"uncalibrated": errors_report(raw, t.meas_raw)}
        if calibrate:
            cal_raw, _ = fit_space_calibration(tab, run.space, raw[fit], nblocks[fit], t.meas_raw[fit])
            raw_results["calibrated_heldout"] = errors_report(predictor.calibrate(raw, nblocks, cal_raw)[held], t.meas_raw[held])
        report["results_without_drift_correction"] = raw_results
    return series


def _noise_and_archs(run: _Run, t: _Timed, noise: bool, report: dict[str, Any]) -> None:
    """Phase 4: the noise floor (two fresh-process measurements of one network) and the per-arch rows."""
    if noise:
        report["noise"] = noise_floor(t.corr_rounds)
        if run.anchor is not None:
            report["noise_without_drift_correction"] = noise_floor(t.raw_rounds)
    report["archs"] = [{"arch": a.compact(), "measured_ms": float(m), "rounds_ms": [round(float(x), 6) for x in rr],
                        "raw_rounds_ms": [round(float(x), 6) for x in rw], "raw_sum_ms": float(s), "blocks": int(nb)}
                       for a, m, rr, rw, s, nb in zip(run.archs, t.meas, t.corr_rounds, t.raw_rounds, t.raw, t.nblocks)]


def validation_journal_path(table: LatencyTable, seed: int) -> Path:
    """Where an interrupted validation keeps its measurements (next to the table)."""
    base = Path(table.path) if table.path else Path("latency-table.json")
    return base.with_name(f"{base.name}.validate-seed{seed}.journal.jsonl")


def noise_floor(rounds: np.ndarray) -> dict[str, Any]:
    """Spread between two fresh-process measurements of the same network (rounds 1 and 2)."""
    d = 100 * np.abs(rounds[:, 0] - rounds[:, 1]) / rounds[:, :2].mean(axis=1)
    return {"what": "the same whole network measured in two fresh processes (rounds 1 and 2)",
            "median_abs_pct": float(np.median(d)), "p90_abs_pct": float(np.percentile(d, 90)),
            "max_abs_pct": float(d.max()), "within_5": float(np.mean(d <= 5)), "within_10": float(np.mean(d <= 10))}
