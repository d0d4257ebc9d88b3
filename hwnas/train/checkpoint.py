"""Supernet checkpoints: atomic, hash-verified, and unable to run code when loaded.

A checkpoint is two files side by side:

- ``NAME.pt``: tensors only (supernet weights, optimizer and LR-scheduler state, torch RNG),
  written with ``torch.save`` and read with ``torch.load(weights_only=True)``;
- ``NAME.json``: plain JSON with everything else (space, data spec, config, candidate pool,
  ε, counters, numpy RNG state, loss history) and the SHA-256 of ``NAME.pt``.

The ``.pt`` is written first and the ``.json`` last (both atomically), so a checkpoint exists
only once its JSON does, and a JSON whose hash does not match its ``.pt`` is corrupt.

A run folder (``hwnas train --out DIR``) holds ``DIR/supernet.{pt,json}`` (the final result)
and ``DIR/checkpoints/iter-NNNNNNN.{pt,json}`` (the last few periodic checkpoints).

Contract for searchers::

    ts = load_checkpoint("runs/tiny-uniform")        # a run folder, or a .json/.pt file
    ts.supernet, ts.space, ts.pool                    # SuperNet with weights, SearchSpace, [(Arch, loss)] best first
    ds = ts.datasets()                                # the same train/val/path-eval split as training
"""

from __future__ import annotations

import hashlib
import io
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import HwnasError, SkippedCheckpointWarning
from ..io import atomic_write_bytes, atomic_write_json

FORMAT = 1
KIND = "hwnas-supernet-checkpoint"
FINAL_NAME = "supernet"
CKPT_DIR = "checkpoints"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def save_checkpoint(folder: str | Path, name: str, tensors: dict[str, Any], meta: dict[str, Any]) -> Path:
    """Write ``folder/name.pt`` (tensors) then ``folder/name.json`` (meta + hash); returns the JSON path."""
    folder = Path(folder)
    buf = io.BytesIO()
    torch.save(tensors, buf)
    data = buf.getvalue()
    atomic_write_bytes(folder / f"{name}.pt", data)
    meta = dict(meta, format=FORMAT, kind=KIND, weights_file=f"{name}.pt", sha256=_sha256(data))
    return atomic_write_json(folder / f"{name}.json", meta, indent=None)


def read_checkpoint(json_path: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(meta, tensors) of one checkpoint, verified; HwnasError if missing, corrupt or not ours."""
    jp = Path(json_path)
    if jp.suffix == ".pt":
        jp = jp.with_suffix(".json")
    try:
        meta = json.loads(jp.read_text())
    except FileNotFoundError:
        raise HwnasError(f"checkpoint {str(jp)!r} not found; give a run folder of `hwnas train` or its supernet.json") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise HwnasError(f"checkpoint {str(jp)!r} is corrupt (unreadable JSON); use an earlier checkpoint or retrain") from None
    if not isinstance(meta, dict) or meta.get("kind") != KIND:
        raise HwnasError(f"{str(jp)!r} is not an hwnas supernet checkpoint; give the output of `hwnas train`")
    if meta.get("format") != FORMAT:
        raise HwnasError(f"checkpoint {str(jp)!r} has format {meta.get('format')!r}, this hwnas reads {FORMAT}; retrain with this version")
    name = str(meta.get("weights_file", ""))
    wp = jp.parent / name
    if not name or Path(name).name != name or name in (".", ".."):
        raise HwnasError(f"checkpoint {str(jp)!r} names weights_file {name!r} outside its own folder; "
                         "use the checkpoint as `hwnas train` wrote it or retrain")
    try:
        data = wp.read_bytes()
    except OSError:
        raise HwnasError(f"checkpoint {str(jp)!r} lacks its weights file {wp.name!r}; use an earlier checkpoint or retrain") from None
    if _sha256(data) != meta.get("sha256"):
        raise HwnasError(f"checkpoint weights {str(wp)!r} are corrupt (SHA-256 mismatch); use an earlier checkpoint or retrain")
    try:
        tensors = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as e:  # a hash-verified file that still fails is not ours
        raise HwnasError(f"checkpoint weights {str(wp)!r} cannot be loaded safely ({type(e).__name__}); retrain") from None
    return meta, tensors


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Periodic checkpoints of a run folder, newest first (by iteration in the name)."""
    d = Path(run_dir) / CKPT_DIR
    return sorted(d.glob("iter-*.json"), reverse=True) if d.is_dir() else []


def latest_good(run_dir: str | Path, include_final: bool = True) -> tuple[Path, dict[str, Any], dict[str, Any], list[str]] | None:
    """The newest checkpoint of a run folder that verifies, and the problems of newer ones skipped.

    The final ``supernet.json`` counts only when its iteration is not older than the newest
    periodic checkpoint (a finished run that was extended with more epochs resumes from the
    newest one).
    """
    run_dir = Path(run_dir)
    candidates = list_checkpoints(run_dir)
    final = run_dir / f"{FINAL_NAME}.json"
    problems: list[str] = []
    ordered: list[tuple[int, Path]] = []
    for p in candidates + ([final] if include_final and final.exists() else []):
        try:
            it = int(json.loads(p.read_text()).get("iteration", -1))
        except Exception:  # unreadable: ordered as its name says (a damaged final one first), so it is tried and reported
            it = int(p.stem.split("-")[-1]) if p.stem.startswith("iter-") and p.stem.split("-")[-1].isdigit() else 1 << 62
        ordered.append((it, p))
    ordered.sort(key=lambda t: (t[0], t[1].name == f"{FINAL_NAME}.json"), reverse=True)
    for _, p in ordered:
        try:
            meta, tensors = read_checkpoint(p)
            return p, meta, tensors, problems
        except HwnasError as e:
            problems.append(str(e))
    return None


@dataclass
class TrainedSupernet:
    """A trained supernet as a searcher needs it."""

    supernet: Any  # hwnas.nn.SuperNet
    space: Any  # hwnas.space.SearchSpace
    pool: list[tuple[Any, float]]  # [(Arch, loss)], lowest loss first
    data_spec: str
    config: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    skipped: list[str] = field(default_factory=list)  # newer checkpoints passed over as damaged, and why
    sampler_tensors: dict[str, Any] = field(default_factory=dict)  # a learned path filter's weights (greedy-v2)

    def path_admission(self):
        """The greedy-v2 run's learned filter and op merges (``path_filter.PathAdmission``), or None."""
        from .path_filter import PathAdmission

        return PathAdmission.from_checkpoint(self.meta.get("sampler") or {}, self.sampler_tensors)

    def datasets(self, **overrides: Any):
        """The train/val/path-eval split the supernet was trained with (same seed and sizes)."""
        from .data import build_datasets

        kw = dict(resolution=self.space.resolution, n_path_eval=self.config.get("n_path_eval", 1000),
                  n_val=self.config.get("n_val"), n_train=self.config.get("n_train"), seed=self.config.get("data_seed", 0))
        kw.update(overrides)
        return build_datasets(self.data_spec, **kw)

    def normalization(self) -> dict[str, Any] | None:
        """The mean/std the training images were normalized with (None: a checkpoint written before
        hwnas recorded it)."""
        rec = self.meta.get("normalization")
        return dict(rec) if isinstance(rec, dict) and "mean" in rec and "std" in rec else None

    @property
    def counters(self) -> dict[str, Any]:
        return dict(self.meta.get("counters", {}))


def load_checkpoint(path: str | Path, space: str | None = None) -> TrainedSupernet:
    """Load a run folder (its final supernet, else its newest good checkpoint) or a checkpoint file.

    ``space``: the space the caller expects; a checkpoint of another space is an HwnasError.
    """
    from ..nn import build_supernet
    from ..space import create_space
    from ..space.shrunk import is_space_file

    p = Path(path)
    skipped: list[str] = []
    if p.is_dir():
        found = latest_good(p)
        if found is None:
            raise HwnasError(f"run folder {str(p)!r} holds no usable checkpoint; train with `hwnas train --out {p}` first")
        jp, meta, tensors, problems = found
        for problem in problems:  # a newer checkpoint (e.g. the final one) was damaged: never fall back silently
            skipped.append(f"skipped a damaged checkpoint: {problem}; using {jp.name} (iteration {meta.get('iteration', '?')}) instead")
            warnings.warn(skipped[-1], SkippedCheckpointWarning, stacklevel=2)
    else:
        jp = p
        meta, tensors = read_checkpoint(p)
    wanted = None
    if space is not None and is_space_file(space):  # a shrunk space file: its base name and its choices
        wanted = create_space(space)
        space = wanted.name
    if space is not None and meta.get("space") != space:
        raise HwnasError(f"checkpoint {str(jp)!r} is a supernet of space {meta.get('space')!r}, not {space!r}; train one for {space!r} or pick the matching checkpoint")
    try:
        sp = create_space(str(meta["space"]), **dict(meta.get("space_args") or {}))
    except HwnasError:
        raise
    except Exception as e:
        raise HwnasError(f"checkpoint {str(jp)!r} names an unusable space ({e}); retrain") from None
    if wanted is not None and sp.args != wanted.args:
        raise HwnasError(f"checkpoint {str(jp)!r} is a supernet of another variant of {sp.name!r} than the space file asks for "
                         f"({sp.size:,} vs {wanted.size:,} archs); train one with --space on that file")
    cfg = meta.get("config") or {}
    net = build_supernet(sp, cfg.get("expand"), int(cfg.get("expand_archs") or 50))
    state = tensors.get("model") if isinstance(tensors, dict) else None
    if not isinstance(state, dict):
        raise HwnasError(f"checkpoint {str(jp)!r} has no supernet weights; retrain")
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError:
        raise HwnasError(f"checkpoint {str(jp)!r} does not fit the {sp.name!r} supernet (different space or options); retrain for this space") from None
    net.eval()
    pool = [(sp.from_indices(path), float(loss)) for path, loss, _ in sorted(meta.get("pool", {}).get("entries", []), key=lambda e: (e[1], e[0]))]
    sampler_tensors = tensors.get("sampler") if isinstance(tensors, dict) else None
    return TrainedSupernet(net, sp, pool, str(meta.get("data", "builtin")), dict(meta.get("config", {})), meta, jp,
                           skipped, dict(sampler_tensors or {}))
