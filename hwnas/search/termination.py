"""When a search stops, and who hears about its progress (pymoo's termination and callbacks).

A ``Termination`` answers ``reason(problem)``: why to stop now, or None. They compose with
``|`` (stop at the first that fires): ``MaxEvaluations(200) | Stagnation(50) | WallTime(600)``.
Every searcher's loop asks ``Searcher.terminated(problem)`` and nothing else.

A ``SearchCallback`` hears ``on_start``, ``on_record`` (every newly evaluated arch, as it is
made: the history file, a progress bar with an ETA) and ``on_end``.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from .base import Record, SearchProblem


class Termination:
    """Stop rule of a search; ``start`` is called once when the search begins."""

    def start(self, problem: "SearchProblem") -> None:
        return None

    def reason(self, problem: "SearchProblem") -> str | None:
        raise NotImplementedError

    def __or__(self, other: "Termination") -> "AnyOf":
        return AnyOf(self, other)


class AnyOf(Termination):
    def __init__(self, *parts: Termination) -> None:
        self.parts = [q for p in parts for q in (p.parts if isinstance(p, AnyOf) else [p])]

    def start(self, problem: "SearchProblem") -> None:
        for p in self.parts:
            p.start(problem)

    def reason(self, problem: "SearchProblem") -> str | None:
        return next((r for p in self.parts if (r := p.reason(problem)) is not None), None)

    def max_evaluations(self) -> int | None:
        caps = [p.n for p in self.parts if isinstance(p, MaxEvaluations)]
        return min(caps) if caps else None


class MaxEvaluations(Termination):
    """At most ``n`` archs evaluated in total (a resumed history counts: the job continues to ``n``)."""

    def __init__(self, n: int) -> None:
        self.n = int(n)

    def reason(self, problem: "SearchProblem") -> str | None:
        return f"{self.n} evaluations done" if problem.n_evaluations >= self.n else None


class Stagnation(Termination):
    """No better feasible score in the last ``window`` evaluations."""

    def __init__(self, window: int) -> None:
        self.window = int(window)

    def reason(self, problem: "SearchProblem") -> str | None:
        best = problem.best()
        if best is None or not math.isfinite(best.score):
            return None
        since = problem.n_evaluations - best.evaluation
        return f"no better arch in {since} evaluations" if since >= self.window else None


class WallTime(Termination):
    """At most ``seconds`` of wall time from the start of the search."""

    def __init__(self, seconds: float) -> None:
        self.seconds = float(seconds)
        self.t0 = time.monotonic()

    def start(self, problem: "SearchProblem") -> None:
        self.t0 = time.monotonic()

    def reason(self, problem: "SearchProblem") -> str | None:
        return f"wall time {self.seconds:g} s reached" if time.monotonic() - self.t0 >= self.seconds else None


class SearchCallback:
    """Hears a search as it runs; override what you need."""

    def on_start(self, problem: "SearchProblem", max_evaluations: int) -> None:
        return None

    def on_record(self, problem: "SearchProblem", record: "Record") -> None:
        return None

    def on_end(self, problem: "SearchProblem", reason: str | None) -> None:
        return None


class Progress(SearchCallback):
    """Calls ``fn(done, total, best)`` after every newly evaluated arch (done counts this run's evaluations)."""

    def __init__(self, fn: Callable[[int, int, Any], None]) -> None:
        self.fn = fn
        self.start_n = 0
        self.total = 0

    def on_start(self, problem: "SearchProblem", max_evaluations: int) -> None:
        self.start_n, self.total = problem.n_evaluations, max_evaluations - problem.n_evaluations
        self.fn(0, self.total, problem.best())

    def on_record(self, problem: "SearchProblem", record: "Record") -> None:
        self.fn(problem.n_evaluations - self.start_n, self.total, problem.best())


class HistoryWriter(SearchCallback):
    """Appends every new record to a history.jsonl (fsynced: a crash loses at most one line)."""

    def __init__(self, path: Any) -> None:
        self.path = path

    def on_record(self, problem: "SearchProblem", record: "Record") -> None:
        from .base import append_history

        append_history(self.path, record)


class ProgressLines(SearchCallback):
    """Progress as plain lines (output not on a terminal): one at the start, then at least every
    ``every_s`` seconds while the search runs -- also while one slow evaluation is running --
    with the archs evaluated, the best accuracy so far, the time taken and the time left."""

    def __init__(self, write: Callable[[str], None], every_s: float = 10.0, clock: Callable[[], float] = time.monotonic,
                 background: bool = True) -> None:
        import threading

        self.write, self.every_s, self.clock, self.background = write, float(every_s), clock, background
        self.done = self.total = self.start_n = 0
        self.best: Any = None
        self.score_label = "accuracy %"
        self.t0 = self.last = 0.0
        self._stop = threading.Event()
        self._thread: Any = None

    def line(self) -> str:
        elapsed = self.clock() - self.t0
        best = f", best {score_text(self.best.accuracy, self.score_label)}" if self.best is not None else ""
        eta = _clock_text(elapsed / self.done * (self.total - self.done)) if self.done else "unknown"
        return f"search: {self.done}/{self.total} archs evaluated{best}, {_clock_text(elapsed)} elapsed, ETA {eta}"

    def tick(self) -> None:
        """Write a line if ``every_s`` has passed since the last one."""
        if self.clock() - self.last >= self.every_s:
            self.last = self.clock()
            self.write(self.line())

    def on_start(self, problem: "SearchProblem", max_evaluations: int) -> None:
        self.start_n, self.total, self.done = problem.n_evaluations, max_evaluations - problem.n_evaluations, 0
        self.best = problem.best()
        self.score_label = getattr(problem.evaluator, "score_label", "accuracy %")
        self.t0 = self.last = self.clock()
        self.write(self.line())
        self._stop.clear()  # the same callback may hear several searches in a row (one per input resolution)
        if self.background:
            import threading

            def run() -> None:
                while not self._stop.wait(min(1.0, self.every_s)):
                    self.tick()

            self._thread = threading.Thread(target=run, name="search-progress", daemon=True)
            self._thread.start()

    def on_record(self, problem: "SearchProblem", record: "Record") -> None:
        self.done, self.best = problem.n_evaluations - self.start_n, problem.best()
        self.tick()

    def on_end(self, problem: "SearchProblem", reason: str | None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.write(self.line().replace(", ETA", f" ({reason}), ETA").rsplit(", ETA", 1)[0])


def score_text(score: float, label: str) -> str:
    """A score as the evaluator means it (``Evaluator.score_label``): ``91.20%`` for an accuracy,
    ``MACs proxy (M) 274.04`` for the MACs proxy."""
    return f"{score:.2f}%" if label.endswith("%") else f"{label} {score:.2f}"


def _clock_text(seconds: float) -> str:
    s = int(round(max(0.0, seconds)))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"
