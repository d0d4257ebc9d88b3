"""Export benchmark for proxyless-mobile: export time per format/precision, int8 vs fp32
latency on host LiteRT, and predicted (latency table) vs measured latency of the exported file
on the host with onnxruntime and LiteRT.

    python benchmarks/export_bench.py [--quick] [--tables latency_tables] [--runs 50]

Writes benchmarks/results/export_bench.json. The tables are latency_tables/host-proxyless-
{onnxruntime,litert}.json (built by `hwnas profile`, calibrated by `hwnas validate
--calibrate`); a missing table is reported, not faked.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = Path(__file__).resolve().parent / "results"

ARCH = "proxyless-mobile"
VARIANTS = [("onnx", "fp32"), ("tflite", "fp32"), ("tflite", "fp16"), ("tflite", "int8"), ("onnx", "int8")]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="only fp32 ONNX/TFLite and int8 TFLite")
    ap.add_argument("--tables", type=Path, default=ROOT / "latency_tables", help="folder with host-proxyless-<backend>.json")
    ap.add_argument("--runs", type=int, default=None, help="timed runs per latency measurement (default: the table's protocol)")
    ap.add_argument("--out", type=Path, default=RESULTS / "export_bench.json")
    ap.add_argument("--predicted-only", action="store_true",
                    help="only the fp32 exports with a table; update predicted_vs_measured in an existing results file")
    ap.add_argument("--agreement-supernet", type=Path, default=None,
                    help="a `hwnas train` run folder (tiny): export its best pool path at fp16/int8 and report top-1 "
                         "agreement with fp32 on 512 built-in images; updates an existing results file")
    args = ap.parse_args(argv)
    if args.predicted_only:
        return predicted_only(args)
    if args.agreement_supernet is not None:
        return agreement_part(args)

    import torch

    torch.set_num_threads(1)
    from hwnas.device.profiles import load_device
    from hwnas.export import export_arch
    from hwnas.latency.backends.base import Protocol, create_backend

    variants = [v for v in VARIANTS if not args.quick or v in (("onnx", "fp32"), ("tflite", "fp32"), ("tflite", "int8"))]
    tables = {b: args.tables / f"host-proxyless-{b}.json" for b in ("onnxruntime", "litert")}
    out_dir = Path(tempfile.mkdtemp(prefix="hwnas-export-bench-"))
    rows, exports = [], {}
    for fmt, prec in variants:
        backend = "onnxruntime" if fmt == "onnx" else "litert"
        table = tables[backend] if prec == "fp32" and tables[backend].is_file() else None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t0 = time.perf_counter()
            r = export_arch(ARCH, fmt=fmt, precision=prec, out=out_dir, table=table, latency_runs=args.runs)
            wall = time.perf_counter() - t0
        p = r.parity[0]
        row = {"format": fmt, "precision": prec, "export_s": round(r.export_s, 2), "export_verify_wall_s": round(wall, 2),
               "size_mb": round(r.size_bytes / 1e6, 3), "parity_inputs": p.inputs, "max_abs_err": p.max_abs_err,
               "top1_agreement": p.top1_agreement, "parity_passed": p.passed, "latency": r.latency.to_dict() if r.latency else None}
        rows.append(row)
        exports[(fmt, prec)] = r.path
        print(f"{fmt:6s} {prec}: export {r.export_s:6.1f}s  {r.size_bytes / 1e6:6.2f} MB  {p.summary()}", flush=True)
        if r.latency:
            print(f"        {r.latency.summary()}", flush=True)

    # int8 vs fp32 on host LiteRT, same backend, same protocol, same run of this script
    host = load_device("host")
    proto = Protocol.from_device(host, runs=args.runs or 50)
    lat = {}
    with create_backend("litert", device=host) as be:
        for prec in ("fp32", "int8", "fp16"):
            if ("tflite", prec) in exports:
                lat[prec] = be.measure(exports[("tflite", prec)], proto).to_dict()
    ratio = lat["int8"]["median_ms"] / lat["fp32"]["median_ms"]
    print(f"host LiteRT: fp32 {lat['fp32']['median_ms']:.2f} ms, int8 {lat['int8']['median_ms']:.2f} ms -> int8/fp32 = {ratio:.3f}")
    size_ratio = next(r["size_mb"] for r in rows if r["format"] == "tflite" and r["precision"] == "int8") / \
        next(r["size_mb"] for r in rows if r["format"] == "tflite" and r["precision"] == "fp32")

    pred_vs_meas = predicted_vs_measured(rows, tables)
    payload = {"benchmark": "export_bench", "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
               "machine": {"python": platform.python_version(), "platform": platform.platform(terse=True)},
               "command": "python benchmarks/export_bench.py" + (" " + " ".join(argv if argv is not None else sys.argv[1:])).rstrip(),
               "arch": ARCH, "exports": rows,
               "host_litert": {"fp32": lat["fp32"], "int8": lat["int8"], "fp16": lat.get("fp16"), "int8_over_fp32_latency": ratio,
                               "int8_over_fp32_size": size_ratio},
               "predicted_vs_measured": pred_vs_meas}
    from hwnas.io import atomic_write_json

    atomic_write_json(args.out, payload)
    print(f"wrote {args.out}")
    return 0


def predicted_only(args) -> int:
    from hwnas.export import export_arch
    from hwnas.io import atomic_write_json

    tables = {b: args.tables / f"host-proxyless-{b}.json" for b in ("onnxruntime", "litert")}
    payload = json.loads(args.out.read_text()) if args.out.is_file() else {"benchmark": "export_bench", "arch": ARCH, "exports": []}
    rows = []
    out_dir = Path(tempfile.mkdtemp(prefix="hwnas-export-bench-"))
    for backend, path in tables.items():
        if not path.is_file():
            continue
        fmt = "onnx" if backend == "onnxruntime" else "tflite"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r = export_arch(ARCH, fmt=fmt, precision="fp32", out=out_dir, table=path, latency_runs=args.runs)
        rows.append({"format": fmt, "precision": "fp32", "latency": r.latency.to_dict()})
        print(f"{fmt}: {r.latency.summary()}", flush=True)
    payload["predicted_vs_measured"] = predicted_vs_measured(rows, tables)
    payload["predicted_vs_measured_when"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    atomic_write_json(args.out, payload)
    print(f"wrote {args.out}")
    return 0


def agreement_part(args) -> int:
    """fp16/int8 top-1 agreement vs fp32 for a trained net (weights inherited from a supernet)."""
    import numpy as np
    import torch

    from hwnas.export import export_arch
    from hwnas.export.calibration import builtin_images
    from hwnas.export.runtime import load_runner
    from hwnas.export.weights import load_network
    from hwnas.io import atomic_write_json
    from hwnas.train.checkpoint import load_checkpoint

    torch.set_num_threads(1)
    ts = load_checkpoint(args.agreement_supernet)
    arch = ts.pool[0][0] if ts.pool else ts.space.sample(0)
    net = load_network(arch, args.agreement_supernet).net
    x = builtin_images(ts.space.resolution, 512, seed=4242)
    with torch.no_grad():
        ref = net(torch.from_numpy(x)).numpy()
    ds = ts.datasets()
    xv, yv = ds.val.batch(list(range(min(1000, len(ds.val)))))
    with torch.no_grad():
        acc = float((net(xv).argmax(1) == yv).float().mean())
    classes = np.bincount(ref.argmax(1), minlength=ref.shape[1])
    print(f"{arch.compact()}: val acc {100 * acc:.1f}%, fp32 top-1 class histogram on the 512 images {classes.tolist()}")
    out_dir = Path(tempfile.mkdtemp(prefix="hwnas-export-bench-"))
    rows = []
    for fmt, prec in (("tflite", "fp32"), ("tflite", "fp16"), ("tflite", "int8"), ("onnx", "int8")):
        r = export_arch(arch, weights=args.agreement_supernet, fmt=fmt, precision=prec, out=out_dir)
        got = load_runner(r.path)(x)
        agree = float(np.mean(got.argmax(1) == ref.argmax(1)))
        rows.append({"format": fmt, "precision": prec, "top1_agreement_512_builtin": agree, "max_abs_err": float(np.abs(got - ref).max()),
                     "export_check": r.parity[0].to_dict(), "size_bytes": r.size_bytes})
        print(f"{fmt} {prec}: top-1 agreement vs fp32 {100 * agree:.1f}% on 512 built-in images, export check "
              f"{100 * r.parity[0].top1_agreement:.1f}% on 64, size {r.size_bytes / 1e3:.0f} kB", flush=True)
    payload = json.loads(args.out.read_text()) if args.out.is_file() else {"benchmark": "export_bench"}
    payload["agreement_trained"] = {"arch": arch.compact(), "supernet_val_acc": acc, "iterations": ts.counters.get("iteration"),
                                    "fp32_top1_class_histogram": classes.tolist(),
                                    "degenerate": bool(classes.max() > 0.5 * classes.sum()),  # agreement is trivial then
                                    "when": datetime.now(timezone.utc).isoformat(timespec="seconds"), "rows": rows,
                                    "command": "python benchmarks/export_bench.py --agreement-supernet RUN_DIR (a `hwnas train --space tiny` run)"}
    atomic_write_json(args.out, payload)
    print(f"wrote {args.out}")
    return 0


def predicted_vs_measured(rows: list[dict], tables: dict[str, Path]) -> list[dict]:
    from hwnas.latency.table import LatencyTable

    pred_vs_meas = []
    for backend, path in tables.items():
        row = next((r for r in rows if r["precision"] == "fp32" and (r["format"] == "onnx") == (backend == "onnxruntime")), None)
        if row is None or row["latency"] is None:
            pred_vs_meas.append({"backend": backend, "table": str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path),
                                 "status": "missing table"})
            print(f"{backend}: no table at {path}; predicted-vs-measured not available")
            continue
        L = row["latency"]
        t = LatencyTable.load(path, space="proxyless")
        calibrated = t.calibration != {"overhead_ms": 0.0, "scale": 1.0}
        within = L["error_pct"] is not None and abs(L["error_pct"]) <= 10.0
        pred_vs_meas.append({"backend": backend, "table": str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path),
                             "calibration": t.calibration, "calibrated": calibrated, "predicted_ms": L["predicted_ms"],
                             "uncertainty_ms": L["uncertainty_ms"], "measured_ms": L["measured_ms"], "error_pct": L["error_pct"],
                             "within_10pct": within, "note": L["note"]})
        print(f"{backend}: predicted {L['predicted_ms']:.2f} ms vs measured {L['measured_ms']:.2f} ms -> {L['error_pct']:+.1f}% "
              f"({'within' if within else 'OUTSIDE'} ±10%; table {'calibrated' if calibrated else 'uncalibrated'})")
    return pred_vs_meas


if __name__ == "__main__":
    sys.exit(main())
