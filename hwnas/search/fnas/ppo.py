"""Proximal Policy Optimization for the controller (Schulman et al. 2017; FNAS Sec. 4.1).

NAS is a one-step episode: the whole arch is one action sequence and its reward arrives at the
end, so the advantage is R minus a baseline. As in NASNet/MnasNet the baseline is an
exponential moving average of past rewards (the critic's V is *not* used as a baseline: for a
trusted arch V is its reward, so V - V would erase exactly the signal UAC supplies).
Replayed samples from the experience buffer carry importance weights that scale their terms.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .controller import Controller


def ppo_loss(new_logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor,
             weights: torch.Tensor | None = None, clip: float = 0.2) -> torch.Tensor:
    """The clipped surrogate, negated for minimisation and weighted per sample.

    L = -sum_i w_i * min(r_i A_i, clip(r_i, 1-eps, 1+eps) A_i) / sum_i w_i, with r_i = exp(new - old).
    """
    ratio = torch.exp(new_logp - old_logp)
    unclipped = ratio * advantages
    clipped = torch.clamp(ratio, 1.0 - clip, 1.0 + clip) * advantages
    surrogate = torch.minimum(unclipped, clipped)
    if weights is None:
        return -surrogate.mean()
    return -(weights * surrogate).sum() / weights.sum()


@dataclass
class PPOConfig:
    lr: float = 3e-3          # tuned on NAS-Bench-Macro for plain PPO (3.5e-4 NASNet's, 1e-4..1e-2 tried); shared by all variants
    clip: float = 0.2         # PPO paper default
    epochs: int = 4           # optimisation passes per batch
    entropy: float = 1e-2     # entropy bonus against premature collapse (1e-4, 1e-2, 5e-2 tried on NAS-Bench-Macro; neutral for plain PPO)
    baseline_decay: float = 0.95  # EMA baseline of NASNet/MnasNet


class PPO:
    """Owns the controller's optimiser and the reward baseline; ``update`` is one policy step."""

    def __init__(self, controller: Controller, config: PPOConfig | None = None) -> None:
        self.controller = controller
        self.config = config or PPOConfig()
        self.optimizer = torch.optim.Adam(controller.parameters(), lr=self.config.lr)
        self.baseline: float | None = None

    def advantages(self, rewards: np.ndarray) -> np.ndarray:
        """R - EMA baseline; the baseline then absorbs this batch's mean reward."""
        rewards = np.asarray(rewards, dtype=float)
        if self.baseline is None:
            self.baseline = float(rewards.mean())
        adv = rewards - self.baseline
        d = self.config.baseline_decay
        self.baseline = d * self.baseline + (1 - d) * float(rewards.mean())
        return adv

    def update(self, actions: np.ndarray, old_logp: np.ndarray, rewards: np.ndarray,
               weights: np.ndarray | None = None) -> dict[str, float]:
        """Several clipped-surrogate passes over one batch; returns the last loss and mean ratio."""
        cfg = self.config
        a = torch.as_tensor(np.asarray(actions), dtype=torch.long)
        old = torch.as_tensor(np.asarray(old_logp), dtype=torch.float32)
        adv = torch.as_tensor(self.advantages(rewards), dtype=torch.float32)
        w = None if weights is None else torch.as_tensor(np.asarray(weights), dtype=torch.float32)
        loss_v = ratio_v = 0.0
        for _ in range(cfg.epochs):
            new, ent = self.controller.log_prob(a)
            loss = ppo_loss(new, old, adv, w, cfg.clip) - cfg.entropy * ent.mean()
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            loss_v = float(loss.detach())
            ratio_v = float(torch.exp(new - old).mean().detach())
        return {"loss": loss_v, "ratio": ratio_v}
