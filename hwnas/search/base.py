"""The searcher contract: a problem, a searcher that runs on it, and the result it returns.

Every searcher (NSGA-II, random, evolution, FNAS) is one class registered in ``SEARCHERS`` and
sees the same ``SearchProblem``. The problem does all shared bookkeeping -- accuracy through
the evaluator, latency/FLOPs/params, the score from ``reward.Objective``, feasibility under the
budgets, and the history with an evaluation index -- so a searcher only decides *which* archs
to ask for next (pymoo-style: the loop is the searcher's, the parts are shared).

Contract for a searcher (one new file plus its registration)::

    @register_searcher("name")
    class MySearcher(Searcher):
        options = ("population",)          # what a user may set (``hwnas search --population``)
        def _run(self, problem, max_evaluations, rng): ...
            # ask problem.evaluate([...]) while not self.terminated(problem)

``Searcher.run`` wraps ``_run``: seeds the generator, sets the stop rule
(``termination.MaxEvaluations`` composed with the caller's), tells the callbacks (progress,
history file) about every new record, times the run and builds the ``SearchResult`` (best
feasible arch, history, Pareto front) from the problem's history.
"""

from __future__ import annotations

import json
import math
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Protocol, Sequence

import numpy as np

from ..errors import HwnasError
from ..registry import Registry
from ..space.arch import Arch
from ..space.space import SearchSpace
from .budgets import Budgets, Constraints, LatencyFn
from .encoding import IntegerEncoding
from .termination import AnyOf, MaxEvaluations, Progress, SearchCallback, Termination
from .evaluator import Evaluator
from .reward import Objective

class ProgressFn(Protocol):
    def __call__(self, done: int, total: int, best: "Record | None") -> None: ...


@dataclass(frozen=True)
class Record:
    """One evaluated arch: what a history line, a front point and best.json hold."""

    arch: Arch
    accuracy: float
    latency_ms: float | None
    latency_std_ms: float | None
    flops: int
    params: int
    score: float
    feasible: bool
    evaluation: int  # 1-based index of the evaluation that produced it
    violations: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = self.arch.to_dict()
        d["compact"] = self.arch.get_space().to_compact(self.arch)
        d.update(
            accuracy=self.accuracy, latency_ms=self.latency_ms, latency_std_ms=self.latency_std_ms,
            flops=self.flops, params=self.params, score=_finite_or_none(self.score),
            feasible=self.feasible, evaluation=self.evaluation,
        )
        if self.violations:
            d["violations"] = self.violations
        return d

    @staticmethod
    def from_dict(d: dict[str, Any]) -> "Record":
        """A record from its JSON; a field of the wrong kind or a non-finite/negative latency is an HwnasError."""
        arch = Arch.from_dict(d, source="history record")
        for name in ("accuracy", "flops", "params", "evaluation", "feasible"):
            if name not in d:
                raise HwnasError(f"history record lacks {name!r}")
        accuracy = _number(d["accuracy"], "accuracy")
        lat, std = (None if d.get(k) is None else _number(d[k], k, non_negative=True) for k in ("latency_ms", "latency_std_ms"))
        counts = [_number(d[k], k, non_negative=True) for k in ("flops", "params", "evaluation")]
        score = d.get("score")
        violations = d.get("violations") or {}
        if not isinstance(d["feasible"], bool) or not isinstance(violations, dict):
            raise HwnasError("history record has a bad 'feasible' or 'violations' field")
        return Record(arch, accuracy, lat, std, int(counts[0]), int(counts[1]),
                      -math.inf if score is None else _number(score, "score"), d["feasible"], int(counts[2]),
                      {str(k): _number(v, f"violations {k}") for k, v in violations.items()})


def _number(value: Any, name: str, non_negative: bool = False) -> float:
    """A record's figure as a float: a finite real number (not negative where that is meaningless)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise HwnasError(f"history record's {name} is {value!r}, not a finite number")
    if non_negative and value < 0:
        raise HwnasError(f"history record's {name} is {value!r}, which cannot be negative")
    return float(value)


def _finite_or_none(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


class SearchProblem:
    """What is searched and how an arch is judged; the one place searchers get scores from.

    ``evaluate(archs)`` returns one ``Record`` per arch (cached: asking twice costs one
    evaluation) and appends new ones to ``history``. ``on_record`` (e.g. a history.jsonl
    writer) sees every new record as it is made, so nothing measured is lost on a crash.
    """

    def __init__(
        self,
        space: SearchSpace,
        evaluator: Evaluator,
        latency: LatencyFn | None = None,
        budgets: Budgets | None = None,
        objective: Objective | None = None,
        initial_pool: Sequence[Arch] = (),
        on_record: Callable[[Record], None] | None = None,
    ) -> None:
        self.space = space
        self.evaluator = evaluator
        self.encoding = IntegerEncoding(space)
        self._constraints_of(budgets or Budgets(), latency, objective)
        self.initial_pool = list(initial_pool)
        self.on_record = on_record
        self.listeners: list[SearchCallback] = []  # a running searcher's callbacks (progress, history file)
        self.history: list[Record] = []
        self._records: dict[Arch, Record] = {}

    # ---- the one constraint object (budgets, latency predictor, objective) ----------------
    def _constraints_of(self, budgets: Budgets, latency: LatencyFn | None, objective: Objective | None) -> None:
        admission = getattr(getattr(self, "constraints", None), "admission", None)  # kept when the budgets change
        self.constraints = Constraints(self.space, budgets, latency, objective, self.encoding, admission)

    @property
    def budgets(self) -> Budgets:
        return self.constraints.budgets

    @budgets.setter
    def budgets(self, value: Budgets) -> None:
        self._constraints_of(value, self.latency, self.objective)

    @property
    def latency(self) -> LatencyFn | None:
        return self.constraints.latency

    @property
    def objective(self) -> Objective:
        return self.constraints.objective

    @property
    def latency_is_hard(self) -> bool:
        """Under the MnasNet reward the latency budget is the target of a soft penalty, not a constraint."""
        return self.constraints.latency_is_hard

    # ---- cheap parts (no evaluation spent) -----------------------------------------------
    def costs(self, arch: Arch) -> tuple[float | None, float | None, int, int]:
        """(latency ms, latency uncertainty, FLOPs, params): analytic and table-predicted, cached."""
        return self.constraints.costs(arch)

    def violations(self, arch: Arch) -> dict[str, float]:
        """Every budget the arch exceeds (relative excess), soft latency included."""
        return self.constraints.violations(arch)

    def latency_of_indices(self, X: np.ndarray) -> np.ndarray | None:
        """Vectorized predicted latency of an (n, layers) index matrix (None without a predictor)."""
        return self.constraints.latency_of_indices(X)

    def constraint_matrix(self, X: np.ndarray) -> np.ndarray:
        """(n, hard budgets) relative excess, pymoo's G (<= 0 is satisfied)."""
        return self.constraints.matrix(X)

    def feasible_mask(self, X: np.ndarray) -> np.ndarray:
        return self.constraints.feasible_mask(X)

    def sample_feasible(self, rng: np.random.Generator, n: int, max_draws: int = 200_000) -> np.ndarray:
        """n random encodings meeting every hard budget.

        Uniform rejection sampling while it finds enough; when the budget admits only a sliver
        of a big space, the rest are grown from the cheapest arch (each layer, in random order,
        set to a random choice that keeps the arch within budget), which never fails when any arch fits.
        """
        out: list[np.ndarray] = []
        got = drawn = 0
        while got < n and drawn < max_draws:
            batch = self.encoding.sample(rng, max(256, 4 * (n - got)))
            drawn += len(batch)
            ok = batch[self.feasible_mask(batch)]
            out.append(ok[: n - got])
            got += len(out[-1])
        if got < n:
            out.append(self._grow_feasible(rng, n - got))
        return np.concatenate(out, axis=0)

    def cheapest_row(self) -> np.ndarray:
        """Per layer the choice with the smallest total relative cost over the active budgets (costs are per-layer sums)."""
        enc = self.encoding
        base = np.zeros(enc.n_var, dtype=np.int64)
        row = base.copy()
        for j, n in enumerate(enc.n_choices):
            cand = np.tile(base, (int(n), 1))
            cand[:, j] = np.arange(n)
            G = self.constraint_matrix(cand)
            cost = G.sum(axis=1) if G.shape[1] else enc.flops_params(cand)[0].astype(float)
            row[j] = int(np.argmin(cost))
        return row

    def _grow_feasible(self, rng: np.random.Generator, n: int, passes: int = 2) -> np.ndarray:
        enc = self.encoding
        base = self.cheapest_row()
        if not self.feasible_mask(base[None])[0]:
            raise HwnasError(f"no arch of space {self.space.name!r} meets {self.budgets.describe()} together; raise a budget")
        X = np.tile(base, (n, 1))
        rows = np.arange(n)
        for _ in range(passes):
            order = np.argsort(rng.random((n, enc.n_var)), axis=1)
            for step in range(enc.n_var):
                j = order[:, step]
                prop = X.copy()
                prop[rows, j] = np.floor(rng.random(n) * enc.n_choices[j]).astype(np.int64)
                ok = self.feasible_mask(prop)
                X[ok] = prop[ok]
        return X

    # ---- evaluation ------------------------------------------------------------------
    @property
    def n_evaluations(self) -> int:
        """Archs evaluated so far (distinct; cache hits are free)."""
        return len(self.history)

    def evaluate(self, archs: Sequence[Arch]) -> list[Record]:
        todo = [a for a in dict.fromkeys(archs) if a not in self._records]
        if todo:
            accs = self.evaluator.evaluate(todo)
            for arch, acc in zip(todo, accs):
                self._add(self._make_record(arch, float(acc), len(self.history) + 1))
        return [self._records[a] for a in archs]

    def _make_record(self, arch: Arch, acc: float, index: int) -> Record:
        lat, std, flops, params = self.costs(arch)
        score, feasible, viol = self.constraints.judge(arch, acc)
        return Record(arch, acc, lat, std, flops, params, score, feasible, index, viol)

    def _add(self, rec: Record) -> None:
        self._records[rec.arch] = rec
        self.history.append(rec)
        if self.on_record is not None:
            self.on_record(rec)
        for cb in self.listeners:
            cb.on_record(self, rec)

    def preload(self, records: Iterable[Record]) -> int:
        """Take records of an earlier run (history.jsonl) so a resumed search does not pay for them again.

        Accuracy comes from the record; costs and score are recomputed under this problem's budgets.
        """
        n = 0
        for r in records:
            if r.arch in self._records:
                continue
            self.evaluator.cache[r.arch] = r.accuracy
            rec = self._make_record(r.arch, r.accuracy, len(self.history) + 1)
            self._records[rec.arch] = rec
            self.history.append(rec)
            n += 1
        return n

    def record_of(self, arch: Arch) -> Record | None:
        """The record of an already evaluated arch (None: evaluating it would cost one evaluation)."""
        return self._records.get(arch)

    def best(self) -> Record | None:
        """Highest score among feasible records (ties: the earlier evaluation)."""
        best = None
        for r in self.history:
            if r.feasible and math.isfinite(r.score) and (best is None or r.score > best.score):
                best = r
        return best


def pareto_front(records: Sequence[Record], use_latency: bool = True) -> list[Record]:
    """Non-dominated feasible records: max accuracy, min latency (or FLOPs without a latency table)."""
    pts = [r for r in records if r.feasible]
    if not pts:
        return []

    def cost(r: Record) -> float:
        return float(r.latency_ms) if use_latency and r.latency_ms is not None else float(r.flops)

    pts = sorted(pts, key=lambda r: (cost(r), -r.accuracy))
    front: list[Record] = []
    best_acc = -math.inf
    for r in pts:
        if r.accuracy > best_acc:
            front.append(r)
            best_acc = r.accuracy
    return front


@dataclass
class SearchResult:
    algorithm: str
    seed: int
    best: Record | None
    history: list[Record]
    front: list[Record]
    n_evaluations: int
    wall_time_s: float
    budgets: Budgets
    objective: Objective
    info: dict[str, Any] = field(default_factory=dict)

    def top(self, k: int = 10) -> list[Record]:
        """The k best feasible records by score (what the CLI prints)."""
        feas = [r for r in self.history if r.feasible and math.isfinite(r.score)]
        return sorted(feas, key=lambda r: (-r.score, r.evaluation))[:k]

    def summary(self) -> dict[str, Any]:
        return {
            "algorithm": self.algorithm, "seed": self.seed, "n_evaluations": self.n_evaluations,
            "wall_time_s": round(self.wall_time_s, 3),
            "time_per_evaluation_s": round(self.wall_time_s / max(1, self.n_evaluations), 5),
            "budgets": self.budgets.to_dict(),
            "objective": {"kind": self.objective.kind, "target_ms": self.objective.target,
                          "alpha": self.objective.alpha, "beta": self.objective.beta},
            "best": self.best.to_dict() if self.best else None, **self.info,
        }


class Searcher(ABC):
    """Base of all searchers: ``run`` does the shared bookkeeping, ``_run`` is the algorithm.

    A searcher declares the options a user may set (``options``: its constructor's keyword
    names, e.g. ``population``) and asks ``terminated(problem)`` in its loop; the stop rule
    (``termination``) and who hears about progress (``callbacks``) are the caller's.
    """

    name = "searcher"
    default_evaluations = 1000
    options: tuple[str, ...] = ()

    def run(
        self,
        problem: SearchProblem,
        max_evaluations: int | None = None,
        seed: int = 0,
        progress: ProgressFn | None = None,
        termination: Termination | None = None,
        callbacks: Sequence[SearchCallback] = (),
    ) -> SearchResult:
        budget = int(max_evaluations or self.default_evaluations)
        if budget < 1:
            raise HwnasError(f"max evaluations must be at least 1, not {budget}")
        self.termination = AnyOf(MaxEvaluations(budget), *([termination] if termination is not None else []))
        listeners = [*callbacks, *([Progress(progress)] if progress is not None else [])]
        rng = np.random.default_rng(seed)
        t0 = time.perf_counter()
        start = problem.n_evaluations
        self.termination.start(problem)
        problem.listeners.extend(listeners)
        try:
            for cb in listeners:
                cb.on_start(problem, budget)
            info = self._run(problem, budget, rng) or {}
            reason = self.termination.reason(problem) or "the searcher finished"
            for cb in listeners:
                cb.on_end(problem, reason)
        finally:
            for cb in listeners:
                problem.listeners.remove(cb)
        wall = time.perf_counter() - t0
        return SearchResult(
            algorithm=self.name, seed=seed, best=problem.best(), history=list(problem.history),
            front=pareto_front(problem.history, use_latency=problem.latency is not None),
            n_evaluations=problem.n_evaluations, wall_time_s=wall, budgets=problem.budgets,
            objective=problem.objective,
            info={"evaluations_this_run": problem.n_evaluations - start, "stopped": reason, **info},
        )

    def terminated(self, problem: SearchProblem) -> bool:
        """Whether the run's stop rule (max evaluations, stagnation, wall time, ...) has fired."""
        return self.termination.reason(problem) is not None

    @abstractmethod
    def _run(self, problem: SearchProblem, max_evaluations: int, rng: np.random.Generator) -> dict[str, Any] | None:
        """Ask ``problem.evaluate`` until ``terminated(problem)``, never past ``max_evaluations``; may return extra info."""


SEARCHERS: Registry[Searcher] = Registry("search algorithm")
register_searcher = SEARCHERS.register


_FNAS_IMPORT_ERROR: list[str] = []


def _load_builtin(fnas: bool = False) -> None:
    from . import baselines, nsga2  # noqa: F401  (registration side effects)

    if fnas and "fnas" not in SEARCHERS and not _FNAS_IMPORT_ERROR:
        try:  # FNAS registers itself from its package; imported only when asked for (it needs torch)
            from . import fnas as _fnas  # noqa: F401
        except Exception as e:  # a broken or absent FNAS must not take the other searchers down
            _FNAS_IMPORT_ERROR.append(f"{type(e).__name__}: {e}")


def searcher_class(name: str) -> type[Searcher]:
    """The searcher registered as ``name`` (``nsga2``, ``random``, ``evolution``, ``fnas``), not yet built."""
    _load_builtin(fnas=name == "fnas")
    if name == "fnas" and name not in SEARCHERS and _FNAS_IMPORT_ERROR:
        raise HwnasError(f"the fnas searcher cannot be loaded ({_FNAS_IMPORT_ERROR[0]}); use --algorithm nsga2")
    return SEARCHERS.builder(name)  # type: ignore[return-value]


def create_searcher(name: str, **options: Any) -> Searcher:
    """The searcher registered as ``name``, built with ``options``."""
    return searcher_class(name)(**options)


def list_searchers(pattern: str = "*") -> list[str]:
    _load_builtin(fnas=True)
    return SEARCHERS.names(pattern)


# ---- history file ------------------------------------------------------------------------
def append_history(path: str | Path, rec: Record) -> None:
    """Append one line and fsync: a crash loses at most the line being written."""
    import os

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p, "a", encoding="utf-8") as f:
        f.write(json.dumps(rec.to_dict()) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_history(path: str | Path) -> list[Record]:
    """Records of a history.jsonl; a torn last line (crash mid-write) is skipped."""
    from ..io import read_text_file

    p = Path(path)
    if not p.exists():
        return []
    fix = "remove the file or pick another --out"
    out = []
    lines = read_text_file(p, "search history", fix).splitlines()
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
            if not isinstance(d, dict):
                raise HwnasError(f"a JSON {type(d).__name__}, not an object")
            out.append(Record.from_dict(d))
        except (ValueError, RecursionError, HwnasError) as e:  # JSONDecodeError is a ValueError
            if i == len(lines) - 1 and not isinstance(e, HwnasError):
                break  # a line torn by a crash mid-write
            raise HwnasError(f"{p}: line {i + 1} is not a search record ({e}); {fix}") from None
    return out
