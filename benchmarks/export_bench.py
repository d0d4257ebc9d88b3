"""Export benchmark for proxyless-mobile: export time per format/precision, int8 vs fp32
latency on host LiteRT, and predicted (latency table) vs measured latency of the exported file
on the host with onnxruntime and LiteRT.

    python benchmarks/export_bench.py [--quick] [--tables latency_tables] [--runs 50]
    python benchmarks/export_bench.py --agreement [--train-iters 500 --train-batch 64]

Writes benchmarks/results/export_bench.json. ``--agreement`` trains a tiny net on the built-in
data and reports the top-1 agreement of its fp16/int8 files with fp32 on held-out built-in
images (updating ``agreement_trained`` in an existing results file). The tables are latency_tables/host-proxyless-
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
    ap.add_argument("--agreement", action="store_true",
                    help="train a tiny net on the built-in data; top-1 agreement of its fp16/int8 files with fp32 on the "
                         "held-out val split; updates an existing results file")
    ap.add_argument("--train-iters", type=int, default=500, help="SGD iterations for --agreement")
    ap.add_argument("--train-batch", type=int, default=64, help="batch size for --agreement")
    ap.add_argument("--agreement-supernet", type=Path, default=None,
                    help="a `hwnas train` run folder (tiny): export its best pool path at fp16/int8 and report top-1 "
                         "agreement with fp32 on 512 built-in images; updates an existing results file")
    args = ap.parse_args(argv)
    if args.predicted_only:
        return predicted_only(args)
    if args.agreement:
        return agreement_trained(args)
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

    if args.out.is_file():  # the trained-net agreement sections come from their own runs (--agreement)
        old = json.loads(args.out.read_text())
        payload.update({k: old[k] for k in ("agreement_trained", "agreement_supernet") if k in old})
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
    from hwnas.formats import load_runner
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
    payload["agreement_supernet"] = {"arch": arch.compact(), "supernet_val_acc": acc, "iterations": ts.counters.get("iteration"),
                                    "fp32_top1_class_histogram": classes.tolist(),
                                    "degenerate": bool(classes.max() > 0.5 * classes.sum()),  # agreement is trivial then
                                    "when": datetime.now(timezone.utc).isoformat(timespec="seconds"), "rows": rows,
                                    "command": "python benchmarks/export_bench.py --agreement-supernet RUN_DIR (a `hwnas train --space tiny` run)"}
    atomic_write_json(args.out, payload)
    print(f"wrote {args.out}")
    return 0


# ---- fp16/int8 agreement of a trained net ----------------------------------------------------
AGREEMENT_OPS = ["k3e3", "id", "k5e3", "k3e1", "k3e6", "id"]  # skip, e1 (no expansion), k5, e6


def train_tiny(ops: list[str], iterations: int, batch: int, n_train: int = 2000, n_val: int = 512, seed: int = 0):
    """(arch, net, val images, val labels, val accuracy %) of a tiny net trained from scratch on the
    built-in data (`hwnas train`'s training split and normalization) with the library's standalone
    SGD loop (FNAS's train-from-scratch step: Nesterov momentum, cosine learning rate)."""
    import torch

    from hwnas.nn import build_network
    from hwnas.search.fnas.train_evaluator import train
    from hwnas.train.standalone import accuracy
    from hwnas.space import create_space
    from hwnas.train.data import build_datasets

    ds = build_datasets("builtin", n_train=n_train, n_val=n_val, n_path_eval=1, seed=seed)
    xva, yva = ds.val.batch(torch.arange(len(ds.val)))
    arch = create_space("tiny").arch(ops)
    torch.manual_seed(seed)
    net = build_network(arch)
    train(net, ds.train, iterations, batch=batch, lr=0.1, seed=seed)
    acc = accuracy(net, ds.val, 512)
    return arch, net.eval(), xva.numpy(), yva.numpy(), acc


def agreement_trained(args) -> int:
    """Top-1 agreement with fp32 of the fp16/int8 files of a trained tiny net, on the held-out val
    split of the built-in data (2,000 images), next to the export's own check (256 built-in
    images of another seed); plus ai-edge-quantizer's default moving-average calibration ranges
    on the same net for comparison."""
    import numpy as np
    import torch

    from hwnas.export import export_arch
    from hwnas.formats import load_runner
    from hwnas.io import atomic_write_json

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    arch, net, xva, yva, acc = train_tiny(AGREEMENT_OPS, args.train_iters, args.train_batch, n_train=5000, n_val=2000)
    train_s = time.perf_counter() - t0
    with torch.no_grad():
        ref = net(torch.from_numpy(xva)).numpy()
    top2 = np.sort(ref, 1)[:, -2:]
    print(f"{arch.compact()}: {args.train_iters} x {args.train_batch} images in {train_s:.0f}s, val accuracy {acc:.1f}% "
          f"on {len(yva)} held-out images, median top-1 margin {float(np.median(top2[:, 1] - top2[:, 0])):.2f}", flush=True)
    out_dir = Path(tempfile.mkdtemp(prefix="hwnas-export-bench-"))
    weights = out_dir / "tiny.pt"
    torch.save({"arch": arch.to_dict(), "state_dict": net.state_dict()}, weights)
    rows = []
    for fmt, prec in (("tflite", "fp32"), ("tflite", "fp16"), ("tflite", "int8"), ("onnx", "fp32"), ("onnx", "int8")):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r = export_arch(arch, weights=weights, fmt=fmt, precision=prec, out=out_dir)
        rows.append(agreement_row(fmt, prec, load_runner(r.path)(xva), ref, yva, r.parity[0].to_dict(), r.size_bytes))
    rows.append(agreement_row("tflite", "int8", load_runner(moving_average_int8(net, arch, out_dir))(xva), ref, yva, None, None,
                              recipe="ai-edge-quantizer default calibration (moving-average ranges; not what hwnas ships)"))
    for row in rows:
        print(f"{row['format']:6s} {row['precision']}: top-1 agreement vs fp32 {100 * row['top1_agreement']:.1f}% on {len(yva)} val images, "
              f"accuracy {100 * row['accuracy']:.1f}%, max abs err {row['max_abs_err']:.3g}  [{row['recipe']}]", flush=True)
    payload = json.loads(args.out.read_text()) if args.out.is_file() else {"benchmark": "export_bench"}
    payload.pop("agreement_trained", None)
    payload["agreement_trained"] = {
        "arch": arch.compact(), "training": {"iterations": args.train_iters, "batch": args.train_batch, "train_images": 5000,
                                              "seconds": round(train_s, 1), "lr": 0.1},
        "val_images": int(len(yva)), "fp32_val_accuracy": acc / 100,
        "fp32_top1_class_histogram": np.bincount(ref.argmax(1), minlength=ref.shape[1]).tolist(),
        "thresholds": {"fp16": 0.98, "int8": 0.95}, "rows": rows,
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": f"python benchmarks/export_bench.py --agreement --train-iters {args.train_iters} --train-batch {args.train_batch}"}
    atomic_write_json(args.out, payload)
    print(f"wrote {args.out}")
    return 0


def agreement_row(fmt, prec, got, ref, labels, check, size, recipe="hwnas") -> dict:
    import numpy as np

    return {"format": fmt, "precision": prec, "recipe": recipe, "top1_agreement": float(np.mean(got.argmax(1) == ref.argmax(1))),
            "accuracy": float(np.mean(got.argmax(1) == labels)), "max_abs_err": float(np.abs(got - ref).max()),
            "mean_abs_err": float(np.abs(got - ref).mean()), "export_check": check, "size_bytes": size}


def moving_average_int8(net, arch, out_dir: Path) -> Path:
    """The same int8 TFLite file calibrated with ai-edge-quantizer's default (moving average of
    per-image min/max) instead of global min/max: what the ranges fix is worth."""
    import torch
    from ai_edge_quantizer import quantizer, recipe as aeq_recipe

    from hwnas.export.api import N_CALIBRATION
    from hwnas.export.calibration import builtin_images
    from hwnas.formats.convert import TFLITE_INPUT, TFLITE_SIGNATURE, export_tflite

    res = arch.get_space().resolution
    fp32 = export_tflite(net, torch.zeros(1, 3, res, res), out_dir / "ma-fp32.tflite")
    calib = builtin_images(res, N_CALIBRATION, seed=0)
    qt = quantizer.Quantizer(str(fp32))
    qt.load_quantization_recipe(aeq_recipe.static_wi8_ai8())
    result = qt.calibrate({TFLITE_SIGNATURE: [{TFLITE_INPUT: calib[i:i + 1]} for i in range(len(calib))]})
    path = out_dir / "ma-int8.tflite"
    qt.quantize(result, enable_progress_report=False).export_model(str(path), overwrite=True)
    return path


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
                             "within_10pct": within, "note": L["note"],
                             "device_speed_factor": L.get("device_speed_factor"), "measured_reference_ms": L.get("measured_reference_ms"),
                             "error_reference_pct": L.get("error_reference_pct"),
                             "within_10pct_in_table_state": None if L.get("error_reference_pct") is None else abs(L["error_reference_pct"]) <= 10.0})
        print(f"{backend}: predicted {L['predicted_ms']:.2f} ms vs measured {L['measured_ms']:.2f} ms -> {L['error_pct']:+.1f}% "
              f"({'within' if within else 'OUTSIDE'} ±10%; table {'calibrated' if calibrated else 'uncalibrated'})"
              + (f"; device at {L['device_speed_factor']:.3f}x the table's speed -> {L['error_reference_pct']:+.1f}% in the table's state"
                 if L.get("error_reference_pct") is not None else ""))
    return pred_vs_meas


if __name__ == "__main__":
    sys.exit(main())
