"""Architecture Knowledge Pool (FNAS Sec. 4.3): trained block weights reused to warm-start new archs.

Every block of a trained candidate (stem, each searchable layer, head) is stored under an
embedding of what the block is: its position, its op (kind, kernel, expansion, SE) and its shapes.
A new candidate's block is initialised from the stored block with the highest cosine similarity
among the structurally compatible ones (same parameter names); tensors whose sizes differ (a k3
kernel into a k5 slot, or e3 into e6) copy their overlapping centre/leading slice, so a near match
still transfers most of its knowledge. Fairness (FairNAS [4]): only checkpoints trained for the
pool's fixed number of iterations are accepted, so every stored block had the same training.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ...space.arch import Arch
from ...space.ops import ConvBNAct, Identity, MBConv, PoolLinear
from ...space.space import SearchSpace, Slot


def block_embedding(slot: Slot, position: int, n_positions: int) -> np.ndarray:
    """The expanded embedding of one block: position one-hot, op descriptors, log-shapes."""
    pos = np.zeros(n_positions, dtype=np.float32)
    pos[position] = 1.0
    op = slot.op
    kind = np.zeros(4, dtype=np.float32)
    kind[[Identity, MBConv, ConvBNAct, PoolLinear].index(type(op))] = 1.0
    kernel = float(getattr(op, "kernel", 1))
    expand = float(getattr(op, "expand", 1))
    se = float(getattr(op, "se", False))
    desc = np.array([kernel / 7.0, expand / 6.0, se], dtype=np.float32)
    shape = np.array([math.log2(slot.c_in) / 10, math.log2(slot.c_out) / 10, slot.stride / 2, math.log2(slot.size) / 10],
                     dtype=np.float32)
    return np.concatenate([pos, kind, desc, shape])


def network_blocks(net: nn.Module) -> list[nn.Module]:
    """The blocks of an ``hwnas.nn.Network`` in ``space.slots`` order: stem, layers, head."""
    return [*net.stem, *net.layers, *net.head]


def copy_overlap(dst: torch.Tensor, src: torch.Tensor) -> None:
    """Copy the overlapping part of ``src`` into ``dst``: leading slice on channel dims, centre on kernel dims."""
    if dst.dim() != src.dim():
        return
    dst_idx, src_idx = [], []
    for d, (nd, ns) in enumerate(zip(dst.shape, src.shape)):
        n = min(nd, ns)
        if d >= 2:  # spatial kernel dims: align centres
            od, os_ = (nd - n) // 2, (ns - n) // 2
        else:
            od = os_ = 0
        dst_idx.append(slice(od, od + n))
        src_idx.append(slice(os_, os_ + n))
    dst[tuple(dst_idx)] = src[tuple(src_idx)].to(dst.dtype)


@dataclass
class PoolEntry:
    embedding: np.ndarray
    state: dict[str, torch.Tensor]
    names: frozenset[str]
    iterations: int


class KnowledgePool:
    """Block-level weight store keyed by block embedding; ``initialize`` warm-starts, ``store`` adds."""

    def __init__(self, iterations: int, min_similarity: float = 0.8) -> None:
        self.iterations = int(iterations)
        self.min_similarity = float(min_similarity)
        self.entries: dict[str, PoolEntry] = {}
        self.queries = 0
        self.hits = 0
        self.exact_hits = 0

    @property
    def hit_rate(self) -> float:
        """Matched blocks / queried blocks (FNAS's hit ratio)."""
        return self.hits / self.queries if self.queries else 0.0

    def __len__(self) -> int:
        return len(self.entries)

    @staticmethod
    def _keys(space: SearchSpace, arch: Arch) -> list[tuple[str, Slot, int]]:
        slots = space.slots(arch)
        return [(f"{p}:{s.op!r}:{s.c_in}:{s.c_out}:{s.stride}:{s.size}", s, p) for p, s in enumerate(slots)]

    def store(self, net: nn.Module, space: SearchSpace, arch: Arch, iterations: int) -> int:
        """Add every block of a trained net; refuses checkpoints of another length (fairness). Returns blocks stored."""
        if int(iterations) != self.iterations:
            raise ValueError(f"the knowledge pool holds {self.iterations}-iteration checkpoints, not {iterations}")
        keys = self._keys(space, arch)
        blocks = network_blocks(net)
        n_pos = len(keys)
        for (key, slot, pos), block in zip(keys, blocks):
            state = {k: v.detach().clone() for k, v in block.state_dict().items()}
            self.entries[key] = PoolEntry(block_embedding(slot, pos, n_pos), state, frozenset(state), int(iterations))
        return len(keys)

    def _match(self, emb: np.ndarray, names: frozenset[str]) -> tuple[PoolEntry | None, float]:
        best, best_sim = None, -1.0
        for e in self.entries.values():
            if e.names != names or len(e.embedding) != len(emb):
                continue
            sim = float(emb @ e.embedding / (np.linalg.norm(emb) * np.linalg.norm(e.embedding) + 1e-12))
            if sim > best_sim:
                best, best_sim = e, sim
        return best, best_sim

    @torch.no_grad()
    def initialize(self, net: nn.Module, space: SearchSpace, arch: Arch) -> dict[str, Any]:
        """Warm-start every block of ``net`` from its most similar stored block; returns per-call hit counts."""
        keys = self._keys(space, arch)
        blocks = network_blocks(net)
        hits = exact = 0
        sims = []
        queried = 0
        for (key, slot, pos), block in zip(keys, blocks):
            state = block.state_dict()
            if not state:  # parameter-free block (a true identity): nothing to initialise, not a query
                continue
            queried += 1
            entry, sim = self._match(block_embedding(slot, pos, len(keys)), frozenset(state))
            if entry is None or sim < self.min_similarity:
                continue
            for name, tensor in state.items():
                copy_overlap(tensor, entry.state[name])
            block.load_state_dict(state)
            hits += 1
            exact += int(sim > 1 - 1e-6)
            sims.append(sim)
        self.queries += queried
        self.hits += hits
        self.exact_hits += exact
        return {"blocks": queried, "hits": hits, "exact": exact, "mean_similarity": float(np.mean(sims)) if sims else None}
