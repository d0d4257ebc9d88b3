"""SE-NAS shrinking in stages (Sec. 3.3, Algorithm 1): train uniformly, score the ops, drop the K lowest.

Each stage is a resumable training run in ``<out>/stage-<s>/run`` followed by a scores file
``<out>/stage-<s>/scores.json``; a stage whose scores file exists is done, so the same command
again continues where it stopped. Stage 0 trains the given space; each later stage trains the
shrunk space from the previous stage's weights (by layer and op; with ``expand`` the merged
units' copies start from the weights they expand), as the paper continues training with a
shorter schedule (``stage_epochs``). During the last epoch of each stage K weight snapshots
are saved (``snapshots/iter-*.pt``); their average is the supernet the ops are scored with
(Eq. 4). Shrinking stops early once the space holds <= ``max_archs`` archs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ...errors import HwnasError
from ...io import atomic_write_json, atomic_write_with, read_json_file
from ...space import create_space
from ...space.registry import CHOICES_ARG
from ...space.shrunk import space_args_json, write_space_file
from ...space.space import SearchSpace
from ...train.checkpoint import load_checkpoint
from ...train.evaluate import evaluate_path, recalibrate_bn
from ...train.trainer import SupernetTrainer, TrainConfig, train_supernet
from .scores import METRICS, OpScores, drop_ops, infeasible_ops, operator_scores, ops_to_drop, selection_importance


@dataclass
class ShrinkConfig:
    """How to shrink (saved in every stage's scores file)."""

    stages: int = 2
    drop: int = 10  # ops removed per stage (K)
    samples: int = 1000  # archs averaged per op for SI (Eq. 5)
    snapshots: int = 5  # weight snapshots of the last epoch averaged for evaluation (Eq. 4)
    metric: str = "senas"  # senas (Eq. 7), si (accuracy only) or random
    eval_images: int = 500  # held-out images per arch evaluation
    bn_images: int = 0  # training images to recalibrate a path's BN with before evaluating it (0: the averaged statistics)
    stage_epochs: float | None = None  # epochs of the stages after the first (default: the first's)
    max_archs: int = 50  # stop once the space holds at most this many archs
    seed: int = 0

    def check(self) -> None:
        if self.stages < 1 or self.drop < 1:
            raise HwnasError(f"--stages {self.stages} and --drop {self.drop} must be >= 1")
        if self.metric not in METRICS:
            raise HwnasError(f"unknown --metric {self.metric!r}; use one of {', '.join(METRICS)}")
        if self.samples < 1 or self.snapshots < 1 or self.eval_images < 1:
            raise HwnasError("--samples, --snapshots and --eval-images must be >= 1")


@dataclass
class StageResult:
    stage: int
    archs_before: int
    archs_after: int
    dropped: list[tuple[int, str]]
    scores_path: Path


def snapshot_iterations(total_iters: int, iters_per_epoch: int, k: int) -> list[int]:
    """K iterations spread over the last epoch, ending with the final one (Eq. 4's W_k)."""
    span = max(1, min(iters_per_epoch, total_iters))
    return sorted({total_iters - round(q * span / k) for q in range(k)} - {0})


def averaged_state(paths: list[Path]) -> dict[str, torch.Tensor]:
    """The element-wise mean of saved state dicts (integer buffers such as BN counters: the last one's)."""
    states = [torch.load(p, map_location="cpu", weights_only=True) for p in paths]
    out = {}
    for name, t in states[-1].items():
        out[name] = torch.stack([s[name] for s in states]).mean(0) if t.is_floating_point() else t
    return out


def supernet_accuracy(trainer: SupernetTrainer, eval_images: int, bn_images: int, seed: int) -> Callable[[np.ndarray], np.ndarray]:
    """P(a) of choice-index rows: accuracy (%) on ``eval_images`` held-out images, each arch evaluated once."""
    from ...train.data import Subset

    data = trainer.datasets.val
    data = Subset(data, torch.arange(min(eval_images, len(data))), "senas-eval")
    net = trainer.supernet
    cache: dict[tuple[int, ...], float] = {}

    def accuracy(rows: np.ndarray) -> np.ndarray:
        out = np.empty(len(rows))
        for r, row in enumerate(rows):
            key = tuple(int(i) for i in row)
            if key not in cache:
                if bn_images:
                    recalibrate_bn(net, key, trainer.datasets.train, n_images=bn_images, seed=seed)
                cache[key] = evaluate_path(net, key, data)[1]
            out[r] = cache[key]
        return out

    accuracy.cache = cache  # type: ignore[attr-defined]
    return accuracy


def budget_costs(trainer: SupernetTrainer) -> list[tuple[Callable[[np.ndarray], np.ndarray], float]]:
    """The run's budgets as (additive cost of choice-index rows, limit) pairs."""
    b = trainer.budget
    out: list[tuple[Callable[[np.ndarray], np.ndarray], float]] = []
    if b.max_flops is not None:
        out.append((trainer.space.flops_of_indices, float(b.max_flops)))
    if b.max_latency_ms is not None:
        out.append((b.latency_of, float(b.max_latency_ms)))
    return out


def shrink_space(train: TrainConfig, out_dir: str | Path, cfg: ShrinkConfig, output: str | Path | None = None,
                 callback: Callable[[dict[str, Any]], None] | None = None,
                 on_stage: Callable[[dict[str, Any]], None] | None = None) -> tuple[SearchSpace, list[dict[str, Any]]]:
    """Run the shrinking stages; returns the shrunk space and each stage's record.

    ``output`` (default ``<out>/shrunk.json``) receives the shrunk space file. ``train`` is the
    first stage's training (its sampler is replaced by uniform sampling, as SE-NAS trains);
    its budgets restrict sampling, scoring and which ops are infeasible.
    """
    cfg.check()
    out = Path(out_dir)
    train = replace(train, sampler="uniform").with_space_resolved()
    space = create_space(train.space, **train.space_args)
    base_args = {k: v for k, v in space_args_json(space).items() if k != CHOICES_ARG}
    records: list[dict[str, Any]] = []
    prev_run: Path | None = None
    for s in range(cfg.stages):
        if space.size <= cfg.max_archs:
            break
        stage_dir = out / f"stage-{s}"
        scores_path = stage_dir / "scores.json"
        if scores_path.exists():  # a finished stage: resume after it
            rec = read_json_file(scores_path, "stage scores", f"delete {stage_dir} to redo the stage")
            if rec.get("shrink") != _comparable(cfg) or rec.get("space_args") != space_args_json(space):
                raise HwnasError(f"{stage_dir} was shrunk with other settings; use another --out or the same options")
        else:
            rec = _run_stage(s, space, train, cfg, stage_dir, prev_run, callback)
        records.append(rec)
        if on_stage:
            on_stage(rec)
        prev_run = stage_dir / "run"
        space = create_space(space.name, **base_args, **({CHOICES_ARG: rec["kept"]}))
    target = Path(output) if output is not None else out / "shrunk.json"
    write_space_file(target, space, stages=[{k: r[k] for k in ("stage", "archs_before", "archs_after", "dropped")} for r in records],
                     shrink=_comparable(cfg))
    return space, records


def _comparable(cfg: ShrinkConfig) -> dict[str, Any]:
    return {k: v for k, v in asdict(cfg).items() if k != "stages"}  # more stages may follow finished ones


def _run_stage(s: int, space: SearchSpace, train: TrainConfig, cfg: ShrinkConfig, stage_dir: Path, prev_run: Path | None,
               callback: Callable[[dict[str, Any]], None] | None) -> dict[str, Any]:
    tc = replace(train, space=space.name, space_args=space_args_json(space))
    if s > 0 and cfg.stage_epochs is not None:
        tc = replace(tc, epochs=cfg.stage_epochs, max_iters=None)
    snap_dir = stage_dir / "snapshots"
    state: dict[str, Any] = {}

    def on_start(trainer: SupernetTrainer) -> None:
        state["iters"] = set(snapshot_iterations(trainer.total_iters, trainer.iters_per_epoch, cfg.snapshots))
        if prev_run is not None and trainer.counters.iteration == 0:
            from ...nn.expanded import inherit_weights

            inherit_weights(trainer.supernet, load_checkpoint(prev_run).supernet)
        state["trainer"] = trainer

    def on_iteration(rec: dict[str, Any]) -> None:
        if rec["iteration"] in state.get("iters", ()):
            weights = {k: v.detach().cpu().clone() for k, v in state["trainer"].supernet.state_dict().items()}
            atomic_write_with(snap_dir / f"iter-{rec['iteration']:07d}.pt", lambda f: torch.save(weights, f))
        if callback:
            callback({**rec, "stage": s})

    trainer, summary = train_supernet(tc, stage_dir / "run", callback=on_iteration, on_start=on_start)
    wanted = snapshot_iterations(trainer.total_iters, trainer.iters_per_epoch, cfg.snapshots)
    snaps = [snap_dir / f"iter-{it:07d}.pt" for it in wanted if (snap_dir / f"iter-{it:07d}.pt").exists()]
    if snaps:
        trainer.supernet.load_state_dict(averaged_state(snaps))
    accuracy = supernet_accuracy(trainer, cfg.eval_images, cfg.bn_images, cfg.seed)
    feasible = trainer.budget.ok if trainer.budget.active else None
    rec = {"stage": s, "space_args": space_args_json(space), "shrink": _comparable(cfg),
           **score_and_drop(space, accuracy, cfg, np.random.default_rng([cfg.seed, s]), feasible, budget_costs(trainer)),
           "snapshots": [p.name for p in snaps], "archs_evaluated": len(accuracy.cache),  # type: ignore[attr-defined]
           "train": {k: summary.get(k) for k in ("iterations", "n_opt_images", "final_loss", "final_acc")}}
    atomic_write_json(stage_dir / "scores.json", rec)
    return rec


def score_and_drop(space: SearchSpace, accuracy: Callable[[np.ndarray], np.ndarray], cfg: ShrinkConfig, rng: np.random.Generator,
                   feasible: Callable[[np.ndarray], np.ndarray] | None = None,
                   costs: list[tuple[Callable[[np.ndarray], np.ndarray], float]] = ()) -> dict[str, Any]:
    """One stage's decision from a path accuracy ``P(a)``: op scores, the ops dropped, the ops kept."""
    si, counts = selection_importance(space, accuracy, cfg.samples, rng, feasible)
    sc, score = operator_scores(si, cfg.metric, rng)
    bad = infeasible_ops(space, list(costs))
    drops = ops_to_drop(space, score, cfg.drop, bad)
    kept = drop_ops(space, drops)
    return {"archs_before": space.size, "archs_after": int(np.prod([len(k) for k in kept], dtype=object)),
            "dropped": [[j, o] for j, o in drops], "kept": kept,
            "infeasible": [[j, space.layers[j].choice_ids[i]] for j, b in enumerate(bad) for i in np.flatnonzero(b)],
            "ops": OpScores(si, sc, score, counts).to_dict(space)}
