"""Named random streams: every random draw of a run is seeded from (run seed, stream[, step]).

Deriving each stream's seed from the run seed and a fixed stream id (instead of sharing one
generator) is what makes a resumed run bit-exact: the shuffle of epoch 7 or the augmentation
of iteration 1234 does not depend on how many draws happened before.
"""

from __future__ import annotations

import numpy as np

INIT = 1  # weight initialization
PATHS = 2  # path sampling (numpy generator, saved in checkpoints)
SHUFFLE = 3  # the order of an epoch's images, per epoch
AUGMENT = 4  # a batch's crops and flips, per iteration


def mix_seed(*xs: int) -> int:
    """A 32-bit seed from a tuple of integers (seed, stream, step, ...), well mixed."""
    return int(np.random.SeedSequence([int(x) & 0xFFFFFFFF for x in xs]).generate_state(1)[0])
