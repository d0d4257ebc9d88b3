"""``python -m tests.fakephone --port P [--fault NAME[=VALUE] ...] [--no-auth] [--clock core|wall] [--benchmark-format nightly|2019]``.

Faults: drop-after=N (vanish after N shell commands), down-for=S (come back S seconds after
vanishing; default never), refuse-auth, slow=KBPS, disk-full, binary-missing, hot=S (CPU
thermal zones above 45 C for S seconds once the first benchmark ran), rooted.
``--clock``: what benchmark_model times a run with (the measuring thread's CPU clock, as a big
core reserved by taskset shows, or the shared wall clock); ``--benchmark-format``: the output
of the current prebuilt benchmark_model or of a 2019 build.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from .device import Device, Faults
from .server import FakePhoneServer


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m tests.fakephone", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, default=5555, help="TCP port on 127.0.0.1 (0 = any free port)")
    ap.add_argument("--fault", action="append", default=[], help="a fault switch (repeatable)")
    ap.add_argument("--no-auth", action="store_true", help="do not ask for RSA authentication")
    ap.add_argument("--serial", default="FA7AP1A00855", help="what getprop ro.serialno answers")
    ap.add_argument("--clock", choices=("core", "wall"), default="core",
                    help="what benchmark_model times a run with: the measuring thread's CPU clock, as a big core reserved "
                         "for the benchmark would show (default), or this shared computer's wall clock")
    ap.add_argument("--benchmark-format", choices=("nightly", "2019"), default="nightly",
                    help="what benchmark_model prints: the current prebuilt binary's output (default) or a 2019 build's")
    ap.add_argument("--log", default="", help="append every shell command line and pushed file to this file")
    args = ap.parse_args()
    try:
        faults = Faults.parse(args.fault)
    except ValueError as e:
        ap.error(str(e))
    server = FakePhoneServer(Device(faults, serial=args.serial, log_path=args.log, clock=args.clock,
                                    benchmark_format=args.benchmark_format), port=args.port,
                             auth_required=not args.no_auth).start()
    print(f"fake SM8150 phone listening on 127.0.0.1:{server.port}", flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        done.wait()
    except KeyboardInterrupt:
        pass
    server.stop()
    sys.exit(0)


if __name__ == "__main__":
    main()
