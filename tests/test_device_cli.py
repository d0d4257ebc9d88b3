"""`hwnas devices`, `hwnas device check`, `hwnas device setup` against the fake phone."""

import json

from .conftest import run_hwnas
from .fakephone.device import ELF_ARM64
from .fakephone.fixtures import adb_env, phone_process  # noqa: F401


def test_devices_lists_the_phone_and_the_profiles(adb_env, phone_process):
    ph = phone_process()
    r = run_hwnas("devices", "--host", ph.address, "--json", env=adb_env)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    mine = [p for p in d["phones"] if p["serial"] == ph.address]
    assert mine and (mine[0]["model"], mine[0]["soc"], mine[0]["android"], mine[0]["state"]) == ("Pixel 4", "SM8150", "12", "device")
    profiles = {p["name"]: p for p in d["profiles"]}
    assert profiles["sd855"]["soc"] == "SM8150" and profiles["sd855"]["kind"] == "adb" and "template" not in {n.lower() for n in profiles}


def test_device_check_reports_problems_and_setup_fixes_the_binary(adb_env, phone_process, tmp_path):
    ph = phone_process(["binary-missing"])
    r = run_hwnas("device", "check", "sd855", "--host", ph.address, env=adb_env)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1].startswith(f"error: sd855 on {ph.address} is not ready: benchmark_model missing on the phone")
    out = r.stdout
    for row in ("phone", "root", "governor", "temperature", "taskset", "space", "binary"):
        assert row in out
    assert "Pixel 4, SM8150, Android 12" in out and "not rooted" in out and "schedutil" in out and "mask f0" in out

    notarm = tmp_path / "benchmark_model_x86"
    notarm.write_bytes(b"\x7fELF\x02\x01\x01\x00" + b"\0" * 8 + b"\x03\x00\x3e\x00")
    r = run_hwnas("device", "setup", "sd855", "--host", ph.address, "--benchmark-binary", str(notarm), env=adb_env)
    assert r.returncode == 2 and "is not an arm64 (aarch64) Linux executable" in r.stderr

    binary = tmp_path / "benchmark_model"
    binary.write_bytes(ELF_ARM64 + b"benchmark_model for android_aarch64")
    r = run_hwnas("device", "setup", "sd855", "--host", ph.address, "--benchmark-binary", str(binary), env=adb_env)
    assert r.returncode == 0, r.stderr
    assert "pushed benchmark_model -> /data/local/tmp/hwnas/benchmark_model" in r.stdout and "verified" in r.stdout
    r = run_hwnas("device", "check", "sd855", "--host", ph.address, "--json", env=adb_env)
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    status = {c["name"]: c["status"] for c in rep["checks"]}
    assert status["binary"] == "ok" and status["root"] == "warn" and status["space"] == "ok"
    assert rep["fingerprint"]["soc"] == "SM8150" and len(rep["fingerprint"]["benchmark_binary_sha256"]) == 64


def test_device_check_full_disk_and_hot_phone(adb_env, phone_process):
    ph = phone_process(["disk-full"])
    r = run_hwnas("device", "check", "sd855", "--host", ph.address, env=adb_env)
    assert r.returncode == 2 and "no space on the phone: 0 MB free in '/data/local/tmp/hwnas', need 50 MB" in r.stderr


def test_rooted_phone_gets_its_governor_pinned(adb_env, phone_process):
    ph = phone_process(["rooted"])
    r = run_hwnas("device", "setup", "sd855", "--host", ph.address, "--pin-governor", env=adb_env)
    assert r.returncode == 0, r.stderr
    assert "governor 'performance' set on cpu4, cpu5, cpu6, cpu7" in r.stdout
    r = run_hwnas("device", "check", "sd855", "--host", ph.address, "--json", env=adb_env)
    checks = {c["name"]: c for c in json.loads(r.stdout)["checks"]}
    assert checks["root"]["status"] == "ok" and checks["governor"]["status"] == "ok"
    assert all(v["scaling_governor"] == "performance" for v in checks["governor"]["data"]["cpus"].values())
