"""hwnas export --table <phone table>: the exported file is timed on the phone over ADB, through
the backend that profiled the table's blocks (here the fake phone, a separate process)."""

import json
import warnings

import pytest

from hwnas.export import export_arch
from hwnas.space import create_space

from .fakephone.fixtures import adb_env, adb_local, phone_process  # noqa: F401

ARCH = ["k3e3", "k3e1", "k5e3", "id", "k3e6", "k5e1"]


def log_lines(path, kind):
    return [ln.split(": ", 1)[1] for ln in path.read_text().splitlines() if ln.startswith(kind + ": ")] if path.exists() else []


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_torch_thread):
    yield


def test_export_latency_is_measured_on_the_phone_of_the_table(adb_env, adb_local, phone_process, tmp_path, timed_files):
    from hwnas.device.profiles import load_device
    from hwnas.export.latency_check import verify_latency
    from hwnas.latency.backends import Protocol
    from hwnas.latency.keys import arch_keys
    from hwnas.latency.profiler import profile_space
    from hwnas.latency.table import LatencyTable

    log = tmp_path / "phone.log"
    ph = phone_process(log=log)
    space = create_space("tiny")
    arch = space.arch(ARCH)
    # the phone's table for this arch's blocks (a quick protocol), profiled over ADB as `hwnas profile` does
    sd855 = load_device("sd855")
    proto = Protocol.from_device(sd855, runs=10, warmup_runs=2, rounds=1, min_time_s=0.0)
    table = profile_space(sd855, space, "adb", tmp_path / "sd855-tiny-adb.json", protocol=proto, keys=arch_keys(space, arch),
                          backend_options={"serial": ph.address, "log": lambda m: None})
    assert table.backend == "adb" and table.device["name"] == "sd855" and table.device["soc"] == "SM8150"
    pushes_before = len(log_lines(log, "push"))

    out = tmp_path / "exports"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = export_arch(arch, fmt="tflite", table=table.path, serial=ph.address, latency_runs=10, out=out, name="net")
    side = json.loads(r.sidecar.read_text())
    lat = side["latency"]
    assert (lat["backend"], lat["device"], lat["serial"]) == ("adb", "sd855", ph.address)
    assert lat["predicted_ms"] == pytest.approx(LatencyTable.load(table.path).predict(arch)[0])
    # the reported time is the phone backend's own measurement of the exported file
    file_ms = [ms for name, ms in timed_files if name == "net-fp32.tflite"]
    assert len(file_ms) == 1 and lat["measured_ms"] == file_ms[0] > 0 and lat["measured_p90_ms"] >= lat["measured_ms"]
    predicted = LatencyTable.load(table.path).predict(arch)[0]
    assert lat["error_pct"] == pytest.approx(100 * (predicted / file_ms[0] - 1))
    assert "not measured" not in lat["note"] and r.latency.summary().startswith(f"latency on sd855 {ph.address} (adb)")
    # the phone ran the exported file: pushed once, then benchmark_model pinned to the big cores
    pushed = log_lines(log, "push")[pushes_before:]
    assert len(pushed) == 1 and "net-fp32.tflite" in pushed[0]
    runs = [c for c in log_lines(log, "shell") if "benchmark_model --graph=" in c and "net-fp32.tflite" in c]
    assert len(runs) >= 1 and all("'taskset f0 " in c for c in runs)

    # without a serial the table's phone (its serial) is asked for; absent, the export says so instead of failing
    ph.stop()
    rep = verify_latency(LatencyTable.load(table.path), arch, out / "net-fp32.tflite", "tflite", "fp32", runs=10)
    assert rep.measured_ms is None and rep.serial == table.device["serial"] and rep.note.startswith("not measured: ")
