"""Tabular accuracy benchmarks: the ground truth that lets a searcher be checked in minutes."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ..errors import HwnasError
from .arch import Arch
from .registry import create_space

BUILTIN_MACRO = Path(__file__).resolve().parent.parent / "data" / "nas_bench_macro" / "nas-bench-macro_cifar10.json"


@dataclass(frozen=True)
class TabularEntry:
    mean_acc: float
    std: float
    test_acc: tuple[float, ...]
    params: int
    flops: int


class TabularBenchmark:
    """Accuracy (and the benchmark's own FLOPs/params) of every arch of a small space."""

    def __init__(self, space_name: str, entries: dict[str, TabularEntry], source: str) -> None:
        self.space = create_space(space_name)
        self.entries = entries
        self.source = source

    def __len__(self) -> int:
        return len(self.entries)

    def lookup(self, arch: Arch) -> TabularEntry:
        key = self.space.to_compact(arch)
        try:
            return self.entries[key]
        except KeyError:
            raise HwnasError(f"arch {key} is not in the tabular benchmark {self.source}") from None

    def accuracy(self, arch: Arch) -> float:
        return self.lookup(arch).mean_acc


@lru_cache(maxsize=4)
def load_nas_bench_macro(path: str | None = None) -> TabularBenchmark:
    """Load NAS-Bench-Macro from ``path``, ``$HWNAS_NAS_BENCH_MACRO`` or the copy shipped with hwnas."""
    p = Path(path or os.environ.get("HWNAS_NAS_BENCH_MACRO") or BUILTIN_MACRO)
    if p.is_dir():
        p = p / "nas-bench-macro_cifar10.json"
    try:
        raw = json.loads(p.read_text())
    except FileNotFoundError:
        raise HwnasError(f"NAS-Bench-Macro file {str(p)!r} not found; pass the folder holding nas-bench-macro_cifar10.json") from None
    except json.JSONDecodeError as e:
        raise HwnasError(f"NAS-Bench-Macro file {str(p)!r} is not valid JSON ({e.msg}); download it again") from None
    entries = {
        k: TabularEntry(float(v["mean_acc"]), float(v["std"]), tuple(v["test_acc"]), int(v["params"]), int(v["flops"]))
        for k, v in raw.items()
    }
    return TabularBenchmark("nas-bench-macro", entries, str(p))
