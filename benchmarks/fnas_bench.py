"""FNAS on NAS-Bench-Macro (known truth) and its knowledge pool on a short train-from-scratch task.

    python benchmarks/fnas_bench.py [--part search|akp|all] [--seeds 10] [--cap 300] [--only-seeds 0,1,2] [--quick]
                                    [--set lr=3e-3 --set threshold=1.0] [--variants ppo,ppo+uac]

search: latency from the host onnxruntime table, budget T = median predicted latency of the
        space, reward R = ACC x (LAT/T)^-0.07 (hwnas.search.reward). Every variant shares the
        seeds, batch size, controller and its settings. Per variant and seed: the real
        (non-trusted) evaluations until an arch of the top 1 % of all 6,561 archs by reward is
        first evaluated (primary), likewise for the top 0.1 % and the single best arch; mean,
        median, quartiles and a bootstrap interval of the speed-up over plain PPO; the best
        reward after 50/100/200/300 evaluations (equal-quality check); the oracle bound (no
        search that starts with a uniform first batch can average fewer evaluations to the top
        1 %); the critic's calibration (trusted |V - R| against the table's truth, vs. V's
        error on archs it declined to trust).
akp:    `tiny` archs trained K iterations from scratch vs. warm-started from the knowledge pool:
        accuracy after K iterations (ratio), iterations the warm start needs to match the
        scratch accuracy, hit rate.
Results merge into benchmarks/results/fnas_bench.json (each part updates its own key).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

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
TABLE = ROOT / "latency_tables" / "host-nas-bench-macro-onnxruntime.json"
VARIANTS = ["ppo", "ppo+uac", "ppo+uac+aeb", "fnas"]


# ---- search part --------------------------------------------------------------------------------
TABLE_REV: str | None = None  # read the table as committed at this git revision (runs made before a table update)


def load_table() -> LatencyTable:
    if TABLE_REV is None:
        return LatencyTable.load(TABLE, space="nas-bench-macro")
    import subprocess

    rel = TABLE.relative_to(ROOT).as_posix()
    text = subprocess.run(["git", "show", f"{TABLE_REV}:{rel}"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    table = LatencyTable.from_dict(json.loads(text), source=f"{rel}@{TABLE_REV}")
    table.check(space="nas-bench-macro")
    return table


def table_id() -> str:
    import subprocess

    rel = TABLE.relative_to(ROOT).as_posix()
    rev = TABLE_REV or subprocess.run(["git", "log", "-1", "--format=%h", "--", rel], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    return f"{rel} @ {rev}"


def landscape():
    space = create_space("nas-bench-macro")
    bench = load_nas_bench_macro()
    table = load_table()
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

# How the defaults (PPO lr 3e-3, entropy 1e-2, UAC threshold 1.0) were chosen: quick runs of this protocol
# (run_variant; equivalent to `--table-rev b4672bc --variants V --set NAME=VALUE --seeds S --cap C`) on the
# host table as committed at b4672bc (budget T = 0.9451 ms), before the table was re-profiled.
# Values: mean (median) evaluations to the top 1 %, then mean evaluations to the top 0.1 % (misses = cap).
# The controller settings were picked for plain PPO and then shared; the critic/buffer ones for FNAS.
TUNING = {
    "ppo_lr (plain PPO, 20 seeds, cap 300, entropy 1e-4)": {
        "1e-4": "52.7 (31.5); 249.1", "1e-3": "39.6 (34.0); 129.8", "3e-3": "35.5 (34.0); 98.9 <- chosen",
        "1e-2": "30.3 (23.5); 134.2"},
    "ppo_batch (plain PPO, 20 seeds, cap 300, lr 3.5e-4)": {"8": "78.4 (91.5); 183.2", "16": "chosen (lr 3.5e-4, 10 seeds, cap 200: 48.1 (30.5); 167.0)"},
    "entropy (10 seeds, cap 300, lr 3e-3)": {
        "1e-4": "ppo 30.5 (30.5); 86.8 | ppo+uac+aeb 32.1 (33.0); 222.6",
        "1e-2": "ppo 30.5 (30.5); 85.1 | ppo+uac+aeb 29.0 (33.0); 117.2 <- chosen",
        "5e-2": "ppo 30.5 (30.5); 90.7 | ppo+uac+aeb 29.0 (31.5); 172.6"},
    "uac_threshold (ppo+uac+aeb, 10 seeds, cap 150, lr 3e-3, entropy 1e-4)": {
        "0.3 (lr 3.5e-4, cap 200)": "53.5 (61.5); 108.2", "0.6": "44.0 (33.5); 80.6", "1.0": "31.5 (33.0); 84.8 <- chosen",
        "1.5": "40.6 (32.0); 128.6"},
    "verify_new_best (ppo+uac+aeb, threshold 1.0, 10 seeds, cap 150)": {"on": "31.5 (33.0); 84.8 <- chosen", "off": "54.7 (37.5); 107.6"},
    "fixed_explore (ppo+uac+aeb, threshold 1.0, 10 seeds, cap 150)": {
        "on (first batch 8 evaluations)": "31.5 (33.0); 84.8 <- chosen (the paper's half-exploring batch)",
        "off (first batch 16 evaluations)": "26.5 (28.5); 96.4"},
    "aeb (ppo+uac+aeb, 10 seeds, cap 300, lr 3e-3, entropy 1e-4)": {
        "replay 0.5, temperature 1": "32.1 (33.0); 222.6 <- kept (the paper's values)",
        "replay 0.25": "33.0 (39.0); 174.3", "replay 0.25, temperature 0.3": "30.4 (35.5); 199.1"},
}
# The replay fix (replay_ratio, baseline_on_policy, explore_new_only) and the critic transfer (transfer_data) were chosen on other seeds (100-109) than the
# reported ones (0-9), on the re-profiled table (8cc92d1), cap 300, the shared controller settings above:
# mean (median) evaluations to the top 1 %; top 0.1 % mean (median, misses); best arch mean (misses);
# distinct archs evaluated; mean best reward after 100 / at the cap.
TUNING_AEB_FIX = {
    "ppo (reference)": "35.9 (40.5); 103.1 (95.5, 0); 145.6 (1); 172 archs; 94.19 / 94.413",
    "ppo+uac+aeb before the fix (current ratio, baseline over all samples, known archs in the exploring half)":
        "21.8 (24.0); 217.9 (300, 7); 218.9 (7); 38 archs; 94.07 / 94.074",
    "replay_ratio=behaviour only": "82.7 (31.0); 193.8 (300, 6); 219.7 (7); 39 archs; 94.03 / 94.030",
    "baseline_on_policy only": "22.0 (24.0); 190.4 (300, 6); 217.3 (7); 38 archs; 94.10 / 94.099",
    "replay_ratio=behaviour + baseline_on_policy": "82.6 (31.0); 193.8 (300, 6); 219.9 (7); 40 archs; 94.04 / 94.037",
    "explore_new_only only": "21.9 (24.0); 96.4 (50.0, 2); 123.7 (3); 124 archs; 94.33 / 94.331",
    "explore_new_only + baseline_on_policy": "21.8 (24.0); 117.9 (47.5, 3); 124.7 (3); 126 archs; 94.31 / 94.310",
    "explore_new_only + replay_ratio=behaviour": "30.6 (31.0); 50.2 (48.0, 0); 70.3 (0); 164 archs; 94.40 / 94.428",
    "all three (chosen; replay_dual_clip 3 never binds: identical with it off)":
        "29.7 (31.0); 55.1 (54.0, 0); 73.0 (0); 196 archs; 94.41 / 94.428",
    "check, not used: plain ppo with explore_new_only (redraw alone, no buffer)":
        "35.9 (40.5); 114.0 (99.5, 0); 176.2 (0); 300 archs; 94.19 / 94.428",
    "fnas, critic transferred with its rows (transfer_data=true; trusted |V-R| < threshold for 0.50, MAE 0.89)":
        "29.4 (31.5); 84.0 (83.0, 0); 102.2 (0); 254 archs; 94.22 / 94.428",
    "fnas, critic transferred as weights only (chosen; trusted |V-R| < threshold for 0.98, MAE 0.21)":
        "16.9 (18.5); 42.5 (35.0, 0); 47.2 (0); 217 archs; 94.43 / 94.428",
}


def run_variant(variant, seed, cap, ctx, critic_state=None):
    space, bench, lat_model, _, _, _, T, objective, R, _, thr, _, thr01, truth = ctx
    problem = SearchProblem(space, TabularEvaluator(bench), latency=lat_model, budgets=Budgets(latency_ms=T), objective=objective)
    s = FNASSearcher(variant=variant, critic_state=critic_state, **SETTINGS)
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
           "policy_entropy_at": entropy_at, "final_policy_entropy": policy_entropy(s.controller, ctx),
           "trusted_share": res.info["fnas"]["trusted_share"], "replayed": res.info["fnas"]["replayed"],
           "best_reward": best, "best_rank": int((R > best).sum()) + 1, "wall_s": round(wall, 2)}
    if s.critic is not None:
        thr_c = s.config.critic.threshold
        trusted_err = np.array([abs(e["value"] - truth[e["arch"]]) for e in s.trusted_log])
        n0 = s.critic.n_seen - problem.n_evaluations  # rows a transferred critic brought along (none without transfer_data)
        held = s.critic.E[n0:]
        held = held[np.isfinite(held)]
        # archs of the top 1 % that the critic trusted (never verified) before the first real hit
        hit = out["evals_to_top1pct"] or cap + 1
        out.update(trusted=len(trusted_err), trusted_within_threshold=float((trusted_err < thr_c).mean()) if len(trusted_err) else None,
                   trusted_mae=float(trusted_err.mean()) if len(trusted_err) else None,
                   evaluated_heldout_mae=float(held.mean()) if len(held) else None,
                   first_trusted_at=min((e["evaluations"] for e in s.trusted_log), default=None),
                   top1pct_only_trusted_before_hit=sum(1 for e in s.trusted_log if truth[e["arch"]] >= thr and e["evaluations"] < hit))
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


def summarize(rows, cap):
    d = {}
    for t in TARGETS:
        hits = [r.get(f"evals_to_{t}") for r in rows]
        d[f"evals_to_{t}"] = {**spread([cap if x is None else x for x in hits]), "not_reached_within_cap": sum(x is None for x in hits)}
    # legacy flat keys of the primary metric
    d["median_evals_to_top1pct"] = d["evals_to_top1pct"]["median"]
    d["mean_evals_to_top1pct"] = d["evals_to_top1pct"]["mean"]
    d["not_reached_within_cap"] = d["evals_to_top1pct"]["not_reached_within_cap"]
    d["mean_evals_to_top0.1pct"] = d["evals_to_top0.1pct"]["mean"]
    d["best_reward_after"] = {n: spread([r["best_reward_after"][n] for r in rows]) for n in rows[0]["best_reward_after"]}
    d["mean_best_reward_at_cap"] = float(np.mean([r["best_reward"] for r in rows]))
    d["median_best_rank_at_cap"] = float(np.median([r["best_rank"] for r in rows]))
    d["mean_trusted_share"] = float(np.mean([r["trusted_share"] for r in rows]))
    d["mean_first_batch_evaluations"] = float(np.mean([r["first_batch_evaluations"] or 0 for r in rows]))
    d["distinct_archs_evaluated"] = spread([r["evaluations"] for r in rows])
    d["final_policy_entropy"] = spread([r["final_policy_entropy"] for r in rows])
    d["policy_entropy_at"] = {n: spread([r["policy_entropy_at"][n] for r in rows if n in r["policy_entropy_at"]])
                              for n in map(str, ENTROPY_AT) if any(n in r["policy_entropy_at"] for r in rows)}
    if rows and "trusted_mae" in rows[0]:
        tr = [r for r in rows if r["trusted"]]
        n = sum(r["trusted"] for r in tr)
        firsts = [r["first_trusted_at"] for r in rows if r["first_trusted_at"] is not None]
        held = [r["evaluated_heldout_mae"] for r in rows if r["evaluated_heldout_mae"] is not None]
        d.update(trusted_estimates=n,
                 trusted_within_threshold=(sum(r["trusted_within_threshold"] * r["trusted"] for r in tr) / n) if n else None,
                 trusted_mae=(sum(r["trusted_mae"] * r["trusted"] for r in tr) / n) if n else None,
                 evaluated_heldout_mae=float(np.mean(held)) if held else None,
                 median_evaluations_before_first_trust=float(np.median(firsts)) if firsts else None,
                 top1pct_only_trusted_before_hit=int(sum(r["top1pct_only_trusted_before_hit"] for r in rows)))
    return d


BOOTSTRAP_SEED = 0


def ratio_ci(base, other, seed: int, n=2000):
    """Bootstrap (over seeds, paired) 90 % interval of mean(base)/mean(other)."""
    res = bootstrap_distribution((base, other), lambda b, o: np.mean(b) / np.mean(o), n_resamples=n, seed=seed)
    return percentile_range(res.bootstrap_distribution)


def oracle_bound(n_archs: int, k: int, first_batch: int) -> float:
    """Expected evaluations to the first top-k hit of a search whose first batch is ``first_batch`` uniform
    draws (without replacement) and which evaluates a top-k arch right after it: E[min(H, first_batch + 1)].
    No learner can beat it on average, since nothing is known before the first batch returns."""
    p_none, e = 1.0, 0.0
    for n in range(first_batch + 1):
        e += p_none  # P(H > n)
        p_none *= (n_archs - k - n) / (n_archs - n)
    return e


JOURNAL = RESULTS / ".fnas_bench_runs.jsonl"  # finished runs: a rerun (or a parallel one) skips them


def settings_key(cap: int, source_evals: int, budget_ms: float) -> str:
    """Runs are reused only under the same cap, budget and effective searcher configuration."""
    config = json.loads(json.dumps(asdict(FNASSearcher(**SETTINGS).config)))
    return json.dumps({"cap": cap, "source_evals": source_evals, "budget_ms": round(budget_ms, 9), "config": config,
                       "protocol": 3}, sort_keys=True)


def journal_rows(key: str) -> dict[tuple[str, int], dict]:
    out = {}
    if JOURNAL.exists():
        for line in JOURNAL.read_text().splitlines():
            try:
                d = json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn last line
            if d.get("key") == key:
                out[(d["variant"], d["row"]["seed"])] = d["row"]
    return out


def search_part(seeds: list[int], cap: int, source_evals: int, summarize_only: bool = False,
                variants: list[str] | None = None) -> dict | None:
    torch.set_num_threads(1)
    variants = variants or VARIANTS
    ctx = landscape()
    space, bench, lat_model, archs, lat, acc, T, objective, R, k, thr, k01, thr01, truth = ctx
    n = len(archs)
    random_expect = (n + 1) / (k + 1)  # first hit of uniform sampling without replacement
    print(f"T = median latency = {T:.4f} ms; top 1% = {k} archs (reward >= {thr:.3f}); "
          f"{int((lat[R >= thr] <= T).sum())} of them within the budget; random search needs {random_expect:.1f} evaluations on average")
    # the architecture knowledge FNAS transfers: a critic from an earlier search of the same space under a
    # different budget (T' = 25th percentile latency), whose evaluations are not counted here
    T_src = float(np.quantile(lat, 0.25))
    key = settings_key(cap, source_evals, T)
    done = journal_rows(key)
    per_variant: dict[str, list] = {v: [] for v in variants}
    for seed in seeds:
        for v in variants:
            if (v, seed) in done:
                per_variant[v].append(done[(v, seed)])
                continue
            if summarize_only:
                continue
            state = None
            if v == "fnas":
                src_ctx = (*ctx[:6], T_src, Objective("mnas", T_src), *ctx[8:])
                _, src = run_variant("ppo+uac+aeb", 1000 + seed, source_evals, src_ctx)
                state = src.critic.state_dict()
            row, _ = run_variant(v, seed, cap, ctx, state)
            per_variant[v].append(row)
            with open(JOURNAL, "a") as f:
                f.write(json.dumps({"variant": v, "key": key, "row": row}) + "\n")
            print(f"seed {seed} {v:12s} top1% at {row['evals_to_top1pct']}, top0.1% at {row['evals_to_top0.1pct']}, "
                  f"best at {row['evals_to_best']}, best rank {row['best_rank']}, trusted {row['trusted_share']:.2f}, {row['wall_s']} s", flush=True)
    if any(len(rows) < len(seeds) for rows in per_variant.values()):
        print("some runs are missing; summary not written")
        return None
    n_seeds = len(seeds)
    summary = {v: summarize(rows, cap) for v, rows in per_variant.items()}
    if "ppo" in summary:
        base = summary["ppo"]
        for v in variants:
            s = summary[v]
            for t in TARGETS:
                b, o = base[f"evals_to_{t}"], s[f"evals_to_{t}"]
                cens = lambda rows: [cap if r[f"evals_to_{t}"] is None else r[f"evals_to_{t}"] for r in rows]
                s[f"speedup_{t}_vs_ppo"] = {"mean": b["mean"] / o["mean"], "median": b["median"] / o["median"],
                                            "mean_90ci": ratio_ci(cens(per_variant["ppo"]), cens(per_variant[v]), BOOTSTRAP_SEED)}
            s["speedup_median_vs_ppo"] = s["speedup_top1pct_vs_ppo"]["median"]
            s["speedup_mean_vs_ppo"] = s["speedup_top1pct_vs_ppo"]["mean"]
            s["speedup_top0.1pct_mean_vs_ppo"] = s["speedup_top0.1pct_vs_ppo"]["mean"]
    for v in variants:
        s = summary[v]
        s["oracle_bound_evals_to_top1pct"] = oracle_bound(n, k, int(round(s["mean_first_batch_evaluations"])))
    fmt = lambda d: f"{d['mean']:.1f} / {d['median']:.1f} [{d['p25']:.0f}-{d['p75']:.0f}]" + (f" ({d['not_reached_within_cap']} missed)" if d["not_reached_within_cap"] else "")
    rows = [[v, fmt(s["evals_to_top1pct"]), s.get("speedup_mean_vs_ppo", ""), s.get("speedup_median_vs_ppo", ""),
             s["oracle_bound_evals_to_top1pct"], fmt(s["evals_to_top0.1pct"]), s.get("speedup_top0.1pct_mean_vs_ppo", ""),
             fmt(s["evals_to_best"]), s["best_reward_after"][str(min(100, cap))]["mean"], s["mean_best_reward_at_cap"],
             s["median_best_rank_at_cap"], s["mean_trusted_share"], s["distinct_archs_evaluated"]["mean"],
             s["final_policy_entropy"]["mean"]] for v, s in summary.items()]
    rows.append(["random (analytic)", f"{random_expect:.1f}", "", "", "", "", "", "", "", "", "", 0.0, "", ""])
    print_table(["variant", "evals top1% mean/median [IQR]", "speed-up mean", "speed-up median", "oracle bound",
                 "evals top0.1%", "speed-up top0.1% mean", "evals to best arch", f"best R after {min(100, cap)}", "best R at cap",
                 "median rank at cap", "trusted", "archs evaluated", "final entropy"], rows, title=f"NAS-Bench-Macro, {n_seeds} seeds, cap {cap} evaluations")
    cal = [[v, s.get("trusted_estimates"), s.get("median_evaluations_before_first_trust"), s.get("trusted_within_threshold"),
            s.get("trusted_mae"), s.get("evaluated_heldout_mae"), s.get("top1pct_only_trusted_before_hit")]
           for v, s in summary.items() if "trusted_mae" in s]
    thr_c = FNASSearcher(**SETTINGS).config.critic.threshold
    print_table(["variant", "trusted estimates", "evals before first trust", "share |V-R| < thr", "MAE trusted",
                 "MAE declined (held-out)", "top1% only trusted"], cal, title=f"UAC calibration (threshold {thr_c:g} reward points)")
    goal = "ppo" in summary and all(summary[v]["speedup_mean_vs_ppo"] >= 3 for v in ("ppo+uac+aeb", "fnas") if v in summary)
    cfg = FNASSearcher(**SETTINGS).config
    return {"setting": {"space": "nas-bench-macro", "table": table_id(), "budget_ms": T, "archs": n,
                        "top1pct_archs": k, "top1pct_reward_threshold": thr, "top0.1pct_archs": k01, "top0.1pct_reward_threshold": thr01,
                        "best_reward": float(R.max()),
                        "top1pct_within_budget": int((lat[R >= thr] <= T).sum()), "seeds": n_seeds, "evaluation_cap": cap,
                        "random_search_expected_evals_to_top1pct": random_expect,
                        "reach": "an arch is reached at the real evaluation that first returns it (its index in the problem's history); "
                                 "trusted estimates never reach; repeated archs are cache hits for every variant; runs that miss count as the cap",
                        "targets": TARGETS,
                        "shared_settings_overrides": SETTINGS, "tuning_on_table_b4672bc": TUNING,
                        "tuning_aeb_fix_on_seeds_100_109": TUNING_AEB_FIX,
                        "config": {k: v for k, v in json.loads(json.dumps(asdict(cfg))).items() if k not in ("use_uac", "use_aeb")},
                        "oracle_bound": "E[min(first hit, first batch + 1)] for uniform first-batch draws: the least any learner can average",
                        "fnas_critic_source": f"ppo+uac+aeb search at T'={T_src:.4f} ms (25th pct latency), {source_evals} evaluations, not counted; "
                                              + ("its V/U weights and training rows transferred" if cfg.transfer_data else "its V/U weights transferred (fine-tuned here, its rows left behind)")},
            "summary": summary, "runs": per_variant, "goal_3x_fewer_evaluations_met": bool(goal)}


# ---- knowledge pool part ---------------------------------------------------------------------------
def akp_part(n_archs: int, iterations: int, seed: int = 0) -> dict:
    from hwnas.nn.network import Network
    from hwnas.search.fnas.knowledge_pool import KnowledgePool
    from hwnas.search.fnas.train_evaluator import ACCURACY_BATCH, builtin_data, train
    from hwnas.train.standalone import accuracy

    torch.set_num_threads(1)
    space = create_space("tiny")
    train_data, val = builtin_data(seed)
    rng = np.random.default_rng(seed)
    archs = []
    while len(archs) < n_archs:
        a = space.sample(rng)
        if a not in archs:
            archs.append(a)
    checkpoints = sorted({max(1, iterations * q // 4) for q in (1, 2, 3, 4)})
    pool = KnowledgePool(iterations)
    rows = []
    for i, arch in enumerate(archs):
        torch.manual_seed(seed + i)
        scratch = Network(space, arch)
        torch.manual_seed(seed + i)
        warm = Network(space, arch)
        info = pool.initialize(warm, space, arch)
        acc0_warm = accuracy(warm, val, ACCURACY_BATCH)
        t0 = time.perf_counter()
        cs = train(scratch, train_data, iterations, seed=seed + i, val=val, checkpoints=checkpoints)
        t1 = time.perf_counter()
        cw = train(warm, train_data, iterations, seed=seed + i, val=val, checkpoints=checkpoints)
        t2 = time.perf_counter()
        pool.store(warm, space, arch, iterations)
        rows.append({"arch": space.to_compact(arch), "scratch": cs, "warm": cw, "warm_at_0": acc0_warm, **info,
                     "scratch_s": round(t1 - t0, 2), "warm_s": round(t2 - t1, 2)})
        print(f"{i}: {space.to_compact(arch)} scratch {cs} | warm {cw} (init {acc0_warm:.1f}%, hits {info['hits']}/{info['blocks']})", flush=True)
    later = rows[1:]  # the first arch meets an empty pool
    mean_s = {c: float(np.mean([r["scratch"][c] for r in later])) for c in checkpoints}
    mean_w = {c: float(np.mean([r["warm"][c] for r in later])) for c in checkpoints}
    target = mean_s[iterations]
    reach = next((c for c in checkpoints if mean_w[c] >= target), None)
    hits = sum(r["hits"] for r in later)
    blocks = sum(r["blocks"] for r in later)
    out = {"setting": {"space": "tiny", "data": "hwnas builtin (make_builtin)", "archs": n_archs, "iterations_K": iterations,
                       "checkpoints": checkpoints, "batch": 32, "optimizer": "SGD momentum 0.9, lr 0.05 cosine"},
           "mean_acc_scratch": mean_s, "mean_acc_warm": mean_w,
           "acc_ratio_at_K": mean_w[iterations] / mean_s[iterations],
           "mean_acc_warm_before_training": float(np.mean([r["warm_at_0"] for r in later])),
           "warm_iterations_to_match_scratch_K": reach,
           "training_cost_factor": (reach / iterations) if reach else None,
           "hit_rate": hits / blocks if blocks else 0.0, "hit_rate_including_first": pool.hit_rate,
           "exact_hit_share": sum(r["exact"] for r in later) / blocks if blocks else 0.0, "per_arch": rows}
    print_table(["iterations", "scratch acc %", "warm-start acc %"], [[c, mean_s[c], mean_w[c]] for c in checkpoints],
                title=f"knowledge pool on tiny (archs 2..{n_archs}), hit rate {out['hit_rate']:.3f}")
    print(f"accuracy ratio at K={iterations}: {out['acc_ratio_at_K']:.3f}; warm start matches scratch-K accuracy after {reach} iterations")
    return out


def merge_write(key: str, value: dict) -> None:
    path = RESULTS / "fnas_bench.json"
    old = json.loads(path.read_text()) if path.exists() else {}
    keep = {k: v for k, v in old.items() if k not in ("benchmark", "when", "machine", "search_cost_with_akp", "search_recheck_calibrated_table")}
    keep[key] = value
    if "search" in keep and "akp" in keep and keep["akp"].get("training_cost_factor") and {"ppo", "fnas"} <= set(keep["search"]["summary"]):
        f = keep["akp"]["training_cost_factor"]
        s = keep["search"]["summary"]
        keep["search_cost_with_akp"] = {
            "note": ("cost in scratch-evaluation units = mean evaluations to top 1% (and, *_to_best, to the best arch) "
                     "x training cost factor of a warm start (akp part)"),
            "ppo": s["ppo"]["mean_evals_to_top1pct"],
            "fnas_with_akp": s["fnas"]["mean_evals_to_top1pct"] * f,
            "speedup": s["ppo"]["mean_evals_to_top1pct"] / (s["fnas"]["mean_evals_to_top1pct"] * f)}
        if "evals_to_best" in s["ppo"] and "evals_to_best" in s["fnas"]:  # to the final result, as the paper's ~10x
            pb, fb = s["ppo"]["evals_to_best"]["mean"], s["fnas"]["evals_to_best"]["mean"]
            keep["search_cost_with_akp"].update({"ppo_to_best": pb, "fnas_with_akp_to_best": fb * f, "speedup_to_best": pb / (fb * f)})
    write_results("fnas_bench", keep)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=["search", "akp", "all"], default="all")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--only-seeds", type=str, default=None, help="comma list: run just these seeds (parallel workers); no summary")
    ap.add_argument("--cap", type=int, default=300, help="real evaluations per search run")
    ap.add_argument("--source-evals", type=int, default=300, help="evaluations of the earlier search the full-FNAS critic comes from")
    ap.add_argument("--akp-archs", type=int, default=8)
    ap.add_argument("--akp-iterations", type=int, default=120,
                    help="training iterations K per arch: long enough that nets trained from scratch are well above chance (about 40%% at 120 on the built-in data)")
    ap.add_argument("--table-rev", default=None, help="git revision of the latency table to use (reproduce runs made before a table update)")
    ap.add_argument("--key", default="search", help="results key of the search part (e.g. a re-check on another table)")
    ap.add_argument("--quick", action="store_true", help="3 seeds, cap 300, 4 archs x 20 iterations")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                    help="override a controller/critic/buffer setting for every variant alike (e.g. --set lr=3e-3 --set threshold=1.0)")
    ap.add_argument("--variants", default=",".join(VARIANTS), help="comma list of variants to run (plain PPO is the reference)")
    a = ap.parse_args()
    global TABLE_REV
    TABLE_REV = a.table_rev
    for item in a.set:
        name, _, value = item.partition("=")
        SETTINGS[name] = json.loads(value)
    variants = a.variants.split(",")
    if a.quick:
        a.seeds, a.cap, a.source_evals, a.akp_archs, a.akp_iterations = 3, 300, 150, 4, 20
    if a.part in ("search", "all"):
        if a.only_seeds:
            search_part([int(x) for x in a.only_seeds.split(",")], a.cap, a.source_evals, variants=variants)
        else:
            res = search_part(list(range(a.seeds)), a.cap, a.source_evals, variants=variants)
            if res is not None:
                merge_write(a.key, res)
    if a.part in ("akp", "all"):
        merge_write("akp", akp_part(a.akp_archs, a.akp_iterations))


if __name__ == "__main__":
    main()
