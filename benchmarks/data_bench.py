"""Training throughput on an image folder: the in-process reader vs a DataLoader with 2 workers.

    python benchmarks/data_bench.py [--images 10000] [--rounds 5] [--batches 30] [--folder DIR]

Generates a class-per-subfolder folder of JPEGs (10 classes, 48-112 px sides; kept in --folder
to reuse), then trains the tiny space's supernet (one path per step, 1 intra-op thread) on it
for --batches batches of 64 per round, once reading in the training process (workers=0: how
hwnas read image folders before the DataLoader) and once with a DataLoader with 2 worker
processes. Rounds alternate the two, so machine noise hits both alike; the figure is the
per-round throughput ratio (DataLoader / in-process) with a bootstrap interval over rounds.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy.stats import bootstrap

from common import print_table, write_results

from hwnas.nn import SuperNet
from hwnas.space import create_space
from hwnas.train.data import FolderImageSet
from hwnas.train.loader import EpochBatchSampler, batch_loader

CLASSES = 10
BATCH = 64
WORKERS = 2
SEED = 0


def make_folder(root: Path, n: int, seed: int = SEED) -> Path:
    """``n`` JPEGs of smooth random colour fields with noise, spread over 10 class folders."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    have = sum(1 for _ in root.rglob("*.jpg")) if root.is_dir() else 0
    if have >= n:
        return root
    for i in range(n):
        d = root / f"c{i % CLASSES}"
        d.mkdir(parents=True, exist_ok=True)
        h, w = (int(v) for v in rng.integers(48, 113, 2))
        coarse = torch.from_numpy(rng.random((1, 3, 4, 4), dtype=np.float32))
        x = F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False)[0].numpy()
        x = np.clip(x + rng.normal(0, 0.05, x.shape), 0, 1)
        Image.fromarray((x.transpose(1, 2, 0) * 255).astype(np.uint8)).save(d / f"{i:05d}.jpg", quality=90)
    return root


def train_round(data: FolderImageSet, workers: int, batches: int, start: int, model: SuperNet, opt, path) -> float:
    """Images per second of ``batches`` training steps fed by a DataLoader with ``workers``."""
    sampler = EpochBatchSampler(len(data), BATCH, lambda e: SEED + e, start=start, stop=start + batches)
    t0 = time.perf_counter()
    n = 0
    for x, y in batch_loader(data, sampler, workers):  # worker start-up is part of the cost
        loss = F.cross_entropy(model(x, path), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        n += len(y)
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--batches", type=int, default=30, help="training steps of 64 images per round and reader")
    ap.add_argument("--folder", type=Path, default=None, help="where the JPEGs are kept (default: a temp dir)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    root = make_folder(args.folder or Path(tempfile.mkdtemp(prefix="data-bench-")), args.images)
    space = create_space("tiny")
    data = FolderImageSet(root, space.resolution, verify=False)
    torch.manual_seed(SEED)
    model = SuperNet(space).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    path = space.choice_indices(space.sample(SEED))
    rates: dict[int, list[float]] = {0: [], WORKERS: []}
    for r in range(args.rounds):
        order = (0, WORKERS) if r % 2 == 0 else (WORKERS, 0)
        for w in order:
            rates[w].append(train_round(data, w, args.batches, r * args.batches, model, opt, path))
    ratio = np.array(rates[WORKERS]) / np.array(rates[0])
    ci = bootstrap((ratio,), np.median, confidence_level=0.95, n_resamples=2000, method="percentile",
                   random_state=np.random.default_rng(SEED)).confidence_interval if len(ratio) > 1 else None
    rows = [["in-process reader (workers=0)", float(np.median(rates[0]))],
            [f"DataLoader, {WORKERS} workers", float(np.median(rates[WORKERS]))],
            ["ratio (median over rounds)", float(np.median(ratio))]]
    print_table(["reader", "training images/s"], rows,
                title=f"{len(data)} JPEGs -> {space.resolution}px, batch {BATCH}, {args.batches} steps x {args.rounds} rounds")
    if ci is not None:
        print(f"ratio 95% bootstrap interval over rounds: [{ci.low:.3f}, {ci.high:.3f}]")
    write_results("data_bench", {
        "setting": {"images": len(data), "resolution": space.resolution, "batch": BATCH, "batches_per_round": args.batches,
                    "rounds": args.rounds, "workers": WORKERS, "model": "tiny supernet, one path, 1 thread"},
        "images_per_s": {"in_process": rates[0], "dataloader_2_workers": rates[WORKERS]},
        "median_images_per_s": {"in_process": rows[0][1], "dataloader_2_workers": rows[1][1]},
        "ratio_per_round": ratio.tolist(), "ratio_median": float(np.median(ratio)),
        "ratio_ci95": [float(ci.low), float(ci.high)] if ci is not None else None,
    })


if __name__ == "__main__":
    main()
