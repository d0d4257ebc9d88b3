"""``export_arch``: an arch (plus weights) -> a verified model file and its JSON sidecar.

The library call behind ``hwnas export``. Nothing reaches the output folder until the file is
converted, checked and its sidecar is ready: on any error the folder is left as it was.
"""

from __future__ import annotations

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
from ..errors import HwnasError
from ..io import atomic_write_json
from ..space.arch import Arch, resolve_arch
from ..train.images import IMAGENET_MEAN, IMAGENET_STD
from .calibration import builtin_statistics, folder_images, representative_images
from ..formats import check_format, export_module, get_format
from .latency_check import LatencyReport, verify_latency
from .parity import ParityReport, check_parity, random_inputs, torch_logits
from .weights import load_network

N_PARITY = 64  # random inputs per fp32 parity check
N_PARITY_QUANTIZED = 256  # held-out representative images per fp16/int8 agreement check
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


def default_name(arch_text: str | Arch, arch: Arch) -> str:
    if isinstance(arch_text, str):
        p = Path(arch_text)
        if p.suffix == ".json":
            return p.stem
        if ":" not in arch_text and not p.exists():
            return arch_text  # a named arch
    return f"{arch.space}-{arch.get_space().to_compact(arch)}"


def export_arch(arch: str | Arch, *, weights: str | Path | None = None, fmt: str = "tflite", precision: str = "fp32",
                calibration_data: str | Path | None = None, out: str | Path = "exports", name: str | None = None,
                table: str | Path | None = None, verify: bool = True, measure_latency: bool = True,
                latency_runs: int | None = None, force_table: bool = False, seed: int = 0, serial: str | None = None,
                transport: str | None = None) -> ExportResult:
    """Build ``arch``'s standalone net, export it as ``fmt``/``precision`` into ``out``, verify it.

    Verification (unless ``verify=False``): parity of the file on the host runtime against
    PyTorch (an error if it fails), and with ``table`` the file's latency measured on the
    table's device next to the table's prediction: on the host, or for a phone table on the
    phone over ADB (``serial``/``transport`` choose it; default the table's phone).
    """
    check_format(fmt, precision)
    arch_obj = arch if isinstance(arch, Arch) else resolve_arch(arch)
    if weights is None and isinstance(arch, str):
        weights = supernet_of_result(arch)
    space = arch_obj.get_space()
    lat_table = None
    if table is not None:
        from ..latency.table import LatencyTable  # noqa: PLC0415

        lat_table = LatencyTable.load(table, space=space.name, force=force_table)
        lat_table.raw_sum(arch_obj)  # a table that lacks this arch's blocks is an error now, not after the export
    calib = None
    if precision == "int8" or calibration_data is not None:
        calib = representative_images(space.resolution, N_CALIBRATION, folder=calibration_data, seed=seed)
    caught: list[str] = []
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always", UserWarning)
        bn_images = None
        if weights is None:  # a fresh net: BN statistics from the representative images
            bn_images = calib if calib is not None else representative_images(space.resolution, N_BN_IMAGES, seed=seed)
        loaded = load_network(arch_obj, weights, seed=seed, bn_images=bn_images)
        caught += [str(x.message) for x in w if issubclass(x.category, UserWarning) and "no --weights" in str(x.message)]
    net = loaded.net.eval()
    flops, params = space.flops_params(arch_obj)

    out_dir = Path(out)
    stem = name or default_name(arch, arch_obj)
    final = out_dir / f"{stem}-{precision}{get_format(fmt).extension}"
    sidecar = final.with_name(final.name + ".json")
    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".hwnas-export-", dir=out_dir))
    try:
        tmp_file = work / final.name
        example = torch.zeros(1, 3, space.resolution, space.resolution)
        t0 = time.perf_counter()
        export_module(net, example, tmp_file, fmt, precision, calibration=calib)
        export_s = time.perf_counter() - t0

        parity: list[ParityReport] = []
        lat: LatencyReport | None = None
        if verify:
            parity = verify_parity(net, tmp_file, precision, space.resolution, calib_folder=calibration_data, seed=seed)
            failed = [p for p in parity if not p.passed]
            if failed and loaded.source.startswith("fresh") and precision != "fp32":
                # an untrained net's logits are nearly tied, so quantization noise flips its top-1:
                # the agreement bound is about trained nets; the conversion itself is checked at fp32
                caught.append(f"untrained net: {failed[0].summary()} -- not enforced without --weights")
            elif failed:
                raise HwnasError(f"exported file failed the parity check: {failed[0].summary()}; nothing written (use --no-verify to keep it anyway)")
        if lat_table is not None:
            lat = verify_latency(lat_table, arch_obj, tmp_file, fmt, precision, measure=verify and measure_latency, runs=latency_runs,
                                 serial=serial, transport=transport)
            if "not measured: " in lat.note:
                caught.append("latency " + lat.note[lat.note.index("not measured: "):])

        data = sidecar_dict(arch_obj, fmt, precision, loaded, flops, params, tmp_file, export_s, parity, lat, verify,
                            space.resolution, calibration_data, caught, n_calibration=0 if calib is None else len(calib))
        os.chmod(tmp_file, 0o644 & ~_umask())  # temp files are private; the export is a normal file
        os.replace(tmp_file, final)
        try:
            atomic_write_json(sidecar, data)
        except BaseException:
            final.unlink(missing_ok=True)
            raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return ExportResult(path=final, sidecar=sidecar, arch=arch_obj, fmt=fmt, precision=precision, weights=loaded.source,
                        flops=flops, params=params, size_bytes=final.stat().st_size, export_s=export_s, parity=parity,
                        latency=lat, warnings=caught, sidecar_data=data)


def supernet_of_result(arch_text: str) -> str | None:
    """A search's best.json names the supernet it searched: its weights are the arch's weights."""
    p = Path(arch_text)
    if p.suffix != ".json" or not p.is_file():
        return None
    try:
        d = json.loads(p.read_text())
    except (ValueError, OSError):
        return None
    s = d.get("supernet") if isinstance(d, dict) else None
    return str(s) if isinstance(s, str) and s else None


def verify_parity(net: torch.nn.Module, path: Path, precision: str, resolution: int,
                  calib_folder: str | Path | None = None, seed: int = 0) -> list[ParityReport]:
    """fp32: 64 random inputs, exact up to round-off. fp16/int8: 256 representative images
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
                               "layout": "NCHW", "dtype": "float32",
                               "normalization": {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD), "scale": "RGB in [0, 1]",
                                                 "note": "as the weights were trained: ImageNet statistics for image folders; "
                                                         "the built-in set and CIFAR use their own per-channel statistics"}}
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
        "verified": verified,
        "parity": [p.to_dict() for p in parity],
        "latency": lat.to_dict() if lat else None,
        "export_seconds": round(export_s, 3),
        "warnings": warns,
        "hwnas_version": __version__, "torch_version": torch.__version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }



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
