"""Scale-out with ``torchrun``: process group set-up, broadcasts, and BN synced across ranks.

``torchrun --nproc_per_node=N -m hwnas train ...`` sets RANK/WORLD_SIZE/MASTER_ADDR; we join
the group (gloo on CPU, nccl on GPU) and wrap the supernet in DistributedDataParallel.

Batch norm: each rank sees 1/N of the global batch, so plain BN would normalize with other
statistics than a one-process run and the N-process result would differ. ``SyncBatchNorm``
in PyTorch is GPU-only, so ``convert_sync_bn`` swaps in ``RankSyncBatchNorm``: batch
statistics are summed over ranks with the differentiable ``all_reduce`` of
``torch.distributed.nn`` (gradients flow back across ranks as in SyncBN). Parameter and
buffer names are unchanged, so checkpoints load into a plain ``SuperNet``.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn


@dataclass
class DistContext:
    rank: int = 0
    world: int = 1
    backend: str | None = None
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    def broadcast_object(self, obj: Any) -> Any:
        if not self.enabled:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def all_gather_object(self, obj: Any) -> list[Any]:
        """Every rank's ``obj``, in rank order, on every rank."""
        if not self.enabled:
            return [obj]
        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def all_reduce_sum(self, t: torch.Tensor) -> torch.Tensor:
        """Sum a CPU tensor over ranks in place (moved to the device for nccl and back)."""
        if self.enabled:
            on = t.to(self.device)
            dist.all_reduce(on, op=dist.ReduceOp.SUM)
            t.copy_(on.cpu())
        return t

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()


def init_distributed() -> DistContext:
    """Join the torchrun process group if launched by torchrun with WORLD_SIZE > 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext()
    device = torch.device("cpu")
    if torch.cuda.is_available():
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistContext(dist.get_rank(), dist.get_world_size(), dist.get_backend(), device)


def shutdown_distributed(ctx: DistContext) -> None:
    if ctx.enabled and dist.is_initialized():
        dist.destroy_process_group()


class RankSyncBatchNorm(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics are those of the global batch over all ranks."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        with warnings.catch_warnings():  # the autograd-aware all_reduce is what SyncBN needs; its successor is not differentiable
            warnings.simplefilter("ignore", FutureWarning)
            from torch.distributed.nn.functional import all_reduce

        c = x.shape[1]
        # two passes with float64 sums, like the native kernel (E[x²]-mean² in float32 loses digits)
        n_local = torch.tensor([x.numel() / c], dtype=torch.float64)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            s1 = all_reduce(torch.cat([x.sum((0, 2, 3), dtype=torch.float64), n_local]))
            n = s1[-1]
            mean = s1[:c] / n
            d = x - mean.to(x.dtype).view(1, c, 1, 1)
            var = all_reduce((d * d).sum((0, 2, 3), dtype=torch.float64)) / n
        mean, var = mean.to(x.dtype), var.to(x.dtype)
        with torch.no_grad():
            self.num_batches_tracked += 1
            mom = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
            self.running_mean.mul_(1 - mom).add_(mean.detach(), alpha=mom)
            self.running_var.mul_(1 - mom).add_(var.detach() * float(n / (n - 1)), alpha=mom)
        y = d * torch.rsqrt(var.view(1, c, 1, 1) + self.eps)
        if self.affine:
            y = y * self.weight.view(1, c, 1, 1) + self.bias.view(1, c, 1, 1)
        return y


def convert_sync_bn(module: nn.Module, device: torch.device | None = None) -> nn.Module:
    """Replace every BatchNorm2d in place by a BN synced over ranks sharing its tensors
    (PyTorch's SyncBatchNorm on GPU, RankSyncBatchNorm on CPU)."""
    if device is not None and device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    for name, child in list(module.named_children()):
        if type(child) is nn.BatchNorm2d:
            new = RankSyncBatchNorm(child.num_features, child.eps, child.momentum, child.affine, child.track_running_stats)
            new.weight, new.bias = child.weight, child.bias
            new.running_mean, new.running_var, new.num_batches_tracked = child.running_mean, child.running_var, child.num_batches_tracked
            new.train(child.training)
            setattr(module, name, new)
        else:
            convert_sync_bn(child)
    return module

