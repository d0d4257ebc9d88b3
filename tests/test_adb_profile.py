"""`hwnas profile --device sd855 --host ...` end to end against the fake phone (a separate process)."""

import json
import math
import statistics

import pytest
from scipy.stats import spearmanr

from hwnas.latency.keys import space_slots
from hwnas.space import create_space

from .conftest import run_hwnas
from .fakephone.fixtures import TRANSPORTS, adb_env, adb_local, fast_profile, phone, phone_process  # noqa: F401

FAST = ("--runs", "10", "--warmup", "2", "--rounds", "1", "--min-time", "0")
TINY_KEYS = list(space_slots(create_space("tiny")))


def profile(adb_env, *args, env=None):
    return run_hwnas("profile", "--device", "sd855", "--space", "tiny", *FAST, *args, env={**adb_env, **(env or {})}, timeout=900)


def error_line(r):
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    errs = [ln for ln in r.stderr.splitlines() if ln.startswith("error: ")]
    assert len(errs) == 1, r.stderr
    return errs[0]


def log_lines(path, kind):
    if not path.exists():
        return []
    return [ln.split(": ", 1)[1] for ln in path.read_text().splitlines() if ln.startswith(kind + ": ")]


def phone_table(r, out, transport) -> dict:
    """The table a successful `hwnas profile --device sd855` over the fake phone wrote, checked for what
    any protocol gives: the phone's identity, the transport, every block of tiny."""
    assert r.returncode == 0, r.stderr
    assert "Pixel 4 (SM8150, Android 12" in r.stdout and f"{len(TINY_KEYS)} blocks timed, 0 failed" in r.stdout
    assert "warning: not rooted" in r.stderr  # a warning, not a failure
    t = json.loads(out.read_text())
    assert t["backend"] == "adb" and t["space"] == "tiny"
    dev = t["device"]
    assert (dev["soc"], dev["model"], dev["android"], dev["board_platform"], dev["runtime"]) == ("SM8150", "Pixel 4", "12", "msmnile", "benchmark_model")
    assert dev["transport"] == transport and len(dev["benchmark_binary_sha256"]) == 64
    assert set(t["entries"]) == set(TINY_KEYS)
    return t


def pushes_once_and_runs_the_protocol(log, t, rounds: int, flags: tuple[str, ...]) -> list[str]:
    """One push per block file; one benchmark_model process per measurement (plus the CV
    protocol's re-measures), pinned to the big cores with the protocol's flags. Returns the pushes."""
    pushed = log_lines(log, "push")
    assert len(pushed) == len(TINY_KEYS)  # one push per block file
    runs = [c for c in log_lines(log, "shell") if "benchmark_model --graph=" in c]
    assert len(runs) == sum(rounds + e["retries"] for e in t["entries"].values()) and all("'taskset f0 " in c for c in runs)
    assert all(all(f in c for f in flags) for c in runs)
    return pushed


def second_profile_pushes_nothing(adb_env, ph, transport, log, pushed, out):
    """A second profile of the same space (a new table): every model is already on the phone."""
    r2 = profile(adb_env, "--host", ph.address, "--transport", transport, "--out", str(out))
    assert r2.returncode == 0, r2.stderr
    assert log_lines(log, "push") == pushed
    assert set(json.loads(out.read_text())["entries"]) == set(TINY_KEYS)


@pytest.fixture(scope="module")
def host_litert_table(adb_env, tmp_path_factory):
    """The host LiteRT table of `tiny`, measured now with the host profile's own protocol (the
    same runs, warm-up, minimum time and rounds as sd855's), so a busy minute on this shared
    machine is in both tables or in neither."""
    out = tmp_path_factory.mktemp("host") / "host-tiny-litert.json"
    r = run_hwnas("profile", "--device", "host", "--space", "tiny", "--backend", "litert", "--out", str(out), env=adb_env, timeout=900)
    assert r.returncode == 0, r.stderr
    return json.loads(out.read_text())


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_profile_sd855_over_adb_writes_the_phones_table_and_second_profile_pushes_nothing(adb_env, phone_process, tmp_path, transport):
    """`hwnas profile --device sd855 --host ...` with a short protocol: the phone's table, one push per
    block, every measurement a pinned benchmark_model run with the protocol's flags. (The same with
    sd855's own protocol, compared with a host LiteRT table, is the slow test below.)"""
    log = tmp_path / "phone.log"
    ph = phone_process(log=log)
    out = tmp_path / "sd855-tiny.json"
    r = profile(adb_env, "--host", ph.address, "--transport", transport, "--out", str(out))
    t = phone_table(r, out, transport)
    assert all(0 < e["median_ms"] < 100 and e["n"] >= 10 for e in t["entries"].values())
    assert t["protocol"]["cpu_mask"] == [4, 5, 6, 7] and t["protocol"]["threads"] == 1 and t["protocol"]["rounds"] == 1
    pushed = pushes_once_and_runs_the_protocol(log, t, 1, ("--num_runs=10", "--warmup_runs=2", "--min_secs=0 "))
    if transport != "adb-shell":
        return  # push caching is transport-independent
    second_profile_pushes_nothing(adb_env, ph, transport, log, pushed, tmp_path / "again.json")


@pytest.mark.slow
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_profile_sd855_over_adb_end_to_end_agrees_with_host_and_second_profile_pushes_nothing(
        adb_env, phone_process, host_litert_table, tmp_path, transport):
    log = tmp_path / "phone.log"
    ph = phone_process(log=log)
    out = tmp_path / "sd855-tiny.json"
    # the command of the README, with sd855's own protocol (runs 50, warm-up 10, 0.1 s, 3 rounds)
    r = run_hwnas("profile", "--device", "sd855", "--space", "tiny", "--host", ph.address, "--transport", transport,
                  "--out", str(out), env=adb_env, timeout=900)
    t = phone_table(r, out, transport)
    assert all(0 < e["median_ms"] < 100 and e["n"] >= 3 * 50 for e in t["entries"].values())
    assert t["protocol"]["cpu_mask"] == [4, 5, 6, 7] and t["protocol"]["threads"] == 1 and t["protocol"]["rounds"] == 3
    # same interpreter underneath, same protocol: the phone times the same models as the host
    # LiteRT table. Checked as behaviour, not as timing (the two tables are measured minutes apart
    # on a shared machine; the per-block ±15% agreement is benchmarks/adb_bench.py's figure): the
    # blocks come out in the same order, at the same scale (no unit or model mix-up, which would
    # be off by 2x to 1000x), and none is off by a factor of two.
    host = host_litert_table["entries"]
    ratio = {k: t["entries"][k]["median_ms"] / host[k]["median_ms"] for k in TINY_KEYS}
    worst = sorted(ratio.items(), key=lambda kv: abs(math.log(kv[1])))[-3:]
    # The scale bound is wide on purpose: a mix-up is off by 2x to 1000x, while two tables timed
    # minutes apart on a loaded shared machine were seen 1.24x apart in their median (a timing
    # figure, which belongs to the benchmark).
    assert 2 / 3 <= statistics.median(ratio.values()) <= 1.5, f"phone/host scale: median ratio {statistics.median(ratio.values()):.2f}"
    assert all(0.5 <= x <= 2.0 for x in ratio.values()), f"phone/host ratio beyond 2x: worst {worst}"
    rho = spearmanr([t["entries"][k]["median_ms"] for k in TINY_KEYS], [host[k]["median_ms"] for k in TINY_KEYS]).statistic
    assert rho >= 0.9, f"phone and host rank the blocks differently: Spearman {rho:.2f}"
    pushed = pushes_once_and_runs_the_protocol(log, t, 3, ("--num_runs=50", "--warmup_runs=10", "--min_secs=0.1"))
    if transport != "adb-shell":
        return  # push caching is transport-independent (the benchmark shows it for both)
    # a second profile of the same space (only the pushes matter here: a quick protocol)
    second_profile_pushes_nothing(adb_env, ph, transport, log, pushed, tmp_path / "again.json")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_phone_gone_mid_profile_then_resume_measures_only_the_rest(adb_env, phone_process, tmp_path, transport):
    devices = fast_profile(tmp_path, reconnect_timeout_s=2.0, min_time_s=0.0)
    env = {"HWNAS_DEVICES_DIR": str(devices)}
    log1 = tmp_path / "phone1.log"
    ph = phone_process(["drop-after=60"], log=log1)
    out = tmp_path / "t.json"
    r = profile(adb_env, "--host", ph.address, "--transport", transport, "--out", str(out), env=env)
    msg = error_line(r)
    assert f"phone {ph.address} disappeared and did not come back within 2s" in msg
    assert "run the same command again to continue (finished work is saved)" in msg
    journal = out.with_name(out.name + ".journal.jsonl")
    recs = [json.loads(x) for x in journal.read_text().splitlines()[1:]]
    first = {rec["key"]: rec["measurement"] for rec in recs if "measurement" in rec}
    assert 0 < len(first) < len(TINY_KEYS) and not out.exists()
    ph.stop()
    log2 = tmp_path / "phone2.log"
    ph2 = phone_process(port=ph.port, log=log2)  # the phone is back (rebooted: its files are gone)
    r = profile(adb_env, "--host", ph2.address, "--transport", transport, "--out", str(out), env=env)
    assert r.returncode == 0, r.stderr
    t = json.loads(out.read_text())
    assert set(t["entries"]) == set(TINY_KEYS) and not t["failed"]  # nothing lost
    assert t["device"]["transport"] == transport
    for key, m in first.items():  # nothing re-measured: the journaled measurements are the entries
        assert t["entries"][key]["median_ms"] == m["median_ms"] and t["entries"][key]["measured"] == m["measured"]
    runs2 = [c for c in log_lines(log2, "shell") if "benchmark_model --graph=" in c]
    assert len(runs2) == sum(1 + e["retries"] for k, e in t["entries"].items() if k not in first)
    assert not journal.exists()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_refused_authorization_is_a_clear_error(adb_env, phone_process, tmp_path, transport):
    env = {"HWNAS_DEVICES_DIR": str(fast_profile(tmp_path, auth_timeout_s=3.0))}
    ph = phone_process(["refuse-auth"])
    msg = error_line(profile(adb_env, "--host", ph.address, "--transport", transport, "--out", str(tmp_path / "t.json"), env=env))
    assert msg == (f"error: phone {ph.address} did not authorize this computer: unlock it, accept 'Allow USB debugging?' "
                   f"(tick 'Always allow'), then retry")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_missing_benchmark_binary_is_a_clear_error(adb_env, phone_process, tmp_path, transport):
    ph = phone_process(["binary-missing"])
    msg = error_line(profile(adb_env, "--host", ph.address, "--transport", transport, "--out", str(tmp_path / "t.json")))
    assert msg.startswith(f"error: phone {ph.address} is not ready: benchmark_model missing on the phone at "
                          f"'/data/local/tmp/hwnas/benchmark_model': run `hwnas device setup sd855 --benchmark-binary PATH`")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_hot_phone_is_waited_for_before_measuring(adb_env, phone_process, tmp_path, transport):
    env = {"HWNAS_DEVICES_DIR": str(fast_profile(tmp_path, min_time_s=0.0))}
    log = tmp_path / "phone.log"
    ph = phone_process(["hot=3"], log=log)
    out = tmp_path / "t.json"
    r = profile(adb_env, "--host", ph.address, "--transport", transport, "--out", str(out), env=env)
    assert r.returncode == 0, r.stderr
    assert f"phone {ph.address} is hot (cpu-1-3-usr at 60.8 C > 45 C); waiting for it to cool down" in r.stderr
    assert f"phone {ph.address} cooled down to 38.8 C" in r.stderr
    t = json.loads(out.read_text())
    assert set(t["entries"]) == set(TINY_KEYS) and t["device"]["transport"] == transport
    shell = log_lines(log, "shell")
    runs = [i for i, c in enumerate(shell) if "benchmark_model --graph=" in c]
    # the first run heats the phone: the temperature is polled (about once a second) before the next one
    assert sum("thermal_zone" in c for c in shell[runs[0]:runs[1]]) >= 2 * 3


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_several_phones_one_worker_and_one_table_each(adb_env, phone_process, tmp_path, transport):
    env = {"HWNAS_DEVICES_DIR": str(fast_profile(tmp_path, min_time_s=0.0))}
    a = phone_process(serial="SERIALAAA")
    b = phone_process(serial="SERIALBBB")
    out = tmp_path / "t.json"
    r = profile(adb_env, "--serial", a.address, "--serial", b.address, "--transport", transport, "--out", str(out), env=env)
    assert r.returncode == 0, r.stderr
    tables = {p.name: json.loads(p.read_text()) for p in tmp_path.glob("t-*.json")}
    tag = lambda addr: addr.replace(":", "_")  # noqa: E731
    assert set(tables) == {f"t-{tag(a.address)}.json", f"t-{tag(b.address)}.json"}
    assert {t["device"]["serial"] for t in tables.values()} == {"SERIALAAA", "SERIALBBB"}
    assert {t["device"]["transport"] for t in tables.values()} == {transport}
    assert all(set(t["entries"]) == set(TINY_KEYS) for t in tables.values())
    assert r.stdout.count("blocks timed") == 2


@pytest.mark.slow
def test_phone_table_agrees_with_the_host_litert_table(adb_local, phone, tmp_path):
    """Same interpreter underneath, same protocol: the per-block latencies agree (profiles alternate
    between host and phone so load from other processes hits both alike)."""
    import statistics

    from hwnas.device.profiles import load_device
    from hwnas.latency.backends import Protocol
    from hwnas.latency.profiler import profile_space

    s = phone()
    host_dev, phone_dev = load_device("host"), load_device("sd855")
    same = dict(runs=50, warmup_runs=10, rounds=1, min_time_s=0.1, threads=1, cv_bound=0.05, max_retries=3, cooldown_s=0.0)
    host_m, adb_m = {}, {}
    for rep in range(3):
        h = profile_space(host_dev, "tiny", "litert", tmp_path / f"h{rep}.json", protocol=Protocol.from_device(host_dev, **same))
        a = profile_space(phone_dev, "tiny", "adb", tmp_path / f"a{rep}.json", protocol=Protocol.from_device(phone_dev, **same),
                          backend_options={"serial": f"127.0.0.1:{s.port}", "log": lambda m: None})
        for k in TINY_KEYS:
            host_m.setdefault(k, []).append(h.entries[k]["median_ms"])
            adb_m.setdefault(k, []).append(a.entries[k]["median_ms"])
        assert a.device["soc"] == "SM8150"
    dev = [abs(statistics.median(adb_m[k]) / statistics.median(host_m[k]) - 1) for k in TINY_KEYS]
    assert statistics.median(dev) < 0.05
    assert max(dev) <= 0.15
