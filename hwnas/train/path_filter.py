"""GreedyNASv2's path filter: a learned classifier of *weak* paths, trained positive-unlabelled.

GreedyNAS keeps the best k of m evaluated paths, which needs many good paths among the m; when
good paths are rare (p << 0.5) that fails, but the *weak* ones are then sampled with high
confidence. GreedyNASv2 (Sec. 3.2-4.2) therefore learns a filter Φ(path) = P(weak) from the
paths it is sure are weak (positives: the worst q of m evaluated paths) and uniformly sampled
paths of unknown label (unlabelled), and rejects paths Φ calls weak before they are trained.

Network (Sec. 5.1): one 128-d embedding per (layer, op) -> bidirectional LSTM over the layers
-> two-layer MLP (hidden 128, ReLU) -> log Φ. The feature is the mean of the two directions'
final hidden states (128-d, the paper's f_a in R^H).

Loss: VPU (Chen et al. 2020; GreedyNASv2 Eq. 6): log E_U[Φ] - E_P[log Φ], plus VPU's MixUp
regulariser (mix an unlabelled with a positive path, γ ~ Beta(α, α), in embedding space, which
is mixing the one-hot encodings; target Φ~ = γ·Φ(u) + (1-γ)·1, penalty (log Φ~ - log Φ(mix))²
weighted by ``mix_weight``). VPU's Φ is a posterior up to scale, so a path is called weak when
Φ / max Φ (max over the data of the last fit) > 0.5, VPU's own classification rule.

Also here: the q schedule, the agreement u of two filters (stop rule, Eq. 7) and the op-merge
rule (Sec. 4.2, Eq. 9) on the learned embeddings.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import HwnasError

LOG_HALF = math.log(0.5)


@dataclass
class FilterConfig:
    """Every setting of the filter and of its use in training; the paper's values by default.

    dim: embedding and hidden width (128). iterations: Adam steps per refresh (3000).
    batch: paths per mini-batch of each of P and U (1024). lr, weight_decay: Adam (1e-3, 5e-3).
    mix_alpha, mix_weight: VPU's MixUp Beta(α, α) and the regulariser's weight (α 0.3 as VPU; the
    weight, which VPU tunes per data set, 0.3: on NAS-Bench-Macro split seed 100, not a reported
    seed, 10% data, it lifted the AUC of weak vs good from 0.89 to 0.98 over VPU's CIFAR 0.03).
    m: paths evaluated per refresh. unlabelled_factor: |U| = factor · q · m (paper: 10).
    q_start, q_end, q_anneal: weak share q rises linearly from 0.5 to 0.99 over this fraction of
    the planned iterations after the warm-up (paper: 90 of 120 epochs). every: refresh interval as
    a fraction of the planned iterations (paper: 5 of 120 epochs). beta: stop once the agreement u
    of two successive filters on ``agreement_paths`` random paths exceeds it (0.9, 10^4 paths).
    merge_threshold: merge two ops of a layer whose embeddings' cosine exceeds it (0.8).

    The weight decay is applied decoupled (AdamW): VPU's loss is scale-invariant, and with 90% of
    paths weak its gain over a constant Φ is -log 0.9 = 0.105 nats, so its gradients are tiny and
    an L2 term added to them (torch's Adam ``weight_decay``) shrinks the net to a constant Φ,
    which the rule calls weak everywhere.
    """

    dim: int = 128
    iterations: int = 3000
    batch: int = 1024
    lr: float = 1e-3
    weight_decay: float = 5e-3
    mix_alpha: float = 0.3
    mix_weight: float = 0.3
    m: int = 1000
    unlabelled_factor: float = 10.0
    q_start: float = 0.5
    q_end: float = 0.99
    q_anneal: float = 0.75
    every: float = 5 / 120
    beta: float = 0.9
    agreement_paths: int = 10_000
    merge_threshold: float = 0.8
    merge: bool = True

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> "FilterConfig":
        d = dict(d or {})
        names = {f.name: f for f in fields(cls)}
        unknown = sorted(set(d) - set(names))
        if unknown:
            raise HwnasError(f"unknown path-filter option(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
        out = cls()
        for k, v in d.items():
            kind = type(getattr(out, k))
            try:
                setattr(out, k, (str(v).lower() in ("1", "true", "yes")) if kind is bool else kind(v))
            except (TypeError, ValueError):
                raise HwnasError(f"path-filter option {k}={v!r} must be of type {kind.__name__}") from None
        out.check()
        return out

    def check(self) -> None:
        if not 0.0 < self.q_start <= self.q_end < 1.0:
            raise HwnasError(f"weak share q must satisfy 0 < q_start <= q_end < 1 (got {self.q_start}, {self.q_end})")
        if self.iterations < 1 or self.batch < 1 or self.m < 2 or self.dim < 2:
            raise HwnasError("path-filter iterations, batch, m and dim must be positive (m >= 2)")
        if not 0.0 < self.every <= 1.0 or not 0.0 < self.q_anneal <= 1.0:
            raise HwnasError(f"refresh interval and q anneal are fractions of training in (0, 1] (got {self.every}, {self.q_anneal})")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def q_schedule(iteration: int, warmup_iters: int, total_iters: int, cfg: FilterConfig) -> float:
    """The weak share q at ``iteration``: q_start at the end of warm-up, linearly to q_end."""
    span = max(cfg.q_anneal * total_iters, 1.0)
    t = min(1.0, max(0.0, (iteration - warmup_iters) / span))
    return cfg.q_start + (cfg.q_end - cfg.q_start) * t


def vpu_loss(log_phi_u: torch.Tensor, log_phi_p: torch.Tensor, log_phi_mix: torch.Tensor | None = None,
             target_mix: torch.Tensor | None = None, mix_weight: float = 0.0) -> torch.Tensor:
    """VPU: log mean_U Φ - mean_P log Φ (+ mix_weight · mean (log target - log Φ(mix))²)."""
    var = torch.logsumexp(log_phi_u, dim=0) - math.log(len(log_phi_u)) - log_phi_p.mean()
    if log_phi_mix is None or target_mix is None or mix_weight == 0.0:
        return var
    return var + mix_weight * ((torch.log(target_mix) - log_phi_mix) ** 2).mean()


class PathFilterNet(nn.Module):
    """Embedding (per layer and op) -> BiLSTM over layers -> MLP -> log Φ(path)."""

    def __init__(self, n_choices: Sequence[int], dim: int = 128) -> None:
        super().__init__()
        self.n_choices = [int(n) for n in n_choices]
        self.width = max(self.n_choices)
        self.embedding = nn.Embedding(len(self.n_choices) * self.width, dim)
        self.lstm = nn.LSTM(dim, dim, batch_first=True, bidirectional=True)
        self.mlp = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, 1))
        self.register_buffer("offsets", torch.arange(len(self.n_choices)) * self.width, persistent=False)
        self.register_buffer("log_max_phi", torch.zeros(()))  # max log Φ over the last fit's data

    def embed(self, idx: torch.Tensor) -> torch.Tensor:
        return self.embedding(idx + self.offsets)

    def logits_from_embedded(self, a: torch.Tensor) -> torch.Tensor:
        _, (h, _) = self.lstm(a)
        return self.mlp(0.5 * (h[0] + h[1])).squeeze(-1)

    def from_embedded(self, a: torch.Tensor) -> torch.Tensor:
        return F.logsigmoid(self.logits_from_embedded(a))

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.from_embedded(self.embed(idx))

    def layer_embeddings(self, layer: int) -> torch.Tensor:
        """(n_choices, dim): E[layer, op] of the layer's ops."""
        start = layer * self.width
        return self.embedding.weight[start:start + self.n_choices[layer]]


class PathFilter:
    """A trained (or untrained) filter with the operations training and search need."""

    def __init__(self, n_choices: Sequence[int], cfg: FilterConfig | None = None, seed: int = 0) -> None:
        self.cfg = cfg or FilterConfig()
        with torch.random.fork_rng():  # the same init for the same seed, the caller's torch RNG untouched
            torch.manual_seed(seed)
            self.net = PathFilterNet(n_choices, self.cfg.dim)
        self.n_fits = 0

    @property
    def n_choices(self) -> list[int]:
        return self.net.n_choices

    # ---- prediction ----------------------------------------------------------------------
    @torch.no_grad()
    def log_phi(self, X: np.ndarray, chunk: int = 8192) -> np.ndarray:
        """log Φ of each row of an (n, layers) index matrix."""
        X = np.atleast_2d(np.asarray(X, dtype=np.int64))
        self.net.eval()
        out = [self.net(torch.from_numpy(X[i:i + chunk])) for i in range(0, len(X), chunk)]
        return torch.cat(out).numpy() if out else np.zeros(0)

    def weak_score(self, X: np.ndarray) -> np.ndarray:
        """Φ / max Φ: the posterior of 'weak' (VPU); > 0.5 means weak."""
        return np.exp(self.log_phi(X) - float(self.net.log_max_phi))

    def is_weak(self, X: np.ndarray) -> np.ndarray:
        return self.log_phi(X) - float(self.net.log_max_phi) > LOG_HALF

    # ---- training ------------------------------------------------------------------------
    def fit(self, positives: np.ndarray, unlabelled: np.ndarray | None, seed: int = 0, iterations: int | None = None,
            negatives: np.ndarray | None = None, on_step: Callable[[int, float], None] | None = None) -> float:
        """Train on weak paths P and unlabelled paths U with VPU (the paper's PU learning).

        With ``negatives`` the fit is plain PN learning instead (binary cross-entropy, P = weak,
        N = good; ``unlabelled`` is then ignored): the baseline of the paper's Table 4.
        Returns the last mini-batch loss. Training continues from the current weights.
        """
        cfg = self.cfg
        P = torch.as_tensor(np.atleast_2d(positives), dtype=torch.long)
        pn = negatives is not None
        U = torch.as_tensor(np.atleast_2d(negatives if pn else unlabelled), dtype=torch.long)
        if len(P) == 0 or len(U) == 0:
            raise HwnasError("the path filter needs at least one weak and one unlabelled (or good) path to learn from")
        g = torch.Generator().manual_seed(int(seed))
        mix_rng = np.random.default_rng(int(seed))
        opt = torch.optim.AdamW(self.net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.net.train()
        loss = torch.zeros(())
        for step in range(int(iterations or cfg.iterations)):
            bp = P[torch.randint(len(P), (cfg.batch,), generator=g)]
            bu = U[torch.randint(len(U), (cfg.batch,), generator=g)]
            if pn:
                loss = self._pn_loss(bp, bu)
            else:
                ep, eu = self.net.embed(bp), self.net.embed(bu)
                log_p, log_u = self.net.from_embedded(ep), self.net.from_embedded(eu)
                gamma = float(mix_rng.beta(cfg.mix_alpha, cfg.mix_alpha)) if cfg.mix_weight > 0 else 1.0
                log_mix = self.net.from_embedded(gamma * eu + (1.0 - gamma) * ep)
                target = gamma * log_u.detach().exp() + (1.0 - gamma)
                loss = vpu_loss(log_u, log_p, log_mix, target, cfg.mix_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if on_step is not None:
                on_step(step, float(loss.detach()))
        self.net.eval()
        if pn:  # a PN classifier's sigmoid is the posterior itself: threshold Φ at 0.5
            self.net.log_max_phi.zero_()
        else:
            seen = np.concatenate([P.numpy(), U.numpy()])
            self.net.log_max_phi.fill_(float(self.log_phi(seen).max()))
        self.n_fits += 1
        return float(loss.detach())

    def _pn_loss(self, bp: torch.Tensor, bn: torch.Tensor) -> torch.Tensor:
        logits_p, logits_n = (self.net.logits_from_embedded(self.net.embed(b)) for b in (bp, bn))
        return F.binary_cross_entropy_with_logits(logits_p, torch.ones_like(logits_p)) + \
            F.binary_cross_entropy_with_logits(logits_n, torch.zeros_like(logits_n))

    # ---- embeddings -> merges --------------------------------------------------------------
    @torch.no_grad()
    def similarity(self, layer: int) -> np.ndarray:
        """Cosine similarity of every pair of the layer's op embeddings (Eq. 9)."""
        e = self.net.layer_embeddings(layer)
        e = F.normalize(e, dim=1)
        return (e @ e.T).numpy()

    # ---- state -----------------------------------------------------------------------------
    def state_tensors(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.net.state_dict().items()}

    def load_state_tensors(self, d: dict[str, torch.Tensor]) -> None:
        self.net.load_state_dict(d)
        self.net.eval()


def merge_ops(similarity: Sequence[np.ndarray], cost: Sequence[np.ndarray], active: Sequence[np.ndarray],
              threshold: float) -> list[tuple[int, int, int, float]]:
    """Ops to remove by the merge rule (Sec. 4.2): ``[(layer, removed, kept, cosine)]``.

    In each layer, pairs of still-active ops whose cosine exceeds ``threshold`` are merged in
    order of decreasing similarity, keeping the one of lower ``cost`` (FLOPs, or predicted
    latency); an op already removed takes part in no later pair, so a layer never loses its
    last op. ``active`` is updated in place.
    """
    out: list[tuple[int, int, int, float]] = []
    for layer, (S, c, act) in enumerate(zip(similarity, cost, active)):
        n = len(c)
        pairs = sorted(((float(S[a, b]), a, b) for a in range(n) for b in range(a + 1, n) if S[a, b] > threshold),
                       key=lambda t: (-t[0], t[1], t[2]))
        for s, a, b in pairs:
            if not (act[a] and act[b]):
                continue
            keep, drop = (a, b) if (c[a], a) <= (c[b], b) else (b, a)
            act[drop] = False
            out.append((layer, int(drop), int(keep), s))
    return out


def agreement(previous: PathFilter, current: PathFilter, X: np.ndarray) -> float:
    """u of Eq. 7: the share of paths on which two filters give the same weak/good label."""
    return float(np.mean(previous.is_weak(X) == current.is_weak(X)))


class PathAdmission:
    """Which paths a GreedyNASv2 supernet admits: no merged op and not called weak by its filter.

    Search uses it as one more hard constraint (``search.budgets.Constraints``): a rejected
    offspring is infeasible, so NSGA-II repairs or replaces it before spending an evaluation.
    """

    def __init__(self, active: Sequence[np.ndarray], path_filter: PathFilter | None = None) -> None:
        self.active = [np.asarray(a, dtype=bool) for a in active]
        self.filter = path_filter if path_filter is not None and path_filter.n_fits else None

    @classmethod
    def from_checkpoint(cls, sampler_state: dict[str, Any], tensors: dict[str, Any]) -> "PathAdmission | None":
        if sampler_state.get("kind") != "greedy-v2" or "active" not in sampler_state:
            return None
        active = [np.asarray(a, dtype=bool) for a in sampler_state["active"]]
        filt = None
        if tensors and int(sampler_state.get("filter_fits", 0)) > 0:
            cfg = FilterConfig.from_dict(sampler_state.get("filter_config") or {})
            filt = PathFilter([len(a) for a in active], cfg)
            filt.load_state_tensors(tensors)
            filt.n_fits = int(sampler_state["filter_fits"])
        return cls(active, filt)

    def rejected_mask(self, X: np.ndarray) -> np.ndarray:
        X = np.atleast_2d(np.asarray(X, dtype=np.int64))
        bad = np.zeros(len(X), dtype=bool)
        for j, act in enumerate(self.active):
            bad |= ~act[X[:, j]]
        if self.filter is not None and len(X):
            bad |= self.filter.is_weak(X)
        return bad

    def describe(self) -> str:
        merged = sum(int((~a).sum()) for a in self.active)
        return f"path filter ({'learned' if self.filter is not None else 'untrained'}), {merged} merged op(s) excluded"
