"""Architecture Knowledge Pool (FNAS Sec. 4.3): trained block weights reused to warm-start new archs.

Every block of a trained candidate (stem, each searchable layer, head) is stored under an
embedding of what the block is: its position, its op (kind, kernel, expansion, SE) and its shapes.
Tensors whose sizes differ (a k3 kernel into a k5 slot, or e3 into e6) copy their overlapping
centre/leading slice, so a near match still transfers most of its knowledge. Fairness (FairNAS
[4]): only checkpoints trained for the pool's fixed number of iterations are accepted, so every
stored block had the same training.

Matching. The paper uses "the proposed uncertainty function ... to ensure that the match ratio
reaches more than 99%" and retrieves by the cosine similarity of the expanded embedding, without
defining that function further. Here (``matching="uncertainty"``, the default) the uncertainty
of initialising a query block from a stored one is the share of the query's weights that the
stored block leaves at their random init (``match_uncertainty``): 0 for an exact match, and for
a smaller kernel or expansion the uncovered ring or channels. Among the structurally compatible
stored blocks of the same position (other positions only when it has none) the least uncertain
is retrieved (the most similar by cosine among equals) and
accepted while its uncertainty is at most ``max_uncertainty``, so nearly every block is
initialised from trained weights. ``matching="cosine"`` is the earlier rule: the most similar
by cosine, accepted at ``min_similarity`` or above.
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
    position: int = -1


def match_uncertainty(query: dict[str, torch.Tensor], stored: dict[str, torch.Tensor]) -> float:
    """Share of the query block's tensor elements that ``copy_overlap`` from ``stored`` leaves untouched.

    0 when every query weight receives a trained value (an exact match, or a stored block at least as
    wide/large in every dimension); 1 when nothing overlaps. Integer buffers (BN's step counter) are
    not weights and are ignored.
    """
    total = covered = 0
    for name, q in query.items():
        if not q.is_floating_point():
            continue
        total += q.numel()
        s = stored.get(name)
        if s is None or s.dim() != q.dim():
            continue
        covered += math.prod(min(a, b) for a, b in zip(q.shape, s.shape))
    return 1.0 - covered / total if total else 0.0


MATCHING = ("uncertainty", "cosine")


class KnowledgePool:
    """Block-level weight store keyed by block embedding; ``initialize`` warm-starts, ``store`` adds."""

    def __init__(self, iterations: int, matching: str = "uncertainty", max_uncertainty: float = 0.5,
                 min_similarity: float = 0.8) -> None:
        if matching not in MATCHING:
            raise ValueError(f"unknown knowledge-pool matching {matching!r}; use one of {', '.join(MATCHING)}")
        self.iterations = int(iterations)
        self.matching = matching
        self.max_uncertainty = float(max_uncertainty)
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
            self.entries[key] = PoolEntry(block_embedding(slot, pos, n_pos), state, frozenset(state), int(iterations), pos)
        return len(keys)

    def _match(self, emb: np.ndarray, query: dict[str, torch.Tensor], position: int) -> tuple[PoolEntry | None, float, float]:
        """(retrieved entry or None, its cosine similarity, its uncertainty) under the pool's matching rule.

        Uncertainty matching looks at the query's own position first (b_i from the b_i of earlier archs,
        as the paper's example has it): a block of another layer that merely has larger tensors would
        cover every weight, yet holds another layer's features.
        """
        names = frozenset(query)
        best, best_key, best_sim, best_u = None, None, -1.0, 1.0
        for e in self.entries.values():
            if e.names != names or len(e.embedding) != len(emb):
                continue
            sim = float(emb @ e.embedding / (np.linalg.norm(emb) * np.linalg.norm(e.embedding) + 1e-12))
            u = match_uncertainty(query, e.state) if self.matching == "uncertainty" else 0.0
            key = (e.position == position, -u, sim) if self.matching == "uncertainty" else (True, 0.0, sim)
            if best_key is None or key > best_key:
                best, best_key, best_sim, best_u = e, key, sim, u
        if best is None:
            return None, -1.0, 1.0
        if self.matching == "uncertainty":
            accepted = best_u <= self.max_uncertainty
        else:
            best_u = match_uncertainty(query, best.state)
            accepted = best_sim >= self.min_similarity
        return (best if accepted else None), best_sim, best_u

    @torch.no_grad()
    def initialize(self, net: nn.Module, space: SearchSpace, arch: Arch) -> dict[str, Any]:
        """Warm-start every block of ``net`` from its matched stored block; returns per-call hit counts.

        ``uncovered_share``: of the matched blocks' weights, the share left at random init (0 = every
        matched weight came from a trained block).
        """
        keys = self._keys(space, arch)
        blocks = network_blocks(net)
        hits = exact = 0
        sims, uncs = [], []
        queried = 0
        for (key, slot, pos), block in zip(keys, blocks):
            state = block.state_dict()
            if not state:  # parameter-free block (a true identity): nothing to initialise, not a query
                continue
            queried += 1
            entry, sim, unc = self._match(block_embedding(slot, pos, len(keys)), state, pos)
            if entry is None:
                continue
            for name, tensor in state.items():
                copy_overlap(tensor, entry.state[name])
            block.load_state_dict(state)
            hits += 1
            exact += int(sim > 1 - 1e-6)
            sims.append(sim)
            uncs.append(unc)
        self.queries += queried
        self.hits += hits
        self.exact_hits += exact
        return {"blocks": queried, "hits": hits, "exact": exact, "mean_similarity": float(np.mean(sims)) if sims else None,
                "uncovered_share": float(np.mean(uncs)) if uncs else None}
