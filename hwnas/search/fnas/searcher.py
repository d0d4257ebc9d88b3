"""The FNAS search loop: sample -> critic decides -> evaluate the untrusted -> replay -> PPO.

Assembled from one-purpose parts (controller, PPO, critic, experience buffer); each can be
switched off, so plain PPO (MnasNet), PPO+UAC, PPO+UAC+AEB and full FNAS are the same loop.
Evaluations go through ``SearchProblem.evaluate`` (the only thing that costs); the reward is
``reward.Objective``'s MnasNet score of (accuracy, table latency), never recomputed here. An arch
the policy draws over a hard budget (FLOPs, params; the latency budget is the MnasNet reward's
target, so soft) is judged by the problem's constraint object under that reward: never
evaluated nor trusted, rewarded ``INFEASIBLE_REWARD``.

Counting is the same for every variant: an arch evaluated before is a cache hit (its real reward
is reused, no evaluation is spent), a trusted arch costs nothing and is never counted as found,
a replayed arch costs nothing. The critic learns from every evaluated arch from the first batch
on and trusts as soon as U, fitted to V's held-out errors, is under the threshold (Sec. 4.2).
With the buffer, a batch is always an exploring half plus up to a replayed half (Fig. 1), also
while the buffer is still empty (``fixed_explore``). Replay is corrected against the behaviour
policy (``replay_ratio``) and kept out of the baseline (``baseline_on_policy``): see
experience_buffer.py.

Two rules that are not in the paper are options, off by default (the paper-faithful search):
``verify_new_best`` evaluates a trusted arch whose V is above every real reward seen so far
(extrapolation rather than a learnt region), and ``explore_new_only`` redraws an evaluated arch
drawn for the exploring part (re-using known archs being the buffer's job). The benchmark
(benchmarks/fnas_bench.py) measures each against the default.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from ...space.arch import Arch
from ..base import Record, SearchProblem, Searcher, register_searcher
from ..budgets import INFEASIBLE_REWARD, Constraints
from ..reward import Objective
from .controller import Controller
from .critic import CriticConfig, UncertaintyAwareCritic, cap_trusted
from .encoding import ArchEncoder
from .experience_buffer import ExperienceBuffer
from .ppo import PPO, PPOConfig


@dataclass
class FNASConfig:
    batch: int = 16                 # archs per PPO update (exploring + replayed)
    hidden: int = 100               # controller LSTM units (FNAS Sec. 6.1)
    use_uac: bool = True
    use_aeb: bool = True
    trust_cap: float = 0.5          # at most this share of a batch's new archs trusted (Sec. 4.2)
    replay_fraction: float = 0.5    # at most this share of a batch replayed (Sec. 5)
    verify_new_best: bool = False   # not in the paper: a trusted V above every real reward is evaluated instead
    fixed_explore: bool = True      # with AEB the exploring part is always batch - replay slots, also while the buffer is empty
    buffer_size: int = 10
    buffer_temperature: float = 1.0
    replay_ratio: str = "behaviour"  # PPO ratio of a replayed arch against its log-prob when sampled ("behaviour") or re-scored now ("current")
    replay_dual_clip: float | None = 3.0  # bound of a replayed arch's negative-advantage term (c A); None: unbounded
    baseline_on_policy: bool = True  # only the archs the policy drew this batch move the reward baseline, not the replayed ones
    transfer_data: bool = False     # a transferred critic (critic_state) also brings its training rows (default: weights only)
    explore_new_only: bool = False  # not in the paper: an evaluated arch drawn for the exploring part is redrawn
    reward: str = "soft"            # MnasNet soft (w = -0.07) or hard (alpha=0, beta=-1) when the problem's objective is not an MnasNet one
    max_updates: int | None = None  # stop after this many PPO updates (default: no limit)
    patience: int = 50              # stop when this many updates in a row evaluated nothing new (converged policy)
    ppo: PPOConfig = field(default_factory=PPOConfig)
    critic: CriticConfig = field(default_factory=CriticConfig)

    def __post_init__(self) -> None:
        if not 0.0 <= self.trust_cap <= 0.5:
            raise ValueError("trust_cap must be within [0, 0.5]: FNAS trusts at most half a batch")
        if not 0.0 <= self.replay_fraction <= 0.5:
            raise ValueError("replay_fraction must be within [0, 0.5]: FNAS replays at most half a batch")
        if self.reward not in ("soft", "hard"):
            raise ValueError("reward must be 'soft' or 'hard'")
        if self.replay_ratio not in ("behaviour", "current"):
            raise ValueError("replay_ratio must be 'behaviour' or 'current'")
        if self.batch < 2:
            raise ValueError("batch must be at least 2")


VARIANTS = {
    "ppo": dict(use_uac=False, use_aeb=False),
    "ppo+uac": dict(use_uac=True, use_aeb=False),
    "ppo+uac+aeb": dict(use_uac=True, use_aeb=True),
    "fnas": dict(use_uac=True, use_aeb=True),
}


def reward_objective(problem: SearchProblem, kind: str = "soft") -> Objective:
    """The problem's objective if it already is MnasNet's, else MnasNet's at the problem's latency budget.

    RL needs a finite reward for every arch, so the hard constraint (-inf when over budget) is
    replaced by the MnasNet reward at the same target.
    """
    obj = problem.objective
    if obj.kind in ("mnas", "mnas-hard"):
        return obj
    target = obj.target if obj.target is not None else problem.budgets.latency_ms
    return Objective("mnas" if kind == "soft" else "mnas-hard", target)


@register_searcher("fnas")
class FNASSearcher(Searcher):
    """FNAS (Liu et al. 2021): PPO + Uncertainty-Aware Critic + Architecture Experience Buffer.

    The Architecture Knowledge Pool lives in the evaluator (``TrainEvaluator(pool=...)``): it
    changes what one evaluation costs, not which archs are asked for.
    """

    name = "fnas"
    default_evaluations = 1000
    options = ("variant", "critic_state", *FNASConfig.__dataclass_fields__, *PPOConfig.__dataclass_fields__,
               *CriticConfig.__dataclass_fields__)

    def __init__(self, config: FNASConfig | None = None, critic_state: dict | None = None, **options: Any) -> None:
        """``critic_state``: a critic of an earlier search (``searcher.critic.state_dict()``) to start from
        (its weights; its training rows too with ``transfer_data``)."""
        self.critic_state = critic_state
        if config is None:
            ppo = {k: options.pop(k) for k in list(options) if k in PPOConfig.__dataclass_fields__}
            critic = {k: options.pop(k) for k in list(options) if k in CriticConfig.__dataclass_fields__}
            variant = options.pop("variant", None)
            if variant is not None:
                if variant not in VARIANTS:
                    raise ValueError(f"unknown FNAS variant {variant!r}; one of {', '.join(VARIANTS)}")
                options = {**VARIANTS[variant], **options}
            config = FNASConfig(ppo=PPOConfig(**ppo), critic=CriticConfig(**critic), **options)
        elif options:
            raise TypeError("give either a config or options, not both")
        self.config = config
        self.log: list[dict[str, Any]] = []        # one line per PPO update
        self.trusted_log: list[dict[str, Any]] = []  # every trusted estimate (arch, V, U)
        self.critic: UncertaintyAwareCritic | None = None
        self.controller: Controller | None = None
        self.on_update = None  # optional callable(dict) for live progress (reward, trusted share, buffer use)

    # ---------------------------------------------------------------------------------
    def _run(self, problem: SearchProblem, max_evaluations: int, rng: np.random.Generator) -> dict[str, Any]:
        # the controller and critic are tiny: extra intra-op threads only fight over busy cores
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return self._search(problem, max_evaluations, rng)
        finally:
            torch.set_num_threads(threads)

    def _search(self, problem: SearchProblem, max_evaluations: int, rng: np.random.Generator) -> dict[str, Any]:
        """The loop, one PPO update per batch: size the batch, draw its exploring part (the critic decides what is
        evaluated), evaluate the new archs, add the replayed part, update the policy, record."""
        run = self._setup(problem, max_evaluations, rng)
        cfg = self.config
        idle = 0
        while not self.terminated(problem):
            if cfg.max_updates is not None and run.updates >= cfg.max_updates:
                break
            n_replay, n_explore, max_trusted = self._batch_sizes(run)
            batch = self._draw_exploring(run, n_explore, max_trusted)
            if not batch.acts:
                break
            fresh, rewards = self._evaluate_new(run, batch)
            acts, logps, rewards, weights = self._add_replay(run, batch, rewards, n_replay)
            on_policy = np.arange(len(acts)) < len(batch.acts)
            stats = run.ppo.update(acts, logps, rewards, weights, on_policy, cfg.replay_dual_clip, cfg.baseline_on_policy)
            run.updates += 1
            self._record_update(run, batch, fresh, len(acts), rewards, stats)
            idle = 0 if fresh else idle + 1
            if idle >= cfg.patience:
                break
        return {"fnas": {"updates": run.updates, "config": _config_dict(cfg), **run.totals,
                         "trusted_share": run.totals["trusted"] / max(1, run.totals["sampled"]),
                         "objective": {"kind": run.objective.kind, "target_ms": run.objective.target}}}

    # ---- phases of one search ------------------------------------------------------------------
    def _setup(self, problem: SearchProblem, max_evaluations: int, rng: np.random.Generator) -> _Run:
        """Controller, PPO, reward, critic (transferred if given) and buffer; a resumed search's history teaches them first."""
        cfg = self.config
        encoder = ArchEncoder(problem.space)
        seed = int(rng.integers(0, 2**31 - 1))
        torch_gen = torch.Generator().manual_seed(seed)
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.controller = controller = Controller(encoder.n_choices, cfg.hidden)
        objective = reward_objective(problem, cfg.reward)
        critic = UncertaintyAwareCritic(encoder.dim, cfg.critic, seed=seed + 1) if cfg.use_uac else None
        if critic is not None and self.critic_state is not None:
            critic.load_state_dict(self.critic_state, cfg.transfer_data)  # architecture knowledge transferred from an earlier search
        self.critic = critic
        run = _Run(problem=problem, max_evaluations=max_evaluations, rng=rng, torch_gen=torch_gen, encoder=encoder,
                   controller=controller, ppo=PPO(controller, cfg.ppo), objective=objective,
                   judge=problem.constraints.for_objective(objective),  # FLOPs/params hard; latency soft under the MnasNet reward
                   critic=critic, buffer=ExperienceBuffer(cfg.buffer_size, cfg.buffer_temperature) if cfg.use_aeb else None)
        if problem.history:
            for r in problem.history:
                run.known[r.arch] = run.reward_of(r)
            self._learn(run, list(problem.history))
        return run

    def _learn(self, run: _Run, recs: list[Record]) -> None:
        """Evaluated archs teach the critic and enter the buffer (with the log-probability they were drawn with)."""
        if not recs:
            return
        idx = np.array([run.problem.space.choice_indices(r.arch) for r in recs])
        rew = np.array([run.known[r.arch] for r in recs])
        if run.critic is not None:
            run.critic.observe(run.encoder.one_hot(idx), rew)
        if run.buffer is not None:
            for r, a, v in zip(recs, idx, rew):
                run.buffer.add(r.arch, a, v, run.behaviour.get(r.arch, float("nan")))

    def _batch_sizes(self, run: _Run) -> tuple[int, int, int]:
        """(replayed, exploring, most trusted) for the next batch: with the buffer, half of it is replay slots."""
        cfg = self.config
        slots = int(cfg.replay_fraction * cfg.batch) if run.buffer is not None else 0
        n_replay = slots if run.buffer is not None and len(run.buffer) else 0
        n_explore = cfg.batch - (slots if cfg.fixed_explore else n_replay)
        max_trusted = int(math.floor(cfg.trust_cap * n_explore)) if run.critic is not None else 0
        return n_replay, n_explore, max_trusted

    def _draw_exploring(self, run: _Run, n_explore: int, max_trusted: int) -> _Batch:
        """The exploring part: draw from the policy; the critic trusts (at most ``max_trusted``), the rest is new or known.

        Over-cap trusted archs are thrown away and the batch refilled by resampling (Sec. 4.2); if resampling runs
        dry they are evaluated instead, and redrawn known archs (``explore_new_only``) complete the batch.
        """
        cfg, space, critic, known = self.config, run.problem.space, run.critic, run.known
        batch = _Batch()
        n_trusted = draws = n_new = 0
        room = run.max_evaluations - run.problem.n_evaluations
        spare: list[tuple[np.ndarray, float]] = []  # over-cap trusted archs, evaluated if resampling runs dry
        spare_known: list[tuple[np.ndarray, float]] = []  # redrawn known archs, used if resampling runs dry
        while len(batch.acts) < n_explore and draws < 10 * n_explore:
            need = n_explore - len(batch.acts)
            a, lp = run.controller.sample(need, run.torch_gen)
            a_np, lp_np = a.numpy(), lp.numpy()
            draws += need
            archs = [space.from_indices(row) for row in a_np]
            # an arch over a hard budget is never evaluated nor trusted: it gets the infeasible reward
            feasible = run.judge.feasible_mask(a_np)
            unknown = np.array([x not in known for x in archs]) & feasible
            trusted = np.zeros(need, dtype=bool)
            v = np.full(need, np.nan)
            if critic is not None and unknown.any():
                v, u = critic.predict(run.encoder.one_hot(a_np))
                trusted = critic.trusted(u) & unknown
                if cfg.verify_new_best and known:
                    trusted &= v <= max(known.values())
                keep, dropped = cap_trusted(trusted, n_trusted, max_trusted)
                run.totals["dropped_trusted"] += int(dropped.sum())
                for i in np.flatnonzero(keep):
                    self.trusted_log.append({"arch": archs[i], "value": float(v[i]), "uncertainty": float(u[i]),
                                             "evaluations": run.problem.n_evaluations, "update": run.updates})
            else:
                keep, dropped = trusted, trusted
            for i in range(need):
                if not feasible[i]:
                    batch.add(a_np[i], float(lp_np[i]), "infeasible", INFEASIBLE_REWARD)
                    continue
                if dropped[i]:
                    spare.append((a_np[i], float(lp_np[i])))
                    continue  # thrown away; the batch is refilled by resampling
                if keep[i]:
                    kind = "trusted"
                    n_trusted += 1
                elif not unknown[i]:
                    if cfg.explore_new_only:
                        spare_known.append((a_np[i], float(lp_np[i])))
                        continue
                    kind = "known"
                else:
                    if n_new >= room:
                        continue  # the evaluation budget is spent: no more new archs this batch
                    kind = "new"
                    n_new += 1
                batch.add(a_np[i], float(lp_np[i]), kind, float(v[i]))
        # resampling found too few untrusted archs (a critic that trusts nearly all): evaluate thrown-away ones
        for a_i, lp_i in spare:
            if len(batch.acts) >= n_explore or n_new >= room:
                break
            if space.from_indices(a_i) in known:
                continue
            batch.add(a_i, lp_i, "new", float("nan"))
            n_new += 1
        for a_i, lp_i in spare_known:  # a (nearly) deterministic policy: its own known archs complete the batch
            if len(batch.acts) >= n_explore:
                break
            batch.add(a_i, lp_i, "known", float("nan"))
        # a batch cut short by the evaluation budget still trusts at most trust_cap of it
        while batch.kinds.count("trusted") > cfg.trust_cap * len(batch.kinds):
            j = len(batch.kinds) - 1 - batch.kinds[::-1].index("trusted")
            batch.drop(j)
            self.trusted_log.pop()
        return batch

    def _evaluate_new(self, run: _Run, batch: _Batch) -> tuple[list[Record], np.ndarray]:
        """Evaluate the batch's new archs (the only thing that costs); (fresh records, the batch's rewards)."""
        space, known = run.problem.space, run.known
        new_archs = [space.from_indices(a) for a, k in zip(batch.acts, batch.kinds) if k == "new"]
        for a_i, lp_i, k in zip(batch.acts, batch.logps, batch.kinds):
            if k == "new":
                run.behaviour.setdefault(space.from_indices(a_i), lp_i)
        recs = run.problem.evaluate(new_archs) if new_archs else []
        fresh = []
        for r in recs:
            if r.arch not in known:
                known[r.arch] = run.reward_of(r)
                fresh.append(r)
        rewards = np.array([batch.values[i] if k in ("trusted", "infeasible") else known[space.from_indices(batch.acts[i])]
                            for i, k in enumerate(batch.kinds)])
        self._learn(run, fresh)
        return fresh, rewards

    def _add_replay(self, run: _Run, batch: _Batch, rewards: np.ndarray,
                    n_replay: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The PPO batch: the exploring part plus up to ``n_replay`` buffer samples with their importance weights.

        A replayed arch's old log-probability is the one it was drawn with (``replay_ratio="behaviour"``) or the
        current policy's; β anneals 0 -> 1 over the search (Sec. 5)."""
        cfg, buffer = self.config, run.buffer
        weights = np.ones(len(batch.acts))
        acts = np.stack(batch.acts)
        logps = np.array(batch.logps)
        n_replay = min(n_replay, len(batch.acts))  # a batch cut short by the budget still replays at most half
        if n_replay and buffer is not None and len(buffer):
            beta = min(1.0, run.problem.n_evaluations / run.max_evaluations)  # annealed 0 -> 1 over the search
            bidx, bacts, bw = buffer.sample(n_replay, run.rng, beta)
            with torch.no_grad():
                blogp = run.controller.log_prob(torch.as_tensor(bacts))[0].numpy()
            if cfg.replay_ratio == "behaviour":
                stored = np.array([buffer.logps[i] for i in bidx])
                blogp = np.where(np.isfinite(stored), stored, blogp)
            acts = np.concatenate([acts, bacts])
            logps = np.concatenate([logps, blogp])
            rewards = np.concatenate([rewards, np.array([buffer.rewards[i] for i in bidx])])
            weights = np.concatenate([weights, bw])
            run.totals["replayed"] += len(bidx)
        return acts, logps, rewards, weights

    def _record_update(self, run: _Run, batch: _Batch, fresh: list[Record], n_batch: int, rewards: np.ndarray,
                       stats: dict[str, float]) -> None:
        """Totals and one log line per update (told to ``on_update``)."""
        kinds = batch.kinds
        n_tr = kinds.count("trusted")
        run.totals["sampled"] += len(kinds)
        run.totals["trusted"] += n_tr
        run.totals["evaluated"] += len(fresh)
        line = {"update": run.updates, "evaluations": run.problem.n_evaluations, "batch": n_batch,
                "new": len(fresh), "trusted": n_tr, "known": kinds.count("known"), "infeasible": kinds.count("infeasible"),
                "replayed": n_batch - len(batch.acts), "mean_reward": float(np.mean(rewards)),
                "best_reward": max(run.known.values()) if run.known else None, "buffer": len(run.buffer) if run.buffer else 0,
                **stats}
        self.log.append(line)
        if self.on_update is not None:
            self.on_update(line)


@dataclass
class _Batch:
    """The exploring part of one batch: action rows, their log-probabilities, what each is, and V where trusted."""

    acts: list[np.ndarray] = field(default_factory=list)
    logps: list[float] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)  # "trusted" | "known" | "new" | "infeasible"
    values: list[float] = field(default_factory=list)

    def add(self, act: np.ndarray, logp: float, kind: str, value: float) -> None:
        self.acts.append(act)
        self.logps.append(logp)
        self.kinds.append(kind)
        self.values.append(value)

    def drop(self, j: int) -> None:
        for lst in (self.acts, self.logps, self.kinds, self.values):
            del lst[j]


@dataclass
class _Run:
    """The state of one search: its parts, the real rewards found and the counters."""

    problem: SearchProblem
    max_evaluations: int
    rng: np.random.Generator
    torch_gen: torch.Generator
    encoder: ArchEncoder
    controller: Controller
    ppo: PPO
    objective: Objective
    judge: Constraints
    critic: UncertaintyAwareCritic | None
    buffer: ExperienceBuffer | None
    known: dict[Arch, float] = field(default_factory=dict)  # real rewards of evaluated archs
    behaviour: dict[Arch, float] = field(default_factory=dict)  # log-probability of each evaluated arch when sampled
    totals: dict[str, int] = field(default_factory=lambda: {"sampled": 0, "trusted": 0, "dropped_trusted": 0,
                                                            "replayed": 0, "evaluated": 0})
    updates: int = 0

    def reward_of(self, rec: Record) -> float:
        return float(self.objective.score(rec.accuracy, rec.latency_ms))


def _config_dict(cfg: FNASConfig) -> dict[str, Any]:
    return asdict(cfg)
