"""The supernet trainer: one loop assembling data, a path sampler, the optimizer and checkpoints.

Every source of randomness is either derived from (seed, iteration) — the epoch's shuffle and
each batch's augmentation — or saved in the checkpoint (numpy path-sampling RNG, torch RNG),
so a run resumed from a checkpoint reproduces the uninterrupted run bit-for-bit.

Scale-out: each iteration's global batch (``batch_size`` images) is split across the torchrun
ranks; paths are decided identically on every rank (same RNG and pool, evaluation losses
all-reduced) and broadcast from rank 0; only rank 0 writes checkpoints.

Bookkeeping (GreedyNAS Table 1): ``n_opt_images`` counts images in optimization steps,
``n_eval_images`` images in path-evaluation forwards; the corrected #optimization counts an
evaluation image as 1/3.33 of an optimization image.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import HwnasError
from ..latency.confidence import DEFAULT_CONFIDENCE
from ..nn import build_supernet
from ..space import create_space
from ..space.shrunk import is_space_file, space_args_json
from .checkpoint import CKPT_DIR, FINAL_NAME, latest_good, list_checkpoints, save_checkpoint
from . import seeds
from .data import Datasets, FolderImageSet, ImageSet, Subset, augment_batch, build_datasets, dataset_fingerprint
from .loader import EpochBatchSampler, batch_loader
from .metrics import TensorBoardLog, write_metrics_csv
from .distributed import DistContext, convert_sync_bn
from .samplers import PathBudget, PathSampler, create_sampler

EVAL_COST_RATIO = 3.33  # GreedyNAS: an optimization step costs 3.33x a forward evaluation


@dataclass
class TrainConfig:
    """Everything that defines a training run (saved in every checkpoint; JSON-able)."""

    space: str = "tiny"
    space_args: dict[str, Any] = field(default_factory=dict)
    data: str = "builtin"
    n_train: int | None = None
    n_val: int | None = None
    n_path_eval: int = 1000
    data_seed: int = 0
    sampler: str = "uniform"  # the CLI default; see README "Supernet ranking"
    m: int = 10
    k: int = 5
    pool_size: int = 1000
    eps_max: float = 0.8
    warmup: float = 0.2
    anneal: float = 0.5
    alpha: float = 0.08
    pi_window: int | None = None
    early_stop: bool = True
    filter_args: dict[str, Any] = field(default_factory=dict)  # greedy-v2: path_filter.FilterConfig fields
    epochs: float = 2.0
    max_iters: int | None = None
    batch_size: int = 64
    eval_batch: int = 64
    lr: float = 0.12
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 4e-5
    label_smoothing: float = 0.1
    max_flops: int | None = None
    max_latency_ms: float | None = None
    latency_confidence: float = DEFAULT_CONFIDENCE  # max_latency_ms is met with this probability (latency.bound, as the search judges)
    table: str | None = None
    seed: int = 0
    ckpt_every: int = 100
    keep_ckpts: int = 3
    expand: int | None = None  # SE-NAS: merged layer groups (product of choices <= expand) get their own weights
    expand_archs: int = 50  # SE-NAS: a space of at most this many archs shares no weight at all (with expand)
    data_workers: int | None = None  # DataLoader worker processes; None: 2 for image folders, 0 for in-memory data (never changes a batch)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def with_space_resolved(self) -> "TrainConfig":
        """This config with a shrunk space file (``--space shrunk.json``) put as its base space and
        ``choices``, so the run records the space itself, not a path that may move or change."""
        if not is_space_file(self.space):
            return self
        space = create_space(self.space, **self.space_args)
        return replace(self, space=space.name, space_args=space_args_json(space))

    def sampler_kwargs(self) -> dict[str, Any]:
        if self.sampler == "greedy-v2":
            return dict(warmup=self.warmup, early_stop=self.early_stop, filter_args=dict(self.filter_args), seed=self.seed)
        return dict(m=self.m, k=self.k, pool_size=self.pool_size, eps_max=self.eps_max, warmup=self.warmup,
                    anneal=self.anneal, alpha=self.alpha, pi_window=self.pi_window, early_stop=self.early_stop)


@dataclass
class Counters:
    iteration: int = 0
    n_opt_images: int = 0
    n_eval_images: int = 0
    n_eval_paths: int = 0
    train_seconds: float = 0.0
    eval_seconds: float = 0.0

    @property
    def corrected_opt_images(self) -> float:
        return self.n_opt_images + self.n_eval_images / EVAL_COST_RATIO


FOLDER_WORKERS = 2  # default DataLoader workers for data decoded from files


def default_workers(data: ImageSet) -> int:
    """Worker processes pay off where images are decoded from files; in-memory sets index a tensor."""
    base = data.base if isinstance(data, Subset) else data
    return FOLDER_WORKERS if isinstance(base, FolderImageSet) else 0


class SupernetTrainer:
    """Trains a SuperNet with a PathSampler; ``run()`` until the planned iterations or a stop rule."""

    def __init__(self, config: TrainConfig, out_dir: str | Path | None = None, datasets: Datasets | None = None,
                 ctx: DistContext | None = None, table: Any = None) -> None:
        self.config = c = config
        self.ctx = ctx or DistContext()
        self.out_dir = Path(out_dir) if out_dir is not None else None
        if c.batch_size % self.ctx.world:
            raise HwnasError(f"--batch {c.batch_size} does not split over {self.ctx.world} processes; use a multiple of {self.ctx.world}")
        self.space = create_space(c.space, **c.space_args)
        resolved = c.with_space_resolved()
        c.space, c.space_args = resolved.space, resolved.space_args
        self.datasets = datasets or build_datasets(c.data, resolution=self.space.resolution, n_path_eval=c.n_path_eval,
                                                   n_val=c.n_val, n_train=c.n_train, seed=c.data_seed)
        if self.datasets.num_classes != self.space.num_classes:
            raise HwnasError(f"the data has {self.datasets.num_classes} classes but space {c.space!r} has {self.space.num_classes}; "
                             f"pass --space-arg num_classes={self.datasets.num_classes}")
        if len(self.datasets.train) < c.batch_size:
            raise HwnasError(f"the training set has {len(self.datasets.train)} images, fewer than one batch of {c.batch_size}; lower --batch")
        if table is None and c.table:
            from ..latency.table import LatencyTable

            table = LatencyTable.load(c.table, space=self.space.name)
        self.budget = PathBudget(self.space, c.max_flops, table, c.max_latency_ms, confidence=c.latency_confidence)
        self.sampler: PathSampler = create_sampler(c.sampler, self.budget, **c.sampler_kwargs())
        self.iters_per_epoch = len(self.datasets.train) // c.batch_size
        self.total_iters = int(c.max_iters) if c.max_iters else max(1, math.ceil(c.epochs * self.iters_per_epoch))
        self.sampler.setup(self.total_iters)

        torch.manual_seed(seeds.mix_seed(c.seed, seeds.INIT))
        self.supernet = build_supernet(self.space, c.expand, c.expand_archs)
        self.device = self.ctx.device
        if self.ctx.enabled:
            self.supernet = convert_sync_bn(self.supernet, self.device)  # type: ignore[assignment]
            self.supernet.to(self.device)
            from torch.nn.parallel import DistributedDataParallel as DDP

            self.model: torch.nn.Module = DDP(self.supernet, find_unused_parameters=True)
        else:
            self.model = self.supernet
        self.optimizer = torch.optim.SGD(self.supernet.parameters(), lr=c.lr, momentum=c.momentum, nesterov=c.nesterov,
                                         weight_decay=c.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=self.total_iters)
        self.rng = np.random.default_rng(seeds.mix_seed(c.seed, seeds.PATHS))
        self.pending: list[tuple[int, ...]] = []
        self.counters = Counters()
        self.history: list[list[float]] = []  # [iteration, loss, acc, eps, pool, pi (-1: not known yet), lr]
        self.stop_reason: str | None = None
        self.workers = c.data_workers if c.data_workers is not None else default_workers(self.datasets.train)
        self._batches: Any = None  # iterator over the DataLoader, from iteration self._next_batch
        self._next_batch = -1
        self._tb: TensorBoardLog | None = None  # TensorBoard events while run() trains into out_dir
        n_eval = min(c.eval_batch, len(self.datasets.path_eval))
        self.eval_x, self.eval_y = (t.to(self.device) for t in self.datasets.path_eval.batch(torch.arange(n_eval)))
        self.fingerprint = dataset_fingerprint(self.datasets)

    # ---- data ------------------------------------------------------------------------------
    def _rows(self) -> slice:
        b = self.config.batch_size // self.ctx.world
        return slice(self.ctx.rank * b, (self.ctx.rank + 1) * b)

    def batch_sampler(self, start: int) -> EpochBatchSampler:
        """This process's batches from iteration ``start`` to the planned end."""
        seed = self.config.seed
        return EpochBatchSampler(len(self.datasets.train), self.config.batch_size,
                                 lambda epoch: seeds.mix_seed(seed, seeds.SHUFFLE, epoch),
                                 start=start, stop=self.total_iters, rows=self._rows())

    def _batch(self, it: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self._batches is None or self._next_batch != it:
            self._batches = iter(batch_loader(self.datasets.train, self.batch_sampler(it), self.workers))
        x, y = next(self._batches)
        self._next_batch = it + 1
        g = torch.Generator().manual_seed(seeds.mix_seed(self.config.seed, seeds.AUGMENT, it))
        return augment_batch(x, g, rows=self._rows(), total=self.config.batch_size).to(self.device), y.to(self.device)

    def close_loader(self) -> None:
        """Stop the DataLoader's worker processes (a new one starts if training continues)."""
        self._batches, self._next_batch = None, -1

    # ---- path evaluation (GreedyNAS ranking) -------------------------------------------------
    def evaluate_paths(self, paths: list[tuple[int, ...]]) -> list[float]:
        """Loss of each path on the fixed evaluation batch (eval mode, no grad), shared across ranks."""
        t0 = time.perf_counter()
        losses = torch.zeros(len(paths), dtype=torch.float64)
        was = self.supernet.training
        self.supernet.eval()
        with torch.no_grad():
            for i, p in enumerate(paths):
                if i % self.ctx.world == self.ctx.rank:
                    losses[i] = float(F.cross_entropy(self.supernet(self.eval_x, list(p)), self.eval_y))
        self.supernet.train(was)
        self.ctx.all_reduce_sum(losses)
        self.counters.n_eval_images += len(paths) * len(self.eval_y)
        self.counters.n_eval_paths += len(paths)
        self.counters.eval_seconds += time.perf_counter() - t0
        return losses.tolist()

    # ---- one iteration -------------------------------------------------------------------------
    def step(self) -> dict[str, Any]:
        it = self.counters.iteration
        if not self.pending:
            paths = self.sampler.next_paths(it, self.rng, self.evaluate_paths)
            self.pending = [tuple(int(i) for i in p) for p in self.ctx.broadcast_object(paths)]
        path = self.pending.pop(0)
        t0 = time.perf_counter()
        x, y = self._batch(it)
        self.model.train()
        out = self.model(x, list(path))
        loss = F.cross_entropy(out, y, label_smoothing=self.config.label_smoothing)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.ctx.enabled:  # DDP hands zero grads to the other paths' weights; SGD must skip them as in one process
            used = {id(p) for p in self.supernet.path_parameters(list(path))}
            for p in self.supernet.parameters():
                if id(p) not in used:
                    p.grad = None
        self.optimizer.step()
        self.scheduler.step()
        stats = torch.tensor([float(loss.detach()) * len(y), float((out.argmax(1) == y).sum()), float(len(y))], dtype=torch.float64)
        self.ctx.all_reduce_sum(stats)  # losses/accuracies of all ranks, for the log
        self.counters.train_seconds += time.perf_counter() - t0
        self.counters.n_opt_images += self.config.batch_size
        self.counters.iteration = it + 1
        st = self.sampler.status(it + 1)
        rec = {"iteration": it + 1, "loss": float(stats[0] / stats[2]), "acc": float(100 * stats[1] / stats[2]),
               "epsilon": st.epsilon, "pool": st.pool_size, "pi": st.pi, "path": list(path), "lr": self.scheduler.get_last_lr()[0]}
        self.history.append([rec["iteration"], rec["loss"], rec["acc"], rec["epsilon"], rec["pool"], -1.0 if st.pi is None else st.pi,
                             rec["lr"]])
        if self._tb is not None:
            a, b, c = self.sampler.status_names
            self._tb.add(it + 1, {"loss": rec["loss"], "accuracy": rec["acc"], "lr": rec["lr"], a: st.epsilon, b: st.pool_size, c: st.pi})
        return rec

    def run(self, callback: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
        """Train until the planned iterations are done or the sampler's stop rule fires."""
        c = self.config
        if self.out_dir is not None and self.ctx.is_main:  # a resumed run drops the events past its checkpoint
            self._tb = TensorBoardLog(self.out_dir, purge_step=self.counters.iteration + 1 if self.counters.iteration else None)
        try:
            while self.counters.iteration < self.total_iters and self.stop_reason is None:
                rec = self.step()
                if callback:
                    callback(rec)
                it = self.counters.iteration
                if self.out_dir is not None and c.ckpt_every and it % c.ckpt_every == 0 and it < self.total_iters:
                    self.save_periodic()
                if not self.pending:
                    self.stop_reason = self.sampler.should_stop(it)
            self.close_loader()
            if self.stop_reason is None:
                self.stop_reason = f"planned iterations done ({self.total_iters})"
            if self.out_dir is not None:
                self.save_final()
        finally:
            if self._tb is not None:
                self._tb.close()
                self._tb = None
        return self.summary()

    def write_metrics(self) -> None:
        """metrics.csv from the history (the checkpoint's iterations exactly) and the TensorBoard events so far."""
        if self.out_dir is None or not self.ctx.is_main:
            return
        write_metrics_csv(self.out_dir, self.history, self.sampler.status_names)
        if self._tb is not None:
            self._tb.flush()

    # ---- results -----------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        k = self.counters
        tail = self.history[-max(1, min(50, len(self.history))):] if self.history else []
        return {
            "space": self.space.name, "sampler": self.config.sampler, "data": self.datasets.describe(),
            "iterations": k.iteration, "planned_iterations": self.total_iters, "stop_reason": self.stop_reason,
            "n_opt_images": k.n_opt_images, "n_eval_images": k.n_eval_images, "n_eval_paths": k.n_eval_paths,
            "corrected_opt_images": k.corrected_opt_images,
            "train_seconds": round(k.train_seconds, 3), "eval_seconds": round(k.eval_seconds, 3),
            "final_loss": float(np.mean([h[1] for h in tail])) if tail else None,
            "final_acc": float(np.mean([h[2] for h in tail])) if tail else None,
            "pool_size": len(self.sampler.pool_items()),
            "best_paths": [[self.space.from_indices(p).compact(), loss] for p, loss in self.sampler.pool_items()[:5]],
            "budget": self.budget.describe(), "world_size": self.ctx.world,
            "path_filter": self._filter_report(),
        }

    def _filter_report(self) -> dict[str, Any] | None:
        """The greedy-v2 sampler's report, with the evaluation images its stop rule saved."""
        rep = self.sampler.report()
        if rep and "evaluations_saved_paths" in rep:
            rep["eval_images_saved"] = rep["evaluations_saved_paths"] * len(self.eval_y)
        return rep or None

    # ---- checkpoints ---------------------------------------------------------------------------
    def _meta(self, finished: bool) -> dict[str, Any]:
        k = self.counters
        return {
            "space": self.space.name, "space_args": self.config.space_args, "data": self.config.data,
            "data_fingerprint": self.fingerprint, "normalization": self.datasets.normalization(), "config": self.config.to_dict(), "iteration": k.iteration,
            "total_iters": self.total_iters, "finished": finished, "stop_reason": self.stop_reason if finished else None,
            "counters": {**asdict(k), "corrected_opt_images": k.corrected_opt_images, "eval_cost_ratio": EVAL_COST_RATIO},
            "epsilon": self.sampler.status(k.iteration).epsilon,
            "pool": self.sampler.pool_state(), "sampler": self.sampler.state_dict(),
            "pending": [list(p) for p in self.pending], "np_rng": self.rng.bit_generator.state,
            "history": self.history, "world_size": self.ctx.world,
        }

    def _tensors(self) -> dict[str, Any]:
        return {"model": {k: v.cpu() for k, v in self.supernet.state_dict().items()}, "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "torch_rng": torch.get_rng_state(),
                "sampler": self.sampler.tensor_state()}

    def save_periodic(self) -> Path | None:
        if not self.ctx.is_main or self.out_dir is None:
            return None
        path = save_checkpoint(self.out_dir / CKPT_DIR, f"iter-{self.counters.iteration:07d}", self._tensors(), self._meta(False))
        self.write_metrics()
        for old in list_checkpoints(self.out_dir)[self.config.keep_ckpts:]:
            old.with_suffix(".pt").unlink(missing_ok=True)
            old.unlink(missing_ok=True)
        return path

    def save_final(self) -> Path | None:
        if not self.ctx.is_main or self.out_dir is None:
            return None
        path = save_checkpoint(self.out_dir, FINAL_NAME, self._tensors(), self._meta(True))
        self.write_metrics()
        from ..io import atomic_write_json

        atomic_write_json(self.out_dir / "summary.json", self.summary())
        return path

    def load_state(self, meta: dict[str, Any], tensors: dict[str, Any]) -> None:
        """Continue from a checkpoint of the same run (same space, data and config)."""
        if meta.get("space") != self.space.name or (meta.get("space_args") or {}) != (self.config.space_args or {}):
            raise HwnasError(f"the checkpoint is a supernet of space {meta.get('space')!r}, not {self.space.name!r}; resume with --space {meta.get('space')} or use another --out")
        if meta.get("data_fingerprint") != self.fingerprint:
            raise HwnasError("the checkpoint was trained on other data (different split or files); resume with the same --data or use another --out")
        self.supernet.load_state_dict(tensors["model"])  # copies onto the supernet's device
        self.optimizer.load_state_dict(tensors["optimizer"])
        self.scheduler.load_state_dict(tensors["scheduler"])
        torch.set_rng_state(tensors["torch_rng"])
        self.rng.bit_generator.state = meta["np_rng"]
        self.sampler.load_state_dict(meta.get("sampler", {}))
        self.sampler.load_tensor_state(tensors.get("sampler") or {})
        if hasattr(self.sampler, "load_pool"):
            self.sampler.load_pool(meta["pool"])  # type: ignore[attr-defined]
        self.pending = [tuple(int(i) for i in p) for p in meta.get("pending", [])]
        kc = meta.get("counters", {})
        self.counters = Counters(**{f.name: kc[f.name] for f in fields(Counters) if f.name in kc})
        self.history = [list(h) for h in meta.get("history", [])]
        self.stop_reason = None


def resume_point(out_dir: str | Path) -> tuple[TrainConfig, dict[str, Any], dict[str, Any], list[str]] | None:
    """(config, meta, tensors, problems) of the newest good checkpoint in a run folder, or None."""
    found = latest_good(out_dir)
    if found is None:
        return None
    _, meta, tensors, problems = found
    return TrainConfig.from_dict(meta["config"]), meta, tensors, problems


def settings_differences(config: TrainConfig, out_dir: str | Path) -> list[str] | None:
    """What ``config`` changes from the run in ``out_dir`` ("epochs 2.0 -> 3.0"); None if the run's settings are unreadable."""
    try:
        saved = TrainConfig.from_dict(json.loads((Path(out_dir) / "config.json").read_text())).to_dict()
    except (OSError, ValueError, TypeError, AttributeError):
        return None
    saved, mine = json.loads(json.dumps(saved)), json.loads(json.dumps(config.to_dict()))  # tuples and lists alike
    return [f"{k} {saved.get(k)!r} -> {v!r}" for k, v in mine.items() if saved.get(k) != v]


def train_supernet(config: TrainConfig, out_dir: str | Path | None = None, resume: bool = False,
                   callback: Callable[[dict[str, Any]], None] | None = None, ctx: DistContext | None = None,
                   datasets: Datasets | None = None, on_resume: Callable[[dict[str, Any], list[str]], None] | None = None,
                   on_start: Callable[[SupernetTrainer], None] | None = None) -> tuple[SupernetTrainer, dict[str, Any]]:
    """Build a trainer (from a checkpoint with ``resume``) and run it: the library call behind ``hwnas train``.

    With ``resume``, the run continues with the settings saved in its checkpoint (the other
    fields of ``config`` are not used, except that its space must match). A run folder whose newest checkpoint
    is corrupt resumes from the previous good one (``on_resume`` receives the problems).

    Without ``resume``, a folder that already holds a run with the same settings is the same
    command run again: a finished run is reused as it is (the summary says ``"reused": True``)
    and an interrupted one continues. A run with other settings is refused, naming them.
    """
    from .. import quick

    if quick.enabled():
        config = replace(config, max_iters=quick.cap("train_iterations", config.max_iters), n_train=quick.cap("train_images", config.n_train),
                         n_val=quick.cap("validation_images", config.n_val) if config.n_val or config.data.startswith("builtin") else None,
                         n_path_eval=quick.cap("path_eval_images", config.n_path_eval))
    config = config.with_space_resolved()
    same_run_again = False
    if not resume and out_dir is not None and ((Path(out_dir) / f"{FINAL_NAME}.json").exists() or list_checkpoints(out_dir)):
        diffs = settings_differences(config, out_dir)
        if diffs:
            raise HwnasError(f"{str(out_dir)!r} already holds a training run with other settings ({', '.join(diffs)}); "
                             f"run it with its own settings, pass --resume to continue it, or choose another --out")
        if diffs is None:
            raise HwnasError(f"{str(out_dir)!r} already holds a training run; pass --resume to continue it or choose another --out")
        resume = same_run_again = True
    if resume:
        if out_dir is None:
            raise HwnasError("--resume needs the run folder (--out DIR)")
        rp = resume_point(out_dir)
        if rp is None:
            if any(Path(out_dir).glob("**/*.json")):
                raise HwnasError(f"no usable checkpoint in {str(out_dir)!r} (all corrupt); delete it or train into another --out")
            raise HwnasError(f"nothing to resume in {str(out_dir)!r}; run `hwnas train` without --resume first")
        saved, meta, tensors, problems = rp
        if config.space != saved.space:
            raise HwnasError(f"{str(out_dir)!r} holds a supernet of space {saved.space!r}, not {config.space!r}; resume with --space {saved.space} or use another --out")
        trainer = SupernetTrainer(saved, out_dir, datasets=datasets, ctx=ctx)
        trainer.load_state(meta, tensors)
        # A finished run is done: the same command again reuses it; --resume reuses it unless the sampler stopped it early.
        if meta.get("finished") and (same_run_again or trainer.counters.iteration >= trainer.total_iters):
            trainer.stop_reason = meta.get("stop_reason") or "finished"
            return trainer, {**trainer.summary(), "reused": True}
        if on_resume:
            on_resume(meta, problems)
    else:
        trainer = SupernetTrainer(config, out_dir, datasets=datasets, ctx=ctx)
        if out_dir is not None and trainer.ctx.is_main:
            from ..io import atomic_write_json

            atomic_write_json(Path(out_dir) / "config.json", config.to_dict())
    if on_start:
        on_start(trainer)
    return trainer, trainer.run(callback)


def format_bookkeeping(summary: dict[str, Any]) -> str:
    """The GreedyNAS Table-1 line: #optimization, #evaluation, corrected #optimization."""
    return (f"#optimization {summary['n_opt_images']:,} images, #evaluation {summary['n_eval_images']:,} images, "
            f"corrected #optimization {summary['corrected_opt_images']:,.0f} (evaluation counted as 1/{EVAL_COST_RATIO})")

