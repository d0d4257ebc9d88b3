"""A tiny name -> builder registry (timm style) shared by spaces, archs, devices and backends.

A new space or named architecture is one decorated function in its own file; callers only
ever go through ``create`` and ``names``, and an unknown name is an error that lists the
known ones.
"""

from __future__ import annotations

import fnmatch
from typing import Any, Callable, Generic, TypeVar

from .errors import HwnasError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._builders: dict[str, Callable[..., T]] = {}

    def register(self, name: str | None = None) -> Callable[[Callable[..., T]], Callable[..., T]]:
        def deco(fn: Callable[..., T]) -> Callable[..., T]:
            key = name or fn.__name__
            if key in self._builders:
                raise ValueError(f"{self.kind} {key!r} is registered twice")
            self._builders[key] = fn
            return fn

        return deco

    def unregister(self, name: str) -> None:
        """Remove ``name`` (for tests that register a toy plug-in)."""
        self._builders.pop(name, None)

    def names(self, pattern: str = "*") -> list[str]:
        return sorted(n for n in self._builders if fnmatch.fnmatch(n, pattern))

    def __contains__(self, name: str) -> bool:
        return name in self._builders

    def builder(self, name: str) -> Callable[..., T]:
        """The registered function (for its signature); an unknown name is an HwnasError."""
        if name not in self._builders:
            known = ", ".join(self.names()) or "none"
            raise HwnasError(f"unknown {self.kind} {name!r}; known: {known}")
        return self._builders[name]

    def create(self, name: str, **kwargs: Any) -> T:
        return self.builder(name)(**kwargs)
