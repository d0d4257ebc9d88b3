"""Accuracy of many paths of one supernet on fixed images, computing what paths share only once.

A path's score is what ``recalibrate_bn`` followed by ``evaluate_path`` gives (the same
training images for the BN statistics, in the same batches, then top-1 on the same held-out
images), but a search asks for hundreds of paths and most of that work does not depend on the
path:

- the images are prepared (decoded, normalized) once, not once per path;
- a path is a chain of modules: stem, one choice per layer, head. What the first ``k``
  modules output depends only on the path's first ``k - 1`` choices -- during re-estimation
  (BN in train mode normalizes with the batch's own statistics) and during evaluation (with
  the statistics re-estimated on that same prefix). So paths are taken in sorted order and
  each reuses the activations of the prefix it shares with the one before (a stack of levels,
  bounded by ``cache_bytes``); the fixed stem's output is computed once for all paths;
- each module's re-estimated statistics are kept per prefix, so scoring the same paths on
  more images later (successive halving) re-estimates nothing;
- for scoring, each BN that follows a conv is folded into the conv (``folded_copy``), and
  activations are kept channels-last (faster depthwise and 1x1 convolutions on CPUs).

The re-estimation runs the operations and batches of the one-path-at-a-time loop, so the
statistics are the same; the folded convs agree with conv + BN up to float rounding.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import nn

from .evaluate import recalibrating

BN = nn.modules.batchnorm._BatchNorm


@dataclass
class _Level:
    """Activations after the first modules of a path: for the BN batches (train-mode BN) and the scored rows."""

    key: tuple[int, ...]
    calib: list[torch.Tensor] | None
    evals: list[torch.Tensor]
    nbytes: int


class PathScorer:
    """Correct counts of paths on rows of a fixed held-out set, with BN re-estimated per path.

    ``bn_images`` (normalized, in re-estimation order) are cut into batches of
    ``bn_batch_size`` exactly as ``recalibrate_bn`` cuts them; ``eval_images`` are scored in
    batches of ``batch_size``. After a call the supernet's BN statistics are those of the last
    path asked for (as after ``recalibrate_bn`` on it).
    """

    def __init__(self, supernet: nn.Module, bn_images: torch.Tensor, eval_images: torch.Tensor, labels: torch.Tensor,
                 bn_batch_size: int, batch_size: int, cache_bytes: int = 1 << 30, fuse: bool = True,
                 channels_last: bool = True) -> None:
        self.supernet = supernet
        self.fuse = fuse
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        bn_images = bn_images.contiguous(memory_format=self.memory_format)
        eval_images = eval_images.contiguous(memory_format=self.memory_format)
        self.bn_batches = list(bn_images.split(bn_batch_size))
        self.n_bn = len(bn_images)
        self.eval_images, self.labels = eval_images, labels
        self.batch_size = batch_size
        self.cache_bytes = cache_bytes
        self.n_layers = len(supernet.layers)
        self.states: dict[tuple[int, tuple[int, ...]], list[tuple[torch.Tensor, ...]]] = {}
        self._stacks: dict[tuple[int, int], list[_Level | None]] = {}
        self._per_image: list[int] | None = None
        self.modules_run = 0  # module forward passes over all images (the work prefix sharing saves)

    # ---- the chain of modules of a path -----------------------------------------------------
    def modules(self, path: Sequence[int]) -> list[nn.Module]:
        net = self.supernet
        return [net.stem, *(layer.choices[int(i)] for layer, i in zip(net.layers, path)), net.head]

    def _level_key(self, k: int, path: tuple[int, ...]) -> tuple[int, ...]:
        """Level k is the output of module k - 1: it depends on the first k - 1 choices."""
        return path[:max(0, k - 1)]

    def _state_key(self, j: int, path: tuple[int, ...]) -> tuple[int, tuple[int, ...]]:
        """Module j's statistics depend on the choices up to and including its own."""
        return j, path[:min(j, self.n_layers)]

    def _bytes_per_image(self) -> list[int]:
        """Bytes of one image's activation at each level (the same for every path)."""
        if self._per_image is None:
            was = self.supernet.training
            self.supernet.eval()
            x = self.eval_images[:1]
            sizes = [x.nbytes]
            with torch.no_grad():
                for m in self.modules([0] * self.n_layers)[:-1]:
                    x = m(x)
                    sizes.append(x.nbytes)
            self.supernet.train(was)
            self._per_image = sizes
        return self._per_image

    def _stack(self, rows: tuple[int, int]) -> list[_Level | None]:
        if rows not in self._stacks:
            ev = list(self.eval_images[rows[0]:rows[1]].split(self.batch_size))
            level0 = _Level((), self.bn_batches, ev, 0)
            self._stacks[rows] = [level0] + [None] * (self.n_layers + 1)
        return self._stacks[rows]

    def _used(self) -> int:
        return sum(lv.nbytes for st in self._stacks.values() for lv in st if lv is not None)

    def forget(self) -> None:
        """Drop the kept statistics and activations (the supernet's weights changed, or to free memory)."""
        self.states.clear()
        self._stacks.clear()

    # ---- scoring ------------------------------------------------------------------------------
    @torch.no_grad()
    def correct(self, paths: Sequence[Sequence[int]], rows: tuple[int, int] | None = None,
                keep_states: bool = False) -> np.ndarray:
        """Images in ``rows`` (default all) that each path classifies correctly.

        A path whose statistics an earlier call kept (``keep_states``) is not re-estimated.
        """
        rows = rows or (0, len(self.labels))
        labels = self.labels[rows[0]:rows[1]]
        stack = self._stack(rows)
        paths = [tuple(int(i) for i in p) for p in paths]
        out = np.zeros(len(paths), dtype=np.int64)
        head = self.n_layers + 1
        for i in sorted(range(len(paths)), key=lambda i: paths[i]):
            calibrate = self._state_key(head, paths[i]) not in self.states
            out[i] = self._correct_one(paths[i], stack, labels, calibrate)
        if paths:
            self._load_states(paths[-1], range(head + 1))
        if not keep_states:
            self._prune_states()
        return out

    def _prune_states(self) -> None:
        """Keep only the statistics of modules whose outputs are cached (the supernet can be restored to any cached prefix)."""
        alive = set()
        for st in self._stacks.values():
            for k, lv in enumerate(st):
                if lv is not None:
                    alive.update(self._state_key(j, lv.key) for j in range(k))
        for key in [k for k in self.states if k not in alive]:
            del self.states[key]

    def _correct_one(self, path: tuple[int, ...], stack: list[_Level | None], labels: torch.Tensor, calibrate: bool) -> int:
        top = self.n_layers + 1  # levels 0..top are cached; the head's output is not
        s = 0
        for k in range(top, 0, -1):
            lv = stack[k]
            if lv is not None and lv.key == self._level_key(k, path) and (lv.calib is not None or not calibrate):
                s = k
                break
        for k in range(s + 1, top + 1):  # levels of another prefix: replaced below or dropped
            stack[k] = None
        mods = self.modules(path)[s:]
        per_image, free = self._bytes_per_image(), self.cache_bytes - self._used()
        store: dict[int, _Level] = {}
        for k in range(s + 1, top + 1):
            need = per_image[k] * ((self.n_bn if calibrate else 0) + len(labels))
            if need <= free:
                free -= need
                store[k] = _Level(self._level_key(k, path), [] if calibrate else None, [], need)
        if calibrate:
            bns = [b for m in mods for b in m.modules() if isinstance(b, BN)]
            with recalibrating(self.supernet, bns):
                for x in stack[s].calib:  # type: ignore[union-attr]
                    self._run(mods, s, x, store, "calib")
            for j in range(s, top + 1):
                self.states[self._state_key(j, path)] = [(b.running_mean.clone(), b.running_var.clone(),
                                                          b.num_batches_tracked.clone()) for b in _bns(mods[j - s])]
        else:
            self._load_states(path, range(s, top + 1))
        was = self.supernet.training
        self.supernet.eval()
        if self.fuse:
            mods = [folded_copy(m, self.memory_format) for m in mods]
        correct = 0
        start = 0
        for x in stack[s].evals:  # type: ignore[union-attr]
            logits = self._run(mods, s, x, store, "evals")
            correct += int((logits.argmax(1) == labels[start:start + len(x)]).sum())
            start += len(x)
        self.supernet.train(was)
        for k, lv in store.items():
            stack[k] = lv
        return correct

    def _run(self, mods: list[nn.Module], s: int, x: torch.Tensor, store: dict[int, _Level], part: str) -> torch.Tensor:
        for j, m in enumerate(mods, start=s):
            x = m(x)
            if j + 1 in store:
                getattr(store[j + 1], part).append(x)
        self.modules_run += len(mods)
        return x

    def _load_states(self, path: tuple[int, ...], modules: range) -> None:
        mods = self.modules(path)
        for j in modules:
            saved = self.states.get(self._state_key(j, path))
            if saved is None:
                raise KeyError(f"no re-estimated statistics for module {j} of path {path}: score it before with keep_states=True")
            for b, (mean, var, n) in zip(_bns(mods[j]), saved):
                b.running_mean.copy_(mean)
                b.running_var.copy_(var)
                b.num_batches_tracked.copy_(n)


def folded_copy(module: nn.Module, memory_format: torch.memory_format = torch.contiguous_format) -> nn.Module:
    """An eval-mode copy of ``module`` with every BN that follows a conv folded into the conv's
    weights (one pass over the activations instead of two; equal up to float rounding)."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    out = copy.deepcopy(module).eval()
    for seq in out.modules():
        if isinstance(seq, nn.Sequential):
            items = list(seq._modules.items())
            for (name_a, a), (name_b, b) in zip(items, items[1:]):
                if type(a) is nn.Conv2d and isinstance(b, nn.BatchNorm2d):
                    seq._modules[name_a] = fuse_conv_bn_eval(a, b)
                    seq._modules[name_b] = nn.Identity()
    return out.to(memory_format=memory_format)


def _bns(module: nn.Module) -> list[BN]:
    return [b for b in module.modules() if isinstance(b, BN)]
