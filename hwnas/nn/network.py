"""The standalone child network of one arch: what is trained from scratch and exported."""

from __future__ import annotations

import torch
from torch import nn

from ..space.arch import Arch
from ..space.space import SearchSpace
from .modules import build_block


class Network(nn.Module):
    def __init__(self, space: SearchSpace, arch: Arch, dropout: float = 0.0) -> None:
        super().__init__()
        idx = space.choice_indices(arch)
        self.space_name = space.name
        self.arch = arch
        self.stem = nn.Sequential(*(build_block(s) for s in space.stem))
        self.layers = nn.ModuleList(build_block(layer.slot(layer.choices[i])) for layer, i in zip(space.layers, idx))
        self.head = nn.Sequential(*(build_block(s, dropout) for s in space.head))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for layer in self.layers:
            x = layer(x)
        return self.head(x)


def build_network(arch: Arch, dropout: float = 0.0) -> Network:
    return Network(arch.get_space(), arch, dropout)
