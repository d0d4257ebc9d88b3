"""The space registry: ``create_space(name, **args)`` and ``list_spaces()`` are the only ways in."""

from __future__ import annotations

import inspect
import math
from functools import lru_cache
from typing import Any

from ..errors import HwnasError
from ..registry import Registry
from .space import SearchSpace

CHOICES_ARG = "choices"  # the op ids each layer of a shrunk space keeps (see shrunk.py)
SPACES: Registry[SearchSpace] = Registry("search space")
register_space = SPACES.register


def _load_builtin() -> None:
    from .spaces import mbse, nas_bench_macro, ofa_mbv3, proxyless, tiny  # noqa: F401  (registration side effects)


@lru_cache(maxsize=64)
def _create(name: str, items: tuple[tuple[str, Any], ...]) -> SearchSpace:
    args = dict(items)
    if CHOICES_ARG in args:  # a shrunk space: its base, narrowed
        from .shrunk import restrict

        choices = args.pop(CHOICES_ARG)
        space = restrict(_create(name, normalize_args(args)), choices)
    else:
        space = SPACES.create(name, **args)
    space.args = dict(items)  # only what the user asked for, so default archs carry no args
    return space


def create_space(name: str, **args: Any) -> SearchSpace:
    """Spaces are immutable once built, so equal requests share one instance.

    Arguments come from files (arch files, tables, checkpoints) as often as from code, so each
    is checked against the builder's signature and default first: an unknown name or a value
    of the wrong kind is one HwnasError line, not a traceback from deep inside the builder.
    An argument equal to the builder's default is dropped, so ``resolution=224`` and no
    argument name the same space (and the same tables and archs).
    A name ending in ``.json`` is a shrunk space file (``hwnas shrink``); the argument
    ``choices`` (the op ids each layer keeps) narrows the space to a shrunk one.
    """
    from .shrunk import canonical_choices, is_space_file, read_space_file

    if is_space_file(name):
        base, base_args, kept = read_space_file(name)
        return create_space(base, **{**base_args, CHOICES_ARG: kept, **args})
    _load_builtin()
    args = dict(args)
    choices = args.pop(CHOICES_ARG, None)
    if name in SPACES and args:
        check_space_args(name, args)
    items = normalize_args(drop_defaults(name, args))
    if choices is not None:
        kept = canonical_choices(_create(name, items), choices)
        if kept is not None:
            items = normalize_args({**dict(items), CHOICES_ARG: kept})
    return _create(name, items)


def drop_defaults(name: str, args: dict[str, Any]) -> dict[str, Any]:
    """``args`` without those equal to the space builder's defaults."""
    _load_builtin()
    if name not in SPACES:
        return args
    params = inspect.signature(SPACES.builder(name)).parameters

    def same(k: str, v: Any) -> bool:
        d = params[k].default if k in params else inspect.Parameter.empty
        if d is inspect.Parameter.empty:
            return False
        return (tuple(v) if isinstance(v, list) else v) == (tuple(d) if isinstance(d, list) else d)

    return {k: v for k, v in args.items() if not same(k, v)}


def check_space_args(name: str, args: dict[str, Any]) -> None:
    """Refuse arguments the space's builder does not take, or values unlike its defaults."""
    params = inspect.signature(SPACES.builder(name)).parameters
    known = ", ".join(params) or "none"
    for key, value in args.items():
        if key not in params:
            raise HwnasError(f"space {name!r} has no argument {key!r}; its arguments: {known}")
        default = params[key].default
        if isinstance(default, bool) or default is inspect.Parameter.empty:
            continue
        if isinstance(default, int):
            ok = isinstance(value, int) and not isinstance(value, bool) and value > 0
        elif isinstance(default, float):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0
        elif isinstance(default, (tuple, list)):
            ok = (isinstance(value, (tuple, list)) and len(value) == len(default)
                  and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value))
        else:
            continue
        if not ok:
            raise HwnasError(f"space {name!r}: {key}={value!r} is not like its default {default!r}; "
                             f"give {'positive numbers' if isinstance(default, (tuple, list)) else 'a positive number'}")


def normalize_args(args: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted((k, _frozen(v)) for k, v in args.items()))


def _frozen(v: Any) -> Any:
    """Lists (also nested, as a shrunk space's ``choices``) as tuples, so args can key a cache."""
    return tuple(_frozen(x) for x in v) if isinstance(v, (list, tuple)) else v


def list_spaces(pattern: str = "*") -> list[str]:
    _load_builtin()
    return SPACES.names(pattern)
