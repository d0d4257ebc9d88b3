"""One writer per latency table: a lock while profiling, a journal that always starts with its
header, and journal lines that had to be skipped are reported."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from hwnas.errors import HwnasError
from hwnas.latency.backends import Protocol
from hwnas.latency.journal import Journal, journal_path
from hwnas.latency.keys import space_slots
from hwnas.latency.profiler import profile_space
from hwnas.space import create_space

from .conftest import REPO

HEADER = {"backend": "onnxruntime", "space": "tiny", "space_args": {}, "protocol": {"runs": 2}, "fingerprint": {"cpu": "x"}}


def test_a_second_profile_of_the_same_table_is_refused_naming_the_first(tmp_path):
    out = tmp_path / "t.json"
    cmd = [sys.executable, "-m", "hwnas", "profile", "--space", "tiny", "--backend", "onnxruntime", "--out", str(out),
           "--runs", "50", "--warmup", "1", "--rounds", "3", "--min-time", "0.2"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "HWNAS_CACHE_DIR": str(tmp_path / "cache")}
    first = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 120
        while not journal_path(out).exists() and time.time() < deadline:
            time.sleep(0.05)
        assert journal_path(out).exists()
        second = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
        lines = second.stderr.strip().splitlines()
        assert second.returncode == 2 and len(lines) == 1, second.stderr
        assert f"pid {first.pid}" in lines[0] and socket.gethostname() in lines[0] and "since" in lines[0]
        assert first.poll() is None  # the first one goes on
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()


def test_the_lock_of_a_killed_profile_is_taken_over(tmp_path):
    out = tmp_path / "t.json"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    lock = out.with_name(out.name + ".lock")
    lock.write_text(json.dumps({"pid": int(dead.stdout), "host": socket.gethostname(), "started": "2026-01-01T00:00:00+00:00"}))
    keys = list(space_slots(create_space("tiny")))[:2]
    table = profile_space("host", "tiny", "onnxruntime", out, cache_dir=tmp_path / "c", keys=keys,
                          protocol=Protocol(runs=2, warmup_runs=0, rounds=1, min_time_s=0.0))
    assert set(table.entries) == set(keys)
    assert not lock.exists()  # released when done


def test_the_lock_is_released_when_profiling_fails(tmp_path):
    out = tmp_path / "t.json"
    journal_path(out).write_text("garbage\n{\"key\": 1}\n")
    with pytest.raises(HwnasError, match="no valid header"), pytest.warns(UserWarning, match="skipped 1 damaged line"):
        profile_space("host", "tiny", "onnxruntime", out, keys=[], protocol=Protocol(runs=2, rounds=1))
    assert not out.with_name(out.name + ".lock").exists()


def test_a_journal_removed_under_a_writer_is_recreated_with_its_header(tmp_path):
    jp = tmp_path / "t.json.journal.jsonl"
    j = Journal(jp, HEADER).open()
    j.append({"key": "a", "round": 0, "measurement": {"median_ms": 1.0}})
    jp.unlink()  # another process finished and removed it
    j.append({"key": "b", "round": 0, "measurement": {"median_ms": 2.0}})
    first = json.loads(jp.read_text().splitlines()[0])
    assert first["journal"] == 1 and first["backend"] == "onnxruntime"
    again = Journal(jp, HEADER).open()
    assert [r["key"] for r in again.records] == ["b"]


def test_skipped_journal_lines_are_reported(tmp_path, hwnas_cli):
    jp = tmp_path / "t.json.journal.jsonl"
    good = json.dumps({"key": "a", "round": 0, "measurement": {"median_ms": 1.0}})
    jp.write_text(json.dumps({"journal": 1, **HEADER}) + "\n" + good + "\n\x00\x00garbage\n" + good.replace('"a"', '"b"') + "\n{\"key\": \"c\", \"rou")
    with pytest.warns(UserWarning) as w:
        j = Journal(jp, HEADER).open()
    assert [r["key"] for r in j.records] == ["a", "b"] and j.skipped_lines == 2
    msg = str(w[0].message)
    assert str(jp) in msg and "2 damaged line(s)" in msg and "3, 5" in msg and "measured again" in msg


def test_hwnas_profile_prints_the_skipped_journal_lines(tmp_path, hwnas_cli):
    out = tmp_path / "t.json"
    journal_path(out).write_text('{"journal": 1}\n\x00\x01 damaged\n')  # a header that names nothing to disagree with
    r = hwnas_cli("profile", "--space", "tiny", "--out", str(out), "--runs", "1", "--warmup", "0", "--rounds", "1",
                  "--min-time", "0", "--anchor-every", "0", env={"HWNAS_CACHE_DIR": str(tmp_path / "cache")})
    assert r.returncode == 0, r.stderr
    warned = [ln for ln in r.stderr.splitlines() if ln.startswith("warning: journal")]
    assert len(warned) == 1 and "skipped 1 damaged line(s) (line 2)" in warned[0]
