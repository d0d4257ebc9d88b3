"""What ``hwnas run`` runs: a TOML file (or options) resolved into one ``RunConfig``.

Every default is filled in here, from the stages' own defaults (``TrainConfig`` for training,
so ``hwnas run`` trains exactly as ``hwnas train`` would), and the resolved configuration is
written to the run folder as ``config.toml``: the run can be repeated from that file alone.

A configuration file::

    [run]
    name = "host-tiny-0.25ms"   # the run folder runs/<name> (default: <device>-<space>-<latency>)
    seed = 0                    # training, search and export seed
    device = "host"
    space = "tiny"
    latency = "0.25ms"          # the search's budget
    backend = "litert"          # timing backend of the latency table (default: the format's runtime)

    [space_args]                # options of the space, e.g. num_classes = 10
    [train]                     # any field of hwnas.train.trainer.TrainConfig, e.g. epochs = 1
    [search]                    # algorithm, population, generations, n_eval, bn_batches, confidence, ...
    [export]                    # format = "tflite", precision = "fp32"
    [verify]                    # measure_latency = true: time the exported file on the device
"""

from __future__ import annotations

import json
import math
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ..errors import HwnasError
from ..io import read_text_file

SECTIONS = ("run", "space_args", "train", "search", "export", "verify")
# The search a run makes unless its [search] says otherwise: 100 archs (20 x 5 generations) on
# 500 held-out images, sized so that the README's main job stays well under 15 minutes on 2 cores.
SEARCH_DEFAULTS: dict[str, Any] = {"algorithm": "nsga2", "population": 20, "generations": 5, "n_eval": 500, "bn_batches": 4,
                                   "confidence": 0.9, "objective": "hard", "threads": 1}
SEARCH_KEYS = SEARCH_DEFAULTS.keys() | {"max_evaluations", "latency_quantile", "multi_objective", "path_filter"}
EXPORT_DEFAULTS: dict[str, Any] = {"format": "tflite", "precision": "fp32"}
VERIFY_DEFAULTS: dict[str, Any] = {"measure_latency": True, "runs": None}
# Keys of [train] that the [run] section owns (one value for the whole run).
TRAIN_FROM_RUN = ("space", "space_args", "seed")
FORMAT_RUNTIME = {"tflite": "litert", "onnx": "onnxruntime"}


@dataclass
class RunConfig:
    """The whole run's settings; ``to_dict()`` is what ``config.toml`` and the manifest hold."""

    name: str = ""
    seed: int = 0
    device: str = "host"
    space: str = "tiny"
    latency: str = "0.25ms"
    backend: str = ""
    threads: int = 1
    tables_dir: str = "latency_tables"
    quick: bool = False  # HWNAS_QUICK was set (hwnas.quick): reduced sizes; a full run of the same name is another run
    space_args: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    search: dict[str, Any] = field(default_factory=dict)
    export: dict[str, Any] = field(default_factory=dict)
    verify: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        run = {k: d.pop(k) for k in list(d) if k not in SECTIONS}
        return {"run": run, **d}

    def train_config(self) -> Any:
        """The ``TrainConfig`` of the training stage (what ``hwnas train`` would build)."""
        from ..train.trainer import TrainConfig

        return TrainConfig.from_dict({**self.train, "space": self.space, "space_args": dict(self.space_args), "seed": self.seed})

    @property
    def budget_ms(self) -> float:
        from ..search.constraints import parse_latency

        return parse_latency(self.latency)


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> RunConfig:
    """The resolved configuration: the file (if any), then ``overrides`` ("run.device", "train.epochs", ...)."""
    raw: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        try:
            text = read_text_file(p, "run configuration", "give a TOML file (see `hwnas run --help`)")
        except FileNotFoundError:
            raise HwnasError(f"run configuration {str(p)!r} not found; give a TOML file or run without one "
                             f"(e.g. `hwnas run --device host --space tiny --latency 0.25ms`)") from None
        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise HwnasError(f"run configuration {str(p)!r} is not valid TOML ({e}); fix the file") from None
        unknown = [k for k in raw if k not in SECTIONS]
        if unknown:
            raise HwnasError(f"run configuration {str(p)!r} has an unknown section [{unknown[0]}]; use {', '.join(f'[{s}]' for s in SECTIONS)}")
    for dotted, value in (overrides or {}).items():
        section, _, key = dotted.partition(".")
        if section not in SECTIONS or not key:
            raise HwnasError(f"setting {dotted!r} must be SECTION.KEY with SECTION one of {', '.join(SECTIONS)} (e.g. train.epochs)")
        raw.setdefault(section, {})[key] = value
    return resolve(raw, default_name=Path(path).stem if path is not None else None)


def resolve(raw: dict[str, Any], default_name: str | None = None) -> RunConfig:
    """Fill every default in and check every value's name, so a typo is an error before any work."""
    from ..train.trainer import TrainConfig

    for section in SECTIONS:
        if not isinstance(raw.get(section, {}), dict):
            raise HwnasError(f"[{section}] must be a table of settings, not {raw[section]!r}")
    run = dict(raw.get("run", {}))
    run_fields = {f.name for f in fields(RunConfig)} - set(SECTIONS)
    _refuse_unknown("run", run, run_fields)
    cfg = RunConfig(**{k: v for k, v in run.items() if v is not None})
    from .. import quick

    cfg.quick = quick.enabled()  # from the environment, whatever a file says
    cfg.space_args = dict(raw.get("space_args", {}))

    train = dict(raw.get("train", {}))
    owned = [k for k in train if k in TRAIN_FROM_RUN]
    if owned:
        raise HwnasError(f"[train] {owned[0]} is set for the whole run: put it in [run] ({'[space_args]' if owned[0] == 'space_args' else owned[0]})")
    _refuse_unknown("train", train, {f.name for f in fields(TrainConfig)} - set(TRAIN_FROM_RUN))
    cfg.train = {k: v for k, v in TrainConfig.from_dict({**train, "space": cfg.space, "seed": cfg.seed}).to_dict().items()
                 if k not in TRAIN_FROM_RUN}

    search = dict(raw.get("search", {}))
    _refuse_unknown("search", search, SEARCH_KEYS)
    cfg.search = {**SEARCH_DEFAULTS, **search}
    export = dict(raw.get("export", {}))
    _refuse_unknown("export", export, EXPORT_DEFAULTS.keys())
    cfg.export = {**EXPORT_DEFAULTS, **export}
    verify = dict(raw.get("verify", {}))
    _refuse_unknown("verify", verify, VERIFY_DEFAULTS.keys())
    cfg.verify = {**VERIFY_DEFAULTS, **verify}

    from ..formats import check_format
    from ..space import create_space

    check_format(cfg.export["format"], cfg.export["precision"])
    create_space(cfg.space, **cfg.space_args)  # an unknown space or space option fails now
    if not cfg.backend:
        cfg.backend = _default_backend(cfg.device, cfg.export["format"])
    cfg.budget_ms  # noqa: B018  (a budget without its unit fails now)
    if not cfg.name:
        cfg.name = default_name or f"{cfg.device}-{cfg.space}-{cfg.latency.replace(' ', '')}"
    if "/" in cfg.name or cfg.name in (".", ".."):
        raise HwnasError(f"run name {cfg.name!r} must be a plain folder name (no '/')")
    return cfg


def _default_backend(device: str, fmt: str) -> str:
    """The device's timing backend for the exported format (the host: LiteRT for TFLite files)."""
    from ..device.profiles import load_device

    dev = load_device(device)
    runtime = FORMAT_RUNTIME.get(fmt)
    if runtime in dev.backends:
        return runtime
    return dev.backends[0] if dev.backends else "onnxruntime"


def _refuse_unknown(section: str, given: dict[str, Any], known: Any) -> None:
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise HwnasError(f"[{section}] has no setting {unknown[0]!r}; known: {', '.join(sorted(known))}")


def config_differences(before: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """``"train.epochs 2.0 -> 1.0"`` for every setting that differs (JSON-normalized)."""
    a, b = json.loads(json.dumps(before)), json.loads(json.dumps(now))
    out = []
    for section in sorted(set(a) | set(b)):
        sa, sb = a.get(section) or {}, b.get(section) or {}
        for key in sorted(set(sa) | set(sb)):
            if sa.get(key) != sb.get(key):
                out.append(f"{section}.{key} {sa.get(key)!r} -> {sb.get(key)!r}")
    return out


def to_toml(config: dict[str, Any]) -> str:
    """The resolved configuration as TOML (``tomllib`` reads it back to the same dict, unset values left out)."""
    lines = ["# the resolved configuration of this run (every default filled in); `hwnas run` this file to repeat it"]
    for section, values in config.items():
        lines.append(f"\n[{section}]")
        for key, value in values.items():
            if value is not None:
                lines.append(f"{_key(key)} = {_value(value)}")
    return "\n".join(lines) + "\n"


def _key(k: str) -> str:
    return k if k.replace("_", "").replace("-", "").isalnum() else json.dumps(k)


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v if x is not None) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items() if x is not None) + "}"
    raise HwnasError(f"cannot write setting value {v!r} to TOML")
