"""Shrunk spaces (SE-NAS): a base space with fewer op choices per layer, and the file that names one.

A shrunk space keeps its base space's name, arguments, stem, head and op list and only narrows
each layer's choices, passed as the space argument ``choices``. So everything keyed by the space
name (latency tables, named block keys, compact arch text) serves base and shrunk space alike,
while checkpoints, archs and search results carry ``choices`` in their ``space_args`` and rebuild
the same shrunk space. A shrunk space file (written by ``hwnas shrink``) holds the base space,
its arguments and the remaining choices; ``create_space("shrunk.json")`` reads it, so every
option that takes a space name takes the file.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

from ..errors import HwnasError
from .space import SearchSpace

CHOICES_ARG = "choices"
FORMAT = "hwnas-shrunk-space/1"


def is_space_file(name: str) -> bool:
    """A space name that is a file: it ends in ``.json`` (space names never do)."""
    return str(name).endswith(".json")


def canonical_choices(base: SearchSpace, choices: Any) -> tuple[tuple[str, ...], ...] | None:
    """``choices`` checked against ``base`` and put in the base's order; None when nothing is removed.

    Each layer must keep at least one of its own ops, so a shrunk space never changes the
    network's depth or topology (SE-NAS keeps one op per layer at least).
    """
    if not isinstance(choices, (list, tuple)) or len(choices) != base.num_layers:
        raise HwnasError(f"space {base.name!r}: '{CHOICES_ARG}' must list the kept op ids of each of its "
                         f"{base.num_layers} layers")
    out = []
    for layer, kept in zip(base.layers, choices):
        if not isinstance(kept, (list, tuple)) or not all(isinstance(o, str) for o in kept):
            raise HwnasError(f"space {base.name!r} layer {layer.index}: kept choices must be a list of op ids")
        unknown = [o for o in kept if o not in layer.choice_ids]
        if unknown:
            raise HwnasError(f"space {base.name!r} layer {layer.index}: op {unknown[0]!r} is not one of its choices "
                             f"({', '.join(layer.choice_ids)}); fix the shrunk space file")
        if not kept:
            raise HwnasError(f"space {base.name!r} layer {layer.index}: keeps no op; every layer keeps at least one")
        out.append(tuple(o for o in layer.choice_ids if o in kept))
    if all(len(k) == len(layer.choices) for k, layer in zip(out, base.layers)):
        return None
    return tuple(out)


def restrict(base: SearchSpace, choices: Sequence[Sequence[str]]) -> SearchSpace:
    """The space of ``base``'s archs whose every layer takes one of ``choices[layer]``."""
    kept = canonical_choices(base, choices) or tuple(layer.choice_ids for layer in base.layers)
    layers = tuple(replace(layer, choices=tuple(op for op in layer.choices if op.id in ids))
                   for layer, ids in zip(base.layers, kept))
    size = math.prod(len(layer.choices) for layer in layers)
    return SearchSpace(base.name, base.resolution, base.num_classes, base.stem, layers, base.head, base.ops,
                       description=f"{base.description} (shrunk to {size:,} archs)".strip(),
                       encoding=base._encoding())


def read_space_file(path: str | Path) -> tuple[str, dict[str, Any], list[list[str]]]:
    """(base space name, its arguments, kept op ids per layer) of a shrunk space file."""
    from ..io import read_json_file

    p = Path(path)
    fix = "give a file written by `hwnas shrink` or a space name (see `hwnas spaces`)"
    if not p.exists():
        raise HwnasError(f"space file {str(p)!r} does not exist; {fix}")
    d = read_json_file(p, "space file", fix)
    if not isinstance(d, dict) or d.get("format") != FORMAT:
        raise HwnasError(f"space file {str(p)!r} is not a shrunk space ({FORMAT}); {fix}")
    base, args, choices = d.get("base"), d.get("args") or {}, d.get(CHOICES_ARG)
    if not isinstance(base, str) or is_space_file(base) or not isinstance(args, dict):
        raise HwnasError(f"space file {str(p)!r}: 'base' must name a space and 'args' be an object; {fix}")
    if not isinstance(choices, list):
        raise HwnasError(f"space file {str(p)!r}: '{CHOICES_ARG}' must list the kept op ids per layer; {fix}")
    return base, dict(args), choices


def space_file_dict(space: SearchSpace, **extra: Any) -> dict[str, Any]:
    """The JSON of a shrunk space file for ``space`` (``extra``: e.g. the scores that shrank it)."""
    args = {k: v for k, v in space_args_json(space).items() if k != CHOICES_ARG}
    return {"format": FORMAT, "base": space.name, "args": args,
            CHOICES_ARG: [list(layer.choice_ids) for layer in space.layers], "archs": space.size, **extra}


def write_space_file(path: str | Path, space: SearchSpace, **extra: Any) -> Path:
    """Write ``space`` as a shrunk space file (atomically)."""
    from ..io import atomic_write_json

    return atomic_write_json(path, space_file_dict(space, **extra))


def space_args_json(space: SearchSpace) -> dict[str, Any]:
    """``space.args`` as JSON values (lists, not tuples), e.g. for a checkpoint's config."""
    return {k: _plain(v) for k, v in space.args.items()}


def _plain(v: Any) -> Any:
    return [_plain(x) for x in v] if isinstance(v, (list, tuple)) else v


def merge_groups(counts: Sequence[int], threshold: int, max_archs: int = 50) -> list[tuple[int, int]]:
    """SE-NAS Sec. 3.4: the layer groups ``[start, stop)`` whose combinations get their own weights.

    Adjacent layers are merged from shallow to deep while the product of their choice counts
    stays <= ``threshold``; a group of one layer is no merge and is left out. When the whole
    space holds <= ``max_archs`` archs, all layers form one group: no weight is shared at all.
    """
    if threshold < 1 or max_archs < 1:
        raise HwnasError(f"merge threshold {threshold} and arch limit {max_archs} must be >= 1")
    n = len(counts)
    if n and math.prod(counts) <= max_archs:
        return [(0, n)] if n > 1 else []
    groups, start = [], 0
    while start < n:
        stop, product = start + 1, counts[start]
        while stop < n and product * counts[stop] <= threshold:
            product *= counts[stop]
            stop += 1
        if stop - start > 1 and product > 1:
            groups.append((start, stop))
        start = stop
    return groups
