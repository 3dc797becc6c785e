"""Benchmark of the learned agents against the heuristics and the hindsight oracle.

Run: ``python -m experiments.bench.agents [--minutes 30] [--scenarios contended default] [--episodes 10]``.
For each scenario it trains MaskablePPO (region policy) for at most ``--minutes`` of wall time, then
evaluates its best checkpoint (chosen on the run's own ``--eval-episodes`` fixed evaluation episodes, 8 by
default: on 4 the choice overfitted them) on ``--episodes`` fresh
episodes against every heuristic, the rolling-horizon MILP and the oracle, and prints the table and the
targets:

* contended: the agent's mean cost is below the best heuristic's by more than two standard errors (of the
  per-episode paired difference), and its relative regret against the hindsight oracle is at most 5%;
* default: relative regret at most 3%.

It also reports the training time, the steps/s, the share of wall time spent inside the env, and, when a
target is missed, what the evaluation curve says limits the agent. ``--compare-mlp`` trains SB3's default
MLP policy with the same budget and adds it to the table; ``--backends`` first measures training steps/s of
the vector-env backends on tiny runs. Results go to ``--out`` (tables as CSV, a JSON summary). Not a test.

The README's figures add ``--max-steps 4000000 --hp learning_rate=lin_3e-4`` (the learning rate decays
linearly to 0 at 4 M steps): at the constant default rate the evaluation curve swings by several points of
regret between checkpoints, and the best one is a lucky draw.

Quick check that it runs: ``python -m experiments.bench.agents --minutes 0.2 --episodes 2 --tasks 300``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from agents.evaluate import (
    Agent,
    evaluate_episodes,
    evaluation_instances,
    evaluation_seeds,
    format_table,
    summarise,
)
from agents.train import TrainConfig, TrainResult, train
from envs.scenario import Scenario
from experiments.agents_cli import hyperparam

TARGET_REGRET = {"contended": 0.05, "default": 0.03}


def measure_backends(scenario: str, steps: int, num_envs: tuple[int, ...], out: Path) -> pd.DataFrame:
    """Training steps/s (MaskablePPO, region policy) per vector-env backend and number of envs, tiny runs."""
    rows = []
    for backend in ("batch", "dummy", "subproc"):
        for n in num_envs:
            folder = out / f"backend_{backend}_{n}"
            shutil.rmtree(folder, ignore_errors=True)
            cfg = TrainConfig(
                scenario=scenario,
                timesteps=steps,
                out=str(folder),
                num_envs=n,
                vec_backend=backend,
                eval_every=0,
                checkpoint_every=0,
                progress_bar=False,
            )
            res = train(cfg, log=lambda _msg: None)
            rows.append(
                {
                    "backend": backend,
                    "num_envs": n,
                    "steps": res.session_steps,
                    "steps_per_s": res.steps_per_s,
                    "env_share": res.env_share,
                }
            )
            shutil.rmtree(folder, ignore_errors=True)
    return pd.DataFrame(rows)


def curve_diagnosis(log_csv: Path) -> str:
    """What the evaluation curve of a run says: still improving at the end, or flat."""
    if not log_csv.is_file():
        return "no evaluation curve"
    log = pd.read_csv(log_csv)
    if len(log) < 6:
        return f"only {len(log)} evaluations: too short a run to tell"
    cost = log["total_usd"].to_numpy()
    third = max(1, len(cost) // 3)
    early, late = cost[-2 * third : -third].min(), cost[-third:].min()
    if late < 0.99 * early:
        return f"still improving in the last third of the run ({early:.4g} -> {late:.4g} USD): limited by training time"
    return (
        f"flat over the last third ({early:.4g} -> {late:.4g} USD): limited by the policy / observation or "
        "the hyperparameters, not by time"
    )


def judge(table: pd.DataFrame, episodes: pd.DataFrame, agent: str, scenario: str) -> dict[str, Any]:
    """The targets: regret bound, and (contended) paired cost difference to the best heuristic."""
    heur = table[table["kind"] == "heuristic"].sort_values("total_usd_mean")
    best = str(heur["policy"].iloc[0])
    a = episodes[episodes["policy"] == agent].set_index("episode")["total_usd"]
    b = episodes[episodes["policy"] == best].set_index("episode")["total_usd"]
    d = (a - b).to_numpy()
    se = float(d.std(ddof=1) / np.sqrt(d.size)) if d.size > 1 else float("nan")
    row = table[table["policy"] == agent].iloc[0]
    regret = float(row["relative_regret_mean"])
    out: dict[str, Any] = {
        "best_heuristic": best,
        "agent_usd": float(row["total_usd_mean"]),
        "best_heuristic_usd": float(b.mean()),
        "paired_diff_usd": float(d.mean()),
        "paired_diff_se": se,
        "relative_regret": regret,
        "regret_target": TARGET_REGRET.get(scenario, float("nan")),
    }
    out["regret_met"] = bool(np.isfinite(regret) and regret <= out["regret_target"])
    out["beats_best_heuristic"] = bool(np.isfinite(se) and d.mean() < -2 * se)
    return out


def bench_scenario(name: str, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    scenario = Scenario.load(name)
    runs: dict[str, TrainResult] = {}
    for policy in ("region", "mlp") if args.compare_mlp else ("region",):
        folder = out / f"{name}_{policy}"
        if folder.exists() and not args.resume:
            shutil.rmtree(folder)
        cfg = TrainConfig(
            algo="maskable_ppo",
            scenario=name,
            policy=policy,
            timesteps=args.max_steps,
            seed=args.seed,
            out=str(folder),
            num_envs=args.num_envs,
            num_tasks=args.tasks,
            eval_every=args.eval_every,
            eval_episodes=args.eval_episodes,
            eval_tasks=args.tasks,
            oracle_time_limit_s=args.oracle_time_limit,
            oracle_cache=args.oracle_cache,
            checkpoint_every=args.eval_every,
            max_minutes=args.minutes,
            progress_bar=not args.no_progress,
            hyperparams=dict(args.hp or []),
        )
        print(f"\n[{name}] training MaskablePPO ({policy} policy) for at most {args.minutes:g} min ...")
        runs[policy] = train(cfg, resume=args.resume and (folder / "config.json").is_file())
        r = runs[policy]
        print(
            f"[{name}] {policy}: {r.num_timesteps:,} steps in {r.wall_s / 60:.1f} min of wall time "
            f"({r.steps_per_s:,.0f} steps/s this session), {r.env_share:.0%} of it inside the env"
        )
    agents = []
    for policy, r in runs.items():
        best = r.out / "best_model.zip"
        agents.append(
            Agent.load(
                best if best.is_file() else r.model_path,
                name="maskable_ppo" if policy == "region" else "maskable_ppo_mlp",
            )
        )
    instances = evaluation_instances(scenario, evaluation_seeds(args.seed + 1, args.episodes), args.tasks)
    print(f"[{name}] evaluating on {len(instances)} fresh episodes ...")
    t = time.perf_counter()
    episodes = evaluate_episodes(
        instances,
        agents,
        oracle_time_limit_s=args.oracle_time_limit,
        progress=None if args.no_progress else print,
        oracle_cache=args.oracle_cache,
    )
    table = summarise(episodes)
    table.to_csv(out / f"{name}_table.csv", index=False)
    episodes.to_csv(out / f"{name}_episodes.csv", index=False)
    print(f"[{name}] evaluated in {time.perf_counter() - t:.0f} s (mean +- standard error over episodes):")
    print(format_table(table))
    verdict = judge(table, episodes, "maskable_ppo", name)
    r = runs["region"]
    verdict.update(
        training_minutes=r.wall_s / 60,
        steps=r.num_timesteps,
        steps_per_s=r.steps_per_s,
        env_share=r.env_share,
        curve=curve_diagnosis(r.out / "eval" / "log.csv"),
        oracle_optimal_share=float((episodes.loc[episodes["policy"] == "oracle", "oracle_status"] == "optimal").mean()),
    )
    for policy, rr in runs.items():
        verdict[f"{policy}_steps"] = rr.num_timesteps
    return verdict


def print_verdict(name: str, v: dict[str, Any]) -> None:
    ok = "met" if v["regret_met"] else "NOT met"
    print(
        f"\n[{name}] targets, MaskablePPO after {v['training_minutes']:.1f} min ({v['steps']:,} steps, "
        f"{v['env_share']:.0%} of wall time inside the env):"
    )
    print(
        f"  relative regret vs the hindsight oracle: {v['relative_regret']:.2%} (target <= "
        f"{v['regret_target']:.0%}): {ok}  [oracle proven optimal in {v['oracle_optimal_share']:.0%} of episodes]"
    )
    if name == "contended":
        ok2 = "met" if v["beats_best_heuristic"] else "NOT met"
        print(
            f"  vs the best heuristic ({v['best_heuristic']}): {v['paired_diff_usd']:+.4f} USD per episode "
            f"+- {v['paired_diff_se']:.4f} (target: below -2 SE): {ok2}"
        )
    if not (v["regret_met"] and (name != "contended" or v["beats_best_heuristic"])):
        print(f"  what limits it: {v['curve']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenarios", nargs="+", default=["contended", "default"])
    parser.add_argument("--minutes", type=float, default=30.0, help="training wall-time budget per scenario")
    parser.add_argument(
        "--max-steps",
        type=int,
        default=50_000_000,
        help="step cap, where a lin_ schedule reaches 0 (by default the time budget binds first)",
    )
    parser.add_argument("--episodes", type=int, default=10, help="fresh evaluation episodes per scenario")
    parser.add_argument("--tasks", type=int, default=None, help="tasks per episode (default: the scenario's)")
    parser.add_argument("--num-envs", type=int, default=8)
    parser.add_argument("--eval-every", type=int, default=100_000, help="env steps between evaluations in training")
    parser.add_argument(
        "--eval-episodes",
        type=int,
        default=8,
        help="fixed episodes of the training evaluation, on which the best checkpoint is chosen",
    )
    parser.add_argument("--oracle-time-limit", type=float, default=120.0, help="seconds per oracle solve")
    parser.add_argument(
        "--oracle-cache",
        default="runs/oracle_cache",
        help="folder where oracle solutions are kept by episode content, shared between runs",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--hp",
        type=hyperparam,
        action="append",
        metavar="KEY=VALUE",
        help="MaskablePPO hyperparameter, as for geoinfer train (e.g. --hp learning_rate=lin_3e-4)",
    )
    parser.add_argument("--compare-mlp", action="store_true", help="also train SB3's default MLP policy")
    parser.add_argument("--backends", action="store_true", help="first measure steps/s of the vec-env backends")
    parser.add_argument("--resume", action="store_true", help="continue the runs in --out instead of restarting")
    parser.add_argument("--out", default="runs/bench_agents")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.backends:
        table = measure_backends(args.scenarios[0], 4096, (8, 16), out)
        print("training steps/s by vector-env backend (MaskablePPO, region policy, 4,096 steps each):")
        print(table.to_string(index=False, float_format="{:,.2f}".format))
        table.to_csv(out / "backends.csv", index=False)
    verdicts = {}
    for name in args.scenarios:
        verdicts[name] = bench_scenario(name, args, out)
    for name, v in verdicts.items():
        print_verdict(name, v)
    (out / "summary.json").write_text(json.dumps(verdicts, indent=2, default=float))
    print(f"\nwrote {out}/")


if __name__ == "__main__":
    main()
