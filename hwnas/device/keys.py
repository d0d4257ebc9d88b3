"""This computer's ADB RSA key for the in-process transport: generated once, kept in the config dir.

The phone shows "Allow USB debugging?" with this key's fingerprint the first time; tick
"Always allow" and it is remembered. The files have the same format as ``~/.android/adbkey``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .profiles import config_dir


def adb_key_path() -> Path:
    return config_dir() / "adbkey"


def ensure_adb_key(path: Path | None = None) -> Path:
    """The private key path (``path.pub`` next to it), generating the pair atomically if missing."""
    from adb_shell.auth.keygen import keygen

    path = path or adb_key_path()
    if path.is_file() and Path(str(path) + ".pub").is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmpdir = Path(tempfile.mkdtemp(prefix=".adbkey.", dir=path.parent))
    try:
        keygen(str(tmpdir / "adbkey"))
        os.chmod(tmpdir / "adbkey", 0o600)
        if not path.is_file():  # another process may have won the race: keep its key
            os.replace(tmpdir / "adbkey.pub", str(path) + ".pub")
            os.replace(tmpdir / "adbkey", path)
    finally:
        for p in tmpdir.glob("*"):
            p.unlink()
        tmpdir.rmdir()
    return path


def load_signer(path: Path | None = None):
    from adb_shell.auth.sign_cryptography import CryptographySigner

    return CryptographySigner(str(ensure_adb_key(path)))
