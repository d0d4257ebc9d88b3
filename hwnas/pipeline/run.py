"""``run_pipeline``: profile -> train -> search -> export -> verify into one run folder.

Each stage is the library call of its own command (``profile_space``, ``train_supernet``,
``run_search``, ``export_arch``) with the run folder's paths (``RunLayout``), and each already
resumes on its own: the profiler from its journal, training from its newest good checkpoint,
the search from its history, and an identical export is reused. So the pipeline only keeps
the manifest: a finished run is not run again (and says so), a stage that failed or was
killed runs again from its saved state, and the stages after it follow.

The same run name with other settings is refused, naming what differs: a run folder holds
one run.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..errors import HwnasError
from ..io import file_sha256
from ..io import atomic_write_text
from ..latency.lock import file_lock
from .config import RunConfig, config_differences, to_toml
from .layout import STAGES, RunLayout
from .manifest import Manifest

Log = Callable[[str], None]


@dataclass
class RunResult:
    """What ``hwnas run`` prints: where the run is, what ran now and what it produced."""

    layout: RunLayout
    manifest: dict[str, Any]
    ran: list[str] = field(default_factory=list)  # stages run (or found skippable) by this call
    already_finished: bool = False  # nothing to do: the run was complete
    report: Path | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def best(self) -> dict[str, Any]:
        return self.manifest["stages"]["search"].get("outputs") or {}

    @property
    def model(self) -> Path | None:
        return self.layout.exported_model()

    def to_dict(self) -> dict[str, Any]:
        return {"run_dir": str(self.layout.root), "manifest": str(self.layout.manifest), "already_finished": self.already_finished,
                "ran": self.ran, "model": str(self.model) if self.model else None,
                "report": str(self.report) if self.report else None, "notes": self.notes,
                "stages": {s: {k: v for k, v in st.items()} for s, st in self.manifest["stages"].items()},
                "table": self.manifest.get("table")}


@dataclass
class Hooks:
    """What a caller (the CLI) sees while a run works; every field optional."""

    log: Log | None = None  # one line per event
    train_progress: Callable[[dict[str, Any]], None] | None = None  # after every training iteration
    train_start: Callable[[Any], None] | None = None  # the trainer, once data and supernet are ready
    search_progress: Callable[[int, int, Any], None] | None = None  # (done, total, best record) per evaluated arch
    profile_progress: Callable[[Any], None] | None = None  # ProfileEvent

    def say(self, text: str) -> None:
        if self.log is not None:
            self.log(text)


def run_pipeline(config: RunConfig, runs_dir: str | Path = "runs", hooks: Hooks | None = None,
                 report: bool = True) -> RunResult:
    """Run (or continue) the run ``config.name`` under ``runs_dir``; the library call behind ``hwnas run``."""
    hooks = hooks or Hooks()
    layout = RunLayout.for_name(config.name, runs_dir)
    layout.root.mkdir(parents=True, exist_ok=True)
    busy = lambda holder, _: f"run {str(layout.root)!r} is being run by {holder}; wait for it to finish (or stop it)"  # noqa: E731
    with file_lock(layout.root / ".lock", "run", busy):
        return _run_locked(config, layout, hooks, report)


def _run_locked(config: RunConfig, layout: RunLayout, hooks: Hooks, report: bool) -> RunResult:
    resolved = config.to_dict()
    man = Manifest.load(layout)
    if man is not None:
        diffs = config_differences(man.data["config"], resolved)
        if diffs:
            raise HwnasError(f"{str(layout.root)!r} holds a run with other settings ({'; '.join(diffs[:4])}"
                             f"{'; ...' if len(diffs) > 4 else ''}); run it with its own settings "
                             f"(`hwnas run {layout.config}`) or choose another --name")
    else:
        seeds = {"run": config.seed, "train": config.seed, "search": config.seed, "export": config.seed,
                 "data": int(config.train.get("data_seed", 0))}
        man = Manifest.create(layout, resolved, seeds)
    if not layout.config.exists():
        atomic_write_text(layout.config, to_toml(resolved))

    start = _first_to_run(man, layout)
    result = RunResult(layout, man.data)
    if start is None:
        result.already_finished = True
        hooks.say(f"{layout.root} is finished: nothing to do (all {len(STAGES)} stages done; another --name starts a new run)")
    else:
        if man.status(start) in ("running", "failed"):
            interrupted = man.status(start) == "running" or man.stage(start).get("error") == "interrupted"
            was = "was interrupted" if interrupted else "failed"
            hooks.say(f"{layout.root}: stage {start} {was}; continuing from it")
        elif man.status(start) in ("done", "skipped"):
            hooks.say(f"{layout.root}: what stage {start} made is gone from the run folder; running it again")
        man.reset_from(start)
        table = Path(man.data["table"]["path"]) if man.data.get("table") else None
        for stage in STAGES[STAGES.index(start):]:
            man.start(stage)
            try:
                status, outputs, table = _STAGE_FN[stage](config, layout, man, hooks, table)
            except BaseException as e:
                msg = str(e) if isinstance(e, HwnasError) else "interrupted" if isinstance(e, KeyboardInterrupt) else f"{type(e).__name__}: {e}"
                man.end(stage, "failed", error=msg)
                raise
            man.end(stage, status, outputs)
            result.ran.append(stage)
            hooks.say(f"{stage}: {status} in {man.stage(stage)['seconds']:.1f} s ({man.stage(stage)['cpu_seconds']:.1f} CPU s)"
                      + _summary_line(stage, outputs))
    if report:
        result.report = _write_report(layout, man, hooks, result.already_finished)
    result.manifest = man.data
    return result


def _first_to_run(man: Manifest, layout: RunLayout) -> str | None:
    """The first stage not finished, or whose outputs are gone from the run folder since."""
    for stage in STAGES:
        st = man.stage(stage)
        if st["status"] not in ("done", "skipped"):
            return stage
        for key, rel in (st.get("outputs") or {}).items():
            if key in _FILE_OUTPUTS and isinstance(rel, str) and not (layout.root / rel).exists():
                return stage
    if man.data.get("table") and not Path(man.data["table"]["path"]).exists():
        return "profile"
    return None


_FILE_OUTPUTS = {"supernet_checkpoint", "best", "history", "model", "sidecar"}


def _summary_line(stage: str, out: dict[str, Any]) -> str:
    if stage == "profile":
        return f": {out.get('why', '')} {out.get('table', '')}".rstrip()
    if stage == "train":
        return f": {out.get('iterations')} iterations, {out.get('stop_reason')}" + (" (reused)" if out.get("reused") else "")
    if stage == "search":
        lat = predicted_latency_text(out)
        return f": {out.get('evaluations')} archs evaluated; best {out.get('compact')} {out.get('accuracy', 0):.2f}%" + (
            f" at {lat}" if lat else "")
    if stage == "export":
        return f": {out.get('model')}"
    if stage == "verify":
        return f": {out.get('verdict', '')}"
    return ""


# ---- the stages: each returns (status, outputs, latency table path) -----------------------------------

def _profile(cfg: RunConfig, layout: RunLayout, man: Manifest, hooks: Hooks, table: Path | None) -> tuple[str, dict[str, Any], Path]:
    from ..latency.backends import create_backend
    from ..latency.profiler import profile_space, resolve_device

    dev = resolve_device(cfg.device)
    be = create_backend(cfg.backend, device=dev)
    try:
        fingerprint = be.fingerprint()
    finally:
        be.close()
    found, why, out = find_valid_table(cfg, fingerprint, dev.name)
    if found is not None:
        man.set_table(found, fingerprint, dev.name, cfg.backend)
        return "skipped", {"table": str(found), "why": f"a valid table exists ({why}):"}, found
    hooks.say(f"profile: {why}; timing every block of {cfg.space} on {dev.name} with {cfg.backend} -> {out}")
    if dev.kind == "adb":  # the phone the profile names (or the one attached), as `hwnas profile --device` does
        from ..latency.multi import profile_on_phones

        (t,) = profile_on_phones(dev, cfg.space, cfg.backend, out, progress=hooks.profile_progress, log=hooks.log)[:1]
    else:
        t = profile_space(dev, cfg.space, cfg.backend, out, space_args=cfg.space_args, progress=hooks.profile_progress)
    if t.failed:
        raise HwnasError(f"{len(t.failed)} block(s) of {cfg.space} could not be timed on {dev.name} (e.g. {next(iter(t.failed))}); "
                         f"see {out} and run again")
    man.set_table(out, fingerprint, dev.name, cfg.backend)
    return "done", {"table": str(out), "blocks": len(t.entries), "why": "profiled"}, out


def find_valid_table(cfg: RunConfig, fingerprint: dict[str, Any], device_name: str) -> tuple[Path | None, str, Path]:
    """(a table of this device, space and backend holding every block of the space, why, where to profile otherwise).

    The default path ``<tables_dir>/<device>-<space>-<backend>.json`` first, then the
    fingerprinted ones a run profiled beside it. When the default path holds another device's
    table (the shipped host tables on another CPU), the new table goes beside it, named by
    the device's fingerprint, so the shipped one is never overwritten.
    """
    import hashlib
    import json

    from ..latency.keys import space_slots
    from ..latency.profiler import default_table_path
    from ..latency.table import LatencyTable
    from ..space import create_space

    sp = create_space(cfg.space, **cfg.space_args)
    keys = list(space_slots(sp))
    default = Path(cfg.tables_dir) / default_table_path(device_name, cfg.space, cfg.backend).name
    tag = hashlib.sha256(json.dumps({k: fingerprint.get(k) for k in sorted(fingerprint)}, sort_keys=True).encode()).hexdigest()[:8]
    own = default.with_name(f"{default.stem}-{tag}.json")
    space_args = {k: list(v) if isinstance(v, tuple) else v for k, v in dict(sp.args).items()}
    reasons: list[str] = []
    out = default
    for path in (default, own):
        if not path.exists():
            reasons.append(f"no table {path}")
            continue
        try:
            t = LatencyTable.load(path, space=sp.name, backend=cfg.backend, device=fingerprint)
        except HwnasError as e:
            reasons.append(str(e).split(";")[0])
            if path == default:
                out = own
            continue
        if t.space_args != space_args:
            reasons.append(f"{path} is for space args {t.space_args}")
            if path == default:
                out = own
            continue
        missing = t.missing_keys(keys)
        if missing:
            reasons.append(f"{path} lacks {len(missing)} of {len(keys)} blocks")
            return None, "; ".join(reasons), path  # this device's unfinished table: profiling continues it
        return path, f"{len(keys)} blocks, measured on this device", path
    return None, "; ".join(reasons), out


def _train(cfg: RunConfig, layout: RunLayout, man: Manifest, hooks: Hooks, table: Path | None) -> tuple[str, dict[str, Any], Path | None]:
    import torch

    from ..train.trainer import train_supernet

    torch.set_num_threads(max(1, int(cfg.threads)))

    def on_resume(meta: dict[str, Any], problems: list[str]) -> None:
        for p in problems:
            hooks.say(f"warning: {p}; resuming from the previous good checkpoint")
        hooks.say(f"train: resuming {layout.supernet} at iteration {meta.get('iteration')}")

    trainer, summary = train_supernet(cfg.train_config(), layout.supernet, callback=hooks.train_progress,
                                      on_resume=on_resume, on_start=hooks.train_start)
    out = {"supernet": "supernet", "supernet_checkpoint": "supernet/supernet.json", "metrics": "supernet/metrics.csv",
           "iterations": summary["iterations"], "stop_reason": summary["stop_reason"], "final_loss": summary["final_loss"],
           "final_acc": summary["final_acc"], "sampler": summary["sampler"], "data": summary["data"],
           "reused": bool(summary.get("reused"))}
    if (layout.tensorboard).is_dir():
        out["tensorboard"] = "supernet/tensorboard"
    return "done", out, table


def _search(cfg: RunConfig, layout: RunLayout, man: Manifest, hooks: Hooks, table: Path | None) -> tuple[str, dict[str, Any], Path | None]:
    from ..search.api import run_search

    outcome = run_search(latency=cfg.latency, device=cfg.device, supernet=layout.supernet, space=cfg.space, table=table,
                         tables_dir=cfg.tables_dir, backend=cfg.backend, seed=cfg.seed, out=layout.search,
                         progress=hooks.search_progress, **cfg.search)
    for note in outcome.notes:
        hooks.say(f"note: {note}")
    for warning in outcome.warnings:
        hooks.say(f"warning: {warning}")
    best = outcome.result.best
    rel = {k: str(Path(p).relative_to(layout.root)) for k, p in outcome.paths.items()}
    out: dict[str, Any] = {**rel, "evaluations": outcome.result.n_evaluations, "resumed_evaluations": outcome.resumed}
    if best is not None:
        out.update(compact=best.arch.get_space().to_compact(best.arch), accuracy=best.accuracy, latency_ms=best.latency_ms,
                   flops=best.flops, params=best.params)
        written = json.loads(layout.best.read_text())  # what the winner's latency figure is: a bound or the median
        if isinstance(written.get("latency_bound"), dict):
            out["latency_bound"] = written["latency_bound"].get("label")
        if isinstance(written.get("latency_prediction"), dict):
            out["latency_median_ms"] = written["latency_prediction"].get("median_ms")
    return "done", out, table


def predicted_latency_text(out: dict[str, Any]) -> str:
    """The search winner's predicted latency with what it is, so a bound is not read as the median."""
    lat, label, median = out.get("latency_ms"), out.get("latency_bound"), out.get("latency_median_ms")
    if lat is None:
        return ""
    text = f"{lat:.3f} ms predicted"
    if label and median is not None and abs(median - lat) > 5e-4:
        text += f" ({label}; median {median:.3f} ms)"
    elif label:
        text += f" ({label})"
    return text


def _export_once(cfg: RunConfig, layout: RunLayout, table: Path | None, verify: bool) -> Any:
    from ..export.api import export_arch
    from ..export.quiet import banners_filtered

    with warnings.catch_warnings(), banners_filtered():  # the converters' own deprecation chatter, as `hwnas export` hides it
        warnings.simplefilter("ignore")
        return export_arch(str(layout.best), fmt=cfg.export["format"], precision=cfg.export["precision"], out=layout.export,
                           table=table, verify=verify, measure_latency=bool(cfg.verify["measure_latency"]),
                           latency_runs=cfg.verify.get("runs"), seed=cfg.seed, force=not verify)


def _export(cfg: RunConfig, layout: RunLayout, man: Manifest, hooks: Hooks, table: Path | None) -> tuple[str, dict[str, Any], Path | None]:
    for stale in layout.export.glob(".hwnas-export-*"):  # the work folder of an export killed mid-way
        shutil.rmtree(stale, ignore_errors=True)
    r = _export_once(cfg, layout, table, verify=False)
    return "done", {"model": str(r.path.relative_to(layout.root)), "sidecar": str(r.sidecar.relative_to(layout.root)),
                    "sha256": file_sha256(r.path), "size_bytes": r.size_bytes, "format": r.fmt, "precision": r.precision}, table


def _verify(cfg: RunConfig, layout: RunLayout, man: Manifest, hooks: Hooks, table: Path | None) -> tuple[str, dict[str, Any], Path | None]:
    r = _export_once(cfg, layout, table, verify=True)  # the identical export: reused, its file checked
    out: dict[str, Any] = {"model": str(r.path.relative_to(layout.root)), "sha256": r.sidecar_data.get("sha256"),
                           "parity_verified": r.sidecar_data.get("parity_verified"),
                           "parity": [p.summary() for p in r.parity], "latency_checked": r.sidecar_data.get("latency_checked"),
                           "budget_ms": cfg.budget_ms, "budget_met": r.sidecar_data.get("budget_met"), "verdict": r.latency_verdict}
    if r.latency is not None:
        out.update(predicted_ms=r.latency.predicted_ms, measured_ms=r.latency.measured_ms, error_pct=r.latency.error_pct)
    for w in r.warnings:
        if w != r.latency_verdict:
            hooks.say(f"warning: {w}")
    return "done", out, table


_STAGE_FN = {"profile": _profile, "train": _train, "search": _search, "export": _export, "verify": _verify}


def _write_report(layout: RunLayout, man: Manifest, hooks: Hooks, already_finished: bool) -> Path | None:
    """The report (``hwnas.report.write_report``) once the run is complete, if that package is installed."""
    if importlib.util.find_spec(f"{__package__.rsplit('.', 1)[0]}.report") is None:
        hooks.say("report: skipped (hwnas.report is not part of this version)")
        return None
    if already_finished and layout.report.exists():
        return layout.report
    try:  # the run is complete whatever happens here: a report that fails is a warning, not a failed run
        from ..report import write_report  # type: ignore[attr-defined]

        path = Path(write_report(layout.root))
    except Exception as e:  # noqa: BLE001
        hooks.say(f"warning: the report could not be written ({e if isinstance(e, HwnasError) else f'{type(e).__name__}: {e}'}); "
                  f"the run is complete, `hwnas report {layout.root}` writes it")
        return None
    man.data["report"] = str(path.relative_to(layout.root)) if path.is_relative_to(layout.root) else str(path)
    man.save()
    return path
