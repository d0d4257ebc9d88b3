"""Evaluators: ``evaluate(archs) -> accuracies`` behind one interface (pymoo-style do/_do).

The base class does the shared bookkeeping (cache, count of real evaluations) and calls a
subclass's ``_evaluate``; searchers only ever see ``evaluate`` and ``n_evaluations``. Each
evaluator says what its accuracies depend on (``settings``: a resumed search must match it).

``EVALUATORS`` builds one from the user's request (``tabular``, ``supernet``, ``scratch``);
a new evaluator is a class plus one registered builder.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import HwnasError
from ..registry import Registry
from ..space.arch import Arch


class Evaluator(ABC):
    """Accuracy (percent) of archs. Cached: asking twice for an arch costs one evaluation.

    With ``dist`` (a ``hwnas.train.distributed.DistContext`` of a ``torchrun`` launch) every
    rank takes a contiguous share of each batch (in ``share_key`` order, so neighbours that
    share work land together), and the accuracies are gathered so that every rank holds all
    of them and the ranks' searchers stay in step.
    """

    # what the score is, as the search's results table and summary title it
    score_label = "accuracy %"

    def __init__(self) -> None:
        self.cache: dict[Arch, float] = {}
        self.n_evaluations = 0
        self.dist = None

    def evaluate(self, archs: Sequence[Arch]) -> np.ndarray:
        todo = [a for a in dict.fromkeys(archs) if a not in self.cache]
        if todo:
            scores = self._evaluate_batch(todo)
            for a, s in zip(todo, scores):
                self.cache[a] = float(s)
            self.n_evaluations += len(todo)
        return np.array([self.cache[a] for a in archs], dtype=float)

    def _evaluate_batch(self, archs: Sequence[Arch]) -> Sequence[float]:
        """A batch of archs none of which is cached (an evaluator with stages overrides this)."""
        return self.shared(self._evaluate, archs)

    @abstractmethod
    def _evaluate(self, archs: Sequence[Arch]) -> Sequence[float]:
        """Accuracy of each arch (none of them cached)."""

    def share_key(self, arch: Arch) -> Any:
        """Order in which a batch is cut into the ranks' shares (default: as asked)."""
        return 0

    def shared(self, fn: Callable[[Sequence[Arch]], Sequence[float]], archs: Sequence[Arch]) -> list[float]:
        """``fn(archs)``, each rank computing its share; every rank gets all results, in order."""
        if self.dist is None or not self.dist.enabled:
            return [float(v) for v in fn(archs)]
        order = sorted(range(len(archs)), key=lambda i: self.share_key(archs[i]))
        lo, hi = share_bounds(len(archs), self.dist.rank, self.dist.world)
        mine = [archs[i] for i in order[lo:hi]]
        parts = self.dist.all_gather_object([float(v) for v in fn(mine)] if mine else [])
        out = [0.0] * len(archs)
        for pos, value in enumerate(v for part in parts for v in part):
            out[order[pos]] = value
        return out

    def settings(self) -> dict[str, Any]:
        """What the accuracies depend on: two evaluators with equal settings give equal accuracies."""
        return {"kind": type(self).__name__}


def upper_bound(correct: float, n: int, z: float = 2.576) -> float:
    """Wilson score upper bound (99% two-sided by default) of an accuracy seen as ``correct`` of ``n``."""
    p = correct / n
    centre = p + z * z / (2 * n)
    half = z * float(np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)))
    return min(1.0, (centre + half) / (1 + z * z / n))


def share_bounds(n: int, rank: int, world: int) -> tuple[int, int]:
    """[lo, hi) of rank's contiguous share of n items (sizes differ by at most one)."""
    return rank * n // world, (rank + 1) * n // world


class TabularEvaluator(Evaluator):
    """Accuracy looked up in a tabular benchmark (NAS-Bench-Macro): the truth, for validating searchers."""

    def __init__(self, benchmark=None) -> None:
        super().__init__()
        if benchmark is None:
            from ..space.tabular import load_nas_bench_macro

            benchmark = load_nas_bench_macro()
        self.benchmark = benchmark

    def _evaluate(self, archs: Sequence[Arch]) -> Sequence[float]:
        return [self.benchmark.accuracy(a) for a in archs]

    def settings(self) -> dict[str, Any]:
        return {"kind": "tabular", "benchmark": "nas-bench-macro"}


class MacsProxyEvaluator(Evaluator):
    """No accuracy source: an arch scores its multiply-adds in millions (the score is not an accuracy).

    For a space with neither a trained supernet nor a benchmark (e.g. ``ofa-mbv3`` searched on
    a phone's published tables), the search then returns the arch with the most computation
    that the latency budget admits -- the usual proxy when accuracy cannot be judged. The
    space's variant (e.g. input resolution) is the arch's own, so archs of several
    resolutions are scored alike.
    """

    score_label = "MACs proxy (M)"

    def _evaluate(self, archs: Sequence[Arch]) -> Sequence[float]:
        return [a.get_space().flops(a) / 1e6 for a in archs]


@contextmanager
def torch_threads(n: int | None):
    """Run with ``n`` intra-op threads, then restore (on a busy machine 1 thread is often the fastest)."""
    if n is None:
        yield
        return
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(old)


class SupernetEvaluator(Evaluator):
    """Accuracy of a path with weights inherited from a trained supernet (GreedyNAS's search metric).

    Per path: its BN statistics are re-estimated on ``bn_batches`` x ``bn_batch_size`` training
    images (the same images for every path, so paths are compared on equal terms), then its
    top-1 accuracy is measured on a held-out validation subset of ``n_eval`` images, in batches
    of ``batch_size``. The held-out subset is taken from the validation images *after* the
    path-evaluation images the GreedyNAS sampler ranked paths with during training, when the
    split is large enough, so the search does not select on data the pool was built on.

    A batch of archs is scored by ``PathScorer``: images prepared once, the stem's output and
    every shared prefix computed once (``cache_mb`` bounds the activations kept), the same
    numbers as one arch at a time. ``halving`` (successive halving) first scores every arch of
    a batch on the first ``halving`` held-out images and completes on the rest only the best
    ``halving_keep`` share and the archs that may still rank among the ``halving_rank`` best
    (NSGA-II's population); an arch not completed keeps its screening accuracy, capped below
    every completed one (it was judged worse than they are), and is listed in ``screened``. ``baseline=True`` is the one-arch-at-a-time loop this replaced, kept
    only so benchmarks can compare against it.
    """

    def __init__(self, trained, datasets=None, n_eval: int = 1000, bn_batches: int = 4, bn_batch_size: int = 64,
                 batch_size: int = 250, seed: int = 0, threads: int | None = None, halving: int | None = None,
                 halving_keep: float = 0.25, halving_rank: int = 50, cache_mb: int = 1024, baseline: bool = False) -> None:
        super().__init__()
        self.threads = threads
        import torch

        self.trained = trained
        self.supernet = trained.supernet
        self.space = trained.space
        ds = datasets if datasets is not None else trained.datasets()
        val, n_pe = ds.val, len(ds.path_eval)
        if len(val) - n_pe >= min(n_eval, 100):
            held = torch.arange(n_pe, min(len(val), n_pe + n_eval))
            self.held_out_from = "val after the path-eval subset"
        else:
            held = torch.arange(0, min(len(val), n_eval))
            self.held_out_from = "val (too small to skip the path-eval subset)"
        self.eval_set = val.subset(held, f"{val.name}-search")
        self.train_set = ds.train
        self.n_bn_images = min(len(ds.train), bn_batches * bn_batch_size)
        self.bn_batch_size = bn_batch_size
        self.batch_size = batch_size
        self.seed = seed
        if halving is not None and not 0 < halving < len(self.eval_set):
            raise HwnasError(f"--halving {halving} must be between 1 and the {len(self.eval_set)} held-out images - 1; "
                             "lower it or drop it")
        if not 0 < halving_keep <= 1:
            raise HwnasError(f"--halving-keep {halving_keep} must be a share in (0, 1]; e.g. 0.5")
        self.halving, self.halving_keep, self.halving_rank = halving, halving_keep, max(1, int(halving_rank))
        self.cache_mb = cache_mb
        self.baseline = baseline
        self.screened: set[Arch] = set()
        self._scorer = None
        self.eval_seconds = 0.0

    def share_key(self, arch: Arch) -> Any:
        return tuple(self.space.choice_indices(arch))  # neighbours in this order share prefixes

    @property
    def scorer(self):
        """The ``PathScorer`` over the prepared images (built on first use)."""
        if self._scorer is None:
            import torch

            from ..train.evaluate import recalibration_indices
            from ..train.path_scoring import PathScorer

            bn_x, _ = self.train_set.batch(recalibration_indices(len(self.train_set), self.n_bn_images, self.seed))
            x, y = self.eval_set.batch(torch.arange(len(self.eval_set)))
            self._scorer = PathScorer(self.supernet, bn_x, x, y, self.bn_batch_size, self.batch_size,
                                      cache_bytes=int(self.cache_mb) << 20)
        return self._scorer

    def _evaluate_batch(self, archs: Sequence[Arch]) -> Sequence[float]:
        import time

        t0 = time.perf_counter()
        with torch_threads(self.threads):
            if self.baseline or self.halving is None:
                out = self.shared(self._evaluate, archs)
            else:
                out = self._halving(archs)
        self.eval_seconds += time.perf_counter() - t0
        return out

    def _evaluate(self, archs: Sequence[Arch]) -> Sequence[float]:
        if self.baseline:
            return self._baseline(archs)
        n = len(self.eval_set)
        return list(100.0 * self.scorer.correct([self.space.choice_indices(a) for a in archs]) / n)

    def _halving(self, archs: Sequence[Arch]) -> list[float]:
        """Successive halving over one batch: every arch on the first ``halving`` images, then on all
        images the best ``halving_keep`` share and every arch that may still rank among the
        ``halving_rank`` best evaluated so far (its screening accuracy's 99% upper bound reaches the
        accuracy of the ``halving_rank``-th best): an arch not completed could not have survived
        NSGA-II's elitist selection, so the search proceeds as it would have without halving."""
        n, n1 = len(self.eval_set), int(self.halving)  # type: ignore[arg-type]

        def screen(part: Sequence[Arch]) -> list[float]:
            return [float(c) for c in self.scorer.correct([self.space.choice_indices(a) for a in part], rows=(0, n1),
                                                          keep_states=True)]

        def complete(part: Sequence[Arch]) -> list[float]:
            return [float(c) for c in self.scorer.correct([self.space.choice_indices(a) for a in part], rows=(n1, n))]

        first = np.asarray(self.shared(screen, archs))
        best_so_far = sorted(self.cache.values(), reverse=True)
        bar = best_so_far[self.halving_rank - 1] if len(best_so_far) >= self.halving_rank else -np.inf
        keep = max(1, int(np.ceil(self.halving_keep * len(archs))))
        order = sorted(range(len(archs)), key=lambda i: (-first[i], i))
        promoted = sorted(set(order[:keep]) | {i for i in range(len(archs)) if 100.0 * upper_bound(first[i], n1) >= bar})
        rest = self.shared(complete, [archs[i] for i in promoted])
        out = [100.0 * c / n1 for c in first]
        for i, c in zip(promoted, rest):
            out[i] = 100.0 * (first[i] + c) / n
        floor = min([bar, *(out[i] for i in promoted)])
        for i in set(range(len(archs))) - set(promoted):
            out[i] = min(out[i], float(np.nextafter(floor, -np.inf)))  # ranked below every completed arch
            self.screened.add(archs[i])
        return out

    def _baseline(self, archs: Sequence[Arch]) -> list[float]:
        """The loop before ``PathScorer``: per arch, re-estimate BN and score, re-preparing the images each time."""
        from ..train.evaluate import evaluate_path, recalibrate_bn

        out = []
        for arch in archs:
            path = self.space.choice_indices(arch)
            recalibrate_bn(self.supernet, path, self.train_set, n_images=self.n_bn_images,
                           batch_size=self.bn_batch_size, seed=self.seed)
            out.append(evaluate_path(self.supernet, path, self.eval_set, batch_size=self.batch_size)[1])
        return out

    def settings(self) -> dict[str, Any]:
        out = {"kind": "supernet", "checkpoint": str(Path(self.trained.path).resolve()) if self.trained.path else None,
               "iteration": self.trained.meta.get("iteration"), "eval_images": len(self.eval_set),
               "bn_images": self.n_bn_images, "seed": self.seed}
        if self.halving is not None:
            out["halving"] = {"images": self.halving, "keep": self.halving_keep, "rank": self.halving_rank}
        return out


class ScratchEvaluator(Evaluator):
    """Accuracy after training the standalone network from scratch for a short schedule.

    The slow but unbiased reference (FNAS's default evaluator, and a check on how well the
    supernet ranks): SGD with Nesterov momentum and a cosine schedule for ``epochs`` passes
    over (at most ``n_train`` images of) the training set, then top-1 on ``n_eval`` val images.
    Seeded, so the same arch gets the same accuracy.
    """

    def __init__(self, datasets, epochs: float = 1.0, batch_size: int = 128, lr: float = 0.05,
                 weight_decay: float = 4e-5, n_train: int | None = None, n_eval: int = 1000, seed: int = 0,
                 threads: int | None = None) -> None:
        super().__init__()
        self.threads = threads
        self.ds = datasets
        self.epochs, self.batch_size, self.lr, self.weight_decay = epochs, batch_size, lr, weight_decay
        self.n_train = min(len(datasets.train), n_train or len(datasets.train))
        self.n_eval = min(len(datasets.val), n_eval)
        self.seed = seed

    def _evaluate(self, archs: Sequence[Arch]) -> Sequence[float]:
        with torch_threads(self.threads):
            return [self.train_and_score(a) for a in archs]

    def settings(self) -> dict[str, Any]:
        return {"kind": "scratch", "data": getattr(self.ds.train, "name", None), "epochs": self.epochs,
                "batch_size": self.batch_size, "lr": self.lr, "weight_decay": self.weight_decay,
                "train_images": self.n_train, "eval_images": self.n_eval, "seed": self.seed}

    def train_and_score(self, arch: Arch) -> float:
        import math

        import torch

        from ..nn.network import build_network
        from ..train import seeds
        from ..train.loader import EpochBatchSampler
        from ..train.standalone import SGDRecipe, accuracy, train_from_scratch

        torch.manual_seed(self.seed)
        net = build_network(arch)
        steps = max(1, math.ceil(self.epochs * self.n_train / self.batch_size))
        batches = EpochBatchSampler(self.n_train, self.batch_size, lambda epoch: seeds.mix_seed(self.seed, seeds.SHUFFLE, epoch),
                                    stop=steps)
        train_from_scratch(net, self.ds.train.subset(torch.arange(self.n_train)), batches,
                           SGDRecipe(lr=self.lr, weight_decay=self.weight_decay))
        return accuracy(net, self.ds.val.subset(torch.arange(self.n_eval)))


# ---- the registry: request -> (space, evaluator, candidate pool best-first, description) ----------
@dataclass(frozen=True)
class EvaluatorRequest:
    """The user's choice of accuracy source, as ``hwnas search`` takes it."""

    supernet: str | Path | None = None
    benchmark: str | None = None
    space: str | None = None
    data: str = "builtin"
    scratch_epochs: float = 1.0
    n_eval: int = 1000
    bn_batches: int = 4
    seed: int = 0
    threads: int | None = None
    space_args: dict[str, Any] = field(default_factory=dict)  # the space's variant (e.g. its input resolution)
    halving: int | None = None  # successive halving: screening images (supernet evaluator only)
    halving_keep: float = 0.25
    halving_rank: int = 50


EVALUATORS: Registry[tuple[Any, Evaluator, list[Arch], str]] = Registry("evaluator")
BENCHMARKS = ("nas-bench-macro",)


@EVALUATORS.register("tabular")
def tabular(request: EvaluatorRequest) -> tuple[Any, Evaluator, list[Arch], str]:
    from ..space.registry import create_space

    if request.benchmark not in BENCHMARKS:
        raise HwnasError(f"unknown benchmark {request.benchmark!r}; known: {', '.join(BENCHMARKS)}")
    space = create_space(request.benchmark)
    if request.space is not None and request.space != request.benchmark:
        space = create_space(request.space)  # a shrunk space file of the benchmark's space is a part of its table
        if space.name != request.benchmark:
            raise HwnasError(f"benchmark {request.benchmark!r} has its own space; drop --space {request.space}")
    return space, TabularEvaluator(), [], f"tabular ({request.benchmark})"


@EVALUATORS.register("supernet")
def supernet(request: EvaluatorRequest) -> tuple[Any, Evaluator, list[Arch], str]:
    from ..train.checkpoint import load_checkpoint

    if request.supernet is None:
        raise HwnasError("the supernet evaluator needs --supernet CKPT (a run folder of `hwnas train`)")
    trained = load_checkpoint(request.supernet, space=request.space)
    ev = SupernetEvaluator(trained, n_eval=request.n_eval, bn_batches=request.bn_batches, seed=request.seed, threads=request.threads,
                           halving=request.halving, halving_keep=request.halving_keep, halving_rank=request.halving_rank)
    desc = f"supernet {trained.path} (BN recalibrated, {len(ev.eval_set)} held-out images"
    desc += (f"; successive halving: all on {request.halving}, on all the best {request.halving_keep:.0%} and any that may "
             f"rank among the {request.halving_rank} best)") if request.halving else ")"
    return trained.space, ev, [a for a, _ in trained.pool], desc


@EVALUATORS.register("scratch")
def scratch(request: EvaluatorRequest) -> tuple[Any, Evaluator, list[Arch], str]:
    if request.supernet is not None:  # the supernet's space and data, trained from scratch per arch
        from ..train.checkpoint import load_checkpoint

        trained = load_checkpoint(request.supernet, space=request.space)
        sp, ds, source, pool = trained.space, trained.datasets(), "the supernet's data", [a for a, _ in trained.pool]
    else:
        if request.space is None:
            raise HwnasError("train-from-scratch evaluation needs --space NAME (and --data, default builtin)")
        from ..space.registry import create_space
        from ..train.data import build_datasets

        sp = create_space(request.space, **request.space_args)
        ds, source, pool = build_datasets(request.data, resolution=sp.resolution, seed=request.seed), request.data, []
    ev = ScratchEvaluator(ds, epochs=request.scratch_epochs, n_eval=request.n_eval, seed=request.seed, threads=request.threads)
    return sp, ev, pool, f"train from scratch ({request.scratch_epochs:g} epoch(s)) on {source}"


@EVALUATORS.register("macs")
def macs(request: EvaluatorRequest) -> tuple[Any, Evaluator, list[Arch], str]:
    from ..space.registry import create_space

    if request.space is None:
        raise HwnasError("the MACs proxy needs --space NAME (e.g. --space ofa-mbv3 --evaluator macs)")
    return (create_space(request.space, **request.space_args), MacsProxyEvaluator(), [],
            "MACs proxy: no accuracy source, the score is the arch's multiply-adds in millions (not an accuracy)")
