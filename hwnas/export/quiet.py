"""Keep the converters' start-up banners off the terminal without hiding real messages.

TensorFlow/LiteRT (absl), oneDNN, torchao and the LiteRT interpreter print banners straight
to file descriptor 2 from C++ when they load ("All log messages before absl::InitializeLog()",
"oneDNN custom operations are on", "Created TensorFlow Lite XNNPACK delegate"); the
TF_CPP_MIN_LOG_LEVEL/GLOG_minloglevel variables do not reach all of them. The CLI runs an
export with fd 2 captured and replays every line except these known banners.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from typing import Iterator

BANNERS = [re.compile(p) for p in (
    r"^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$",
    r"^I\d{4} [\d:.]+\s+\d+ port\.cc:\d+\] oneDNN custom operations are on",
    r"^INFO: Created TensorFlow Lite XNNPACK delegate for CPU\.$",
    r"^Failed to load .*/torchao/_C\S*\.so: Could not load this library",
    r"^W\d{4} [\d:.]+ \d+ .*torch/utils/_pytree\.py:\d+\] .* register_constant\(\) on Enum subclasses is deprecated",
)]


def is_banner(line: str) -> bool:
    return any(p.search(line) for p in BANNERS)


@contextlib.contextmanager
def banners_filtered() -> Iterator[None]:
    """Capture fd 2 for the block; afterwards write back every captured line that is not a banner."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's own INFO/WARNING logs
    os.environ.setdefault("GLOG_minloglevel", "2")
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no real fd 2 (embedded): nothing to filter
        yield
        return
    with tempfile.TemporaryFile() as buf:
        os.dup2(buf.fileno(), 2)
        try:
            yield
        finally:
            try:
                sys.stderr.flush()
            except (OSError, ValueError):
                pass
            os.dup2(saved, 2)
            os.close(saved)
            buf.seek(0)
            kept = [ln for ln in buf.read().decode(errors="replace").splitlines() if ln.strip() and not is_banner(ln)]
            if kept:
                sys.stderr.write("\n".join(kept) + "\n")
                sys.stderr.flush()
