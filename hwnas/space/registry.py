"""The space registry: ``create_space(name, **args)`` and ``list_spaces()`` are the only ways in."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from ..registry import Registry
from .space import SearchSpace

SPACES: Registry[SearchSpace] = Registry("search space")
register_space = SPACES.register


def _load_builtin() -> None:
    from .spaces import mbse, nas_bench_macro, proxyless, tiny  # noqa: F401  (registration side effects)


@lru_cache(maxsize=64)
def _create(name: str, items: tuple[tuple[str, Any], ...]) -> SearchSpace:
    space = SPACES.create(name, **dict(items))
    space.args = dict(items)  # only what the user asked for, so default archs carry no args
    return space


def create_space(name: str, **args: Any) -> SearchSpace:
    """Spaces are immutable once built, so equal requests share one instance."""
    _load_builtin()
    return _create(name, normalize_args(args))


def normalize_args(args: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in args.items()))


def list_spaces(pattern: str = "*") -> list[str]:
    _load_builtin()
    return SPACES.names(pattern)
