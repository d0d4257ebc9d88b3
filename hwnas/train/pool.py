"""The GreedyNAS candidate pool: the best paths seen so far with their evaluation losses.

A fixed-size priority queue kept as a heap whose top is the *worst* kept path, so a better
newcomer replaces it in O(log n) (the paper's "min-heap with priority ℓ"). It also keeps, per
path, the iteration it entered, from which the update frequency π of Eq. (10) is read:

    π = (number of pool paths that entered within the last ``window`` iterations) / |P|

i.e. the share of the pool that is new relative to the pool ``window`` iterations ago
(the paper writes the overlap |P_t ∩ P| but describes π as the share of *new* paths: "smaller
π implies that fewer new paths are involved"; we implement the described quantity).
Training stops when the pool is full and π <= α.
"""

from __future__ import annotations

import heapq
from typing import Any, Iterable, Sequence

import numpy as np

ChoicePath = tuple[int, ...]  # one choice index per searchable layer (not a file path)


class CandidatePool:
    def __init__(self, size: int = 1000) -> None:
        if size < 1:
            raise ValueError("pool size must be >= 1")
        self.size = size
        self._heap: list[tuple[float, int, ChoicePath]] = []  # (-loss, tiebreak, path): top = highest loss
        self._entry: dict[ChoicePath, tuple[float, int]] = {}  # path -> (loss, iteration it entered)
        self._counter = 0
        self.n_updates = 0  # insertions of a path that was not in the pool

    def __len__(self) -> int:
        return len(self._entry)

    def __contains__(self, path: Sequence[int]) -> bool:
        return tuple(int(i) for i in path) in self._entry

    @property
    def full(self) -> bool:
        return len(self) >= self.size

    def update(self, path: Sequence[int], loss: float, iteration: int) -> bool:
        """Offer a path with its latest loss; returns True when it is (now) in the pool."""
        p = tuple(int(i) for i in path)
        loss = float(loss)
        if p in self._entry:  # refresh its loss; it keeps its entry time
            _, since = self._entry[p]
            self._entry[p] = (loss, since)
            self._rebuild()
            return True
        if len(self) < self.size:
            self._push(p, loss, iteration)
            self.n_updates += 1
            return True
        worst_loss = -self._heap[0][0]
        if loss >= worst_loss:
            return False
        _, _, out = heapq.heappop(self._heap)
        del self._entry[out]
        self._push(p, loss, iteration)
        self.n_updates += 1
        return True

    def _push(self, p: ChoicePath, loss: float, iteration: int) -> None:
        self._entry[p] = (loss, iteration)
        heapq.heappush(self._heap, (-loss, self._counter, p))
        self._counter += 1

    def _rebuild(self) -> None:
        self._heap = [(-loss, i, p) for i, (p, (loss, _)) in enumerate(self._entry.items())]
        self._counter = len(self._heap)
        heapq.heapify(self._heap)

    def sample(self, rng: np.random.Generator) -> ChoicePath:
        """A path drawn uniformly from the pool (U(P) of Eq. 8)."""
        if not self._entry:
            raise ValueError("the candidate pool is empty")
        keys = self.paths_in_order()
        return keys[int(rng.integers(len(keys)))]

    def paths_in_order(self) -> list[ChoicePath]:
        """Insertion-independent deterministic order (sorted paths): the same on every rank."""
        return sorted(self._entry)

    def update_frequency(self, iteration: int, window: int) -> float:
        """π: the share of the pool that entered within the last ``window`` iterations."""
        if not self._entry:
            return 1.0
        new = sum(1 for _, since in self._entry.values() if since > iteration - window)
        return new / len(self._entry)

    def best(self, n: int | None = None) -> list[tuple[ChoicePath, float]]:
        """Paths sorted from lowest to highest loss."""
        items = sorted(((p, l) for p, (l, _) in self._entry.items()), key=lambda t: (t[1], t[0]))
        return items if n is None else items[:n]

    # ---- plain-JSON state ------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"size": self.size, "n_updates": self.n_updates,
                "entries": [[list(p), l, since] for p, (l, since) in sorted(self._entry.items())]}

    @classmethod
    def from_state(cls, d: dict[str, Any]) -> "CandidatePool":
        pool = cls(int(d["size"]))
        for p, loss, since in d["entries"]:
            pool._entry[tuple(int(i) for i in p)] = (float(loss), int(since))
        pool.n_updates = int(d.get("n_updates", 0))
        pool._rebuild()
        return pool

    @classmethod
    def of(cls, size: int, items: Iterable[tuple[Sequence[int], float]]) -> "CandidatePool":
        pool = cls(size)
        for p, loss in items:
            pool.update(p, loss, 0)
        return pool
