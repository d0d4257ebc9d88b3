"""pytest fixtures for the ADB tests: an isolated config dir, a private adb server, fake phones."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from . import spawn, start_in_thread

ADB = shutil.which("adb")
TRANSPORTS = ["adb-shell", pytest.param("adb-cli", marks=pytest.mark.skipif(ADB is None, reason="the adb client is not installed"))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def adb_env(tmp_path_factory):
    """Environment for CLI subprocesses: a private config dir (our RSA key) and, when the adb client
    is installed, a private adb server (own port, own ~/.android key) killed at the end."""
    home = tmp_path_factory.mktemp("adbhome")
    env = {"XDG_CONFIG_HOME": str(home / "config"), "HOME": str(home), "ANDROID_ADB_SERVER_PORT": str(free_port()),
           "TF_CPP_MIN_LOG_LEVEL": "2"}
    # share exported blocks with the user's cache: converting every block of a space costs minutes
    env["HWNAS_CACHE_DIR"] = os.environ.get("HWNAS_CACHE_DIR") or str(Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "hwnas")
    if ADB:
        subprocess.run([ADB, "start-server"], capture_output=True, timeout=60, env={**os.environ, **env})
    yield env
    if ADB:
        subprocess.run([ADB, "kill-server"], capture_output=True, timeout=60, env={**os.environ, **env})


@pytest.fixture
def adb_local(adb_env, monkeypatch):
    """The same private config dir and adb server for library calls in this process."""
    for k in ("XDG_CONFIG_HOME", "ANDROID_ADB_SERVER_PORT", "HWNAS_CACHE_DIR"):
        monkeypatch.setenv(k, adb_env[k])
    return adb_env


@pytest.fixture
def phone(adb_local):
    """A fake phone in this process (its filesystem and logs can be inspected)."""
    servers = []

    def make(faults=None, **kw):
        s = start_in_thread(faults, **kw)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.stop()


@pytest.fixture
def phone_process(adb_env):
    """A fake phone as its own process (as a real phone is), stopped at the end."""
    procs = []

    def make(faults=None, **kw):
        p = spawn(faults, **kw)
        procs.append(p)
        return p

    yield make
    for p in procs:
        p.stop()


def fast_profile(tmp_path: Path, **fields) -> Path:
    """A devices/ folder whose sd855.toml is the shipped one with some fields changed (short timeouts)."""
    from hwnas.device.profiles import REPO_DEVICES

    text = (REPO_DEVICES / "sd855.toml").read_text()
    lines = []
    for line in text.splitlines():
        key = line.split("=", 1)[0].strip()
        if key in fields:
            continue
        lines.append(line)
    for k, v in fields.items():
        lines.append(f"{k} = {v!r}" if not isinstance(v, str) else f'{k} = "{v}"')
    d = tmp_path / "devices"
    d.mkdir(exist_ok=True)
    (d / "sd855.toml").write_text("\n".join(lines) + "\n")
    return d
