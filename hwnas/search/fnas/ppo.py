"""Proximal Policy Optimization for the controller (Schulman et al. 2017; FNAS Sec. 4.1).

NAS is a one-step episode: the whole arch is one action sequence and its reward arrives at the
end, so the advantage is R minus a baseline. As in NASNet/MnasNet the baseline is an
exponential moving average of past rewards (the critic's V is *not* used as a baseline: for a
trusted arch V is its reward, so V - V would erase exactly the signal UAC supplies).
Replayed samples from the experience buffer carry importance weights that scale their terms; their
ratio is taken against the policy that sampled them, and only the policy's own samples move the
baseline (replayed archs are the best ever seen: counted in, they would make every fresh sample
look worse than it is).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .controller import Controller


def ppo_loss(new_logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor,
             weights: torch.Tensor | None = None, clip: float = 0.2, dual_clip: float | None = None,
             dual_mask: torch.Tensor | None = None) -> torch.Tensor:
    """The clipped surrogate, negated for minimisation and weighted per sample.

    L = -sum_i w_i * min(r_i A_i, clip(r_i, 1-eps, 1+eps) A_i) / sum_i w_i, with r_i = exp(new - old).
    ``dual_clip`` c (Ye et al. 2020) also bounds a negative-advantage term below by c A_i, for the samples in
    ``dual_mask`` (default all): an off-policy sample whose ratio to its behaviour policy is huge would
    otherwise dominate the step.
    """
    ratio = torch.exp(new_logp - old_logp)
    unclipped = ratio * advantages
    clipped = torch.clamp(ratio, 1.0 - clip, 1.0 + clip) * advantages
    surrogate = torch.minimum(unclipped, clipped)
    if dual_clip is not None:
        bounded = torch.where(advantages < 0, torch.maximum(surrogate, dual_clip * advantages), surrogate)
        surrogate = bounded if dual_mask is None else torch.where(dual_mask, bounded, surrogate)
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

    def advantages(self, rewards: np.ndarray, on_policy: np.ndarray | None = None) -> np.ndarray:
        """R - EMA baseline; the baseline then absorbs the mean reward of this batch's ``on_policy`` samples.

        The baseline estimates the current policy's expected reward, so replayed (off-policy, top-priority)
        samples must not raise it: they would make every fresh sample look worse than it is.
        """
        rewards = np.asarray(rewards, dtype=float)
        own = rewards if on_policy is None or not np.any(on_policy) else rewards[np.asarray(on_policy, dtype=bool)]
        if self.baseline is None:
            self.baseline = float(own.mean())
        adv = rewards - self.baseline
        d = self.config.baseline_decay
        self.baseline = d * self.baseline + (1 - d) * float(own.mean())
        return adv

    def update(self, actions: np.ndarray, old_logp: np.ndarray, rewards: np.ndarray,
               weights: np.ndarray | None = None, on_policy: np.ndarray | None = None,
               dual_clip: float | None = None, baseline_on_policy: bool = True) -> dict[str, float]:
        """Several clipped-surrogate passes over one batch; returns the last loss and mean ratio.

        ``on_policy``: which samples the current policy drew (default all). Only they move the baseline
        (unless ``baseline_on_policy`` is off), and ``dual_clip`` bounds the negative-advantage terms of the
        others (replayed samples).
        """
        cfg = self.config
        a = torch.as_tensor(np.asarray(actions), dtype=torch.long)
        old = torch.as_tensor(np.asarray(old_logp), dtype=torch.float32)
        adv = torch.as_tensor(self.advantages(rewards, on_policy if baseline_on_policy else None), dtype=torch.float32)
        w = None if weights is None else torch.as_tensor(np.asarray(weights), dtype=torch.float32)
        off = None if on_policy is None else ~torch.as_tensor(np.asarray(on_policy, dtype=bool))
        if off is not None and not bool(off.any()):
            dual_clip = None
        loss_v = ratio_v = 0.0
        for _ in range(cfg.epochs):
            new, ent = self.controller.log_prob(a)
            loss = ppo_loss(new, old, adv, w, cfg.clip, dual_clip, off) - cfg.entropy * ent.mean()
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            loss_v = float(loss.detach())
            ratio_v = float(torch.exp(new - old).mean().detach())
        return {"loss": loss_v, "ratio": ratio_v}
