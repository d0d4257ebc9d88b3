"""The fake phone itself: it must behave like a device for the host code's tests to mean anything."""

import os
import re
import socket
import subprocess
import sys
import time

from .fakephone import protocol as P
from .fakephone import start_in_thread
from .fakephone.device import Device, Faults
from .fakephone.programs import PROGRAMS
from .fakephone.shell import Shell
from .conftest import BENCHMARK_LOG, REPO


def _read(sock):
    head = b""
    while len(head) < 24:
        head += sock.recv(24 - len(head))
    cmd, a0, a1, n, _, _ = P.unpack_header(head)
    data = b""
    while len(data) < n:
        data += sock.recv(n - len(data))
    return cmd, a0, a1, data


def test_auth_rejects_a_bad_signature_and_issues_a_fresh_token():
    s = start_in_thread()
    try:
        with socket.create_connection(("127.0.0.1", s.port), timeout=5) as c:
            c.sendall(P.pack(P.CNXN, 0x01000000, 4096, b"host::\0"))
            cmd, kind, _, token = _read(c)
            assert (cmd, kind, len(token)) == (P.AUTH, P.AUTH_TOKEN, 20)
            c.sendall(P.pack(P.AUTH, P.AUTH_SIGNATURE, 0, os.urandom(256)))
            cmd, kind, _, token2 = _read(c)
            assert (cmd, kind) == (P.AUTH, P.AUTH_TOKEN) and token2 != token
            c.sendall(P.pack(P.OPEN, 1, 0, b"shell:id\0"))  # no stream before authentication
            c.settimeout(2)
            try:
                data = c.recv(24)
            except socket.timeout:
                data = b""
            assert data == b""  # hung up (or silent): nothing was run
    finally:
        s.stop()


def test_shell_parses_quotes_and_operators_like_sh():
    sh = Shell(Device(Faults()), PROGRAMS)
    assert sh.run("echo 'a;b' \"c d\" e\\;f; echo $?").out == b"a;b c d e;f\n0\n"
    assert sh.run("false && echo no || echo yes").out == b"yes\n"
    assert sh.run("echo 'unterminated").rc == 2
    r = sh.run("cat /sys/devices/system/cpu/cpu7/cpufreq/scaling_governor; echo x > /sys/devices/system/cpu/cpu7/cpufreq/scaling_governor")
    assert r.out.startswith(b"schedutil\n") and b"Permission denied" in r.out and r.rc == 1


def _phone_with_block(fmt):
    from hwnas.latency.blocks import export_block
    from hwnas.latency.keys import space_slots
    from hwnas.space import create_space

    key, slot = next(iter(space_slots(create_space("tiny")).items()))
    dev = Device(Faults(), benchmark_format=fmt)
    dev.write_file("/data/local/tmp/hwnas/m.tflite", export_block(key, slot, "tflite").read_bytes())
    return dev


RUN = ("taskset 80 /data/local/tmp/hwnas/benchmark_model --graph=/data/local/tmp/hwnas/m.tflite "
       "--num_threads=1 --warmup_runs=3 --warmup_min_secs=0 --num_runs=20 --min_secs=0 --enable_op_profiling=false")
STAT = r"count=20 (first=\d+ curr=\d+ min=\d+ max=\d+ avg=[0-9.e+]+ std=\d+|curr=\d+\(all same\))"


def test_benchmark_model_prints_what_the_2019_build_printed(tmp_path):
    from hwnas.latency.benchmark_log import parse_benchmark_log

    real = parse_benchmark_log(BENCHMARK_LOG.read_text())
    dev = _phone_with_block("2019")
    r = Shell(dev, PROGRAMS).run(RUN)
    assert r.rc == 0
    fake = parse_benchmark_log(r.out.decode())
    assert set(real.settings) >= {"Num runs", "Num threads", "Graph"} and set(fake.settings) >= {"Num runs", "Num threads", "Graph"}
    assert [n for n, _ in fake.runs] == [3, 20] and fake.timed.count == 20 and fake.timed.avg_ms > 0
    assert set(fake.averages_us) == set(real.averages_us) == {"Warmup", "Init", "no stats"}
    # as the real tool's Stat<int64_t>: whole microseconds, avg with 6 significant digits, std truncated
    timed_line = [ln for ln in r.out.decode().splitlines() if ln.startswith("count=")][-1]
    assert re.fullmatch(STAT, timed_line), timed_line


def test_benchmark_model_prints_what_the_current_prebuilt_prints_and_keeps_min_secs():
    from hwnas.latency.backends.adb import timed_stats

    dev = _phone_with_block("nightly")
    r = Shell(dev, PROGRAMS).run(RUN)
    out = r.out.decode().splitlines()
    assert r.rc == 0 and all(ln.startswith("INFO: ") for ln in out if ln)
    assert "INFO: Min num runs: [20]" in out and "INFO: Min runs duration (seconds): [0]" in out
    i = out.index("INFO: Running benchmark for at least 20 iterations and at least 0 seconds but terminate if exceeding 150 seconds.")
    assert re.fullmatch(r"INFO: " + STAT + r" p5=\d+ median=\d+ p95=\d+", out[i + 1]), out[i + 1]
    assert re.fullmatch(r"INFO: Inference timings in us: Init: \d+, First inference: \d+, Warmup \(avg\): [0-9.e+]+, "
                        r"Inference \(avg\): [0-9.e+]+", [ln for ln in out if "Inference timings" in ln][0])
    st = timed_stats(r.out.decode())
    assert st["count"] == 20 and st["avg"] > 0 and st["p5"] <= st["median"] <= st["p95"]
    # like the real tool, it keeps running past --num_runs until --min_secs (default 1 s) of wall time have passed
    t0 = time.perf_counter()
    longer = timed_stats(Shell(dev, PROGRAMS).run("/data/local/tmp/hwnas/benchmark_model --graph=/data/local/tmp/hwnas/m.tflite "
                                                  "--num_runs=5 --min_secs=0.3 --warmup_min_secs=0").out.decode())
    assert longer["count"] > 5 and time.perf_counter() - t0 >= 0.3
    missing = Shell(dev, PROGRAMS).run("/data/local/tmp/hwnas/benchmark_model --graph=/nope.tflite")
    assert missing.rc == 1 and "ERROR: Could not open '/nope.tflite'." in missing.out.decode()


def test_benchmark_model_stat_lines_are_those_of_tensorflow_stat():
    from tests.fakephone.programs import _stat_line

    # the real tool's line for the fixture's timed runs has the same shape (avg=80670.2 std=871)
    assert _stat_line([80068, 81025, 79589, 83607, 81025]) == "count=5 first=80068 curr=81025 min=79589 max=83607 avg=81062.8 std=1388"
    assert _stat_line([2, 1, 1, 2]) == "count=4 first=2 curr=2 min=1 max=2 avg=1.5 std=0"  # std 0.5 truncated
    assert _stat_line([1, 1, 1]) == "count=3 curr=1(all same)"
    assert _stat_line([7]) == "count=1 curr=7" and _stat_line([]) == "count=0"
    assert _stat_line([1250000, 1240000]) == "count=2 first=1250000 curr=1240000 min=1240000 max=1250000 avg=1.245e+06 std=5000"
    # StatWithPercentiles: the value at index n*p/100 of the sorted runs
    assert _stat_line([5, 1, 3, 2, 4], percentiles=True).endswith(" p5=1 median=3 p95=5")
    assert _stat_line([1, 1], percentiles=True) == "count=2 curr=1(all same) p5=1 median=1 p95=1"


def test_standalone_fake_phone_starts_and_refuses_unknown_faults():
    env = dict(os.environ, PYTHONPATH=str(REPO))
    r = subprocess.run([sys.executable, "-m", "tests.fakephone", "--fault", "nonsense"], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "unknown fault 'nonsense'" in r.stderr
