"""``python -m tests.kill_after N ARGS...``: run ``hwnas ARGS...`` and SIGKILL the process as soon as
the supernet trainer finishes iteration N (a crash with no chance to clean up, for resume tests)."""

import os
import signal
import sys

from hwnas.cli import main
from hwnas.train.trainer import SupernetTrainer


def kill_after(n: int) -> None:
    step = SupernetTrainer.step

    def step_then_die(self):
        rec = step(self)
        if self.counters.iteration >= n:
            os.kill(os.getpid(), signal.SIGKILL)
        return rec

    SupernetTrainer.step = step_then_die


if __name__ == "__main__":
    kill_after(int(sys.argv[1]))
    sys.argv = ["hwnas", *sys.argv[2:]]
    main()
