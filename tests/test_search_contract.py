"""The searcher contract (termination, callbacks, declared options, registries) and resuming a search."""

import json
import os

import numpy as np
import pytest

from hwnas.errors import HwnasError
from hwnas.search.api import run_search
from hwnas.search.base import Budgets, SearchProblem, Searcher, create_searcher, register_searcher
from hwnas.search.evaluator import TabularEvaluator
from hwnas.search.termination import MaxEvaluations, ProgressLines, SearchCallback, Stagnation, WallTime
from hwnas.space import create_space


@pytest.fixture(scope="module")
def bench():
    return TabularEvaluator().benchmark


@register_searcher("toy-first-choices")
class ToySearcher(Searcher):
    """A searcher in one class plus its registration: archs in order of their encoding."""

    name = "toy-first-choices"
    options = ("step",)

    def __init__(self, step: int = 1) -> None:
        self.step = step

    def _run(self, problem, max_evaluations, rng):
        i = 0
        while not self.terminated(problem):
            row = [(i * self.step // n ** j) % n for j, n in enumerate(problem.encoding.n_choices)]
            if problem.feasible_mask(np.array([row]))[0]:
                problem.evaluate([problem.encoding.decode(row)])
            i += 1
        return {"toy": i}


def test_a_registered_searcher_runs_through_run_search_with_its_own_options(tmp_path):
    out = run_search(flops="200M", benchmark="nas-bench-macro", algorithm="toy-first-choices", max_evaluations=12,
                     out=tmp_path / "toy", plot=False)
    assert out.result.n_evaluations == 12 and out.result.info["toy"] >= 12
    assert out.result.info["stopped"] == "12 evaluations done"
    with pytest.raises(HwnasError, match="--population needs --algorithm evolution or nsga2"):
        run_search(flops="200M", benchmark="nas-bench-macro", algorithm="random", population=10, out=tmp_path / "r")


def test_terminations_compose_and_the_first_that_fires_stops_the_search(bench):
    space = create_space("nas-bench-macro")
    prob = SearchProblem(space, TabularEvaluator(bench), budgets=Budgets(flops=space.flops_range()[1]))
    res = create_searcher("random", batch_size=5).run(prob, max_evaluations=2000, seed=0, termination=Stagnation(25))
    best = res.best
    assert res.info["stopped"].startswith("no better arch") and res.n_evaluations < 2000
    assert res.n_evaluations - best.evaluation >= 25 and res.n_evaluations - best.evaluation < 25 + 5
    prob2 = SearchProblem(space, TabularEvaluator(bench))
    res2 = create_searcher("random").run(prob2, max_evaluations=100, seed=0, termination=WallTime(0.0) | Stagnation(10))
    assert res2.info["stopped"].startswith("wall time") and res2.n_evaluations <= 50  # one batch at most
    assert (MaxEvaluations(5) | Stagnation(3) | WallTime(9)).parts[2].seconds == 9


def test_callbacks_hear_every_evaluated_arch(bench):
    space = create_space("nas-bench-macro")
    seen, calls = [], []

    class Spy(SearchCallback):
        def on_record(self, problem, record):
            seen.append(record.evaluation)

    prob = SearchProblem(space, TabularEvaluator(bench))
    create_searcher("nsga2", population=10, generations=3).run(
        prob, max_evaluations=25, seed=1, callbacks=[Spy()], progress=lambda done, total, best: calls.append((done, total)))
    assert seen == list(range(1, prob.n_evaluations + 1))
    assert calls[0] == (0, 25) and calls[1:] == [(i, 25) for i in range(1, prob.n_evaluations + 1)]  # per arch, total known


def test_progress_lines_off_a_terminal_come_at_least_every_interval():
    now = [0.0]
    lines = []
    cb = ProgressLines(lines.append, every_s=10, clock=lambda: now[0], background=False)
    space = create_space("nas-bench-macro")
    prob = SearchProblem(space, TabularEvaluator())
    cb.on_start(prob, 10)
    assert lines == ["search: 0/10 archs evaluated, 0:00:00 elapsed, ETA unknown"]
    for t, arch in ((3.0, "00000000"), (11.0, "11111111")):
        now[0] = t
        prob.evaluate([space.from_compact(arch)])
        cb.on_record(prob, prob.history[-1])
    assert len(lines) == 2 and lines[1].startswith("search: 2/10 archs evaluated, best ")
    assert lines[1].endswith("0:00:11 elapsed, ETA 0:00:44")  # 5.5 s per arch, 8 to go
    now[0] = 21.5  # a long evaluation: the background tick still reports
    cb.tick()
    assert len(lines) == 3 and "0:00:22 elapsed" in lines[2]
    cb.on_end(prob, "10 evaluations done")
    assert "(10 evaluations done)" in lines[-1]


def test_progress_lines_report_every_search_they_are_given_to():
    """One ProgressLines for several searches in a row (``--resolution``: one per input size): the
    background lines keep coming after the first search has ended."""
    import time as _time

    lines = []
    cb = ProgressLines(lines.append, every_s=0.05)
    space = create_space("nas-bench-macro")
    for _ in range(2):
        prob = SearchProblem(space, TabularEvaluator())
        cb.on_start(prob, 10)
        assert lines[-1].startswith("search: 0/10 archs evaluated")  # counts from this search's start
        n = len(lines)
        prob.evaluate([space.from_compact("00000000")])
        cb.on_record(prob, prob.history[-1])
        _time.sleep(0.5)
        assert len(lines) > n  # the background thread wrote while the search ran
        cb.on_end(prob, "done")


# ---- resume: same settings continue, other settings are refused ------------------------------
def _search(tmp_path, **kw):
    args = dict(benchmark="nas-bench-macro", algorithm="random", max_evaluations=10, out=tmp_path / "s", plot=False)
    args.update(kw)
    return run_search(**args)


def test_a_resumed_search_continues_to_its_total_and_counts_what_it_resumed(tmp_path):
    first = _search(tmp_path, flops="200M")
    again = _search(tmp_path, flops="200M", max_evaluations=15)
    assert again.resumed == 10 and again.result.n_evaluations == 15
    assert again.result.info["evaluations_this_run"] == 5
    lines = (tmp_path / "s" / "history.jsonl").read_text().splitlines()
    assert [json.loads(x)["evaluation"] for x in lines] == list(range(1, 16))
    assert [r.arch for r in again.result.history[:10]] == [r.arch for r in first.result.history]


@pytest.mark.parametrize("change,word", [({"flops": "150M"}, "budgets"), ({"flops": "200M", "latency": "0.5ms"}, "budgets"),
                                         ({"flops": "200M", "params": "2M"}, "budgets")])
def test_resuming_with_other_settings_is_refused_in_one_line(tmp_path, change, word):
    _search(tmp_path, flops="200M")
    before = (tmp_path / "s" / "history.jsonl").read_text()
    with pytest.raises(HwnasError) as e:
        _search(tmp_path, **change)
    msg = str(e.value)
    assert "\n" not in msg and word in msg and "new --out" in msg
    assert (tmp_path / "s" / "history.jsonl").read_text() == before  # nothing measured is lost


def test_resuming_with_another_objective_or_table_is_refused(tmp_path):
    _search(tmp_path, latency="0.6ms", backend="onnxruntime")
    with pytest.raises(HwnasError, match="objective"):
        _search(tmp_path, latency="0.6ms", backend="onnxruntime", objective="mnas")
    with pytest.raises(HwnasError, match="latency quantile"):
        _search(tmp_path, latency="0.6ms", backend="onnxruntime", latency_quantile=0.9)
    with pytest.raises(HwnasError, match="another table"):
        _search(tmp_path, latency="0.6ms", backend="litert")
    assert _search(tmp_path, latency="0.6ms", backend="onnxruntime", max_evaluations=12).resumed == 10
    (tmp_path / "s" / "search.json").unlink()  # a folder of an older version: its settings are unknown
    with pytest.raises(HwnasError, match="without readable settings"):
        _search(tmp_path, latency="0.6ms", backend="onnxruntime")


def test_best_json_names_the_supernet_relative_to_itself(tmp_path, monkeypatch):
    from hwnas.export.api import search_result
    from hwnas.nn import SuperNet
    from hwnas.train.checkpoint import save_checkpoint

    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "tiny").mkdir(parents=True)
    save_checkpoint(tmp_path / "runs" / "tiny", "supernet", {"model": SuperNet(create_space("tiny")).state_dict()},
                    {"space": "tiny", "data": "builtin", "config": {"n_val": 60, "n_train": 60, "n_path_eval": 20},
                     "pool": {"entries": []}})
    out = run_search(flops="100M", supernet="runs/tiny", algorithm="random", max_evaluations=2, n_eval=20, bn_batches=1,
                     out="searches/one", plot=False)
    best = json.loads(out.paths["best"].read_text())
    assert best["supernet"] == os.path.join("..", "..", "runs", "tiny")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    found = search_result(str(tmp_path / "searches" / "one" / "best.json"))["supernet"]
    assert os.path.samefile(found, tmp_path / "runs" / "tiny")
