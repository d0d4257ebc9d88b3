"""``hwnas run``: the whole job -- profile, train, search, export, verify -- into one run folder.

Thin: the options become a ``RunConfig`` (``hwnas.pipeline.config.load_config``) and
``hwnas.pipeline.run.run_pipeline`` does the work; this draws progress and prints the outcome.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from .common import console, err_console, print_json
from .train import _space_args


def register(app: typer.Typer) -> None:
    @app.command("run")
    def run(
        config: Optional[Path] = typer.Argument(None, help="Run configuration (TOML: [run], [space_args], [train], [search], [export], [verify]); "
                                                          "without one, the built-in default: host device, tiny space, built-in data."),
        device: Optional[str] = typer.Option(None, "--device", help="Device to profile and deploy to (default host)."),
        space: Optional[str] = typer.Option(None, "--space", help="Search space (default tiny)."),
        latency: Optional[str] = typer.Option(None, "--latency", help="Latency budget of the search, e.g. 0.25ms (default 0.25ms)."),
        backend: Optional[str] = typer.Option(None, "--backend", help="Timing backend of the latency table (default: the exported format's runtime)."),
        name: Optional[str] = typer.Option(None, "--name", help="Run folder name under --runs-dir (default: the config file's name, else DEVICE-SPACE-LATENCY)."),
        seed: Optional[int] = typer.Option(None, "--seed", help="Seed of training, search and export (default 0)."),
        runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="Where run folders go."),
        settings: list[str] = typer.Option([], "--set", help="Any setting as SECTION.KEY=VALUE (repeatable), e.g. train.epochs=1, search.population=10."),
        no_report: bool = typer.Option(False, "--no-report", help="Do not write report.html at the end."),
        as_json: bool = typer.Option(False, "--json", help="Print the outcome as JSON (stdout holds nothing else)."),
        quiet: bool = typer.Option(False, "--quiet", help="No progress bars."),
    ) -> None:
        """Profile, train, search, export and verify in one resumable run folder (runs/NAME with run.json).

        The same command again does nothing for a finished run and continues an interrupted one
        from the stage it stopped in."""
        from ..pipeline.config import load_config
        from ..pipeline.run import Hooks, run_pipeline

        overrides = {f"run.{k}": v for k, v in (("device", device), ("space", space), ("latency", latency), ("backend", backend),
                                                 ("name", name), ("seed", seed)) if v is not None}
        overrides.update(_space_args(settings, "--set"))
        cfg = load_config(config, overrides)
        say = lambda text: err_console.print(text, markup=False, highlight=False, soft_wrap=True)  # noqa: E731
        hooks = Hooks(log=say)
        bars = None if (as_json or quiet) else _Bars() if err_console.is_terminal else _Lines(say)
        if bars is not None:
            hooks.train_start, hooks.train_progress, hooks.search_progress = bars.train_start, bars.train_step, bars.search_step
        say(f"run {runs_dir / cfg.name}: {cfg.device}, space {cfg.space}, budget {cfg.latency}, seed {cfg.seed}")
        try:
            result = run_pipeline(cfg, runs_dir=runs_dir, hooks=hooks, report=not no_report)
        finally:
            if bars is not None:
                bars.stop()
        if as_json:
            print_json(result.to_dict())
            return
        _print(result)


class _Bars:
    """Progress bars of the long stages (training iterations, evaluated archs) on stderr."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.progress = Progress(TextColumn("[bold]{task.fields[stage]}[/]"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.description}"), TimeElapsedColumn(), TimeRemainingColumn(),
                                 console=err_console, transient=True)
        self.tasks: dict[str, Any] = {}
        self.started = False

    def _task(self, stage: str, total: int | None, done: int = 0) -> Any:
        if not self.started:
            self.progress.start()
            self.started = True
        if stage not in self.tasks:
            self.tasks[stage] = self.progress.add_task("", total=total, completed=done, stage=stage)
        return self.tasks[stage]

    def train_start(self, trainer: Any) -> None:
        self._task("train", trainer.total_iters, trainer.counters.iteration)

    def train_step(self, rec: dict[str, Any]) -> None:
        task = self._task("train", None)
        self.progress.update(task, completed=rec["iteration"], description=f"loss {rec['loss']:.3f} acc {rec['acc']:5.1f}%")

    def search_step(self, done: int, total: int, best: Any) -> None:
        task = self._task("search", total)
        self.progress.update(task, completed=done, total=total, description=f"best {best.accuracy:.2f}%" if best is not None else "")

    def stop(self) -> None:
        if self.started:
            self.progress.stop()


class _Lines:
    """Off a terminal (a log file, CI): a progress line per stage at most every ``every_s`` seconds."""

    def __init__(self, say: Any, every_s: float = 10.0) -> None:
        import time

        self.say, self.every_s, self.clock = say, every_s, time.monotonic
        self.last = self.clock()
        self.total = 0

    def _due(self) -> bool:
        now = self.clock()
        if now - self.last < self.every_s:
            return False
        self.last = now
        return True

    def train_start(self, trainer: Any) -> None:
        self.total = trainer.total_iters

    def train_step(self, rec: dict[str, Any]) -> None:
        if self._due() or rec["iteration"] == self.total:
            self.say(f"train: iteration {rec['iteration']}/{self.total}, loss {rec['loss']:.3f}, accuracy {rec['acc']:.1f}%")

    def search_step(self, done: int, total: int, best: Any) -> None:
        if self._due() or done == total:
            self.say(f"search: {done}/{total} archs evaluated" + (f", best {best.accuracy:.2f}%" if best is not None else ""))

    def stop(self) -> None:
        pass


def _print(result: Any) -> None:
    """The outcome: the winner, the file and its checks, where everything is."""
    from ..pipeline.run import predicted_latency_text

    stages = result.manifest["stages"]
    search, verify = stages["search"].get("outputs") or {}, stages["verify"].get("outputs") or {}
    if search.get("compact"):
        lat = predicted_latency_text(search)
        console.print(f"best: {search['compact']}  accuracy {search['accuracy']:.2f}%" + (f"  {lat}" if lat else ""),
                      highlight=False)
    if result.model is not None:
        parity = "parity checked" if verify.get("parity_verified") else "parity NOT checked"
        console.print(f"model: {result.model} ({parity})", highlight=False)
    if verify.get("verdict"):
        console.print(f"latency: {verify['verdict']}", highlight=False)
    total = sum(s.get("cpu_seconds") or 0 for s in stages.values())
    console.print(f"manifest: {result.layout.manifest}  (stages' CPU time {total:.0f} s)", highlight=False)
    if result.report is not None:
        console.print(f"report: {result.report}", highlight=False)
