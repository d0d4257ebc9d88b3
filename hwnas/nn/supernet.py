"""The single-path supernet: every op of every layer, one path per forward call (SPOS/GreedyNAS).

Each choice keeps its own BN, so a path's statistics belong to it alone; the standalone net
of a path is built by copying that path's weights by name (``path_state_dict``).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..space.arch import Arch
from ..space.space import SearchSpace
from .modules import build_block
from .network import Network


class ChoiceLayer(nn.Module):
    def __init__(self, modules: Sequence[nn.Module]) -> None:
        super().__init__()
        self.choices = nn.ModuleList(modules)

    def forward(self, x: torch.Tensor, choice: int) -> torch.Tensor:
        return self.choices[choice](x)


class SuperNet(nn.Module):
    def __init__(self, space: SearchSpace, dropout: float = 0.0) -> None:
        super().__init__()
        self.space = space
        self.stem = nn.Sequential(*(build_block(s) for s in space.stem))
        self.layers = nn.ModuleList(ChoiceLayer([build_block(layer.slot(op)) for op in layer.choices]) for layer in space.layers)
        self.head = nn.Sequential(*(build_block(s, dropout) for s in space.head))

    def forward(self, x: torch.Tensor, path: Arch | Sequence[int]) -> torch.Tensor:
        idx = self.space.choice_indices(path) if isinstance(path, Arch) else path
        x = self.stem(x)
        for layer, i in zip(self.layers, idx):
            x = layer(x, int(i))
        return self.head(x)

    def path_state_dict(self, arch: Arch) -> dict[str, torch.Tensor]:
        """The weights of one path, named as in the standalone ``Network`` of that arch."""
        idx = self.space.choice_indices(arch)
        out: dict[str, torch.Tensor] = {}
        for name, t in self.state_dict().items():
            if name.startswith("layers."):
                _, li, _, ci, rest = name.split(".", 4)
                if int(ci) != idx[int(li)]:
                    continue
                out[f"layers.{li}.{rest}"] = t
            else:
                out[name] = t
        return out

    def extract(self, arch: Arch) -> Network:
        """The standalone net of a path with inherited weights (a copy)."""
        net = Network(self.space, arch)
        net.load_state_dict({k: v.clone() for k, v in self.path_state_dict(arch).items()})
        return net

    def path_modules(self, path: Arch | Sequence[int]) -> list[nn.Module]:
        """The modules one path runs (stem, head, its block in each layer): e.g. whose BN to recalibrate."""
        idx = self.space.choice_indices(path) if isinstance(path, Arch) else list(path)
        return [self.stem, self.head, *(layer.choices[int(i)] for layer, i in zip(self.layers, idx))]

    def path_parameters(self, arch: Arch | Sequence[int]) -> list[nn.Parameter]:
        idx = self.space.choice_indices(arch) if isinstance(arch, Arch) else list(arch)
        params = list(self.stem.parameters()) + list(self.head.parameters())
        for layer, i in zip(self.layers, idx):
            params += list(layer.choices[int(i)].parameters())
        return params
