"""ADB transports against the fake phone: both implementations pass the same tests."""

import hashlib
import os
import shutil
import time
from pathlib import Path

import pytest

from hwnas.device.phone import Phone
from hwnas.device.profiles import load_device
from hwnas.device.transport import (AuthRefusedError, CommandTimeout, DeviceGoneError, PushError, command_line,
                                    create_transport)
from hwnas.latency.backends import Protocol, create_backend

from .fakephone.fixtures import TRANSPORTS, adb_env, adb_local, phone  # noqa: F401

# spaces, both quotes and ';': pasted unquoted into a command line, this runs `touch .../pwned`
HOSTILE = "we ird ; touch /data/local/tmp/pwned ; echo \"q'uote\" $HOME"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_shell_exit_status_output_and_timeout(phone, transport):
    s = phone()
    with create_transport(transport, f"127.0.0.1:{s.port}", auth_timeout_s=10) as t:
        r = t.shell(["getprop", "ro.soc.model"])
        assert (r.rc, r.output.strip()) == (0, "SM8150")
        r = t.shell(["cat", "/nope"])
        assert r.rc == 1 and "No such file or directory" in r.output
        r = t.shell(["/data/local/tmp/missing_tool", "--x"])
        assert r.rc == 127 and "inaccessible or not found" in r.output
        r = t.shell("false || exit 3")
        assert r.rc == 3
        t0 = time.monotonic()
        with pytest.raises(CommandTimeout, match="did not finish within 1s"):
            t.shell(["sleep", "5"], timeout_s=1)
        assert time.monotonic() - t0 < 4.5


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_push_is_verified_by_checksum_and_names_are_quoted(phone, transport, tmp_path):
    s = phone()
    local = tmp_path / "a b;c'd\".tflite"
    local.write_bytes(os.urandom(300_000))
    remote = f"/data/local/tmp/{HOSTILE}/{local.name}"
    with create_transport(transport, f"127.0.0.1:{s.port}") as t:
        digest = t.push(local, remote)
        assert digest == hashlib.sha256(Path(local).read_bytes()).hexdigest()
        assert s.device.files[remote].read() == local.read_bytes()
        r = t.shell(["ls", remote.rsplit("/", 1)[0]])
        assert r.ok and local.name in r.output
        assert "/data/local/tmp/pwned" not in s.device.files
        # the same name pasted into a command line unquoted really runs the injected command
        t.shell(f"ls {remote.rsplit('/', 1)[0]}")
        assert "/data/local/tmp/pwned" in s.device.files
    assert command_line(["echo", "a b", "c;d"]) == "echo 'a b' 'c;d'"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_full_disk_is_a_clear_push_error(phone, transport, tmp_path):
    s = phone(["disk-full"])
    f = tmp_path / "m.tflite"
    f.write_bytes(b"x" * 50_000)
    with create_transport(transport, f"127.0.0.1:{s.port}") as t:
        with pytest.raises(Exception, match="No space left on device"):
            t.push(f, "/data/local/tmp/hwnas/models/m.tflite")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_refused_authorization_says_what_to_do(phone, transport):
    s = phone(["refuse-auth"])
    t = create_transport(transport, f"127.0.0.1:{s.port}", auth_timeout_s=3)
    with pytest.raises(AuthRefusedError, match=r"did not authorize this computer: unlock it, accept 'Allow USB debugging\?'"):
        t.connect()
    t.close()


def test_adb_shell_key_is_generated_once_and_then_authorized_by_signature(phone, adb_local):
    from hwnas.device.keys import adb_key_path

    s = phone()
    with create_transport("adb-shell", f"127.0.0.1:{s.port}") as t:
        t.shell(["true"])
    key = adb_key_path()
    assert key.is_file() and key.with_name("adbkey.pub").is_file() and oct(key.stat().st_mode & 0o777) == "0o600"
    mtime = key.stat().st_mtime
    assert len(s.authorized_keys()) == 1  # accepted once ("Always allow")
    with create_transport("adb-shell", f"127.0.0.1:{s.port}") as t:  # now the signature alone is enough
        t.shell(["true"])
    assert key.stat().st_mtime == mtime and len(s.authorized_keys()) == 1


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_phone_reconnects_with_backoff_when_it_comes_back(phone, transport):
    s = phone(["drop-after=3", "down-for=1.5"])
    prof = load_device("sd855")
    notes = []
    with Phone(prof, serial=f"127.0.0.1:{s.port}", transport=transport, log=notes.append, reconnect_timeout_s=20) as p:
        for _ in range(6):
            assert p.shell(["echo", "hi"]).output.strip() == "hi"
        assert p.reconnects == 1
    assert any("disconnected" in n for n in notes) and any("is back" in n for n in notes)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_phone_gone_for_good_is_a_clear_error_after_a_bounded_wait(phone, transport):
    s = phone(["drop-after=2"])
    prof = load_device("sd855")
    with Phone(prof, serial=f"127.0.0.1:{s.port}", transport=transport, log=lambda m: None, reconnect_timeout_s=2) as p:
        p.shell(["true"])
        p.shell(["true"])
        t0 = time.monotonic()
        with pytest.raises(DeviceGoneError, match="disappeared and did not come back within 2s.*run the same command again to continue"):
            p.shell(["true"])
        assert time.monotonic() - t0 < 30


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_backend_pushes_once_per_content_and_runs_benchmark_model_pinned(phone, transport, tmp_path):
    from hwnas.latency.blocks import export_block
    from hwnas.latency.keys import space_slots
    from hwnas.space import create_space

    s = phone()
    key, slot = list(space_slots(create_space("tiny")).items())[1]
    model = export_block(key, slot, "tflite")
    hostile = tmp_path / f"{HOSTILE.replace('/', '_')}.tflite"
    hostile.write_bytes(model.read_bytes())
    prof = load_device("sd855")
    prof.remote_dir = f"/data/local/tmp/{HOSTILE}"
    proto = Protocol.from_device(prof, runs=10, warmup_runs=2, max_retries=0)
    with create_backend("adb", device=prof, serial=f"127.0.0.1:{s.port}", transport=transport, log=lambda m: None) as b:
        fp = b.fingerprint()
        assert (fp["soc"], fp["model"], fp["android"], fp["runtime"]) == ("SM8150", "Pixel 4", "12", "benchmark_model")
        m1 = b.measure(model, proto)
        m2 = b.measure(hostile, proto)  # same content, another (hostile) name: no second push
        assert b.pushes == 1 and len(s.device.pushes) == 1
        assert 0 < m1.median_ms < 50 and m1.n >= 10 and m2.n >= 10
        assert m1.info["statistic"].startswith("benchmark_model avg") and m1.info["cv"] == b.cv_definition
        assert b.cv_definition.startswith("std/(avg*sqrt(count))") and "average" in b.describe_clock(proto)
    pinned = [c for c in s.device.log if c.startswith("taskset f0 /data/local/tmp/hwnas/benchmark_model ")]
    started = [c for c in s.device.log if c.startswith("/data/local/tmp/hwnas/benchmark_model ")]
    assert len(pinned) == len(started) == 2
    assert all("--num_threads=1" in c and "--num_runs=10" in c and "--warmup_runs=2" in c and "--warmup_min_secs=0" in c
               and "--min_secs=" in c and "--enable_op_profiling=false" in c for c in pinned)
    assert "/data/local/tmp/pwned" not in s.device.files


def test_onnxruntime_perf_test_is_the_second_binary_kind(phone):
    from hwnas.latency.blocks import export_block
    from hwnas.latency.keys import space_slots
    from hwnas.space import create_space

    from .fakephone.device import ELF_ARM64

    s = phone()
    s.device.write_file("/data/local/tmp/hwnas/onnxruntime_perf_test", ELF_ARM64 + b"onnxruntime_perf_test", 0o755)
    prof = load_device("sd855")
    prof.binary_kind, prof.benchmark_binary = "onnxruntime", "/data/local/tmp/hwnas/onnxruntime_perf_test"
    key, slot = list(space_slots(create_space("tiny")).items())[2]
    model = export_block(key, slot, "onnx")
    with create_backend("adb", device=prof, serial=f"127.0.0.1:{s.port}", log=lambda m: None) as b:
        assert b.model_format == "onnx" and b.fingerprint()["runtime"] == "onnxruntime_perf_test"
        m = b.measure(model, Protocol.from_device(prof, runs=20, warmup_runs=2, max_retries=0))
    assert 0 < m.median_ms <= m.p90_ms < 100 and m.n == 20 and m.info["statistic"] == "onnxruntime_perf_test P50/P90"
    runs = [c for c in s.device.log if c.startswith("taskset f0 /data/local/tmp/hwnas/onnxruntime_perf_test ")]
    assert len(runs) == 1 and " -r 20 -x 1 " in runs[0]


@pytest.mark.skipif(shutil.which("adb") is None, reason="the adb client is not installed")
def test_all_finds_every_ready_phone_in_adb_devices(phone, adb_local):
    import subprocess

    from hwnas.latency.multi import phone_targets

    a, b = phone(serial="AAA"), phone(serial="BBB")
    for s in (a, b):
        subprocess.run(["adb", "connect", f"127.0.0.1:{s.port}"], capture_output=True, timeout=30)
    deadline = time.monotonic() + 20
    want = {f"127.0.0.1:{a.port}", f"127.0.0.1:{b.port}"}
    while time.monotonic() < deadline and not want <= set(phone_targets(load_device("sd855"), all_phones=True)):
        time.sleep(0.5)
    assert want <= set(phone_targets(load_device("sd855"), all_phones=True))
    for s in (a, b):
        subprocess.run(["adb", "disconnect", f"127.0.0.1:{s.port}"], capture_output=True, timeout=30)


def test_benchmark_model_summary_reads_the_timed_runs_even_when_all_the_same():
    import math

    from hwnas.latency.backends.adb import tflite_summary
    from hwnas.latency.backends.base import MeasurementError

    from .conftest import BENCHMARK_LOG

    real = tflite_summary(BENCHMARK_LOG.read_text())
    # the timed block (100 runs), not the warm-up (avg=83496.6) nor the profiler's Timings line
    assert (real["median_ms"], real["n"], real["std_ms"], real["min_ms"]) == (80.6702, 100, 0.871, 79.589)
    assert math.isclose(real["cv"], 871 / (80670.2 * math.sqrt(100)))
    # a block of ~2 us: every timed run took 2 whole microseconds, so Stat prints only count and curr
    same = ("Running benchmark for 10 iterations \ncount=10 first=9 curr=2 min=2 max=9 avg=2.9 std=2\n\n"
            "Running benchmark for 50 iterations \ncount=50 curr=2(all same)\n\n"
            "Average inference timings in us: Warmup: 2.9, Init: 812, no stats: 2\n")
    s = tflite_summary(same)
    assert (s["median_ms"], s["n"], s["std_ms"], s["cv"]) == (0.002, 50, 0.0, 0.0)
    # the current prebuilt: "INFO: " on every line, percentiles (whole microseconds) after std; the
    # entry stays the average, the printed median is kept for reference
    nightly = ("INFO: Running benchmark for at least 10 iterations and at least 0 seconds but terminate if exceeding 150 seconds.\n"
               "INFO: count=10 first=35 curr=2 min=1 max=35 avg=5.1 std=9 p5=1 median=2 p95=35\n\n"
               "INFO: Running benchmark for at least 50 iterations and at least 0.1 seconds but terminate if exceeding 150 seconds.\n"
               "INFO: count=14258 first=2 curr=2 min=1 max=69 avg=1.5418 std=1 p5=1 median=2 p95=2\n\n"
               "INFO: Inference timings in us: Init: 30456, First inference: 35, Warmup (avg): 5.1, Inference (avg): 1.5418\n")
    s = tflite_summary(nightly)
    assert (s["median_ms"], s["n"], s["printed_median_ms"], s["printed_p95_ms"]) == (0.0015418, 14258, 0.002, 0.002)
    # (benchmark_model always prints the warm-up block first: a lone block is the warm-up, see test_benchmark_log.py)
    warm = "Running benchmark for 10 iterations \ncount=10 first=9 curr=2 min=2 max=9 avg=2.9 std=2\n\n"
    big = tflite_summary("INFO: Running benchmark for at least 1 iterations and at least 0 seconds but terminate if exceeding 150 seconds.\n"
                         "INFO: count=1 curr=1250000(all same)\n\n"
                         "INFO: Running benchmark for at least 50 iterations and at least 1 seconds but terminate if exceeding 150 seconds.\n"
                         "INFO: count=50 first=1249964 curr=1240143 min=1238588 max=1252566 avg=1.24027e+06 std=2565 "
                         "p5=1238753 median=1239807 p95=1247415\n")
    assert (big["median_ms"], big["std_ms"]) == (1240.27, 2.565)
    with pytest.raises(MeasurementError, match="timed no runs"):
        tflite_summary(warm + "Running benchmark for 0 iterations \ncount=0\n")
    with pytest.raises(MeasurementError, match="less than its 1 us resolution"):
        tflite_summary(warm + "Running benchmark for 50 iterations \ncount=50 curr=0(all same)\n")
