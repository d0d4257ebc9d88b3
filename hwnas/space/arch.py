"""Arch: one op per searchable layer, plus the space it belongs to.

Archs are plain values (hashable, comparable) so they can key caches, pools and result
files; validation against the space happens when they are built or loaded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import HwnasError


@dataclass(frozen=True)
class Arch:
    space: str
    ops: tuple[str, ...]
    space_args: tuple[tuple[str, Any], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"space": self.space, "ops": list(self.ops)}
        if self.space_args:
            d["space_args"] = dict(self.space_args)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    def get_space(self):
        from .registry import create_space

        return create_space(self.space, **dict(self.space_args))

    def at_space_args(self, args: dict[str, Any]) -> "Arch":
        """The same ops in another variant of the space (e.g. another input resolution)."""
        from .registry import create_space

        return create_space(self.space, **dict(args)).arch(list(self.ops))

    def compact(self) -> str:
        return f"{self.space}:{self.get_space().to_compact(self)}"

    @staticmethod
    def from_dict(d: Any, source: str = "arch") -> "Arch":
        if not isinstance(d, dict) or "space" not in d or "ops" not in d:
            raise HwnasError(f"{source}: expected a JSON object with 'space' and 'ops'")
        if not isinstance(d["ops"], list) or not all(isinstance(o, str) for o in d["ops"]):
            raise HwnasError(f"{source}: 'ops' must be a list of op ids such as \"k3e3\" or \"id\"")
        from .registry import drop_defaults, normalize_args

        args = d.get("space_args") or {}
        if not isinstance(args, dict):
            raise HwnasError(f"{source}: 'space_args' must be an object")
        arch = Arch(str(d["space"]), tuple(d["ops"]), normalize_args(drop_defaults(str(d["space"]), args)))
        try:
            arch.get_space().validate(arch)
        except HwnasError as e:
            raise HwnasError(f"{source}: {e}") from None
        return arch

    @staticmethod
    def from_json(text: str, source: str = "arch") -> "Arch":
        from ..io import parse_json

        d = parse_json(text, source, "fix the file or give another arch")
        if isinstance(d, dict) and "arch" in d and isinstance(d["arch"], dict):
            d = d["arch"]  # result files (best.json, export sidecars) nest the arch
        return Arch.from_dict(d, source)

    @staticmethod
    def load(path: str | Path) -> "Arch":
        from ..io import read_text_file

        p = Path(path)
        try:
            text = read_text_file(p, "arch file", "give the best.json of `hwnas search` or another arch")
        except FileNotFoundError:
            raise HwnasError(f"arch file {str(p)!r} does not exist; give the best.json of `hwnas search` or another arch") from None
        return Arch.from_json(text, source=str(p))

    def save(self, path: str | Path) -> Path:
        from ..io import atomic_write_json

        return atomic_write_json(path, self.to_dict())


def resolve_arch(text: str) -> Arch:
    """ARCH as the CLI takes it: a named arch, a JSON file, or a compact ``space:xxxx`` string."""
    from .named import NAMED_ARCHS

    if text in NAMED_ARCHS:
        return NAMED_ARCHS.create(text)
    p = Path(text)
    if p.suffix == ".json" or p.exists():
        if not p.exists():
            raise HwnasError(f"arch file {text!r} does not exist; give a JSON file, a named arch ({', '.join(NAMED_ARCHS.names())}) or space:compact")
        return Arch.load(p)
    if ":" in text:
        from .registry import create_space

        space_name, code = text.rsplit(":", 1)  # the space may be a shrunk space file (``hwnas shrink``)
        return create_space(space_name).from_compact(code)
    raise HwnasError(f"unknown arch {text!r}; give a JSON file, a named arch ({', '.join(NAMED_ARCHS.names())}) or space:compact")
