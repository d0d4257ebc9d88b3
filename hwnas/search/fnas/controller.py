"""The RL agent: an LSTM that emits one op per layer (MnasNet / NASNet controller, FNAS Sec. 6.1).

One LSTM layer with 100 hidden units; at step t it reads an embedding of the previous choice and
a per-layer linear head gives a softmax over *that* layer's ops. ``sample`` draws a batch of archs
with their log-probabilities; ``log_prob`` re-scores given archs (what PPO's ratio needs).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


class Controller(nn.Module):
    def __init__(self, n_choices: Sequence[int], hidden: int = 100, embed: int | None = None) -> None:
        super().__init__()
        self.n_choices = [int(c) for c in n_choices]
        embed = embed or hidden
        self.hidden = hidden
        self.start = nn.Parameter(torch.zeros(1, embed))
        # one embedding table per layer for "the op chosen at layer t" -> input of step t+1
        self.embeds = nn.ModuleList(nn.Embedding(c, embed) for c in self.n_choices)
        self.lstm = nn.LSTMCell(embed, hidden)
        self.heads = nn.ModuleList(nn.Linear(hidden, c) for c in self.n_choices)
        for emb in self.embeds:
            nn.init.uniform_(emb.weight, -0.1, 0.1)
        for head in self.heads:  # start from the uniform policy: every arch equally likely
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)

    @property
    def num_layers(self) -> int:
        return len(self.n_choices)

    def _run(self, n: int, actions: torch.Tensor | None, generator: torch.Generator | None):
        h = torch.zeros(n, self.hidden)
        c = torch.zeros(n, self.hidden)
        x = self.start.expand(n, -1)
        chosen, logps, ents = [], [], []
        for t, head in enumerate(self.heads):
            h, c = self.lstm(x, (h, c))
            logits = head(h)
            logp_all = torch.log_softmax(logits, dim=-1)
            if actions is None:
                a = torch.multinomial(logp_all.exp().detach(), 1, generator=generator).squeeze(1)
            else:
                a = actions[:, t]
            chosen.append(a)
            logps.append(logp_all.gather(1, a[:, None]).squeeze(1))
            ents.append(-(logp_all.exp() * logp_all).sum(-1))
            x = self.embeds[t](a)
        return torch.stack(chosen, 1), torch.stack(logps, 1).sum(1), torch.stack(ents, 1).sum(1)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` archs as choice indices (n, layers) and their log-probabilities under the current policy."""
        actions, logp, _ = self._run(n, None, generator)
        return actions, logp

    def log_prob(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-probability and entropy of given archs (differentiable)."""
        actions = torch.as_tensor(actions, dtype=torch.long)
        _, logp, ent = self._run(actions.shape[0], actions, None)
        return logp, ent
