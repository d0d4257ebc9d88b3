"""``hwnas shrink``: SE-NAS search space shrinking into a shrunk space file.

Thin: parses options into a ``TrainConfig`` and a ``ShrinkConfig`` and calls
``hwnas.search.senas.shrink.shrink_space``; prints each stage's drops and the file to use next
(``hwnas train --space FILE``, optionally ``--expand 6``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from .common import console, err_console, print_json


def register(app: typer.Typer) -> None:
    @app.command("shrink")
    def shrink(
        space: str = typer.Option("tiny", "--space", help="Search space (or a shrunk space file) to shrink."),
        stages: int = typer.Option(2, "--stages", help="Shrinking stages (train, score, drop)."),
        drop: int = typer.Option(10, "--drop", help="Ops removed per stage (the K lowest scores; each layer keeps one)."),
        latency: Optional[str] = typer.Option(None, "--latency", help="Latency budget, e.g. 80ms (needs --table): ops no arch within it can hold go first."),
        flops: Optional[str] = typer.Option(None, "--flops", help="FLOPs budget, e.g. 330M: ops no arch within it can hold go first."),
        table: Optional[Path] = typer.Option(None, "--table", help="Latency table (JSON) for --latency."),
        out: Optional[Path] = typer.Option(None, "--out", help="Folder of the stages (default: runs/shrink-SPACE); the shrunk space file is OUT/shrunk.json."),
        data: str = typer.Option("builtin", "--data", help="builtin | cifar10:DIR | cifar100:DIR | folder:DIR"),
        epochs: float = typer.Option(2.0, "--epochs", help="Epochs of the first stage's uniform training."),
        stage_epochs: Optional[float] = typer.Option(None, "--stage-epochs", help="Epochs of each later stage (default: --epochs)."),
        max_iters: Optional[int] = typer.Option(None, "--max-iters", help="Iterations per stage (overrides the epochs)."),
        batch: int = typer.Option(64, "--batch"),
        lr: float = typer.Option(0.12, "--lr"),
        samples: int = typer.Option(1000, "--samples", help="Archs averaged per op for its selection importance (Eq. 5)."),
        snapshots: int = typer.Option(5, "--snapshots", help="Weight snapshots of each stage's last epoch averaged for scoring (Eq. 4)."),
        metric: str = typer.Option("senas", "--metric", help="Operator score: senas (Eq. 7), si (accuracy only) or random."),
        eval_images: int = typer.Option(500, "--eval-images", help="Held-out images per arch evaluation."),
        bn_images: int = typer.Option(0, "--bn-images", help="Recalibrate each arch's BN on this many training images first (0: the averaged statistics)."),
        max_archs: int = typer.Option(50, "--max-archs", help="Stop shrinking once the space holds at most this many archs."),
        expand: Optional[int] = typer.Option(None, "--expand", help="Train each stage's supernet expanded (merged layers' product <= T get own weights)."),
        n_train: Optional[int] = typer.Option(None, "--n-train"),
        n_val: Optional[int] = typer.Option(None, "--n-val"),
        seed: int = typer.Option(0, "--seed"),
        threads: int = typer.Option(1, "--threads", help="Torch intra-op threads."),
        space_arg: list[str] = typer.Option([], "--space-arg", help="Space option name=value (repeatable)."),
        as_json: bool = typer.Option(False, "--json", help="Print the stages as JSON."),
    ) -> None:
        """Shrink a space in stages (SE-NAS): the same command again resumes after the last finished stage."""
        import torch

        from ..search.senas.shrink import ShrinkConfig, shrink_space
        from .train import _config, _space_args

        cfg = _config(space=space, space_args=_space_args(space_arg), data=data, n_train=n_train, n_val=n_val, sampler="uniform",
                      filter_args={}, epochs=epochs, max_iters=max_iters, batch_size=batch, lr=lr, seed=seed, expand=expand,
                      max_flops=flops, latency=latency, table=table)
        sc = ShrinkConfig(stages=stages, drop=drop, samples=samples, snapshots=snapshots, metric=metric, eval_images=eval_images,
                          bn_images=bn_images, stage_epochs=stage_epochs, max_archs=max_archs, seed=seed)
        sc.check()
        out_dir = out or Path("runs") / f"shrink-{Path(space).stem if space.endswith('.json') else space}"
        torch.set_num_threads(max(1, threads))

        def on_stage(rec: dict[str, Any]) -> None:
            if not as_json:
                dropped = ", ".join(f"layer {j} {o}" for j, o in rec["dropped"]) or "none"
                err_console.print(f"stage {rec['stage']}: {rec['archs_before']:,} -> {rec['archs_after']:,} archs; dropped {dropped}",
                                  highlight=False, soft_wrap=True)

        shrunk, records = shrink_space(cfg, out_dir, sc, on_stage=on_stage)
        target = out_dir / "shrunk.json"
        if as_json:
            print_json({"space_file": str(target), "archs": shrunk.size,
                        "stages": [{k: r[k] for k in ("stage", "archs_before", "archs_after", "dropped")} for r in records]})
            return
        nxt = f"hwnas train --space {target} --sampler uniform" + (f" --expand {expand}" if expand else "")
        console.print(f"shrunk space: {target} ({shrunk.size:,} archs)  (next: {nxt})", highlight=False)
