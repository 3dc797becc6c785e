"""Learned agents on the benchmark suite: fixed test days, shipped certificates, several seeds, env-step budgets.

Run: ``python -m experiments.bench.agents --algo bc --tasks all --seeds 0 1 2 [--timesteps 50000]
[--hp KEY=VALUE] [--init-from ALGO] [--model best|final] [--workers N] [--generalise contended] --out
runs/bench_agents``.

For each task and seed it trains ``geoinfer train --algo ALGO --scenario TASK --seed S --timesteps N`` (a
budget in env steps; every hyperparameter is the default, the algorithm's and the task's, unless ``--hp``
says otherwise; the run folder's ``config.json`` and ``hyperparams.json`` record every setting), or reuses
the run when its folder already holds the model; ``--workers N`` trains N runs side by side. Each run's
scored model is, by default, the policy of its evaluations with the lowest mean cost on the task's validation
days (``best_model.zip``; ``--model final``: its last, ``model.zip``).
``--init-from bc`` starts each ``maskable_ppo`` run from the ``bc`` run of the same task and seed under
``--out`` (reinforcement fine-tuning of the clone). Then it scores every seed's model on the task's fixed
test episodes against the shipped certificates (:func:`benchmark.evaluate`), beside the online MPC, the
rolling MILP and heuristics, and prints:

* per task: the agent's relative regret, mean +- standard error over the test days (a day's regret: the
  mean over the seeds), and each seed's mean; the online MPC's and the rolling MILP's; whether the agent is at or below
  the online MPC (the target on every hard task) and, on contended, whether it is at most 2% and below the
  online MPC and the rolling MILP by more than two standard errors of the paired difference;
* the suite's interquartile mean of the normalised score with its 95% stratified-bootstrap interval
  (rliable, on the seed-averaged days; target 0.95), next to the online MPC's;
* training throughput: env steps/s and the share of the wall time in the env, the expert (the oracle's solves or
  the MPC's plans) and the network;
* with ``--generalise TASK``: TASK's models zero-shot on its held-out test days, on days with fewer and
  with more regions than in training (the task's test months; oracle, online MPC and heuristics on the same
  days). The different season is the ``shift`` task's own split (trained April to September, tested
  January to March).

Outputs under ``--out/ALGO``: the run folders (``TASK/seed<S>``), ``episodes.csv`` (every test episode of
every policy), ``summary.csv`` and ``summary.json``; ``generalise.csv`` with ``--generalise``. Not a test.

``--score EPISODES.csv [...]`` trains and plays nothing: it prints the same tables and targets (not the
throughput) from the ``episodes.csv`` of earlier runs, joined, e.g. the saved outputs in
``docs/results/agents/``.

Quick check that it runs: ``python -m experiments.bench.agents --algo bc --tasks contended --seeds 0
--timesteps 3000 --hp epochs=1 --baselines greedy --out /tmp/bench_agents``.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import benchmark
from agents.callbacks import latest_checkpoint
from agents.evaluate import Agent, play
from agents.rllib import RLLIB_ALGOS
from agents.train import ALGOS, TrainConfig, train
from baselines.heuristics import make_heuristic
from baselines.milp import cached_oracle
from baselines.mpc import OnlineMPC
from benchmark.parallel import pmap
from benchmark.scores import add_scores
from envs.costs import evaluate_plan
from envs.tasks import TASKS, select_tasks
from envs.workload import sample_instance
from experiments.agents_cli import hyperparam

CONTENDED_TARGET = 0.02  # relative regret on contended
# --model: which of a run's models is scored. "best": the policy of its evaluations with the lowest mean cost on
# the task's validation days (test days are never seen), "final": the last one.
MODEL_FILES = {"best": "best_model.zip", "final": "model.zip"}
IQM_TARGET = 0.95
# Region sets for --generalise: regions no service node calls home, dropped; regions of the packaged data
# with hourly prices and carbon that the default fleet lacks, added.
FEWER_DROP = ("Austria East", "Australia Southeast")
MORE_ADD = ("East US 2", "North Central US", "Germany North", "South India", "Japan West")


def se(x: np.ndarray) -> float:
    """Standard error of the mean (ddof 1); NaN for fewer than two values."""
    return float(x.std(ddof=1) / np.sqrt(x.size)) if x.size > 1 else float("nan")


def run_folder(out: Path, algo: str, task: str, seed: int) -> Path:
    return out / algo / task / f"seed{seed}"


def train_all(args: argparse.Namespace, tasks: list[str], out: Path) -> pd.DataFrame:
    """Train (or reuse) one run per (task, seed), ``args.workers`` runs side by side; one row each with its
    budget, time and shares (a run's throughput is its own, beside the others)."""
    jobs = [(args, task, seed, out) for task in tasks for seed in args.seeds]
    # an rllib_ppo run starts a Ray of its own on the machine's cores: one at a time
    workers = 1 if args.algo in RLLIB_ALGOS else args.workers
    return pd.DataFrame(list(pmap(train_one, jobs, workers=workers)))


def train_one(args: argparse.Namespace, task: str, seed: int, out: Path) -> dict[str, Any]:
    """One (task, seed) run of :func:`train_all`, trained or reused when its folder holds a finished one."""
    folder = run_folder(out, args.algo, task, seed)
    summary = folder / "run.json"
    if summary.is_file() and (folder / "model.zip").is_file():  # a finished run
        row: dict[str, Any] = json.loads(summary.read_text())
        if "oracle_share" in row:  # written before the expert could be the MPC
            row["expert_share"] = row.pop("oracle_share")
        print(f"[{task} seed {seed}] reusing {folder} ({row['steps']:,} steps)", flush=True)
        return row
    init = None
    if args.init_from is not None:
        init = str(run_folder(out, args.init_from, task, seed) / "model.zip")
    cfg = TrainConfig(
        algo=args.algo,
        scenario=task,
        timesteps=args.timesteps,
        seed=seed,
        out=str(folder),
        hyperparams=dict(args.hp or []),
        eval_episodes=args.eval_episodes,
        oracle_time_limit_s=args.oracle_time_limit,
        oracle_cache=str(out / "oracle_cache"),
        init_from=init,
        progress_bar=False,
    )
    print(f"[{task} seed {seed}] training {args.algo} for {args.timesteps:,} env steps ...", flush=True)
    res = train(cfg, resume=latest_checkpoint(folder / "checkpoints") is not None, log=print)
    row = {
        "task": task,
        "seed": seed,
        "steps": res.num_timesteps,
        "wall_s": res.wall_s,
        "steps_per_s": res.num_timesteps / res.wall_s if res.wall_s > 0 else float("nan"),
        "env_share": res.env_share,
        "expert_share": res.oracle_s / res.wall_s if res.wall_s > 0 else 0.0,
        "eval_share": sum(h["eval_s"] for h in res.eval_history) / res.wall_s,
        "oracle_solves": res.oracle_solves,
    }
    # imitation measures its updates; for RL the network is the rest of training (rollouts' forward
    # passes and updates)
    rest = res.wall_s - res.env_s - res.oracle_s - row["eval_share"] * res.wall_s
    row["network_share"] = (res.net_s if res.net_s > 0 else rest) / res.wall_s
    summary.write_text(json.dumps(row, indent=2))
    print(
        f"[{task} seed {seed}] {row['steps']:,} steps in {row['wall_s']:.0f} s, {row['oracle_solves']} oracle solves",
        flush=True,
    )
    return row


def evaluate_suite(args: argparse.Namespace, tasks: list[str], out: Path) -> pd.DataFrame:
    """Every seed's model and the baselines on every task's fixed test episodes, scored against the
    certificates; the agent's rows are named ``ALGO/seed<S>``."""
    model = MODEL_FILES[args.model]
    templates = {str(run_folder(out, args.algo, "{task}", s) / model): f"{args.algo}/seed{s}" for s in args.seeds}
    baselines = list(args.baselines)
    reused = pd.DataFrame()
    if args.baselines_from is not None:  # the baselines' rows of an earlier run of this script: not replayed
        earlier = pd.read_csv(args.baselines_from)
        reused = earlier[earlier["policy"].isin(baselines) & earlier["task"].isin(tasks)]
        baselines = [b for b in baselines if b not in set(reused["policy"])]
    df = benchmark.evaluate([*templates, *baselines], tasks, "test", progress=False, workers=args.workers)
    names = {str(Path(t).with_suffix("")): n for t, n in templates.items()}
    df["policy"] = df["policy"].map(lambda p: names.get(p, p))
    return pd.concat([df, reused], ignore_index=True)


def seed_mean(df: pd.DataFrame, algo: str) -> pd.DataFrame:
    """The agent as one policy ``algo``: each test day's cost averaged over the seeds, then scored (regret and
    score are linear in the cost). Days, not seed x day pairs, are the independent units: the baselines
    play each day once."""
    agent = df[df["policy"].str.startswith(f"{algo}/seed")]
    keep = ["task", "episode", "local_usd", "optimum_usd"]
    mean = agent.groupby(keep, as_index=False, sort=False)["cost_usd"].mean()
    mean["policy"] = algo
    return add_scores(mean)


def report(df: pd.DataFrame, runs: pd.DataFrame | None, args: argparse.Namespace, tasks: list[str]) -> dict[str, Any]:
    """Print the per-task table, the targets, the suite's IQM and (given the runs) the throughput; return the
    summary."""
    agent = seed_mean(df, args.algo)
    summary: dict[str, Any] = {"algo": args.algo, "timesteps": args.timesteps, "seeds": list(args.seeds)}
    summary["model"] = args.model
    lines = [
        "| task | agent regret % (mean of seeds) | per seed % | online MPC % | rolling MILP % | at or below MPC "
        "| minus online MPC, per day, % |"
    ]
    lines.append("|---|---|---|---|---|---|---|")
    per_task = {}
    for task in tasks:
        a = agent[agent["task"] == task]
        mpc = df[(df["task"] == task) & (df["policy"] == "online_mpc")]
        roll = df[(df["task"] == task) & (df["policy"] == "rolling_milp")]
        of_task = df[df["task"] == task]
        by_seed = [float(of_task[of_task["policy"] == f"{args.algo}/seed{s}"]["regret"].mean()) for s in args.seeds]
        r = a["regret"].to_numpy()
        row: dict[str, Any] = {"agent": float(r.mean()), "agent_se": se(r), "per_seed": by_seed}
        for name, part in (("online_mpc", mpc), ("rolling_milp", roll)):
            v = part["regret"].to_numpy()
            row[name], row[f"{name}_se"] = (float(v.mean()), se(v)) if v.size else (float("nan"), float("nan"))
        row["at_or_below_mpc"] = bool(row["agent"] <= row["online_mpc"]) if mpc.size else None
        d = minus_baseline(df, a, task, "online_mpc") if mpc.size else np.array([np.nan])
        row["minus_online_mpc"] = [float(d.mean()), se(d)]
        per_task[task] = row
        fmt = "{:.2f} +- {:.2f}"
        lines.append(
            f"| {task} | {fmt.format(100 * row['agent'], 100 * row['agent_se'])} | "
            + ", ".join(f"{100 * v:.2f}" for v in by_seed)
            + f" | {fmt.format(100 * row['online_mpc'], 100 * row['online_mpc_se'])}"
            + f" | {fmt.format(100 * row['rolling_milp'], 100 * row['rolling_milp_se'])}"
            + f" | {row['at_or_below_mpc']} | {100 * d.mean():+.2f} +- {100 * se(d):.2f} |"
        )
    print("\n".join(lines))
    summary["tasks"] = per_task
    if "contended" in tasks:
        summary["contended"] = contended_targets(df, agent, args.algo)
    if len(tasks) > 1:
        agg = benchmark.aggregate(agent, reps=2000)
        summary["iqm"] = [float(agg.loc[args.algo, k]) for k in ("iqm", "iqm_lo", "iqm_hi")]
        line = f"suite IQM of the normalised score: {args.algo} {summary['iqm'][0]:.3f} [{summary['iqm'][1]:.3f}, "
        verdict = "met" if summary["iqm"][0] >= IQM_TARGET else "NOT met"
        line += f"{summary['iqm'][2]:.3f}] (target >= {IQM_TARGET}: {verdict})"
        if (df["policy"] == "online_mpc").any():
            m = benchmark.aggregate(df[df["policy"] == "online_mpc"], reps=2000)
            summary["online_mpc_iqm"] = float(m.loc["online_mpc", "iqm"])
            line += f"; online_mpc {summary['online_mpc_iqm']:.3f}"
        print(line)
        below = [t for t, r in per_task.items() if r["at_or_below_mpc"] is False]
        print(f"tasks where the agent is above the online MPC's regret: {below or 'none'}")
    if runs is None:
        return summary
    shares = ["env_share", "expert_share", "network_share", "eval_share"]
    thr = runs.groupby("task")[["steps", "wall_s", "steps_per_s", *shares]].mean()
    thr["other_share"] = 1.0 - thr[shares].sum(axis=1)
    thr["oracle_solves"] = runs.groupby("task")["oracle_solves"].mean()
    print(
        "training (mean over seeds): env steps, wall s, env steps/s, shares of the wall time (env, expert: the "
        "oracle's solves or the MPC's plans, network, evaluations during training, other: set-up and data "
        "handling), oracle solves"
    )
    print(thr.to_string(float_format="{:,.2f}".format))
    summary["throughput"] = thr.reset_index().to_dict(orient="records")
    return summary


def minus_baseline(df: pd.DataFrame, agent: pd.DataFrame, task: str, base: str) -> np.ndarray:
    """The agent's relative regret minus ``base``'s on each test day of ``task`` (``agent``: the agent's rows
    of the task, a day's regret the mean of its seeds): the paired difference the targets compare."""
    b = df[(df["task"] == task) & (df["policy"] == base)].set_index("episode")["regret"]
    return (agent["regret"] - agent["episode"].map(b)).to_numpy()


def contended_targets(df: pd.DataFrame, agent: pd.DataFrame, algo: str) -> dict[str, Any]:
    """Contended: regret at most 2%, and below the online MPC and the rolling MILP by more than two standard
    errors of the paired difference over the test days (the agent's regret on a day: the mean of its seeds)."""
    a = agent[agent["task"] == "contended"]
    out: dict[str, Any] = {"regret": float(a["regret"].mean()), "regret_se": se(a["regret"].to_numpy())}
    out["regret_met"] = out["regret"] <= CONTENDED_TARGET
    print(
        f"contended: {algo} regret {out['regret']:.2%} +- {out['regret_se']:.2%} "
        f"(target <= {CONTENDED_TARGET:.0%}: {'met' if out['regret_met'] else 'NOT met'})"
    )
    for base in ("online_mpc", "rolling_milp"):
        if not ((df["task"] == "contended") & (df["policy"] == base)).any():
            continue
        d = minus_baseline(df, a, "contended", base)
        out[f"vs_{base}"] = [float(d.mean()), se(d)]
        ok = d.mean() < -2 * se(d)
        out[f"below_{base}"] = bool(ok)
        print(
            f"  minus {base}: {d.mean():+.2%} +- {se(d):.2%} per day (target: below -2 SE): "
            f"{'met' if ok else 'NOT met'}"
        )
    return out


def generalise(args: argparse.Namespace, task_name: str, out: Path, days: int) -> pd.DataFrame:
    """The task's models zero-shot on days with fewer and with more regions (its test months), beside the
    oracle, the online MPC and the heuristics of the same days; regret against the oracle."""
    task = TASKS[task_name]
    base = task.scenario("test")
    regions = list(base.spec["regions"])
    variants = {
        f"fewer regions ({len(regions) - len(FEWER_DROP)})": [r for r in regions if r not in FEWER_DROP],
        f"more regions ({len(regions) + len(MORE_ADD)})": regions + [r for r in MORE_ADD if r not in regions],
    }
    agents = {
        f"{args.algo}/seed{s}": Agent.load(run_folder(out, args.algo, task_name, s) / MODEL_FILES[args.model])
        for s in args.seeds
    }
    rows = []
    for variant, chosen in variants.items():
        scen = base.with_overrides({"regions": chosen})
        instances = [sample_instance(scen, seed=90_000 + d) for d in range(days)]
        oracle = [cached_oracle(i, out / "oracle_cache", args.oracle_time_limit) for i in instances]
        plans: dict[str, list[Any]] = {name: play(ag.act_batch, instances) for name, ag in agents.items()}
        mpc = OnlineMPC(scen)
        plans["online_mpc"] = [mpc.plan(i) for i in instances]
        for h in ("nearest", "local", "greedy"):
            plans[h] = [make_heuristic(h, i, seed=0).plan(i) for i in instances]
        for name, ps in plans.items():
            for e, (inst, plan, opt) in enumerate(zip(instances, ps, oracle, strict=True)):
                cost = evaluate_plan(inst, plan).total_usd
                rows.append(
                    {
                        "variant": variant,
                        "policy": name,
                        "episode": e,
                        "cost_usd": cost,
                        "optimum_usd": opt.objective_usd,
                        "optimum_gap": opt.mip_gap,
                        "regret": (cost - opt.objective_usd) / opt.objective_usd,
                    }
                )
        print(f"[generalise] {variant}: {days} days solved (worst oracle gap {max(o.mip_gap for o in oracle):.1e})")
    return pd.DataFrame(rows)


def print_generalisation(gen: pd.DataFrame, suite: pd.DataFrame, algo: str, task: str) -> None:
    test = suite[suite["task"] == task].copy()
    test["variant"] = "held-out test days"
    frame = pd.concat(
        [test[["variant", "policy", "episode", "regret"]], gen[["variant", "policy", "episode", "regret"]]]
    )
    frame["policy"] = frame["policy"].where(~frame["policy"].str.startswith(f"{algo}/seed"), algo)
    frame = frame.groupby(["variant", "policy", "episode"], as_index=False)["regret"].mean()  # a day: its seeds' mean
    table = frame.groupby(["variant", "policy"])["regret"].agg(["mean", lambda x: se(x.to_numpy()), "size"])
    table.columns = ["regret_mean", "regret_se", "episodes"]
    print(f"\ngeneralisation of the {task} models ({algo}, a day's regret the mean of its seeds), relative regret:")
    print((table[["regret_mean", "regret_se"]] * 100).round(2).astype(str).add(" %").to_string())


def saved_episodes(paths: list[str]) -> pd.DataFrame:
    """The test episodes of earlier runs of this script, joined; a (task, policy, episode) in two files is an
    error (each file's rows would count twice)."""
    df = pd.concat([pd.read_csv(p).assign(_file=p) for p in paths], ignore_index=True)
    twice = df[df.duplicated(["task", "policy", "episode"], keep=False)]
    if not twice.empty:
        row = twice.iloc[0]
        raise SystemExit(
            f"--score: task {row['task']!r}, policy {row['policy']!r}, episode {row['episode']} is in "
            f"{' and '.join(sorted(set(twice['_file'])))}; expected each test episode in one file"
        )
    return df.drop(columns="_file")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--algo", default="bc", choices=ALGOS)
    parser.add_argument("--tasks", default="all", help="'all' or comma-separated task names")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--timesteps", type=int, default=50_000, help="env steps per run (the budget)")
    parser.add_argument("--hp", type=hyperparam, action="append", metavar="KEY=VALUE")
    parser.add_argument(
        "--init-from", default=None, choices=ALGOS, help="start from that algorithm's runs (their final models)"
    )
    parser.add_argument(
        "--model",
        default="best",
        choices=tuple(MODEL_FILES),
        help="score each run's policy of lowest mean cost on its validation days (default) or its final model",
    )
    parser.add_argument("--eval-episodes", type=int, default=5, help="validation days evaluated in training")
    parser.add_argument("--oracle-time-limit", type=float, default=60.0)
    parser.add_argument(
        "--baselines", nargs="*", default=["online_mpc", "rolling_milp", "nearest", "greedy"], metavar="POLICY"
    )
    parser.add_argument(
        "--baselines-from", default=None, metavar="EPISODES.csv", help="reuse the baselines' rows of an earlier run"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="runs trained side by side, then (task, policy) pairs played side by side on the test split",
    )
    parser.add_argument("--generalise", default=None, metavar="TASK", help="zero-shot checks of TASK's models")
    parser.add_argument("--generalise-days", type=int, default=10)
    parser.add_argument("--out", default="runs/bench_agents")
    parser.add_argument(
        "--score",
        nargs="+",
        default=None,
        metavar="EPISODES.csv",
        help="train nothing: print the tables and targets of saved test episodes (episodes.csv files, joined)",
    )
    args = parser.parse_args(argv)
    tasks = [t.name for t in select_tasks(args.tasks)]
    if args.score is not None:
        df = saved_episodes(args.score)
        seeds = df["policy"].str.extract(rf"^{re.escape(args.algo)}/seed(\d+)$")[0].dropna().astype(int)
        if seeds.empty:
            found = ", ".join(sorted(df["policy"].unique()))
            files = ", ".join(args.score)
            raise SystemExit(f"--score: no rows of policy '{args.algo}/seed<S>' in {files}; found {found}")
        args.seeds = sorted(set(seeds))  # the seeds the files hold, whatever --seeds says
        report(df, None, args, [t for t in tasks if t in set(df["task"])])
        return
    out = Path(args.out)
    t0 = time.perf_counter()
    runs = train_all(args, tasks, out)
    print(f"trained in {(time.perf_counter() - t0) / 60:.1f} min; evaluating on the test split ...", flush=True)
    df = evaluate_suite(args, tasks, out)
    folder = out / args.algo
    df.to_csv(folder / "episodes.csv", index=False)
    summary = report(df, runs, args, tasks)
    if args.generalise is not None:
        gen = generalise(args, args.generalise, out, args.generalise_days)
        gen.to_csv(folder / "generalise.csv", index=False)
        print_generalisation(gen, df, args.algo, args.generalise)
    (folder / "summary.json").write_text(json.dumps(summary, indent=2, default=float))
    print(f"wrote {folder}/ in {(time.perf_counter() - t0) / 60:.1f} min")


if __name__ == "__main__":
    main()
