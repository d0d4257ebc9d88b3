"""HWNAS_QUICK=1: training, search and validation sizes capped, and each cap said on stderr."""

from __future__ import annotations

import pytest

from hwnas import quick


def test_cap_is_off_without_the_variable(monkeypatch):
    monkeypatch.delenv(quick.ENV, raising=False)
    assert not quick.enabled()
    assert quick.cap("train_iterations", 1000) == 1000 and quick.cap("search_population", None) is None
    monkeypatch.setenv(quick.ENV, "0")
    assert quick.cap("train_iterations", 1000) == 1000


def test_cap_lowers_and_says_so_once(monkeypatch, capsys):
    monkeypatch.setenv(quick.ENV, "1")
    monkeypatch.setattr(quick, "_said", set())
    assert quick.cap("validate_samples", 100) == quick.CAPS["validate_samples"][0]
    assert quick.cap("validate_samples", 100) == quick.CAPS["validate_samples"][0]
    assert quick.cap("validate_samples", 2) == 2  # already below the cap: unchanged
    assert quick.cap("search_population", None) == quick.CAPS["search_population"][0]  # the default becomes the cap
    err = capsys.readouterr().err.splitlines()
    assert err == [f"HWNAS_QUICK=1: whole networks validated capped at {quick.CAPS['validate_samples'][0]} (asked: 100)",
                   f"HWNAS_QUICK=1: search population capped at {quick.CAPS['search_population'][0]}"]


def test_quick_training_and_search_are_small(monkeypatch, tmp_path, capsys, one_torch_thread):
    from hwnas.search.api import run_search
    from hwnas.train.trainer import TrainConfig, train_supernet

    monkeypatch.setenv(quick.ENV, "1")
    monkeypatch.setattr(quick, "_said", set())
    cfg = TrainConfig(space="tiny", n_train=64, n_val=32, n_path_eval=8, batch_size=8, pool_size=5, m=2, k=1, ckpt_every=0,
                      early_stop=False)
    trainer, summary = train_supernet(cfg, tmp_path / "run")
    assert summary["iterations"] == summary["planned_iterations"] == quick.CAPS["train_iterations"][0]
    assert trainer.config.max_iters == quick.CAPS["train_iterations"][0]  # recorded with the run: the same command reuses it
    # the tabular benchmark: the default search (population 50 x 20 generations) evaluates 6 x 2
    out = run_search(benchmark="nas-bench-macro", latency="0.9ms", out=tmp_path / "search", plot=False)
    assert out.result.n_evaluations == quick.CAPS["search_population"][0] * quick.CAPS["search_generations"][0]
    err = capsys.readouterr().err
    for name in ("train_iterations", "search_population", "search_generations"):
        assert f"{quick.CAPS[name][1]} capped at {quick.CAPS[name][0]}" in err
