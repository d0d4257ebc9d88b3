"""FNAS on NAS-Bench-Macro (known truth) and its knowledge pool on a short train-from-scratch task.

    python benchmarks/fnas_bench.py [--part search|akp|all] [--split report|tune] [--seeds 0-11] [--cap 300]
                                    [--jobs none,ablation,transfer] [--set threshold=1.0] [--workers 2]

search: reward R = ACC x (LAT/T)^-0.07 (hwnas.search.reward), latency from a host latency table,
        budget T = the table's median predicted latency over the space. Per variant and seed: the
        real (non-trusted) evaluations until an arch of the top 1 % / top 0.1 % of all 6,561 archs
        by reward, and the single best arch, is first evaluated; mean over seeds with a 90 %
        bootstrap interval (scipy.stats.bootstrap) and the paired ratio of means against plain PPO.
        Settings:
          none      PPO, PPO+UAC, PPO+UAC+AEB (= full FNAS's search: on a tabular benchmark the
                    knowledge pool only changes what one evaluation costs, measured in `akp`)
          ablation  PPO+UAC+AEB with each rule that is not in the paper switched on
                    (verify_new_best, explore_new_only)
          transfer  the critic (UAC) learnt by an earlier search of a *different task* and
                    fine-tuned here: a FLOPs-constrained search (MnasNet hard constraint on FLOPs)
                    and a latency search under a hard constraint at another budget; and, as an
                    upper bound only, a soft-reward search at another budget (a reward that is a
                    constant multiple of the target's: Spearman 1.0, the same task). Each with the
                    source/target reward Spearman over every arch; the source search's evaluations
                    are not in the counts and are stated on their own line.
        --split report (the figures) runs on the litert table and seeds 200-209; the settings were
        chosen on the onnxruntime table and seeds 0-19 / 100-109 (--split tune), never on these.
hits:   each matching rule's hit rate on 200 `tiny` archs against a pool of 20 (no training needed).
akp:    the knowledge pool (paper Sec. 3.2/4.3, Fig. 3b/c): a pool of blocks trained on another
        task (the self-contained colour-template image set) warm-starts `tiny` archs trained on
        the built-in image set, with the paper's uncertainty matching and with cosine matching.
        Hit rate, and rank fidelity: Spearman of the accuracy after k iterations with the ranking
        after 2K iterations from scratch, for scratch / uncertainty / cosine initialisation.
Results merge into benchmarks/results/fnas_bench.json (each part updates its own key).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from scipy import stats

from common import RESULTS, bootstrap_distribution, percentile_range, print_table, write_results

from hwnas.latency.table import LatencyTable
from hwnas.search.base import Budgets, SearchProblem
from hwnas.search.constraints import LatencyModel
from hwnas.search.evaluator import TabularEvaluator
from hwnas.search.fnas import FNASSearcher
from hwnas.search.reward import Objective
from hwnas.space import create_space
from hwnas.space.tabular import load_nas_bench_macro

ROOT = Path(__file__).resolve().parent.parent
# The settings in use (PPO lr 3e-3, entropy 1e-2, UAC threshold 1.0, the replay corrections, weights-only
# critic transfer) were chosen on the onnxruntime table (revisions b4672bc and 8cc92d1) with seeds 0-19 and
# 100-109 (the runs are recorded in this file's history). The reported figures use another table (the
# litert one) and seeds never used for tuning, so they are a held-out test; the rules tuning had picked that
# are not in the paper (verify_new_best, explore_new_only) are off in the reported default.
SPLITS = {
    "report": {"table": "latency_tables/host-nas-bench-macro-litert.json", "seeds": list(range(200, 210))},
    "tune": {"table": "latency_tables/host-nas-bench-macro-onnxruntime.json", "seeds": list(range(100, 110))},
}
TUNING_PROVENANCE = ("settings chosen on latency_tables/host-nas-bench-macro-onnxruntime.json (revisions b4672bc, 8cc92d1) "
                     "with seeds 0-19 and 100-109; the reported split uses the litert table and seeds 200-209, neither used for tuning")
VARIANTS = ["ppo", "ppo+uac", "ppo+uac+aeb"]
ABLATIONS = {"verify_new_best": {"verify_new_best": True}, "explore_new_only": {"explore_new_only": True}}
# Critic sources: (description, cost term, objective kind, cost quantile of the budget, role)
SOURCES = {
    "flops-hard": ("FLOPs-constrained search: MnasNet hard reward (alpha 0, beta -1) on FLOPs at the median FLOPs",
                   "flops", "mnas-hard", 0.5, "different task"),
    "latency-hard-T25": ("latency search under the MnasNet hard reward at T' = 25th-percentile latency",
                         "latency", "mnas-hard", 0.25, "different task"),
    "latency-soft-T25": ("latency search under the same soft reward at T' = 25th-percentile latency: every reward "
                         "x (T'/T)^0.07, the same ranking (the same task)", "latency", "mnas", 0.25, "upper bound (same task)"),
}
SOURCE_VARIANT = "ppo+uac"  # the earlier search that teaches the critic


def table_id(rel: str) -> str:
    import subprocess

    rev = subprocess.run(["git", "log", "-1", "--format=%h", "--", rel], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    return f"{rel} @ {rev or 'uncommitted'}"


def landscape(table_rel: str):
    space = create_space("nas-bench-macro")
    bench = load_nas_bench_macro()
    table = LatencyTable.load(ROOT / table_rel, space="nas-bench-macro")
    lat_model = LatencyModel(table, space)
    archs = list(space.iter_archs())
    lat = np.array([lat_model(a)[0] for a in archs])
    acc = np.array([bench.accuracy(a) for a in archs])
    T = float(np.median(lat))
    objective = Objective("mnas", T)
    R = np.asarray(objective.score(acc, lat))
    k = int(math.ceil(0.01 * len(archs)))
    thr = float(np.sort(R)[-k])
    k01 = int(math.ceil(0.001 * len(archs)))
    thr01 = float(np.sort(R)[-k01])
    truth = dict(zip(archs, R))
    return space, bench, lat_model, archs, lat, acc, T, objective, R, k, thr, k01, thr01, truth


def source_problem(name: str, ctx) -> tuple[SearchProblem, np.ndarray]:
    """The earlier search a transferred critic comes from, and its reward of every arch (for the Spearman)."""
    space, bench, lat_model, archs, lat, acc = ctx[:6]
    _, term, kind, q, _ = SOURCES[name]
    if term == "flops":
        mflops = {a: bench.lookup(a).flops / 1e6 for a in archs}
        cost_fn = lambda a: (mflops[a], 0.0)  # the source's cost term is FLOPs (in millions), read as its "latency"
        cost = np.array([mflops[a] for a in archs])
    else:
        cost_fn, cost = lat_model, lat
    budget = float(np.quantile(cost, q))
    objective = Objective(kind, budget)
    problem = SearchProblem(space, TabularEvaluator(bench), latency=cost_fn, budgets=Budgets(latency_ms=budget), objective=objective)
    return problem, np.asarray(objective.score(acc, cost))


# ---- how "reach" is measured (identical for every variant) ------------------------------------------
# An arch counts as reached at the real evaluation that first returns it: the index of its record in the
# problem's history (SearchProblem numbers evaluations 1, 2, ...; a repeated arch is a cache hit there and
# costs nothing for any variant). A trusted estimate (V standing in for R) never reaches anything: the
# search does not know that arch's reward. Runs that never reach a target within the cap count as the cap
# ("censored") and are reported separately.
TARGETS = {"top1pct": "top 1 % of all archs by reward (the issue's metric)",
           "top0.1pct": "top 0.1 % of all archs by reward",
           "best": "the single best arch of the space by reward"}


def first_hit(history, truth, thr):
    return next((r.evaluation for r in history if truth[r.arch] >= thr), None)


def best_after(history, truth, n):
    """Best true reward among the first ``n`` real evaluations (the equal-quality check)."""
    vals = [truth[r.arch] for r in history if r.evaluation <= n]
    return max(vals) if vals else None


# Controller, critic and buffer settings shared by every variant (plain PPO included); --set overrides them.
SETTINGS: dict = {}


def target_problem(ctx) -> SearchProblem:
    space, bench, lat_model, *_ = ctx
    return SearchProblem(space, TabularEvaluator(bench), latency=lat_model, budgets=Budgets(latency_ms=ctx[6]), objective=ctx[7])


def run_variant(variant: str, seed: int, cap: int, ctx, critic_state=None, options: dict | None = None,
                problem: SearchProblem | None = None):
    """One search; ``problem`` defaults to the target (latency, soft reward at T) and ``ctx`` gives its truth."""
    _, _, _, _, _, _, _, _, R, _, thr, _, thr01, truth = ctx
    problem = problem or target_problem(ctx)
    s = FNASSearcher(variant=variant, critic_state=critic_state, **{**SETTINGS, **(options or {})})
    entropy_at: dict[str, float] = {}
    marks = [n for n in ENTROPY_AT if n <= cap]

    def watch(line):  # exact policy entropy (nats, over all archs) when the evaluations first pass each mark
        while marks and line["evaluations"] >= marks[0]:
            entropy_at[str(marks.pop(0))] = policy_entropy(s.controller, ctx)
    s.on_update = watch
    t0 = time.perf_counter()
    res = s.run(problem, max_evaluations=cap, seed=seed)
    wall = time.perf_counter() - t0
    best = max(truth[r.arch] for r in problem.history)
    top = float(R.max())
    first = s.log[0] if s.log else {}
    out = {"seed": seed, "evals_to_top1pct": first_hit(problem.history, truth, thr),
           "evals_to_top0.1pct": first_hit(problem.history, truth, thr01),
           "evals_to_best": first_hit(problem.history, truth, top),
           "first_batch_evaluations": first.get("new"),
           "best_reward_after": {str(n): best_after(problem.history, truth, n) for n in sorted({n for n in QUALITY_AT if n <= cap} | {cap})},
           "evaluations": problem.n_evaluations, "updates": res.info["fnas"]["updates"],
           "stopped_early": problem.n_evaluations < cap,
           "policy_entropy_at": entropy_at, "final_policy_entropy": policy_entropy(s.controller, ctx),
           "trusted_share": res.info["fnas"]["trusted_share"], "replayed": res.info["fnas"]["replayed"],
           "best_reward": best, "best_rank": int((R > best).sum()) + 1, "wall_s": round(wall, 2)}
    if s.critic is not None:
        thr_c = s.config.critic.threshold
        trusted_err = np.array([abs(e["value"] - truth[e["arch"]]) for e in s.trusted_log])
        n0 = s.critic.n_seen - problem.n_evaluations  # rows a transferred critic brought along (none without transfer_data)
        held = s.critic.E[n0:]
        held = held[np.isfinite(held)]
        out.update(trusted=len(trusted_err), trusted_within_threshold=float((trusted_err < thr_c).mean()) if len(trusted_err) else None,
                   trusted_mae=float(trusted_err.mean()) if len(trusted_err) else None,
                   evaluated_heldout_mae=float(held.mean()) if len(held) else None)
    return out, s


QUALITY_AT = (50, 100, 200, 300, 500)
ENTROPY_AT = (25, 50, 100, 200)
_ALL_INDICES: dict[int, torch.Tensor] = {}


def policy_entropy(controller, ctx) -> float:
    """Exact entropy of the controller's distribution over every arch of the space (log 6561 = 8.79 nats uniform)."""
    space, archs = ctx[0], ctx[3]
    idx = _ALL_INDICES.get(id(archs))
    if idx is None:
        idx = _ALL_INDICES[id(archs)] = torch.as_tensor(np.array([space.choice_indices(a) for a in archs]))
    with torch.no_grad():
        logp = controller.log_prob(idx)[0]
    return round(float(-(logp.exp() * logp).sum()), 3)


def spread(x) -> dict:
    x = np.asarray(x, dtype=float)
    return {"mean": float(x.mean()), "median": float(np.median(x)), "p25": float(np.percentile(x, 25)),
            "p75": float(np.percentile(x, 75)), "std": float(x.std(ddof=1)) if len(x) > 1 else 0.0,
            "min": float(x.min()), "max": float(x.max())}


BOOTSTRAP_SEED = 0


def mean_ci(x) -> list[float]:
    """90 % percentile-bootstrap interval of the mean over seeds."""
    x = np.asarray(x, float)
    if np.ptp(x) == 0:
        return [float(x[0]), float(x[0])]
    return percentile_range(bootstrap_distribution((x,), np.mean, seed=BOOTSTRAP_SEED).bootstrap_distribution)


def ratio_ci(base, other) -> list[float]:
    """90 % paired percentile-bootstrap interval (over seeds) of mean(base) / mean(other)."""
    res = bootstrap_distribution((base, other), lambda b, o: np.mean(b) / np.mean(o), seed=BOOTSTRAP_SEED)
    return percentile_range(res.bootstrap_distribution)


def censored(rows, t: str, cap: int) -> list[int]:
    """Evaluations to target ``t`` per run; a run that never reached it counts as the cap."""
    return [cap if r[f"evals_to_{t}"] is None else r[f"evals_to_{t}"] for r in rows]


def summarize(rows: list[dict], cap: int, ppo_rows: list[dict] | None) -> dict:
    d: dict = {"runs": len(rows)}
    for t in TARGETS:
        x = censored(rows, t, cap)
        d[t] = {**spread(x), "mean_90ci": mean_ci(x), "missed": sum(r[f"evals_to_{t}"] is None for r in rows)}
        if ppo_rows is not None:
            b = censored(ppo_rows, t, cap)
            d[t]["ppo_over_this"] = float(np.mean(b) / np.mean(x))
            d[t]["ppo_over_this_90ci"] = ratio_ci(b, x)
    d["best_reward_after"] = {n: float(np.mean([r["best_reward_after"][n] for r in rows])) for n in rows[0]["best_reward_after"]}
    d["mean_best_rank_at_cap"] = float(np.mean([r["best_rank"] for r in rows]))
    d["stopped_early"] = int(sum(r["stopped_early"] for r in rows))
    d["distinct_archs_evaluated"] = float(np.mean([r["evaluations"] for r in rows]))
    d["mean_trusted_share"] = float(np.mean([r["trusted_share"] for r in rows]))
    d["final_policy_entropy"] = float(np.mean([r["final_policy_entropy"] for r in rows]))
    tr = [r for r in rows if r.get("trusted")]
    n = sum(r["trusted"] for r in tr)
    if n:
        d["trusted_estimates"] = n
        d["trusted_mae"] = sum(r["trusted_mae"] * r["trusted"] for r in tr) / n
        d["trusted_within_threshold"] = sum(r["trusted_within_threshold"] * r["trusted"] for r in tr) / n
    return d


def oracle_bound(n_archs: int, k: int, first_batch: int) -> float:
    """Expected evaluations to the first top-k hit of a search whose first batch is ``first_batch`` uniform
    draws (without replacement) and which evaluates a top-k arch right after it: E[min(H, first_batch + 1)].
    No learner can beat it on average, since nothing is known before the first batch returns."""
    p_none, e = 1.0, 0.0
    for n in range(first_batch + 1):
        e += p_none  # P(H > n)
        p_none *= (n_archs - k - n) / (n_archs - n)
    return e


# ---- jobs, journal, the search part -------------------------------------------------------------
JOURNAL = RESULTS / ".fnas_bench_runs.jsonl"  # finished runs: a rerun (or a parallel one) skips them
PROTOCOL = 4


def row_key(split: str, setting: str, variant: str, cap: int, source_evals: int, options: dict) -> str:
    """Runs are reused only under the same split, setting, cap and effective searcher configuration."""
    config = json.loads(json.dumps(asdict(FNASSearcher(variant=variant, **{**SETTINGS, **options}).config)))
    return json.dumps({"split": split, "setting": setting, "variant": variant, "cap": cap, "config": config,
                       "source_evals": source_evals if setting.startswith("transfer") else None, "protocol": PROTOCOL}, sort_keys=True)


def journal_rows() -> dict[tuple[str, int], dict]:
    out = {}
    if JOURNAL.exists():
        for line in JOURNAL.read_text().splitlines():
            try:
                d = json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn last line
            out[(d["key"], d["row"]["seed"])] = d["row"]
    return out


_CTX: dict[str, tuple] = {}


def context(table_rel: str):
    if table_rel not in _CTX:
        _CTX[table_rel] = landscape(table_rel)
    return _CTX[table_rel]


def run_job(job: tuple) -> list[tuple[str, str, dict]]:
    """One seed of one setting: [(setting, variant, row)]. A transfer job runs its source search first."""
    torch.set_num_threads(1)
    split, setting, arg, seed, cap, source_evals, settings = job
    SETTINGS.clear()
    SETTINGS.update(settings)
    ctx = context(SPLITS[split]["table"])
    if setting == "none":
        return [(setting, arg, run_variant(arg, seed, cap, ctx)[0])]
    if setting == "ablation":
        return [(setting, arg, run_variant("ppo+uac+aeb", seed, cap, ctx, options=ABLATIONS[arg])[0])]
    src_problem, _ = source_problem(arg, ctx)
    src = FNASSearcher(variant=SOURCE_VARIANT, **SETTINGS)
    src.run(src_problem, max_evaluations=source_evals, seed=1000 + seed)
    state = src.critic.state_dict()
    targets = ["ppo+uac+aeb"] if SOURCES[arg][4].startswith("upper") else ["ppo+uac", "ppo+uac+aeb"]
    out = []
    for v in targets:
        row, _ = run_variant(v, seed, cap, ctx, critic_state=state)
        row["source_evaluations"] = src_problem.n_evaluations
        out.append((f"transfer:{arg}", v, row))
    return out


DEFAULT_SOURCES = ["flops-hard", "latency-soft-T25"]


def planned_jobs(split: str, seeds: list[int], kinds: list[str], cap: int, source_evals: int,
                 sources: list[str] = DEFAULT_SOURCES) -> list[tuple]:
    jobs = []
    for seed in seeds:
        if "none" in kinds:
            jobs += [(split, "none", v, seed, cap, source_evals, dict(SETTINGS)) for v in VARIANTS]
        if "ablation" in kinds:
            jobs += [(split, "ablation", a, seed, cap, source_evals, dict(SETTINGS)) for a in ABLATIONS]
        if "transfer" in kinds:
            jobs += [(split, "transfer", src, seed, cap, source_evals, dict(SETTINGS)) for src in sources]
    return jobs


def job_rows_keys(job: tuple) -> list[tuple[str, str, str]]:
    """(setting, variant, journal key) of every row a job produces."""
    split, setting, arg, seed, cap, source_evals, _ = job
    if setting == "none":
        return [(setting, arg, row_key(split, setting, arg, cap, source_evals, {}))]
    if setting == "ablation":
        return [(setting, arg, row_key(split, f"ablation:{arg}", "ppo+uac+aeb", cap, source_evals, ABLATIONS[arg]))]
    targets = ["ppo+uac+aeb"] if SOURCES[arg][4].startswith("upper") else ["ppo+uac", "ppo+uac+aeb"]
    return [(f"transfer:{arg}", v, row_key(split, f"transfer:{arg}", v, cap, source_evals, {})) for v in targets]


def search_part(split: str, seeds: list[int], kinds: list[str], cap: int, source_evals: int, workers: int,
                sources: list[str] = DEFAULT_SOURCES, summary_only: bool = False) -> dict | None:
    ctx = context(SPLITS[split]["table"])
    space, bench, lat_model, archs, lat, acc, T, objective, R, k, thr, k01, thr01, truth = ctx
    done = journal_rows()
    if summary_only:  # only the seeds whose every run is in the journal
        seeds = [sd for sd in seeds if all((key, sd) in done for j in planned_jobs(split, [sd], kinds, cap, source_evals, sources)
                                            for _, _, key in job_rows_keys(j))]
    jobs = planned_jobs(split, seeds, kinds, cap, source_evals, sources)
    todo = [j for j in jobs if any((key, j[3]) not in done for _, _, key in job_rows_keys(j))]
    print(f"{split}: table {SPLITS[split]['table']}, T = {T:.4f} ms, seeds {seeds[0]}..{seeds[-1]}; "
          f"{len(jobs) - len(todo)} jobs reused, {len(todo)} to run on {workers} worker(s)", flush=True)

    def record(job, results):
        keys = {(st, v): key for st, v, key in job_rows_keys(job)}
        with open(JOURNAL, "a") as f:
            for st, v, row in results:
                f.write(json.dumps({"key": keys[(st, v)], "row": row}) + "\n")
                done[(keys[(st, v)], row["seed"])] = row
                print(f"seed {row['seed']} {st} {v}: top1% {row['evals_to_top1pct']}, top0.1% {row['evals_to_top0.1pct']}, "
                      f"best {row['evals_to_best']} ({row['evaluations']} evaluated, {row['wall_s']} s)", flush=True)

    if workers > 1 and todo:
        with ProcessPoolExecutor(workers) as pool:
            for job, res in zip(todo, pool.map(run_job, todo)):
                record(job, res)
    else:
        for job in todo:
            record(job, run_job(job))

    rows: dict[str, dict[str, list]] = {}
    for job in jobs:
        for st, v, key in job_rows_keys(job):
            if (key, job[3]) in done:
                rows.setdefault(st, {}).setdefault(v, []).append(done[(key, job[3])])
    ppo_rows = rows.get("none", {}).get("ppo")
    summary = {st: {v: summarize(r, cap, ppo_rows if ppo_rows and len(ppo_rows) == len(r) else None)
                    for v, r in per.items()} for st, per in rows.items()}
    n = len(archs)
    transfer_info = {}
    for name in sources:
        desc, _, _, _, role = SOURCES[name]
        _, src_R = source_problem(name, ctx)
        top_src = set(np.argsort(-src_R)[:k])
        transfer_info[name] = {
            "source": desc, "role": role, "source_search": f"{SOURCE_VARIANT}, {source_evals} evaluations per seed (seed + 1000)",
            "source_evaluations_not_counted_per_run": source_evals,
            "spearman_source_target_reward": float(stats.spearmanr(src_R, R)[0]),
            "top1pct_shared": len(top_src & set(np.argsort(-R)[:k])),
            "same_best_arch": bool(np.argmax(src_R) == np.argmax(R))}
    print_tables(summary, transfer_info, cap, n, k)
    goal = None
    fa = summary.get("none", {}).get("ppo+uac+aeb", {}).get("top0.1pct", {})
    if "ppo_over_this" in fa:
        goal = {"ppo_over_fnas_top0.1pct": fa["ppo_over_this"], "90ci": fa["ppo_over_this_90ci"],
                "met": bool(fa["ppo_over_this"] >= 2 and fa["ppo_over_this_90ci"][0] > 1)}
    cfg = FNASSearcher(**SETTINGS).config
    return {"setting": {"split": split, "space": "nas-bench-macro", "table": table_id(SPLITS[split]["table"]), "budget_ms": T,
                        "seeds": seeds, "tuned_on": TUNING_PROVENANCE,
                        "archs": n, "top1pct_archs": k, "top0.1pct_archs": k01, "evaluation_cap": cap,
                        "random_search_expected_evals_to_top1pct": (n + 1) / (k + 1),
                        "oracle_bound_evals_to_top1pct_first_batch_8": oracle_bound(n, k, 8),
                        "reach": "an arch is reached at the real evaluation that first returns it; trusted estimates never reach; "
                                 "repeated archs are cache hits for every variant; runs that miss count as the cap",
                        "intervals": "90 % percentile bootstrap over seeds (scipy.stats.bootstrap via benchmarks/common.py, 2000 resamples); ratios paired by seed",
                        "full_fnas": "PPO+UAC+AEB: on a tabular benchmark the knowledge pool changes only the training cost of one "
                                     "evaluation (the akp part), not which archs are evaluated",
                        "shared_settings_overrides": SETTINGS, "config": json.loads(json.dumps(asdict(cfg)))},
            "transfer_sources": transfer_info, "summary": summary, "goal_fnas_2x_fewer_than_ppo_to_top0.1pct_without_transfer": goal,
            "runs": rows}


def ci_text(ci: list[float] | None) -> str:
    return f"[{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "[undefined]"


def fmt(d: dict) -> str:
    lo, hi = d["mean_90ci"]
    return f"{d['mean']:.1f} [{lo:.1f}, {hi:.1f}]" + (f" ({d['missed']} missed)" if d["missed"] else "")


def fmt_ratio(d: dict) -> str:
    if "ppo_over_this" not in d:
        return ""
    lo, hi = d["ppo_over_this_90ci"]
    return f"{d['ppo_over_this']:.2f}x [{lo:.2f}, {hi:.2f}]"


def print_tables(summary: dict, transfer_info: dict, cap: int, n: int, k: int) -> None:
    heads = ["variant", "evals to top 1%", "PPO / this", "evals to top 0.1%", "PPO / this", "evals to best", "PPO / this",
             "stopped early", "archs evaluated", "trusted"]
    for st, per in summary.items():
        title = {"none": "WITHOUT transfer", "ablation": "ablation: PPO+UAC+AEB with one rule not in the paper"}.get(st, st)
        if st.startswith("transfer:"):
            info = transfer_info[st.split(":", 1)[1]]
            title = (f"WITH transfer ({info['role']}): critic from a {info['source']}; source/target reward Spearman "
                     f"{info['spearman_source_target_reward']:.3f}")
        rows = [[v, fmt(s["top1pct"]), fmt_ratio(s["top1pct"]), fmt(s["top0.1pct"]), fmt_ratio(s["top0.1pct"]),
                 fmt(s["best"]), fmt_ratio(s["best"]), s["stopped_early"], s["distinct_archs_evaluated"], s["mean_trusted_share"]]
                for v, s in per.items()]
        print_table(heads, rows, title=f"{title} (mean [90% CI] over {next(iter(per.values()))['runs']} seeds, cap {cap})")
        if st.startswith("transfer:"):
            info = transfer_info[st.split(":", 1)[1]]
            print(f"  not counted above: the source search's {info['source_evaluations_not_counted_per_run']} evaluations per run "
                  f"({info['source_search']})")
    print(f"random search: {(n + 1) / (k + 1):.1f} evaluations to the top 1 % on average")


# ---- knowledge pool part ---------------------------------------------------------------------------
def shape_only(data):
    """The built-in images labelled by their shape alone (5 classes; the stripe texture that makes the other
    half of the 10 classes ignored): another classification task on other images (another data seed)."""
    from hwnas.train.data import TensorImageSet

    return TensorImageSet(data.images, data.labels % 5, data.num_classes, f"{data.name}-shape-only")


def hit_rates(pool_sizes=(1, 2, 4, 8, 20), n_query: int = 200, seed: int = 0) -> dict:
    """Hit rate of each matching rule against pools of several sizes, at no training cost (matching reads
    shapes, not values: untrained nets stand in for trained ones)."""
    from hwnas.nn.network import Network
    from hwnas.search.fnas.knowledge_pool import KnowledgePool

    space = create_space("tiny")
    out: dict = {"space": "tiny", "query_archs": n_query, "by_pool_size": {}}
    rows = []
    for n_pool in pool_sizes:
        rng = np.random.default_rng(seed + n_pool)
        pools = {m: KnowledgePool(1, matching=m) for m in ("uncertainty", "cosine")}
        for _ in range(n_pool):
            a = space.sample(rng)
            net = Network(space, a)
            for pool in pools.values():
                pool.store(net, space, a, 1)
        queries = [space.sample(rng) for _ in range(n_query)]
        d = {}
        for m, pool in pools.items():
            unc = [info["uncovered_share"] for a in queries
                   if (info := pool.initialize(Network(space, a), space, a))["uncovered_share"] is not None]
            d[m] = {"hit_rate": pool.hit_rate, "blocks_queried": pool.queries,
                    "mean_uncovered_share_of_matched": float(np.mean(unc)) if unc else None}
        out["by_pool_size"][n_pool] = d
        rows.append([n_pool] + [f"{d[m]['hit_rate']:.3f} / {d[m]['mean_uncovered_share_of_matched']:.3f}" for m in ("uncertainty", "cosine")])
    print_table(["pool archs", "uncertainty: hit rate / uncovered share", "cosine (min 0.8): hit rate / uncovered share"], rows,
                title=f"knowledge pool hit rate on {n_query} tiny archs (paper: >= 0.99)")
    return out


def akp_part(n_archs: int, n_pool: int, iterations: int, seed: int = 0) -> dict:
    """Paper Fig. 3c on a small scale: rank fidelity along training, scratch vs pool-initialised (two matchings)."""
    from hwnas.nn.network import Network
    from hwnas.search.fnas.knowledge_pool import KnowledgePool
    from hwnas.search.fnas.train_evaluator import ACCURACY_BATCH, builtin_data, train
    from hwnas.train.standalone import accuracy

    torch.set_num_threads(1)
    space = create_space("tiny")
    target_train, target_val = builtin_data(seed)
    other_train, other_val = (shape_only(d) for d in builtin_data(seed + 1))  # the pool's task: another task
    rng = np.random.default_rng(seed)
    archs: list = []
    while len(archs) < n_archs + n_pool:
        a = space.sample(rng)
        if a not in archs:
            archs.append(a)
    pool_archs, measured = archs[:n_pool], archs[n_pool:]
    checkpoints = sorted({max(1, iterations * q // 4) for q in (1, 2, 3, 4)})
    pools = {m: KnowledgePool(iterations, matching=m) for m in ("uncertainty", "cosine")}
    for i, arch in enumerate(pool_archs):  # the pool: checkpoints of the other task, all trained K iterations (fairness)
        torch.manual_seed(10_000 + i)
        net = Network(space, arch)
        train(net, other_train, iterations, seed=10_000 + i)
        for pool in pools.values():
            pool.store(net, space, arch, iterations)
        print(f"pool {i}: {space.to_compact(arch)} trained on the other task ({accuracy(net, other_val, ACCURACY_BATCH):.1f}%)", flush=True)
    rows = []
    for i, arch in enumerate(measured):
        row = {"arch": space.to_compact(arch)}
        torch.manual_seed(seed + i)
        ref = Network(space, arch)
        row["reference_2K"] = train(ref, target_train, 2 * iterations, seed=seed + i, val=target_val, checkpoints=[2 * iterations])[2 * iterations]
        torch.manual_seed(seed + i)
        scratch = Network(space, arch)
        row["scratch"] = train(scratch, target_train, iterations, seed=seed + i, val=target_val, checkpoints=checkpoints)
        for m, pool in pools.items():  # the pool is frozen: every measured arch meets the same pool
            torch.manual_seed(seed + i)
            warm = Network(space, arch)
            info = pool.initialize(warm, space, arch)
            row[f"{m}_init"] = info
            row[m] = train(warm, target_train, iterations, seed=seed + i, val=target_val, checkpoints=checkpoints)
        rows.append(row)
        print(f"{i}: {row['arch']} ref {row['reference_2K']:.1f} scratch {row['scratch']} | unc {row['uncertainty']} "
              f"(hits {row['uncertainty_init']['hits']}/{row['uncertainty_init']['blocks']}) | cos {row['cosine']} "
              f"(hits {row['cosine_init']['hits']}/{row['cosine_init']['blocks']})", flush=True)
    ref = np.array([r["reference_2K"] for r in rows])

    def fidelity(init: str) -> dict:
        out = {}
        for c in checkpoints:
            acc = np.array([r[init][c] for r in rows])
            rho = float(stats.spearmanr(acc, ref)[0])
            res = bootstrap_distribution((acc, ref), lambda a, b: stats.spearmanr(a, b)[0], n_resamples=999, seed=BOOTSTRAP_SEED)
            out[c] = {"spearman": rho, "90ci": percentile_range(res.bootstrap_distribution), "mean_acc": float(acc.mean())}
        return out

    inits = ("scratch", "uncertainty", "cosine")
    fid = {m: fidelity(m) for m in inits}
    mean_scratch_K = fid["scratch"][iterations]["mean_acc"]
    match = {}
    for m in ("uncertainty", "cosine"):
        hits = sum(r[f"{m}_init"]["hits"] for r in rows)
        blocks = sum(r[f"{m}_init"]["blocks"] for r in rows)
        unc = [r[f"{m}_init"]["uncovered_share"] for r in rows if r[f"{m}_init"]["uncovered_share"] is not None]
        reach = next((c for c in checkpoints if fid[m][c]["mean_acc"] >= mean_scratch_K), None)
        rank_reach = next((c for c in checkpoints if fid[m][c]["spearman"] >= fid["scratch"][iterations]["spearman"]), None)
        match[m] = {"hit_rate": hits / blocks if blocks else 0.0, "blocks_queried": blocks,
                    "mean_uncovered_share_of_matched": float(np.mean(unc)) if unc else None,
                    "iterations_to_scratch_K_accuracy": reach, "iterations_to_scratch_K_rank_fidelity": rank_reach}
    print_table(["iterations"] + [f"{m}: Spearman vs 2K ref [90% CI] / acc %" for m in inits],
                [[c] + [f"{fid[m][c]['spearman']:.2f} {ci_text(fid[m][c]['90ci'])} / {fid[m][c]['mean_acc']:.1f}"
                        for m in inits] for c in checkpoints],
                title=f"knowledge pool rank fidelity (paper Fig. 3c): {n_archs} tiny archs, pool of {n_pool} from another task")
    for m, d in match.items():
        print(f"{m} matching: hit rate {d['hit_rate']:.3f} (paper: >= 0.99), uncovered share of matched blocks "
              f"{d['mean_uncovered_share_of_matched']}, reaches scratch-K accuracy at {d['iterations_to_scratch_K_accuracy']}, "
              f"scratch-K rank fidelity at {d['iterations_to_scratch_K_rank_fidelity']}")
    return {"setting": {"space": "tiny", "target_data": "hwnas builtin image set (make_builtin), 2048 train / 512 val",
                        "pool_task": "the built-in images of another data seed labelled by shape only (5 classes, texture ignored)",
                        "pool_archs": n_pool, "measured_archs": n_archs, "iterations_K": iterations, "checkpoints": checkpoints,
                        "reference": f"accuracy after {2 * iterations} iterations from scratch (the 'actual rank' of Fig. 3c)",
                        "batch": 32, "optimizer": "SGD momentum 0.9, lr 0.05 cosine",
                        "paper": "hit ratio >= 99 % (Sec. 4.3); Fig. 3c: block-level init reaches the final rank in fewer epochs "
                                 "(no numbers in the text); AKP ~2x fewer activated samples (Table 5)"},
            "rank_fidelity": fid, "matching": match, "per_arch": rows}


def merge_write(key: str, value: dict) -> None:
    path = RESULTS / "fnas_bench.json"
    old = json.loads(path.read_text()) if path.exists() else {}
    keep = {k: v for k, v in old.items() if k not in ("benchmark", "when", "machine")}
    keep[key] = value
    write_results("fnas_bench", keep)


def seed_list(text: str | None, split: str) -> list[int]:
    if not text:
        return SPLITS[split]["seeds"]
    if "-" in text:
        lo, hi = text.split("-")
        return list(range(int(lo), int(hi) + 1))
    return [int(x) for x in text.split(",")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=["search", "akp", "hits", "all"], default="all")
    ap.add_argument("--split", choices=list(SPLITS), default="report", help="report: the figures; tune: the disjoint table and seeds settings are chosen on")
    ap.add_argument("--seeds", default=None, help="e.g. 0-11 or 0,1,2 (default: the split's seeds)")
    ap.add_argument("--jobs", default="none,ablation,transfer", help="comma list of settings to run: none, ablation, transfer")
    ap.add_argument("--cap", type=int, default=300, help="real evaluations per search run")
    ap.add_argument("--source-evals", type=int, default=300, help="evaluations of the earlier search a transferred critic comes from")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--summary-only", action="store_true", help="summarize the seeds whose runs are all in the journal; run nothing")
    ap.add_argument("--sources", default=",".join(DEFAULT_SOURCES), help=f"critic sources of the transfer setting: {', '.join(SOURCES)}")
    ap.add_argument("--key", default=None, help="results key (default: search for the report split, search_tune for tune)")
    ap.add_argument("--akp-archs", type=int, default=8)
    ap.add_argument("--akp-pool", type=int, default=4)
    ap.add_argument("--akp-iterations", type=int, default=120)
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                    help="override a controller/critic/buffer setting for every variant alike (e.g. --set threshold=1.0)")
    a = ap.parse_args()
    for item in a.set:
        name, _, value = item.partition("=")
        SETTINGS[name] = json.loads(value)
    if a.part in ("search", "all"):
        res = search_part(a.split, seed_list(a.seeds, a.split), a.jobs.split(","), a.cap, a.source_evals, a.workers,
                          a.sources.split(","), a.summary_only)
        if res is not None:
            merge_write(a.key or ("search" if a.split == "report" else "search_tune"), res)
    if a.part in ("hits", "all"):
        merge_write("akp_hit_rate", hit_rates())
    if a.part in ("akp", "all"):
        merge_write("akp", akp_part(a.akp_archs, a.akp_pool, a.akp_iterations))


if __name__ == "__main__":
    main()
