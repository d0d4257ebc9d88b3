"""Architecture Experience Buffer (FNAS Sec. 5): replay of a few well-rewarded, evaluated archs.

Small (10 by default) so the agent does not fixate on old samples; distinct archs only; priority
P_i = softmax(r_i / temperature); sampled with replacement by P and corrected with prioritized
replay's importance weights S_i = (N P_i)^-beta / max_j S_j (Schaul et al. [25]), beta annealed 0 -> 1.

Each entry also keeps the log-probability the arch had under the policy that sampled it (the
behaviour policy, the paper's off-policy correction): PPO's ratio for a replayed arch is taken
against it, so replay can raise an arch to at most 1 + eps times the probability it was found
with. Re-scoring the old log-probability at every replay instead grants another +eps each update,
and ten archs replayed eight times a batch then make the policy deterministic within ~10 updates.
"""

from __future__ import annotations

from typing import Hashable, Sequence

import numpy as np


class ExperienceBuffer:
    def __init__(self, size: int = 10, temperature: float = 1.0) -> None:
        if size < 1:
            raise ValueError("experience buffer size must be at least 1")
        self.size = size
        self.temperature = temperature
        self.keys: list[Hashable] = []
        self.actions: list[np.ndarray] = []
        self.rewards: list[float] = []
        self.logps: list[float] = []  # log-probability of each arch under the policy that sampled it

    def __len__(self) -> int:
        return len(self.rewards)

    def add(self, key: Hashable, actions: Sequence[int], reward: float, logp: float = float("nan")) -> bool:
        """Keep the ``size`` best distinct archs; returns whether this one entered the buffer.

        ``logp``: the arch's log-probability under the policy that sampled it (the behaviour policy).
        """
        if key in self.keys:
            return False
        if len(self) < self.size:
            self.keys.append(key)
            self.actions.append(np.asarray(actions, dtype=np.int64))
            self.rewards.append(float(reward))
            self.logps.append(float(logp))
            return True
        worst = int(np.argmin(self.rewards))
        if reward <= self.rewards[worst]:
            return False
        self.keys[worst] = key
        self.actions[worst] = np.asarray(actions, dtype=np.int64)
        self.rewards[worst] = float(reward)
        self.logps[worst] = float(logp)
        return True

    def probabilities(self) -> np.ndarray:
        """P_i = exp(r_i/T) / sum_j exp(r_j/T), computed stably."""
        r = np.asarray(self.rewards, dtype=float) / self.temperature
        e = np.exp(r - r.max())
        return e / e.sum()

    def weights(self, beta: float) -> np.ndarray:
        """Importance weight of every entry, (N P_i)^-beta normalised by the largest (so <= 1)."""
        p = self.probabilities()
        s = (len(self) * p) ** (-float(beta))
        return s / s.max()

    def sample(self, n: int, rng: np.random.Generator, beta: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``n`` draws by priority: (entry indices, actions (n, layers), importance weights).

        The behaviour log-probabilities of the draws are ``[self.logps[i] for i in indices]``.
        """
        if len(self) == 0 or n <= 0:
            return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.int64), np.zeros(0)
        idx = rng.choice(len(self), size=n, replace=True, p=self.probabilities())
        return idx, np.stack([self.actions[i] for i in idx]), self.weights(beta)[idx]
