"""Space costs: sampling + FLOPs throughput, and supernet single-path overhead vs the standalone net.

    python benchmarks/space_bench.py [--archs 100000] [--repeats 30]

The supernet/standalone ratio is measured interleaved in one run (noise hits both alike); goal <= 1.10.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from common import print_table, write_results

from hwnas.nn import Network, SuperNet
from hwnas.space import create_space


def sample_and_cost(space, n: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    idx = space.sample_indices(rng, n)
    flops = space.flops_of_indices(idx)
    vec = time.perf_counter() - t0
    t0 = time.perf_counter()
    m = min(n, 10_000)
    for _ in range(m):
        a = space.sample(rng)
        space.flops_params(a)
    per_arch = (time.perf_counter() - t0) / m
    return {"space": space.name, "archs": n, "vectorized_s": vec, "vectorized_archs_per_s": n / vec,
            "per_arch_object_us": per_arch * 1e6, "object_api_s_for_n": per_arch * n, "mean_mflops": float(flops.mean() / 1e6)}


@torch.no_grad()
def supernet_overhead(space, batch: int, repeats: int, seed: int = 0) -> dict:
    torch.manual_seed(seed)
    torch.set_num_threads(1)
    arch = space.sample(seed)
    sn = SuperNet(space).eval()
    net = Network(space, arch).eval()
    net.load_state_dict(sn.path_state_dict(arch))
    idx = space.choice_indices(arch)
    x = torch.randn(batch, 3, space.resolution, space.resolution)
    for _ in range(3):
        sn(x, idx), net(x)
    t_sn, t_net = [], []
    for _ in range(repeats):  # interleaved
        t0 = time.perf_counter(); sn(x, idx); t_sn.append(time.perf_counter() - t0)
        t0 = time.perf_counter(); net(x); t_net.append(time.perf_counter() - t0)
    ms_sn, ms_net = float(np.median(t_sn) * 1e3), float(np.median(t_net) * 1e3)
    return {"space": space.name, "batch": batch, "resolution": space.resolution, "supernet_ms": ms_sn,
            "standalone_ms": ms_net, "ratio": ms_sn / ms_net, "goal": 1.10}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--archs", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=30)
    args = ap.parse_args()
    sampling = [sample_and_cost(create_space(n), args.archs) for n in ("proxyless", "mbse", "nas-bench-macro", "tiny")]
    print_table(["space", "archs", "vectorized s", "object API us/arch", "object API s for N"],
                [[r["space"], r["archs"], r["vectorized_s"], r["per_arch_object_us"], r["object_api_s_for_n"]] for r in sampling],
                "sample + FLOPs")
    overhead = [supernet_overhead(create_space("tiny"), 32, args.repeats),
                supernet_overhead(create_space("proxyless"), 1, args.repeats)]
    print_table(["space", "batch", "supernet ms", "standalone ms", "ratio (goal <= 1.10)"],
                [[r["space"], r["batch"], r["supernet_ms"], r["standalone_ms"], r["ratio"]] for r in overhead],
                "single-path supernet vs standalone forward")
    write_results("space_bench", {"command": "python benchmarks/space_bench.py", "sampling": sampling, "supernet_overhead": overhead})


if __name__ == "__main__":
    main()
