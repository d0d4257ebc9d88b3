"""`hwnas run`'s bookkeeping: the configuration, the manifest, and which stages a re-run runs.

The stages here are stand-ins that record their calls (the real ones are run end to end in
tests/test_pipeline_resume.py): what is checked is the manifest logic around them.
"""

import json
import tomllib

import pytest

from hwnas.errors import HwnasError
from hwnas.pipeline import run as pipeline_run
from hwnas.pipeline.config import load_config, resolve, to_toml
from hwnas.pipeline.layout import STAGES, RunLayout
from hwnas.train.trainer import TrainConfig


@pytest.fixture
def fake_stages(monkeypatch):
    """Stages that write one output file each and record the order they ran in; ``fail`` makes one raise."""
    calls: list[str] = []
    fail: dict[str, BaseException] = {}

    def make(stage):
        def fn(cfg, layout, man, hooks, table):
            calls.append(stage)
            if stage in fail:
                raise fail.pop(stage)
            out = layout.root / f"{stage}.out"
            out.write_text(stage)
            key = {"train": "supernet_checkpoint", "search": "best", "export": "model", "verify": "sidecar"}.get(stage, "note")
            return "done", {key: out.name}, table
        return fn

    monkeypatch.setattr(pipeline_run, "_STAGE_FN", {s: make(s) for s in STAGES})
    return calls, fail


def _cfg(**run):
    return load_config(None, {f"run.{k}": v for k, v in {"name": "r", **run}.items()})


def test_defaults_are_the_readme_job_and_train_defaults_are_hwnas_trains(tmp_path):
    cfg = load_config(None)
    assert (cfg.name, cfg.device, cfg.space, cfg.latency, cfg.backend) == ("host-tiny-0.25ms", "host", "tiny", "0.25ms", "litert")
    assert cfg.export == {"format": "tflite", "precision": "fp32"}
    tc = cfg.train_config()
    assert tc.to_dict() == TrainConfig(space="tiny", seed=0).to_dict()  # hwnas train's own defaults, sampler included
    assert load_config(None, {"export.format": "onnx"}).backend == "onnxruntime"  # the table of the file's runtime


def test_the_cli_default_sampler_is_the_trainers():
    """hwnas run trains with TrainConfig's defaults; `hwnas train` must default to the same sampler."""
    import inspect

    from hwnas.cli import app
    import typer

    cmd = typer.main.get_command(app).commands["train"]
    (opt,) = [p for p in cmd.params if p.name == "sampler"]
    assert opt.default == TrainConfig().sampler, inspect.getsource(TrainConfig)


def test_resolved_config_round_trips_through_its_toml(tmp_path):
    cfg = load_config(None, {"run.name": "x", "train.epochs": 1.5, "train.filter_args": {"iterations": 3},
                             "search.population": 8, "space_args.num_classes": 10})
    text = to_toml(cfg.to_dict())
    path = tmp_path / "config.toml"
    path.write_text(text)
    again = load_config(path)
    assert again.to_dict() == cfg.to_dict()
    assert tomllib.loads(text)["train"]["filter_args"] == {"iterations": 3}


@pytest.mark.parametrize("overrides, words", [
    ({"train.epoch": 1}, "[train] has no setting 'epoch'"),
    ({"train.seed": 3}, "[train] seed is set for the whole run: put it in [run]"),
    ({"search.populaton": 3}, "[search] has no setting 'populaton'"),
    ({"run.latency": "0.25"}, "unit"),
    ({"export.format": "pt"}, "pt"),
    ({"run.space": "nope"}, "nope"),
    ({"run.name": "a/b"}, "plain folder name"),
    ({"nosection.x": 1}, "SECTION.KEY"),
])
def test_a_bad_setting_is_one_line_naming_it(overrides, words):
    with pytest.raises(HwnasError) as e:
        load_config(None, overrides)
    assert words in str(e.value) and "\n" not in str(e.value)


def test_a_bad_file_is_one_line(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[run\nname=1")
    with pytest.raises(HwnasError, match="not valid TOML"):
        load_config(bad)
    other = tmp_path / "other.toml"
    other.write_text("[trian]\nepochs = 1\n")
    with pytest.raises(HwnasError, match=r"unknown section \[trian\]"):
        load_config(other)
    with pytest.raises(HwnasError, match="not found"):
        load_config(tmp_path / "missing.toml")


def test_a_run_writes_the_manifest_then_a_rerun_does_nothing(tmp_path, fake_stages):
    calls, _ = fake_stages
    lines: list[str] = []
    r = pipeline_run.run_pipeline(_cfg(), runs_dir=tmp_path, hooks=pipeline_run.Hooks(log=lines.append), report=False)
    assert calls == list(STAGES) and r.ran == list(STAGES) and not r.already_finished
    layout = RunLayout.for_name("r", tmp_path)
    m = json.loads(layout.manifest.read_text())
    assert set(m["versions"]) == {"hwnas", "torch", "python"} and m["seeds"]["train"] == 0
    assert m["config"] == _cfg().to_dict()
    for s in STAGES:
        st = m["stages"][s]
        assert st["status"] == "done" and st["attempts"] == 1 and st["seconds"] >= 0 and st["cpu_seconds"] >= 0
        assert st["started"] <= st["finished"]
    assert tomllib.loads(layout.config.read_text()) == json.loads(json.dumps(_cfg().to_dict()), object_hook=lambda d: {k: v for k, v in d.items() if v is not None})

    calls.clear()
    before = layout.manifest.read_bytes()
    again = pipeline_run.run_pipeline(_cfg(), runs_dir=tmp_path, hooks=pipeline_run.Hooks(log=lines.append), report=False)
    assert calls == [] and again.already_finished and again.ran == []
    assert layout.manifest.read_bytes() == before  # not even rewritten
    assert "is finished: nothing to do" in lines[-1]


def test_a_failed_stage_is_recorded_and_the_rerun_starts_there(tmp_path, fake_stages):
    calls, fail = fake_stages
    fail["search"] = HwnasError("no arch met the budget")
    with pytest.raises(HwnasError):
        pipeline_run.run_pipeline(_cfg(), runs_dir=tmp_path, report=False)
    m = json.loads(RunLayout.for_name("r", tmp_path).manifest.read_text())
    assert [m["stages"][s]["status"] for s in STAGES] == ["done", "done", "failed", "pending", "pending"]
    assert m["stages"]["search"]["error"] == "no arch met the budget"
    calls.clear()
    lines: list[str] = []
    r = pipeline_run.run_pipeline(_cfg(), runs_dir=tmp_path, hooks=pipeline_run.Hooks(log=lines.append), report=False)
    assert calls == ["search", "export", "verify"] and r.ran == calls
    assert "stage search failed; continuing from it" in lines[0]
    m = json.loads(RunLayout.for_name("r", tmp_path).manifest.read_text())
    assert m["stages"]["search"]["attempts"] == 2 and m["stages"]["train"]["attempts"] == 1


def test_a_killed_stage_left_running_reruns_from_it(tmp_path, fake_stages):
    calls, fail = fake_stages
    fail["export"] = KeyboardInterrupt()  # stopped mid-stage
    with pytest.raises(KeyboardInterrupt):
        pipeline_run.run_pipeline(_cfg(), runs_dir=tmp_path, report=False)
    layout = RunLayout.for_name("r", tmp_path)
    m = json.loads(layout.manifest.read_text())
    assert m["stages"]["export"]["status"] == "failed" and m["stages"]["export"]["error"] == "interrupted"  # Ctrl-C
    m["stages"]["export"]["status"] = "running"  # what kill -9 leaves: no chance to record the failure
    layout.manifest.write_text(json.dumps(m))
    calls.clear()
    lines: list[str] = []
    pipeline_run.run_pipeline(_cfg(), runs_dir=tmp_path, hooks=pipeline_run.Hooks(log=lines.append), report=False)
    assert calls == ["export", "verify"]
    assert "stage export was interrupted" in lines[0]


def test_a_finished_stage_whose_output_is_gone_runs_again(tmp_path, fake_stages):
    calls, _ = fake_stages
    pipeline_run.run_pipeline(_cfg(), runs_dir=tmp_path, report=False)
    (tmp_path / "r" / "search.out").unlink()
    calls.clear()
    lines: list[str] = []
    pipeline_run.run_pipeline(_cfg(), runs_dir=tmp_path, hooks=pipeline_run.Hooks(log=lines.append), report=False)
    assert calls == ["search", "export", "verify"]
    assert "what stage search made is gone from the run folder; running it again" in lines[0]


def test_the_same_name_with_other_settings_is_refused_naming_them(tmp_path, fake_stages):
    calls, _ = fake_stages
    pipeline_run.run_pipeline(_cfg(), runs_dir=tmp_path, report=False)
    calls.clear()
    with pytest.raises(HwnasError) as e:
        pipeline_run.run_pipeline(load_config(None, {"run.name": "r", "train.epochs": 1.0}), runs_dir=tmp_path, report=False)
    assert "train.epochs 2.0 -> 1.0" in str(e.value) and "another --name" in str(e.value)
    assert calls == []


def test_a_second_process_on_the_same_run_is_refused(tmp_path, fake_stages):
    from hwnas.latency.lock import file_lock

    (tmp_path / "r").mkdir()
    with file_lock(tmp_path / "r" / ".lock", "run", lambda holder, what: holder):
        with pytest.raises(HwnasError, match=r"is being run by pid \d+"):
            pipeline_run.run_pipeline(_cfg(), runs_dir=tmp_path, report=False)


def test_the_report_is_skipped_with_a_line_until_its_package_exists(tmp_path, fake_stages, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "hwnas.report" else real(name, *a))
    lines: list[str] = []
    r = pipeline_run.run_pipeline(_cfg(), runs_dir=tmp_path, hooks=pipeline_run.Hooks(log=lines.append))
    assert r.report is None and lines[-1] == "report: skipped (hwnas.report is not part of this version)"


def test_a_quick_run_is_not_taken_for_a_full_one(tmp_path, fake_stages, monkeypatch):
    monkeypatch.setenv("HWNAS_QUICK", "1")
    pipeline_run.run_pipeline(_cfg(), runs_dir=tmp_path, report=False)
    monkeypatch.delenv("HWNAS_QUICK")
    with pytest.raises(HwnasError, match=r"run\.quick True -> False"):
        pipeline_run.run_pipeline(_cfg(), runs_dir=tmp_path, report=False)


def test_cli_bad_settings_are_one_line_errors(hwnas_cli, tmp_path):
    for args, words in ((["--set", "foo"], "--set 'foo' must look like name=value, e.g. train.epochs=1"),
                        (["--set", "train.epoch=1"], "[train] has no setting 'epoch'"),
                        ([str(tmp_path / "none.toml")], "not found")):
        r = hwnas_cli("run", "--runs-dir", str(tmp_path), *args)
        assert r.returncode == 2 and r.stderr.count("\n") == 1 and words in r.stderr, r.stderr
    assert not any(tmp_path.iterdir())  # nothing was started


def test_progress_off_a_terminal_is_a_line_every_ten_seconds_and_at_the_end():
    from hwnas.commands.run import _Lines

    out: list[str] = []
    now = [0.0]
    lines = _Lines(out.append, every_s=10.0)
    lines.clock, lines.last = (lambda: now[0]), 0.0

    class Trainer:
        total_iters = 30

    lines.train_start(Trainer())
    for i in range(1, 31):  # one iteration a second
        now[0] = float(i)
        lines.train_step({"iteration": i, "loss": 1.0, "acc": 50.0})
    assert [x.split(",")[0] for x in out] == ["train: iteration 10/30", "train: iteration 20/30", "train: iteration 30/30"]
    out.clear()
    for d in range(1, 5):
        now[0] = 30.0 + 4 * d
        lines.search_step(d, 4, None)
    assert out == ["search: 3/4 archs evaluated", "search: 4/4 archs evaluated"]  # 12 s after the last line, then the end


def test_a_report_that_fails_is_a_warning_not_a_failed_run(tmp_path, fake_stages, monkeypatch):
    import hwnas.report

    def broken(run_dir):
        raise ImportError("cannot import name 'x'")

    monkeypatch.setattr(hwnas.report, "write_report", broken)
    lines: list[str] = []
    r = pipeline_run.run_pipeline(_cfg(), runs_dir=tmp_path, hooks=pipeline_run.Hooks(log=lines.append))
    assert r.report is None and r.ran == list(STAGES)
    assert lines[-1].startswith("warning: the report could not be written (ImportError: cannot import name 'x')")
    assert f"`hwnas report {tmp_path / 'r'}` writes it" in lines[-1]


def test_the_winners_latency_says_whether_it_is_a_bound_or_the_median():
    from hwnas.pipeline.run import predicted_latency_text

    bound = {"latency_ms": 0.192, "latency_bound": "0.9 quantile", "latency_median_ms": 0.171}
    assert predicted_latency_text(bound) == "0.192 ms predicted (0.9 quantile; median 0.171 ms)"
    assert predicted_latency_text({"latency_ms": 0.171, "latency_bound": "median", "latency_median_ms": 0.171}) == \
        "0.171 ms predicted (median)"
    assert predicted_latency_text({"latency_ms": 0.2}) == "0.200 ms predicted"
    assert predicted_latency_text({"latency_ms": None}) == ""
