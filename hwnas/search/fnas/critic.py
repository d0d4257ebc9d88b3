"""Uncertainty-Aware Critic (FNAS Sec. 4.2): a value net V, an uncertainty net U, and the trust rule.

V(m) predicts an arch's reward, trained with L_V = |V(m) - R(m)|. U(m) predicts how wrong V is
there, trained with L_U = |U(m) - L_V|. An arch whose U is under the threshold is *trusted*: V
stands in for its reward and it is not evaluated. U must learn V's error on archs V has not
fitted yet, so each L_V target is V's error on the arch measured *before* V trains on it (the
error an unseen arch will have); on fitted archs L_V is near zero and U would trust everything.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


def mlp(d_in: int, hidden: int = 200, layers: int = 4) -> nn.Sequential:
    """``layers`` linear layers (the last one to a scalar) with PReLU between, as in FNAS Sec. 6.1."""
    mods: list[nn.Module] = []
    d = d_in
    for _ in range(layers - 1):
        mods += [nn.Linear(d, hidden), nn.PReLU(hidden)]
        d = hidden
    mods.append(nn.Linear(d, 1))
    return nn.Sequential(*mods)


@dataclass
class CriticConfig:
    hidden: int = 200
    layers: int = 4
    lr: float = 1e-3
    steps: int = 30             # Adam steps per observed batch, on everything seen so far
    minibatch: int = 256
    threshold: float = 1.0      # trust V when U < threshold (reward units: accuracy points for ACC in %); tuned on NAS-Bench-Macro
    min_samples: int = 0        # never trust before V has seen this many evaluated archs (0: as soon as U has learnt)
    weight_decay: float = 1e-5


class UncertaintyAwareCritic:
    """V and U over the arch encoding; ``observe`` learns from evaluated archs, ``predict`` scores new ones."""

    def __init__(self, dim: int, config: CriticConfig | None = None, seed: int = 0) -> None:
        self.config = cfg = config or CriticConfig()
        g = torch.Generator().manual_seed(seed)
        with torch.random.fork_rng():
            torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=g)))
            self.value = mlp(dim, cfg.hidden, cfg.layers)
            self.uncertainty = mlp(dim, cfg.hidden, cfg.layers)
        self.opt_v = torch.optim.Adam(self.value.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.opt_u = torch.optim.Adam(self.uncertainty.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.gen = g
        self.X = np.zeros((0, dim), dtype=np.float32)
        self.R = np.zeros(0, dtype=np.float32)
        self.E = np.zeros(0, dtype=np.float32)  # held-out |V - R| per arch (NaN before V existed)
        self.center = 0.0
        self.scale = 1.0
        self.pretrained = False  # V and U start from an earlier search's weights (their units fixed there)

    @property
    def n_seen(self) -> int:
        return len(self.R)

    @property
    def ready(self) -> bool:
        """U has been fitted to at least one held-out error of V (and ``min_samples`` archs were seen).

        Before that U is an untrained network whose small random outputs would trust anything.
        """
        return self.n_seen >= self.config.min_samples and bool(np.isfinite(self.E).any())

    @torch.no_grad()
    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(V, U) in reward units; before any data, V is the prior centre and U infinite."""
        X = np.asarray(X, dtype=np.float32)
        if self.n_seen == 0 and not self.pretrained:
            return np.full(len(X), self.center), np.full(len(X), np.inf)
        x = torch.from_numpy(X)
        v = self.value(x).squeeze(1).numpy() * self.scale + self.center
        u = np.abs(self.uncertainty(x).squeeze(1).numpy()) * self.scale
        return v.astype(float), u.astype(float)

    def observe(self, X: np.ndarray, R: np.ndarray) -> dict[str, float]:
        """Add evaluated archs, record V's error on them before fitting, then fit V and U."""
        X = np.asarray(X, dtype=np.float32)
        R = np.asarray(R, dtype=np.float32)
        if len(R) == 0:
            return {}
        if self.n_seen == 0 and not self.pretrained:  # fix the target normalisation once, from the first batch
            self.center = float(R.mean())
            self.scale = float(max(R.std(), 1e-3))
            held_out = np.full(len(R), np.nan, dtype=np.float32)
        else:
            held_out = np.abs(self.predict(X)[0] - R).astype(np.float32)
        self.X = np.concatenate([self.X, X])
        self.R = np.concatenate([self.R, R])
        self.E = np.concatenate([self.E, held_out])
        lv = self._fit_value()
        lu = self._fit_uncertainty()
        return {"loss_v": lv, "loss_u": lu, "held_out_err": float(np.nanmean(held_out)) if np.isfinite(held_out).any() else float("nan")}

    def _batches(self, n: int):
        for _ in range(self.config.steps):
            if n <= self.config.minibatch:
                yield torch.arange(n)
            else:
                yield torch.randint(0, n, (self.config.minibatch,), generator=self.gen)

    def _fit_value(self) -> float:
        x = torch.from_numpy(self.X)
        y = torch.from_numpy((self.R - self.center) / self.scale)
        loss = torch.tensor(0.0)
        for idx in self._batches(len(y)):
            loss = (self.value(x[idx]).squeeze(1) - y[idx]).abs().mean()  # L_V = |V - R|
            self.opt_v.zero_grad()
            loss.backward()
            self.opt_v.step()
        return float(loss.detach()) * self.scale

    def _fit_uncertainty(self) -> float:
        ok = np.isfinite(self.E)
        if not ok.any():
            return float("nan")
        x = torch.from_numpy(self.X[ok])
        y = torch.from_numpy(self.E[ok] / self.scale)
        loss = torch.tensor(0.0)
        for idx in self._batches(len(y)):
            loss = (self.uncertainty(x[idx]).squeeze(1).abs() - y[idx]).abs().mean()  # L_U = |U - L_V|
            self.opt_u.zero_grad()
            loss.backward()
            self.opt_u.step()
        return float(loss.detach()) * self.scale

    def trusted(self, u: np.ndarray) -> np.ndarray:
        """Which predictions may stand in for an evaluation (before the per-batch cap)."""
        u = np.asarray(u, dtype=float)
        if not self.ready:
            return np.zeros(len(u), dtype=bool)
        return u < self.config.threshold

    def state_dict(self) -> dict:
        return {"value": self.value.state_dict(), "uncertainty": self.uncertainty.state_dict(),
                "X": self.X, "R": self.R, "E": self.E, "center": self.center, "scale": self.scale}

    def load_state_dict(self, state: dict, with_data: bool = True) -> None:
        """Start from a critic of an earlier search: the architecture knowledge FNAS transfers.

        ``with_data``: also keep that search's (arch, reward, held-out error) rows in the training set.
        Without them only the weights carry over (fine-tuning): the earlier rewards may be on another
        scale (another latency budget moves every MnasNet reward by (T/T')^w), V then adapts to this
        search's rewards, and U trusts only after it has seen V's error on this search's archs.
        """
        self.value.load_state_dict(state["value"])
        self.uncertainty.load_state_dict(state["uncertainty"])
        if with_data:
            self.X, self.R, self.E = state["X"], state["R"], state["E"]
        self.center, self.scale = float(state["center"]), float(state["scale"])
        self.pretrained = True


def cap_trusted(trusted: np.ndarray, already: int, max_trusted: int) -> tuple[np.ndarray, np.ndarray]:
    """Apply the 50 % rule in arrival order: (kept trusted, dropped trusted) masks.

    The first trusted candidates up to the cap are kept; further trusted ones are thrown away and the
    batch is refilled by resampling until enough untrusted archs arrive (FNAS Sec. 4.2, Constraint).
    """
    trusted = np.asarray(trusted, dtype=bool)
    room = max(0, max_trusted - already)
    order = np.cumsum(trusted)
    keep = trusted & (order <= room)
    return keep, trusted & ~keep
