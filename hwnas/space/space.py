"""SearchSpace: the skeleton of a network family as data.

A space is a fixed stem, a list of searchable layers (each with its shapes and its tuple of
candidate ops) and a fixed head. Everything shape-dependent is precomputed here once, so
costing or keying an arch is a table lookup.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import numpy as np

from ..errors import HwnasError
from .ops import GlobalPool, Identity, MBConv, Op


@dataclass(frozen=True)
class Slot:
    """One op placed at one position: what a block key and a FLOPs count need."""

    op: Op
    c_in: int
    c_out: int
    stride: int
    size: int  # input feature-map height == width

    @property
    def out_size(self) -> int:
        if isinstance(self.op, GlobalPool):
            return 1
        return (self.size + self.stride - 1) // self.stride


@dataclass(frozen=True)
class Layer:
    """A searchable layer: its position and the ops it may take."""

    index: int
    stage: int
    c_in: int
    c_out: int
    stride: int
    size: int
    choices: tuple[Op, ...]

    def slot(self, op: Op) -> Slot:
        return Slot(op, self.c_in, self.c_out, self.stride, self.size)

    @property
    def choice_ids(self) -> tuple[str, ...]:
        return tuple(op.id for op in self.choices)


@dataclass
class SearchSpace:
    name: str
    resolution: int
    num_classes: int
    stem: tuple[Slot, ...]
    layers: tuple[Layer, ...]
    head: tuple[Slot, ...]
    ops: tuple[Op, ...]  # every op of the space, in the order of the compact encoding
    args: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    # per layer, the op ids a choice-index compact form counts in: a shrunk space keeps its base
    # space's, so an arch's compact text is the same in both (None: the layer's own choices)
    encoding: tuple[tuple[str, ...], ...] | None = None

    def __post_init__(self) -> None:
        self._op_index = {op.id: i for i, op in enumerate(self.ops)}
        self._choice_index = [{op.id: i for i, op in enumerate(layer.choices)} for layer in self.layers]
        for layer in self.layers:
            for op in layer.choices:
                if op.id not in self._op_index:
                    raise ValueError(f"layer {layer.index} op {op.id} missing from the space's op list")
        from .cost import slot_cost

        self._fixed_cost = np.array([0, 0], dtype=np.int64)
        for s in self.fixed_slots():
            self._fixed_cost += np.array(slot_cost(s), dtype=np.int64)
        self._layer_cost = [np.array([slot_cost(layer.slot(op)) for op in layer.choices], dtype=np.int64) for layer in self.layers]

    # ---- structure -------------------------------------------------------------------
    @property
    def num_layers(self) -> int:
        return len(self.layers)

    @property
    def size(self) -> int:
        return int(np.prod([len(layer.choices) for layer in self.layers], dtype=object))

    def fixed_slots(self) -> tuple[Slot, ...]:
        return self.stem + self.head

    def slots(self, arch: "Arch") -> list[Slot]:
        """Every block of the network in order: stem, one per layer, head."""
        idx = self.choice_indices(arch)
        return [*self.stem, *(layer.slot(layer.choices[i]) for layer, i in zip(self.layers, idx)), *self.head]

    # ---- archs ----------------------------------------------------------------------
    def arch(self, ops: Sequence[str | Op]) -> "Arch":
        """Build and validate an arch from op ids (or ops)."""
        from .arch import Arch

        ids = tuple(o if isinstance(o, str) else o.id for o in ops)
        a = Arch(self.name, ids, tuple(sorted(self.args.items())))
        self.validate(a)
        return a

    def validate(self, arch: "Arch") -> None:
        if arch.space != self.name:
            raise HwnasError(f"arch is for space {arch.space!r}, not {self.name!r}; use an arch of this space")
        if len(arch.ops) != self.num_layers:
            raise HwnasError(
                f"arch has {len(arch.ops)} layers but space {self.name!r} has {self.num_layers}; give one op per searchable layer"
            )
        for layer, index, op_id in zip(self.layers, self._choice_index, arch.ops):
            if op_id not in index:
                raise HwnasError(
                    f"layer {layer.index}: op {op_id!r} is not allowed; choose one of {', '.join(layer.choice_ids)}"
                )

    def choice_indices(self, arch: "Arch") -> list[int]:
        """Per-layer index into ``layer.choices`` (the integer encoding searchers use)."""
        self.validate(arch)
        return [index[o] for index, o in zip(self._choice_index, arch.ops)]

    def from_indices(self, indices: Sequence[int]) -> "Arch":
        if len(indices) != self.num_layers:
            raise HwnasError(f"expected {self.num_layers} choice indices, got {len(indices)}")
        ops = []
        for layer, i in zip(self.layers, indices):
            i = int(i)
            if not 0 <= i < len(layer.choices):
                raise HwnasError(f"layer {layer.index}: choice index {i} out of range 0..{len(layer.choices) - 1}")
            ops.append(layer.choices[i].id)
        from .arch import Arch

        return Arch(self.name, tuple(ops), tuple(sorted(self.args.items())))  # valid by construction

    def iter_archs(self) -> Iterator["Arch"]:
        """Every arch of the space (only sensible for small spaces)."""
        import itertools

        for combo in itertools.product(*(range(len(layer.choices)) for layer in self.layers)):
            yield self.from_indices(combo)

    @property
    def compact_by_choice(self) -> bool:
        """A space of more than 36 ops writes each layer's choice index instead (every layer has <= 36)."""
        return len(self.ops) > 36

    def to_compact(self, arch: "Arch") -> str:
        """One base-36 char per layer: the op's index in ``self.ops`` (NAS-Bench-Macro's key format)."""
        if self.compact_by_choice:
            self.validate(arch)
            return "".join(np.base_repr(ids.index(o), 36).lower() for ids, o in zip(self._encoding(), arch.ops))
        self.validate(arch)
        return "".join(np.base_repr(self._op_index[o], 36).lower() for o in arch.ops)

    def _encoding(self) -> tuple[tuple[str, ...], ...]:
        return self.encoding if self.encoding is not None else tuple(layer.choice_ids for layer in self.layers)

    def from_compact(self, text: str) -> "Arch":
        text = text.strip()
        if ":" in text:
            space, text = text.split(":", 1)
            if space != self.name:
                raise HwnasError(f"compact arch is for space {space!r}, not {self.name!r}")
        try:
            if self.compact_by_choice:
                if len(text) != self.num_layers:
                    raise ValueError
                ops = [ids[int(ch, 36)] for ids, ch in zip(self._encoding(), text)]
            else:
                ops = [self.ops[int(ch, 36)].id for ch in text]
        except (ValueError, IndexError):
            what = "a choice index per layer" if self.compact_by_choice else f"0..{len(self.ops) - 1}"
            raise HwnasError(f"malformed compact arch {text!r}: expect one char per layer, {what} in base 36") from None
        return self.arch(ops)

    # ---- cost -----------------------------------------------------------------------
    def flops_params(self, arch: "Arch") -> tuple[int, int]:
        """Analytic multiply-adds and parameter count of the standalone network."""
        idx = self.choice_indices(arch)
        return self._cost_of_indices(idx)

    def flops(self, arch: "Arch") -> int:
        return self.flops_params(arch)[0]

    def params(self, arch: "Arch") -> int:
        return self.flops_params(arch)[1]

    def _cost_of_indices(self, idx: Sequence[int]) -> tuple[int, int]:
        total = self._fixed_cost.copy()
        for costs, i in zip(self._layer_cost, idx):
            total += costs[i]
        return int(total[0]), int(total[1])

    def flops_of_indices(self, idx_matrix: np.ndarray) -> np.ndarray:
        """Vectorized FLOPs for an (n, layers) matrix of choice indices."""
        idx_matrix = np.asarray(idx_matrix)
        out = np.full(idx_matrix.shape[0], self._fixed_cost[0], dtype=np.int64)
        for j, costs in enumerate(self._layer_cost):
            out += costs[idx_matrix[:, j], 0]
        return out

    def flops_range(self) -> tuple[int, int]:
        lo = self._fixed_cost[0] + sum(int(c[:, 0].min()) for c in self._layer_cost)
        hi = self._fixed_cost[0] + sum(int(c[:, 0].max()) for c in self._layer_cost)
        return int(lo), int(hi)

    # ---- sampling -------------------------------------------------------------------
    def sample_indices(self, rng: np.random.Generator, n: int) -> np.ndarray:
        cols = [rng.integers(0, len(layer.choices), size=n) for layer in self.layers]
        return np.stack(cols, axis=1)

    def sample(self, rng: np.random.Generator | int | None = None, max_flops: int | None = None, max_tries: int = 100_000) -> "Arch":
        """A uniformly random arch; with ``max_flops``, uniform over the archs under the bound."""
        rng = np.random.default_rng(rng)
        if max_flops is None:
            return self.from_indices(self.sample_indices(rng, 1)[0])
        lo, _ = self.flops_range()
        if max_flops < lo:
            raise HwnasError(f"FLOPs bound {max_flops:,} is below the smallest arch of {self.name!r} ({lo:,}); raise the bound")
        tried = 0
        while tried < max_tries:
            batch = self.sample_indices(rng, 1024)
            ok = np.nonzero(self.flops_of_indices(batch) <= max_flops)[0]
            if ok.size:
                return self.from_indices(batch[ok[0]])
            tried += 1024
        raise HwnasError(f"no arch under {max_flops:,} FLOPs found in {max_tries} samples; raise the bound")

    def describe_layers(self) -> list[dict[str, Any]]:
        return [
            {
                "index": layer.index,
                "stage": layer.stage,
                "in": f"{layer.size}x{layer.size}x{layer.c_in}",
                "out": f"{(layer.size + layer.stride - 1) // layer.stride}x{(layer.size + layer.stride - 1) // layer.stride}x{layer.c_out}",
                "stride": layer.stride,
                "choices": list(layer.choice_ids),
            }
            for layer in self.layers
        ]


def build_layers(
    c_in: int,
    size: int,
    depths: Sequence[int],
    widths: Sequence[int],
    strides: Sequence[int],
    ops: Sequence[Op],
    identity_in_first: bool,
) -> tuple[Layer, ...]:
    """Lay out stages of layers; the first layer of each stage takes the stride and the width change."""
    layers = []
    for stage, (depth, width, stride) in enumerate(zip(depths, widths, strides)):
        for j in range(depth):
            s = stride if j == 0 else 1
            choices = tuple(ops) if (j > 0 or identity_in_first) else tuple(op for op in ops if not isinstance(op, Identity))
            layers.append(Layer(len(layers), stage, c_in, width, s, size, choices))
            size = (size + s - 1) // s
            c_in = width
    return tuple(layers)


def mbconv_ops(kernels: Sequence[int], expands: Sequence[int], se: Sequence[bool] = (False,), act: str = "relu6") -> list[Op]:
    return [MBConv(k, e, s, act) for s in se for k in kernels for e in expands]
