"""The expanded supernet of SE-NAS (Sec. 3.4): merged layer groups keep a weight copy per combination.

A group of adjacent layers (``space.shrunk.merge_groups``) becomes one unit holding a separate
chain of blocks for every combination of its layers' choices: a path through the unit shares
no weight with any other path through it, which lowers the weight coupling that makes a
supernet misrank archs. The other layers stay shared as in ``SuperNet``. Only one path runs per
step, so the extra copies cost memory for weights, not for activations.
"""

from __future__ import annotations

import itertools
from typing import Iterator, Sequence

import torch
from torch import nn

from ..space.arch import Arch
from ..space.shrunk import merge_groups
from ..space.space import SearchSpace
from .modules import build_block
from .supernet import ChoiceLayer, SuperNet


class MergedUnit(nn.Module):
    """Layers ``start..stop-1`` with one chain of blocks per combination of their choices."""

    def __init__(self, space: SearchSpace, start: int, stop: int) -> None:
        super().__init__()
        self.start, self.stop = start, stop
        self.counts = [len(space.layers[j].choices) for j in range(start, stop)]
        self.combos = nn.ModuleList(
            nn.Sequential(*(build_block(space.layers[start + k].slot(space.layers[start + k].choices[i])) for k, i in enumerate(combo)))
            for combo in itertools.product(*(range(n) for n in self.counts)))

    def combo_index(self, idx: Sequence[int]) -> int:
        """Row-major index of the choices ``idx[start:stop]`` (the order of ``itertools.product``)."""
        c = 0
        for n, i in zip(self.counts, idx[self.start:self.stop]):
            c = c * n + int(i)
        return c

    def combo_choices(self, c: int) -> tuple[int, ...]:
        out = []
        for n in reversed(self.counts):
            c, i = divmod(c, n)
            out.append(i)
        return tuple(reversed(out))


class ExpandedSuperNet(SuperNet):
    """A ``SuperNet`` whose merged layer groups (product of choices <= ``threshold``, or the whole
    space when it holds <= ``max_archs`` archs) have independent weights per combination."""

    def __init__(self, space: SearchSpace, threshold: int, max_archs: int = 50, dropout: float = 0.0) -> None:
        nn.Module.__init__(self)
        self.space = space
        self.threshold, self.max_archs = threshold, max_archs
        self.groups = merge_groups([len(layer.choices) for layer in space.layers], threshold, max_archs)
        merged = {j for a, b in self.groups for j in range(a, b)}
        self.stem = nn.Sequential(*(build_block(s) for s in space.stem))
        self.layers = nn.ModuleList(
            ChoiceLayer([] if j in merged else [build_block(layer.slot(op)) for op in layer.choices])
            for j, layer in enumerate(space.layers))
        self.units = nn.ModuleList(MergedUnit(space, a, b) for a, b in self.groups)
        self.head = nn.Sequential(*(build_block(s, dropout) for s in space.head))
        self._unit_at = {u.start: u for u in self.units}

    def _indices(self, path: Arch | Sequence[int]) -> list[int]:
        return self.space.choice_indices(path) if isinstance(path, Arch) else [int(i) for i in path]

    def path_blocks(self, path: Arch | Sequence[int]) -> Iterator[nn.Module]:
        """The modules one path runs, in order, after the stem."""
        idx = self._indices(path)
        j = 0
        while j < len(idx):
            unit = self._unit_at.get(j)
            if unit is not None:
                yield unit.combos[unit.combo_index(idx)]
                j = unit.stop
            else:
                yield self.layers[j].choices[idx[j]]
                j += 1

    def forward(self, x: torch.Tensor, path: Arch | Sequence[int]) -> torch.Tensor:
        x = self.stem(x)
        for block in self.path_blocks(path):
            x = block(x)
        return self.head(x)

    def path_modules(self, path: Arch | Sequence[int]) -> list[nn.Module]:
        return [self.stem, self.head, *self.path_blocks(path)]

    def path_parameters(self, arch: Arch | Sequence[int]) -> list[nn.Parameter]:
        return [p for m in self.path_modules(arch) for p in m.parameters()]

    def path_state_dict(self, arch: Arch) -> dict[str, torch.Tensor]:
        idx = self.space.choice_indices(arch)
        chosen = {u_i: u.combo_index(idx) for u_i, u in enumerate(self.units)}
        out: dict[str, torch.Tensor] = {}
        for name, t in self.state_dict().items():
            if name.startswith("layers."):
                _, li, _, ci, rest = name.split(".", 4)
                if int(ci) == idx[int(li)]:
                    out[f"layers.{li}.{rest}"] = t
            elif name.startswith("units."):
                _, ui, _, ci, k, rest = name.split(".", 5)
                if int(ci) == chosen[int(ui)]:
                    out[f"layers.{self.units[int(ui)].start + int(k)}.{rest}"] = t
            else:
                out[name] = t
        return out


def build_supernet(space: SearchSpace, expand: int | None = None, max_archs: int = 50) -> SuperNet:
    """The supernet a run trains: shared weights, or with ``expand`` the SE-NAS expanded one."""
    return SuperNet(space) if expand is None else ExpandedSuperNet(space, expand, max_archs)


def inherit_weights(dst: SuperNet, src: SuperNet) -> int:
    """Copy a previous stage's weights into ``dst`` by (layer, op id); returns the tensors copied.

    Stem and head copy by name. A block of ``dst`` (shared or a combination copy) takes the
    weights ``src`` held for the same op in the same layer: the same combination if ``src`` had
    it, else its shared block, else the first ``src`` combination containing that op. So the
    first stage after a merge starts every copy from the shared weights it expands.
    """
    by_block: dict[tuple[int, str], dict[str, torch.Tensor]] = {}
    by_combo: dict[tuple[int, str, tuple[str, ...]], dict[str, torch.Tensor]] = {}
    fixed: dict[str, torch.Tensor] = {}
    for name, t in src.state_dict().items():
        key = _block_key(src, name)
        if key is None:
            fixed[name] = t
            continue
        j, op, ops, rest = key
        if ops is not None:
            by_combo.setdefault((j, op, ops), {})[rest] = t
            by_block.setdefault((j, op), {}).setdefault(rest, t)  # the first combination, if no shared block
        else:
            by_block.setdefault((j, op), {})[rest] = t
    new: dict[str, torch.Tensor] = {}
    for name, t in dst.state_dict().items():
        key = _block_key(dst, name)
        if key is None:
            got = fixed.get(name)
        else:
            j, op, ops, rest = key
            got = by_combo.get((j, op, ops), {}).get(rest) if ops is not None else None
            if got is None:
                got = by_block.get((j, op), {}).get(rest)
        if got is not None and got.shape == t.shape:
            new[name] = got.clone()
    dst.load_state_dict(new, strict=False)
    return len(new)


def _block_key(net: SuperNet, name: str) -> tuple[int, str, tuple[str, ...] | None, str] | None:
    """(layer, op id, op ids of its combination or None, tensor name within the block) of a tensor."""
    space = net.space
    if name.startswith("layers."):
        _, li, _, ci, rest = name.split(".", 4)
        j = int(li)
        return j, space.layers[j].choices[int(ci)].id, None, rest
    if name.startswith("units."):
        _, ui, _, ci, k, rest = name.split(".", 5)
        unit = net.units[int(ui)]  # type: ignore[attr-defined]
        ops = tuple(space.layers[unit.start + q].choices[i].id for q, i in enumerate(unit.combo_choices(int(ci))))
        return unit.start + int(k), ops[int(k)], ops, rest
    return None
