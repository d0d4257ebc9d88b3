"""Parse the text TensorFlow Lite's ``benchmark_model`` prints: per-run averages and per-op profile.

Handles the old format (``count=100 first=.. curr=.. min=.. max=.. avg=.. std=..`` after each
"Running benchmark for N iterations", and ``Average inference timings in us: Warmup: ..,
Init: .., no stats: ..``) and the newer one (``Inference timings in us: Init: .., First
inference: .., Warmup (avg): .., Inference (avg): ..``). With ``--enable_op_profiling`` (or a
verbose build) it also reads the "Run Order" table (one row per executed node), the "Top by
Computation Time" table (rows repeated from Run Order: never add them twice) and the
"Summary by node type" table.

The one reader of that output: the adb backend times blocks with it (``timed_run``), and a
saved log is read with ``load_benchmark_log`` (UTF-8, or UTF-16 as PowerShell's ``>`` writes it);
``group_ops`` sums the per-op times per block so a whole-network profile can be compared with its
reported average.

benchmark_model always runs a warm-up block before the timed one, each announced by "Running
benchmark for ..." and closed by one stat line, so the timed runs are the second block. A log
that stops earlier (after the warm-up, inside a stat line, inside the Run Order table) is refused
in one line saying what is missing rather than read as if complete; the TF 2.x row form
``[name]:N`` (the node index after the name) is read like the older ``[name]``.
"""

from __future__ import annotations

import math
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..errors import HwnasError

_NUM = r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?"
_KV = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=(" + _NUM + r"|nan|inf)")
_SECTION = re.compile(r"^=+\s*(.*?)\s*=+\s*$")
_LEVEL = re.compile(r"^(?:INFO|WARN|WARNING|ERROR|VERBOSE):\s?")


@dataclass
class RunStats:
    """One ``count=.. first=.. .. avg=.. std=..`` line (microseconds, as printed)."""

    count: int
    values_us: dict[str, float]
    complete: bool = True  # False: the line stops before its std (the log was cut inside it)

    @property
    def avg_ms(self) -> float:
        return self.values_us["avg"] / 1000.0

    @property
    def std_ms(self) -> float:
        return self.values_us.get("std", 0.0) / 1000.0

    def get_ms(self, name: str) -> float | None:
        v = self.values_us.get(name)
        return None if v is None else v / 1000.0


@dataclass
class OpRecord:
    """One row of a per-operator profile table."""

    node_type: str
    start_ms: float
    first_ms: float
    avg_ms: float
    percent: float
    cdf_percent: float
    mem_kb: float
    times_called: int
    name: str


@dataclass
class NodeTypeSummary:
    node_type: str
    count: int
    avg_ms: float
    percent: float
    times_called: int


@dataclass
class BenchmarkLog:
    settings: dict[str, str] = field(default_factory=dict)  # "Num runs", "Num threads", "Graph", ...
    runs: list[tuple[int, RunStats]] = field(default_factory=list)  # (iterations announced, stats)
    timings: RunStats | None = None  # the profiler's "Timings (microseconds)" line, if any
    averages_us: dict[str, float] = field(default_factory=dict)  # "Warmup", "Init", "no stats"/"Inference (avg)", ...
    init_ms: float | None = None
    ops: list[OpRecord] = field(default_factory=list)  # Run Order
    top: list[OpRecord] = field(default_factory=list)  # Top by Computation Time (duplicates of ops)
    by_type: dict[str, NodeTypeSummary] = field(default_factory=dict)
    nodes_executed: int | None = None
    nodes_observed: int | None = None

    run_order_rows: bool = False  # a Run Order table was started

    @property
    def warmup(self) -> RunStats | None:
        """The first "Running benchmark" block when more than one was printed (the warm-up)."""
        return self.runs[0][1] if len(self.runs) > 1 else None

    @property
    def timed(self) -> RunStats | None:
        """The timed runs: the block after the warm-up (None when the log holds no such block)."""
        return self.runs[-1][1] if len(self.runs) > 1 else None

    def timed_run(self) -> RunStats:
        """The timed block, or an HwnasError saying what the log lacks."""
        if not self.runs:
            raise HwnasError("benchmark_model output has no timing lines; check that the binary ran and the model loaded (see its full output)")
        if len(self.runs) == 1:
            n, st = self.runs[0]
            raise HwnasError(f"benchmark_model output ends after the warm-up ({n} iterations, avg {st.values_us.get('avg', 0) / 1000:g} ms): "
                             "the timed runs are missing; give the complete log or run the benchmark again")
        st = self.runs[-1][1]
        if not st.complete:
            raise HwnasError("benchmark_model output is cut short inside the timed runs' stat line (no std=); "
                             "give the complete log or run the benchmark again")
        if st.count <= 0 or "avg" not in st.values_us:
            raise HwnasError("benchmark_model timed no runs (count=0); run it with --num_runs of 1 or more")
        bad = {k: v for k, v in st.values_us.items() if not math.isfinite(v) or v < 0}
        if bad:
            raise HwnasError(f"benchmark_model's timed stat line has impossible values ({', '.join(f'{k}={v:g}' for k, v in bad.items())}); "
                             "give the output of a run that completed")
        return st

    @property
    def average_ms(self) -> float:
        """The reported average of one inference (ms): the summary line, else the timed block."""
        for k in ("Inference (avg)", "no stats", "with stats"):
            if k in self.averages_us:
                v = self.averages_us[k]
                if not (math.isfinite(v) and v > 0):
                    raise HwnasError(f"benchmark_model reported an average of {v:g} us ({k}); give the output of a run that completed")
                return v / 1000.0
        st = self.timed_run()
        if not st.values_us["avg"] > 0:
            raise HwnasError("benchmark_model reported an average of 0 us: the model runs in less than its 1 us resolution")
        return st.avg_ms

    def ops_problem(self) -> str | None:
        """What makes the Run Order table incomplete (None: every executed node has its row)."""
        if not self.run_order_rows:
            return None
        expected = self.nodes_executed if self.nodes_executed is not None else self.nodes_observed
        if expected is None:
            return (f"the log is cut off after {len(self.ops)} rows of the Run Order table (no 'Number of nodes executed' "
                    "line follows); give the complete log")
        if expected != len(self.ops):
            return f"the Run Order table has {len(self.ops)} rows but the log reports {expected} nodes executed; give the complete log"
        return None

    def checked_ops(self) -> list[OpRecord]:
        """The Run Order rows, refused when the table is incomplete (see ``ops_problem``)."""
        problem = self.ops_problem()
        bad = next((op for op in self.ops if not (math.isfinite(op.avg_ms) and op.avg_ms >= 0)), None)
        if bad is not None and not problem:
            problem = f"row {bad.name!r} has an average of {bad.avg_ms:g} ms"
        if problem:
            raise HwnasError(f"benchmark_model per-op profile incomplete: {problem}")
        return self.ops

    @property
    def op_sum_ms(self) -> float:
        return sum(op.avg_ms * max(op.times_called, 1) for op in self.checked_ops())

    def group_ops(self, block_of: Callable[[str], str] | None = None) -> "OrderedDict[str, float]":
        return group_ops(self.checked_ops(), block_of)


def default_block_of(name: str) -> str:
    """``Net/expanded_conv_3/up_3-ks_7.../depthwise/Relu6`` -> ``expanded_conv_3`` (the 2nd scope)."""
    parts = [p for p in name.split("/") if p]
    return parts[1] if len(parts) > 2 else (parts[0] if parts else name)


def group_ops(ops: list[OpRecord], block_of: Callable[[str], str] | None = None) -> "OrderedDict[str, float]":
    """Sum per-op average times (x times called) per block, in execution order."""
    block_of = block_of or default_block_of
    out: OrderedDict[str, float] = OrderedDict()
    for op in ops:
        b = block_of(op.name)
        out[b] = out.get(b, 0.0) + op.avg_ms * max(op.times_called, 1)
    return out


def _op_row(line: str) -> OpRecord | None:
    # TF 2.x prints the node index after the name: "[name]:12"
    n = r"(-?(?:[0-9]+\.?[0-9]*|\.[0-9]+))"
    m = re.match(rf"^\s*(\S+)\s+{n}\s+{n}\s+{n}\s+{n}%\s+{n}%\s+{n}\s+(\d+)\s+\[(.*)\](?::\d+)?\s*$", line)
    if not m:
        return None
    g = m.groups()
    return OpRecord(g[0], float(g[1]), float(g[2]), float(g[3]), float(g[4]), float(g[5]), float(g[6]), int(g[7]), g[8])


def _type_row(line: str) -> NodeTypeSummary | None:
    n = r"(-?(?:[0-9]+\.?[0-9]*|\.[0-9]+))"
    m = re.match(rf"^\s*(\S+)\s+(\d+)\s+{n}\s+{n}%\s+{n}%\s+{n}\s+(\d+)\s*$", line)
    if not m:
        return None
    g = m.groups()
    return NodeTypeSummary(g[0], int(g[1]), float(g[2]), float(g[3]), int(g[6]))


def parse_benchmark_log(text: str) -> BenchmarkLog:
    """Parse benchmark_model's stdout (+stderr); raise HwnasError if it holds no timings."""
    log = BenchmarkLog()
    section = ""
    pending_iterations: int | None = None
    for raw in text.splitlines():
        # current prebuilt binaries prefix every line with its log level ("INFO: ")
        line = _LEVEL.sub("", raw.rstrip())
        s = line.strip()
        sec = _SECTION.match(s)
        if sec and s.startswith("="):
            section = sec.group(1)
            continue
        m = re.match(r"^(Num runs|Num threads|Warmup runs|Graph|Input layers|Input shapes|Use nnapi|Min num runs|Min warmup runs|Use xnnpack)\s*:\s*\[(.*)\]\s*$", s)
        if m:
            log.settings[m.group(1)] = m.group(2)
            continue
        m = re.match(r"^Initialized session in ([0-9]+\.?[0-9]*)\s*ms", s)
        if m:
            log.init_ms = float(m.group(1))
            continue
        m = re.match(r"^Running benchmark for (?:at least )?(\d+) iterations", s)
        if m:
            pending_iterations = int(m.group(1))
            continue
        if s.startswith("count=") or s.startswith("Timings (microseconds):"):
            kv = {k: float(v) for k, v in _KV.findall(s)}
            if "avg" not in kv and "curr" in kv and "(all same)" in s:  # every run took the same whole microseconds
                kv.update(avg=kv["curr"], std=0.0, min=kv["curr"], max=kv["curr"])
            if "count" not in kv:
                continue
            count = int(kv.pop("count"))
            complete = count == 0 or ("avg" in kv and "std" in kv)
            stats = RunStats(count, kv, complete)
            if s.startswith("Timings"):
                if complete and count > 0:
                    log.timings = stats
            else:
                log.runs.append((pending_iterations if pending_iterations is not None else count, stats))
                pending_iterations = None
            continue
        m = re.match(r"^(?:Average )?[Ii]nference timings in us:\s*(.*)$", s)
        if m:
            for part in m.group(1).split(","):
                if ":" in part:
                    k, v = part.rsplit(":", 1)
                    try:
                        log.averages_us[k.strip()] = float(v.strip())
                    except ValueError:
                        pass
            continue
        m = re.match(r"^Number of nodes executed:\s*(\d+)", s)
        if m:
            log.nodes_executed = int(m.group(1))
            continue
        m = re.match(r"^(\d+) nodes observed", s)
        if m:
            log.nodes_observed = int(m.group(1))
            continue
        if section == "Run Order":
            log.run_order_rows = True
            row = _op_row(line)
            if row:
                log.ops.append(row)
        elif section.startswith("Top by"):
            row = _op_row(line)
            if row:
                log.top.append(row)
        elif section.startswith("Summary by node type"):
            t = _type_row(line)
            if t:
                log.by_type[t.node_type] = t
    if not log.runs and not log.averages_us:
        raise HwnasError("benchmark_model output has no timing lines; check that the binary ran and the model loaded (see its full output)")
    return log


def decode_log(data: bytes) -> str:
    """A saved log's text: UTF-16 (with a BOM, or mostly NUL high bytes, as PowerShell's ``>``
    writes it) or UTF-8; undecodable bytes become U+FFFD rather than an error."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16", errors="replace")
    if len(data) >= 4 and data[1::2].count(0) > 0.4 * (len(data) // 2):
        return data.decode("utf-16-le", errors="replace")
    if len(data) >= 4 and data[0::2].count(0) > 0.4 * (len(data) // 2):
        return data.decode("utf-16-be", errors="replace")
    return data.decode("utf-8-sig", errors="replace")


def load_benchmark_log(path: str | Path) -> BenchmarkLog:
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise HwnasError(f"cannot read benchmark log {str(p)!r}: {e.strerror}") from None
    try:
        return parse_benchmark_log(decode_log(data))
    except HwnasError as e:
        raise HwnasError(f"benchmark log {str(p)!r}: {e}") from None
