"""``export_arch``: an arch (plus weights) -> a verified model file and its JSON sidecar.

The library call behind ``hwnas export``. Nothing reaches the output folder until the file is
converted, checked and its sidecar is ready: on any error the folder is left as it was.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from ..errors import HwnasError, SkippedCheckpointWarning
from ..io import atomic_write_json, file_sha256
from ..latency.confidence import DEFAULT_CONFIDENCE, LatencyUncertainty, prediction_summary
from ..space.arch import Arch, resolve_arch
from ..train.images import IMAGENET_MEAN, IMAGENET_STD
from .calibration import builtin_statistics, folder_images, representative_images
from ..formats import check_format, export_module, get_format
from .latency_check import LatencyReport, latency_verdict, verify_latency
from .parity import ParityReport, check_parity, random_inputs, torch_logits
from .weights import load_network

N_PARITY = 64  # random inputs per fp32 parity check
N_PARITY_QUANTIZED = 1024  # held-out representative images per fp16/int8 agreement check (at 256 one image is 0.4 points)
N_CALIBRATION = 256  # images for int8 calibration (activation ranges)
N_BN_IMAGES = 64  # images for a fresh net's BN statistics (fp32/fp16 exports; int8 uses the calibration images)


@dataclass
class ExportResult:
    path: Path
    sidecar: Path
    arch: Arch
    fmt: str
    precision: str
    weights: str
    flops: int
    params: int
    size_bytes: int
    export_s: float
    parity: list[ParityReport] = field(default_factory=list)
    latency: LatencyReport | None = None
    warnings: list[str] = field(default_factory=list)
    sidecar_data: dict[str, Any] = field(default_factory=dict)
    reused: bool = False  # the identical export was already in place: the file was checked again, not rewritten
    latency_verdict: str = ""  # one plain sentence: budget met on this machine or not, and why


def default_name(arch_text: str | Arch, arch: Arch) -> str:
    """A search's ``best.json`` is named after its search folder (every search writes a best.json)."""
    if isinstance(arch_text, str):
        p = Path(arch_text)
        if p.suffix == ".json":
            parent = p.resolve().parent.name
            return parent if p.stem == "best" and parent else p.stem
        if ":" not in arch_text and not p.exists():
            return arch_text  # a named arch
    return f"{arch.space}-{arch.get_space().to_compact(arch)}"


def export_id(arch: Arch, net: torch.nn.Module, fmt: str, precision: str, calibration_data: str | Path | None) -> str:
    """What makes two exports the same file: arch, weights (their values), format, precision,
    and for a quantized file its calibration images. Short hex, part of the default file name."""
    h = hashlib.sha256(json.dumps({"arch": arch.to_dict(), "format": fmt, "precision": precision,
                                   "calibration": str(calibration_data) if calibration_data is not None else None},
                                  sort_keys=True).encode())
    for k, v in sorted(net.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:12]



def export_arch(arch: str | Arch, *, weights: str | Path | None = None, fmt: str = "tflite", precision: str = "fp32",
                calibration_data: str | Path | None = None, out: str | Path = "exports", name: str | None = None,
                table: str | Path | None = None, verify: bool = True, measure_latency: bool = True,
                latency_runs: int | None = None, force_table: bool = False, seed: int = 0, serial: str | None = None,
                transport: str | None = None, force: bool = False, budget_ms: float | None = None) -> ExportResult:
    """Build ``arch``'s standalone net, export it as ``fmt``/``precision`` into ``out``, verify it.

    Verification (unless ``verify=False``): parity of the file on the host runtime against
    PyTorch (an error if it fails), and with a table (``table``, else the one a search's
    best.json names) the file's latency measured on the table's device next to the table's
    prediction: on the host, or for a phone table on the phone over ADB (``serial``/``transport``
    choose it; default the table's phone), judged against ``budget_ms`` (default: best.json's).

    An existing file is never replaced without ``force``: the default name carries a short
    hash of arch, weights and precision, and the identical export is reused (checked again).
    """
    check_format(fmt, precision)
    arch_obj = arch if isinstance(arch, Arch) else resolve_arch(arch)
    result = search_result(arch) if isinstance(arch, str) else {}
    if weights is None:
        weights = result.get("supernet")
    caught: list[str] = []
    if table is None and result.get("table"):
        if Path(result["table"]).is_file():
            table = result["table"]
        else:
            caught.append(f"the latency table best.json names ({result['table']}) is not found: pass --table")
    if budget_ms is None:
        budget_ms = result.get("budget_ms")
    space = arch_obj.get_space()
    lat_table = None
    if table is not None:
        from ..latency.table import LatencyTable  # noqa: PLC0415

        lat_table = LatencyTable.load(table, space=space.name, force=force_table)
        if table == result.get("table"):  # the search's table: a file of another format is timed with its format's table
            lat_table = _table_of_format(lat_table, fmt, caught, force_table)
    if lat_table is not None:
        lat_table.raw_sum(arch_obj)  # a table that lacks this arch's blocks is an error now, not after the export
    calib = None
    if precision == "int8" or calibration_data is not None:
        calib = representative_images(space.resolution, N_CALIBRATION, folder=calibration_data, seed=seed)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always", UserWarning)
        bn_images = None
        if weights is None:  # a fresh net: BN statistics from the representative images
            bn_images = calib if calib is not None else representative_images(space.resolution, N_BN_IMAGES, seed=seed)
        loaded = load_network(arch_obj, weights, seed=seed, bn_images=bn_images)
        caught += [str(x.message) for x in w if issubclass(x.category, SkippedCheckpointWarning)
                   or (issubclass(x.category, UserWarning) and "no --weights" in str(x.message))]
    if loaded.normalization is None and result.get("normalization") and loaded.source == "supernet":
        loaded.normalization = result["normalization"]
    net = loaded.net.eval()
    flops, params = space.flops_params(arch_obj)

    out_dir = Path(out)
    eid = export_id(arch_obj, net, fmt, precision, calibration_data)
    stem = name or f"{default_name(arch, arch_obj)}-{eid[:8]}"
    final = out_dir / f"{stem}-{precision}{get_format(fmt).extension}"
    sidecar = final.with_name(final.name + ".json")
    reused = final.is_file() and not force and _holds(final, sidecar, eid)
    if final.exists() and not reused and not force:
        raise HwnasError(f"{final} already exists and holds {_describe_existing(sidecar)}; pass --force to replace it, "
                         "or --name/--out to keep both")
    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".hwnas-export-", dir=out_dir))
    try:
        model_file = final if reused else work / final.name
        export_s = 0.0
        if not reused:
            example = torch.zeros(1, 3, space.resolution, space.resolution)
            t0 = time.perf_counter()
            export_module(net, example, model_file, fmt, precision, calibration=calib)
            export_s = time.perf_counter() - t0

        parity: list[ParityReport] = []
        lat: LatencyReport | None = None
        if verify:
            parity = verify_parity(net, model_file, precision, space.resolution, calib_folder=calibration_data, seed=seed)
            failed = [p for p in parity if not p.passed]
            if failed and loaded.source.startswith("fresh") and precision != "fp32":
                # an untrained net's logits are nearly tied, so quantization noise flips its top-1:
                # the agreement bound is about trained nets; the conversion itself is checked at fp32
                caught.append(f"untrained net: {failed[0].summary()} -- not enforced without --weights")
            elif failed:
                raise HwnasError(f"exported file failed the parity check: {failed[0].summary()}; nothing written (use --no-verify to keep it anyway)")
        if lat_table is not None:
            lat = verify_latency(lat_table, arch_obj, model_file, fmt, precision, measure=verify and measure_latency, runs=latency_runs,
                                 serial=serial, transport=transport)
        met, verdict = latency_verdict(lat, budget_ms) if lat is not None else (None, f"latency not checked: {_no_table_reason(caught)}")
        if lat is not None:
            lat.budget_ms, lat.budget_met, lat.verdict = budget_ms, met, verdict
            lat.prediction = prediction_summary(LatencyUncertainty.from_calibration(lat_table.calibration), lat.predicted_ms,
                                                lat.uncertainty_ms, budget_ms, result.get("confidence") or DEFAULT_CONFIDENCE)
        if met is False or (lat is not None and lat.measured_ms is None):
            caught.append(verdict)  # not met, or a table whose device could not time the file: a warning

        data = sidecar_dict(arch_obj, fmt, precision, loaded, flops, params, model_file, export_s, parity, lat, verify,
                            space.resolution, calibration_data, caught, n_calibration=0 if calib is None else len(calib))
        data.update(export_id=eid, sha256=file_sha256(model_file), reused=reused)
        if lat is None:
            data["latency"] = {"checked": False, "verdict": verdict, "budget_ms": budget_ms}
        if not reused:
            os.chmod(model_file, 0o644 & ~_umask())  # temp files are private; the export is a normal file
            # the old sidecar goes first: a crash from here on leaves a model without a sidecar, never
            # a new model described by the old one (the sidecar's sha256 names the file it describes)
            sidecar.unlink(missing_ok=True)
            os.replace(model_file, final)
        try:
            atomic_write_json(sidecar, data)
        except BaseException:
            if not reused:
                final.unlink(missing_ok=True)
            raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return ExportResult(path=final, sidecar=sidecar, arch=arch_obj, fmt=fmt, precision=precision, weights=loaded.source,
                        flops=flops, params=params, size_bytes=final.stat().st_size, export_s=export_s, parity=parity,
                        latency=lat, warnings=caught, sidecar_data=data, reused=reused, latency_verdict=verdict)


def _holds(final: Path, sidecar: Path, eid: str) -> bool:
    """Whether ``final`` is this very export: its sidecar names the same export id and the file's hash."""
    side = _read_json(sidecar)
    return bool(side) and side.get("export_id") == eid and side.get("sha256") == file_sha256(final)


def _describe_existing(sidecar: Path) -> str:
    side = _read_json(sidecar)
    if not side or not isinstance(side.get("arch"), dict):
        return "a file without an hwnas sidecar"
    w = side.get("weights") or {}
    return (f"another export (arch {side.get('compact', '?')}, weights {w.get('source', '?')}"
            f"{' ' + str(w['path']) if w.get('path') else ''}, {side.get('precision', '?')})")


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        d = json.loads(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return d if isinstance(d, dict) else None


def _table_of_format(table: Any, fmt: str, caught: list[str], force: bool) -> Any:
    """The search's table when it timed ``fmt`` files; else the same device and space's table of
    ``fmt`` beside it (said in ``caught``), or None with the reason (the profile to run) in ``caught``."""
    from ..latency.lookup import table_for_format, table_model_format  # noqa: PLC0415
    from ..latency.table import LatencyTable  # noqa: PLC0415

    have = table_model_format(table)
    if have is None or have == fmt:
        return table
    try:
        path = table_for_format(table, fmt)
    except HwnasError as e:
        caught.append(f"the latency table best.json names ({table.path}) times {have} files, this export is {fmt}: {e}")
        return None
    caught.append(f"the latency table best.json names ({table.path}) times {have} files; this {fmt} export is checked "
                  f"with the same device and space's {fmt} table {path}")
    return LatencyTable.load(path, space=table.space, force=force)


def _no_table_reason(caught: list[str]) -> str:
    missing = [c for c in caught if c.startswith("the latency table best.json names") and "is checked with" not in c]
    return missing[0] if missing else "no latency table (pass --table, or export a search's best.json, which names its table)"


def search_result(arch_text: str) -> dict[str, Any]:
    """What a search's best.json says beyond the arch: the supernet it searched (the arch's
    weights), its latency table and budget, and the training data's normalization.

    A search stores the supernet relative to best.json's folder, so an export from any folder
    finds it; a path that is not there (an older best.json, typed relative to where the search
    ran) is taken as it is when it exists from here.
    """
    p = Path(arch_text)
    if p.suffix != ".json" or not p.is_file():
        return {}
    d = _read_json(p) or {}
    out: dict[str, Any] = {}
    for key in ("supernet", "table"):
        s = d.get(key)
        if isinstance(s, str) and s:
            beside = p.parent / s  # how a search stores it (relative to best.json); older ones as typed
            out[key] = str(beside) if beside.exists() or not Path(s).exists() else s
    budget = (d.get("budgets") or {}).get("latency_ms") if isinstance(d.get("budgets"), dict) else None
    if isinstance(budget, (int, float)) and budget > 0:
        out["budget_ms"] = float(budget)
    bound = d.get("latency_bound")
    # a best.json names its bound in latency_bound; an older one had latency_confidence beside latency_quantile
    conf = bound.get("confidence") if isinstance(bound, dict) else d.get("latency_confidence")
    if isinstance(conf, (int, float)) and 0 < conf < 1:
        out["confidence"] = float(conf)
    if isinstance(d.get("normalization"), dict):
        out["normalization"] = d["normalization"]
    return out


def verify_parity(net: torch.nn.Module, path: Path, precision: str, resolution: int,
                  calib_folder: str | Path | None = None, seed: int = 0) -> list[ParityReport]:
    """fp32: 64 random inputs, exact up to round-off. fp16/int8: 1,024 representative images
    not used for calibration (built-in images of another seed; a folder's images after the
    calibration ones when it has more), judged by top-1 agreement with the fp32 net."""
    if precision == "fp32":
        return [check_parity(net, path, random_inputs(resolution, N_PARITY, seed=seed + 1), "fp32", "random")]
    if calib_folder is not None:
        imgs = folder_images(calib_folder, resolution, N_PARITY_QUANTIZED, offset=N_CALIBRATION)
        what = "calibration-folder (held-out)"
        if imgs is None:  # no images beyond the calibration ones
            imgs, what = folder_images(calib_folder, resolution, N_PARITY_QUANTIZED), "calibration-folder (calibration images)"
    else:
        imgs, what = representative_images(resolution, N_PARITY_QUANTIZED, seed=seed + 1_000), "built-in"
    return [check_parity(net, path, imgs, precision, what, reference=torch_logits(net, imgs))]


def sidecar_dict(arch: Arch, fmt: str, precision: str, loaded, flops: int, params: int, path: Path, export_s: float,
                 parity: list[ParityReport], lat: LatencyReport | None, verified: bool, resolution: int,
                 calibration_data: str | Path | None, warns: list[str], n_calibration: int = 0) -> dict[str, Any]:
    """The JSON next to the file: everything needed to know what it is and how it was checked."""
    in_spec: dict[str, Any] = {"name": "input" if fmt == "onnx" else "args_0", "shape": [1, 3, resolution, resolution],
                               "layout": "NCHW", "dtype": "float32", "normalization": input_normalization(loaded)}
    if fmt == "tflite" and precision == "int8":
        from ..formats.runtime import tflite_io_quantization  # noqa: PLC0415

        in_spec.update(tflite_io_quantization(path))
    return {
        "arch": arch.to_dict(), "space": arch.space, "compact": arch.get_space().to_compact(arch),
        "format": fmt, "precision": precision, "file": path.name, "size_bytes": path.stat().st_size,
        "flops": flops, "params": params,
        "weights": {"source": loaded.source, "path": loaded.path},
        "input": in_spec, "output": {"name": "output" if fmt == "onnx" else "output_0", "shape": [1, arch.get_space().num_classes], "meaning": "logits"},
        "calibration": None if precision != "int8" else calibration_dict(calibration_data, n_calibration),
        "parity_verified": bool(verified and parity and all(p.passed for p in parity)),
        "latency_checked": bool(lat is not None and lat.measured_ms is not None),
        "budget_met": None if lat is None else lat.budget_met,
        "parity": [p.to_dict() for p in parity],
        "latency": lat.to_dict() if lat else None,
        "export_seconds": round(export_s, 3),
        "warnings": warns,
        "hwnas_version": __version__, "torch_version": torch.__version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }



def input_normalization(loaded) -> dict[str, Any]:
    """The statistics the net's inputs must be normalized with: those recorded with its weights
    (the training data's), never a guess. A fresh net has no training data: its BN statistics
    came from the built-in images, normalized with the built-in set's statistics."""
    if loaded.normalization is not None:
        n = loaded.normalization
        return {"mean": list(n["mean"]), "std": list(n["std"]), "scale": "RGB in [0, 1]",
                "source": f"recorded with the weights (training data {n.get('data', 'unknown')})"}
    if loaded.source.startswith("fresh"):
        try:
            mean, std = builtin_statistics()
        except ImportError:
            return {"mean": None, "std": None, "note": "untrained net: no input statistics apply"}
        return {"mean": [round(float(v), 6) for v in mean.flatten()], "std": [round(float(v), 6) for v in std.flatten()],
                "scale": "RGB in [0, 1]", "source": "untrained net: the built-in data's statistics (used for its BN statistics)"}
    return {"mean": None, "std": None, "scale": "RGB in [0, 1]",
            "note": "not recorded with these weights: normalize inputs as the net was trained (save {'arch', 'state_dict', "
                    "'normalization': {'mean', 'std'}} to record it)"}


def calibration_dict(calibration_data: str | Path | None, n_images: int) -> dict[str, Any]:
    """Where the int8 activation ranges came from, and how those images were normalized."""
    if calibration_data:
        return {"source": str(calibration_data), "images": n_images, "ranges": "global min/max",
                "normalization": {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)}}
    d: dict[str, Any] = {"source": "built-in", "images": n_images, "ranges": "global min/max"}
    try:
        mean, std = builtin_statistics()
        d["normalization"] = {"mean": [round(float(v), 6) for v in mean.flatten()], "std": [round(float(v), 6) for v in std.flatten()]}
    except ImportError:
        pass
    return d


def _umask() -> int:
    m = os.umask(0)
    os.umask(m)
    return m
