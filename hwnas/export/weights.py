"""The network to export: an arch's standalone net with its weights.

Weights come from (1) a standalone state dict of the arch's ``Network`` (optionally wrapped as
``{"arch": {...}, "state_dict": {...}}``), (2) a supernet checkpoint written by ``hwnas train``,
from which the arch's path is extracted with its inherited weights, or (3) nowhere: a fresh,
seeded initialization, which runs and times correctly but predicts nothing useful.
"""

from __future__ import annotations

import pickle
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import HwnasError
from ..nn import Network, build_network
from ..space.arch import Arch


@dataclass
class LoadedNet:
    net: Network
    source: str  # "fresh", "state_dict" or "supernet"
    path: str | None = None
    normalization: dict[str, Any] | None = None  # the input statistics the weights were trained with, when recorded


def load_network(arch: Arch, weights: str | Path | None = None, seed: int = 0, bn_images: np.ndarray | None = None) -> LoadedNet:
    """The standalone net of ``arch`` with weights from ``weights`` (see the module docstring).

    A fresh net gets its BN statistics from ``bn_images`` when given: with the default
    statistics (mean 0, var 1) a deep random net's output hardly depends on its input, which
    makes quantized files of it meaningless to check; with real statistics its activations
    have the ranges of a trained net's.
    """
    if weights is None:
        warnings.warn("no --weights given: exporting a freshly initialized network (its outputs are meaningless; "
                      "pass a trained state dict or a supernet checkpoint)", UserWarning, stacklevel=2)
        torch.manual_seed(seed)
        net = build_network(arch)
        if bn_images is not None:
            recalibrate_bn(net, bn_images)
        return LoadedNet(net.eval(), "fresh" if bn_images is None else "fresh+bn-stats")
    p = Path(weights)
    if not p.exists():
        raise HwnasError(f"checkpoint {str(p)!r} not found; give a state dict or a supernet checkpoint from `hwnas train`, or leave out --weights")
    if p.is_dir() or p.suffix == ".json" or _is_supernet_pt(p):
        return LoadedNet(*_from_supernet(arch, p))
    raw = _torch_load(p)
    if _is_state_dict(raw):
        return LoadedNet(_load_state_dict(arch, raw, p), "state_dict", str(p))
    if isinstance(raw, dict) and _is_state_dict(raw.get("state_dict")) and "supernet" not in raw:
        if isinstance(raw.get("arch"), dict):
            saved = Arch.from_dict(raw["arch"], source=str(p))
            if saved != arch:
                raise HwnasError(f"weights {str(p)!r} belong to arch {saved.compact()}, not {arch.compact()}; export that arch or give its weights")
        return LoadedNet(_load_state_dict(arch, raw["state_dict"], p), "state_dict", str(p), _normalization(raw.get("normalization")))
    return LoadedNet(*_from_supernet(arch, p))


def recalibrate_bn(net: nn.Module, images: np.ndarray, batch: int = 32) -> None:
    """Set every BN layer's running statistics to their average over ``images`` (no training)."""
    bns = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    net.train()
    with torch.no_grad():
        for s in range(0, len(images), batch):
            net(torch.from_numpy(np.ascontiguousarray(images[s:s + batch])))
    for m in bns:
        m.momentum = 0.1
    net.eval()


def _torch_load(p: Path) -> Any:
    if not zipfile.is_zipfile(p):  # torch.save has written zip archives since PyTorch 1.6
        raise HwnasError(f"checkpoint {str(p)!r} is corrupt or not a PyTorch file (not a torch.save archive); re-save it or retrain")
    try:
        return torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "weights only" in str(e).lower():
            raise HwnasError(f"checkpoint {str(p)!r} holds Python objects, which hwnas does not unpickle; save net.state_dict() instead") from None
        raise HwnasError(f"checkpoint {str(p)!r} is corrupt or not a PyTorch file (unpickling failed); re-save it or retrain") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as e:
        raise HwnasError(f"checkpoint {str(p)!r} is corrupt or not a PyTorch file ({type(e).__name__}); re-save it or retrain") from None


def _is_supernet_pt(p: Path) -> bool:
    """A ``.pt`` of ``hwnas train`` has its JSON (space, pool, hash) beside it."""
    j = p.with_suffix(".json")
    if p.suffix != ".pt" or not j.is_file():
        return False
    try:
        import json  # noqa: PLC0415

        return json.loads(j.read_text()).get("kind") == "hwnas-supernet-checkpoint"
    except (ValueError, OSError, AttributeError):
        return False


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())


def _load_state_dict(arch: Arch, state: dict[str, torch.Tensor], p: Path) -> Network:
    net = build_network(arch)
    own = net.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or wrong:
        what = (f"{len(missing)} missing" if missing else "") or (f"{len(unexpected)} unexpected" if unexpected else "") or f"{len(wrong)} of another shape"
        example = (missing or unexpected or wrong)[0]
        raise HwnasError(f"weights {str(p)!r} do not fit arch {arch.compact()} ({what} tensor(s), e.g. {example!r}): they belong to another arch or space")
    net.load_state_dict(state)
    return net.eval()


def _normalization(rec: Any) -> dict[str, Any] | None:
    """A ``{"mean": [3 floats], "std": [3 floats]}`` record saved with the weights, else None."""
    if not isinstance(rec, dict):
        return None
    try:
        mean, std = [float(v) for v in rec["mean"]], [float(v) for v in rec["std"]]
    except (KeyError, TypeError, ValueError):
        return None
    return {**rec, "mean": mean, "std": std} if len(mean) == len(std) == 3 else None


def _from_supernet(arch: Arch, p: Path) -> tuple[Network, str, str, dict[str, Any] | None]:
    try:
        from ..train.checkpoint import load_checkpoint  # noqa: PLC0415
    except ImportError:
        raise HwnasError(f"checkpoint {str(p)!r} is not a state dict and this build cannot read supernet checkpoints; pass a state dict") from None
    try:
        ckpt = load_checkpoint(p, space=arch.space)
    except HwnasError:
        raise
    except Exception as e:  # noqa: BLE001
        raise HwnasError(f"checkpoint {str(p)!r} is corrupt or not an hwnas checkpoint ({type(e).__name__}: {e}); retrain or give a state dict") from None
    supernet = _get(ckpt, "supernet")
    if not isinstance(supernet, nn.Module) or not hasattr(supernet, "extract"):
        raise HwnasError(f"checkpoint {str(p)!r} holds no supernet; give a supernet checkpoint from `hwnas train` or a state dict")
    space = getattr(supernet, "space", None) or _get(ckpt, "space")
    want = arch.get_space()
    if space is None or space.name != want.name or dict(getattr(space, "args", {}) or {}) != dict(want.args or {}):
        got = "unknown" if space is None else f"{space.name}{_args(space)}"
        raise HwnasError(f"checkpoint {str(p)!r} is a supernet of space {got}, but the arch is from space {want.name}{_args(want)}; "
                         "export an arch of the checkpoint's space or give that space's checkpoint")
    net = supernet.extract(arch)
    norm = ckpt.normalization() if hasattr(ckpt, "normalization") else None
    return net.eval(), "supernet", str(p), norm


def _get(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


def _args(space: Any) -> str:
    args = dict(getattr(space, "args", {}) or {})
    return "(" + ", ".join(f"{k}={v}" for k, v in sorted(args.items())) + ")" if args else ""
