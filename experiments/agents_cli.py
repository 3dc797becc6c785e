"""``geoinfer train`` and ``geoinfer evaluate``: the learned agents' subcommands (see :mod:`agents`)."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

ALGO_CHOICES = ["maskable_ppo", "ppo", "a2c", "dqn", "bc", "dagger", "rllib_ppo"]


def hyperparam(text: str) -> tuple[str, object]:
    """``KEY=VALUE`` with VALUE read as JSON when it parses (numbers, true/false, lists), else a string."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--hp {text!r}: expected KEY=VALUE")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def cmd_train(args: argparse.Namespace) -> int:
    from agents.train import TrainConfig, train

    cfg = TrainConfig(
        algo=args.algo,
        scenario=args.scenario,
        timesteps=args.timesteps,
        seed=args.seed,
        out=args.out,
        policy=args.policy,
        hidden=args.hidden,
        num_envs=args.num_envs,
        vec_backend=args.vec_backend,
        num_tasks=args.tasks,
        norm_obs=args.norm_obs,
        norm_reward=not args.no_norm_reward,
        hyperparams=dict(args.hp or []),
        eval_every=args.eval_every,
        eval_episodes=args.eval_episodes,
        eval_tasks=args.eval_tasks,
        oracle_time_limit_s=args.oracle_time_limit,
        oracle_cache=args.oracle_cache,
        expert_workers=args.expert_workers,
        init_from=args.init_from,
        checkpoint_every=args.checkpoint_every,
        max_minutes=args.max_minutes,
        progress_bar=not args.no_progress,
        torch_threads=args.threads,
        verbose=args.verbose,
    )
    res = train(cfg, resume=args.resume)
    where = f"{res.env_share:.0%} of the run's {res.wall_s:.0f} s inside the env"
    if res.net_s > 0:  # imitation: the expert's time and the network's updates are measured
        solves = f" ({res.oracle_solves:,} oracle solves)" if res.oracle_solves else ""
        where += (
            f", {res.oracle_s / res.wall_s:.0%} in the expert{solves}, "
            f"{res.net_s / res.wall_s:.0%} in the network's updates"
        )
    print(
        f"{cfg.algo} ({cfg.policy} policy) on {cfg.scenario!r}: {res.num_timesteps:,} steps, this session "
        f"{res.session_steps:,} steps in {res.session_s:.1f} s ({res.steps_per_s:,.0f} steps/s), {where}"
        + (" [stopped by --max-minutes: --resume continues]" if res.stopped_by_clock else "")
    )
    if res.eval_history:
        last = res.eval_history[-1]
        print(
            f"evaluation at {last['timesteps']:,.0f} steps: {last['total_usd']:.4f} USD per episode, relative "
            f"regret {last['relative_regret']:.2%}, vs greedy {last['vs_reference']:+.2%}"
        )
    print(f"model: {res.model_path}  (TensorBoard: tensorboard --logdir {res.out / 'tb'})")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from agents.evaluate import (
        Agent,
        evaluate_episodes,
        evaluation_instances,
        evaluation_seeds,
        format_table,
        summarise,
    )
    from envs.scenario import Scenario
    from envs.tasks import TASKS

    agent = Agent.load(args.model, algo=args.algo)
    scenario_name = args.scenario
    if scenario_name is None:  # the scenario the model was trained on, when its run folder says
        cfg = next(
            (
                d / "config.json"
                for d in (Path(args.model).parent, Path(args.model).parent.parent)
                if (d / "config.json").is_file()
            ),
            None,
        )
        scenario_name = json.loads(cfg.read_text())["scenario"] if cfg is not None else "default"
    if scenario_name in TASKS:  # a benchmark task: random days of its validation split, never its test days
        scenario = TASKS[scenario_name].scenario("validation")
        print(f"task {scenario_name!r}: evaluation days drawn from its validation split (geoinfer benchmark: test)")
    else:
        scenario = Scenario.load(scenario_name)
    instances = evaluation_instances(scenario, evaluation_seeds(args.seed, args.episodes), args.tasks)
    episodes = evaluate_episodes(
        instances,
        [agent],
        rolling=not args.no_rolling,
        oracle=not args.no_oracle,
        oracle_time_limit_s=args.oracle_time_limit,
        oracle_cache=args.oracle_cache,
        seed=args.seed,
        progress=None if args.quiet else print,
    )
    table = summarise(episodes)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False)
    if args.episodes_out:
        episodes.to_csv(args.episodes_out, index=False)
    print(f"{agent.name} on {scenario_name!r}, {len(instances)} episodes (mean +- standard error):")
    print(format_table(table))
    print(f"wrote {args.out}")
    return 0


def cmd_dataset(args: argparse.Namespace) -> int:
    import time

    from agents.datasets import oracle_dataset

    t = time.perf_counter()
    ds = oracle_dataset(
        args.task, args.out, split=args.split, episodes=args.episodes, seed=args.seed, time_limit_s=args.time_limit
    )
    print(
        f"{ds.spec.dataset_id}: {ds.total_episodes} episodes, {ds.total_steps} steps -> {args.out} "
        f"({time.perf_counter() - t:.1f} s); read it with MINARI_DATASETS_PATH={args.out} and "
        f"minari.load_dataset({ds.spec.dataset_id!r})"
    )
    print(ds.storage.metadata.get("description", ""))
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from agents.sweep import load_sweep, run_sweep
    from benchmark.parallel import require_ray

    cfg = load_sweep(args.config)  # a bad file fails before Ray starts
    require_ray("geoinfer sweep")
    t = time.perf_counter()
    table = run_sweep(cfg, args.out, address=args.address, resume=args.resume)
    import pandas as pd

    with pd.option_context("display.width", 200, "display.max_columns", 30, "display.float_format", "{:.4f}".format):
        print(table.drop(columns=["run"]).to_string(index=False))
    out = Path(args.out)
    print(
        f"sweep {cfg.name}: {len(table)} trials in {time.perf_counter() - t:.0f} s -> {out / 'results.csv'}, "
        f"{out / 'sweep.png'}"
    )
    return 0


def add_subcommands(sub: Any) -> None:
    """Register ``geoinfer train`` and ``geoinfer evaluate`` on an argparse subparsers object."""
    tr = sub.add_parser(
        "train",
        help="train a learned agent (stable-baselines3 / sb3-contrib)",
        description="Train a learned agent; the run folder holds config, checkpoints, "
        "TensorBoard logs, evaluation history and models.",
    )
    tr.add_argument(
        "--algo",
        default="maskable_ppo",
        choices=ALGO_CHOICES,
        help="an RL algorithm, or bc / dagger: imitation of the hindsight oracle (see agents.imitation)",
    )
    tr.add_argument("--scenario", default="default", metavar="default|TASK|PATH")
    tr.add_argument("--timesteps", type=int, default=100_000, metavar="N", help="total env steps of the run")
    tr.add_argument("--seed", type=int, default=0, metavar="S", help="one seed for the whole run (default 0)")
    tr.add_argument("--out", required=True, metavar="DIR", help="run folder")
    tr.add_argument("--resume", action="store_true", help="continue the run in --out from its latest checkpoint")
    tr.add_argument(
        "--policy",
        default="region",
        choices=["region", "mlp"],
        help="region: shared per-region scorer (default); mlp: SB3's default MLP",
    )
    tr.add_argument("--hidden", type=int, default=64, help="hidden width of the region policy")
    tr.add_argument("--num-envs", type=int, default=8, help="parallel training episodes (default 8)")
    tr.add_argument("--vec-backend", default="batch", choices=["batch", "dummy", "subproc"])
    tr.add_argument("--tasks", type=int, default=None, help="tasks per training episode (default: Poisson)")
    tr.add_argument(
        "--norm-obs",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="VecNormalize observations (default: on for mlp, off for region)",
    )
    tr.add_argument("--no-norm-reward", action="store_true", help="do not normalise rewards")
    tr.add_argument(
        "--hp",
        type=hyperparam,
        action="append",
        metavar="KEY=VALUE",
        help="algorithm hyperparameter, e.g. --hp learning_rate=1e-4 or learning_rate=lin_3e-4 "
        "(linear decay to 0 at --timesteps); repeatable. Overrides the algorithm's defaults and a task's own "
        "(agents.train.TASK_DEFAULTS); the run folder's hyperparams.json records them all",
    )
    tr.add_argument("--eval-every", type=int, default=50_000, metavar="N", help="env steps between evaluations")
    tr.add_argument("--eval-episodes", type=int, default=4, help="fixed evaluation episodes (default 4)")
    tr.add_argument("--eval-tasks", type=int, default=None, help="tasks per evaluation episode (default: Poisson)")
    tr.add_argument("--oracle-time-limit", type=float, default=120.0, metavar="S", help="per evaluation episode")
    tr.add_argument(
        "--oracle-cache",
        metavar="DIR",
        default=None,
        help="folder where oracle solutions are kept by episode content (reused by later runs)",
    )
    tr.add_argument(
        "--expert-workers",
        type=int,
        default=1,
        metavar="N",
        help="bc / dagger: processes that solve the expert's days and labels side by side (default 1; "
        "the run is the same whatever N)",
    )
    tr.add_argument(
        "--init-from",
        metavar="MODEL.zip",
        default=None,
        help="start a maskable_ppo run from this model's weights (fine-tuning a bc / dagger clone)",
    )
    tr.add_argument("--checkpoint-every", type=int, default=100_000, metavar="N", help="env steps between checkpoints")
    tr.add_argument("--max-minutes", type=float, default=None, help="stop this session after so many minutes")
    tr.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    tr.add_argument("--no-progress", action="store_true", help="no progress bar")
    tr.add_argument("--verbose", type=int, default=0)
    tr.set_defaults(func=cmd_train)

    ds = sub.add_parser(
        "dataset",
        help="the oracle's trajectories on a task's days as a Minari dataset (offline RL, imitation)",
    )
    ds.add_argument("--task", required=True, help="a benchmark task (geoinfer tasks)")
    ds.add_argument("--split", default="train", choices=("train", "validation", "test"))
    ds.add_argument("--episodes", type=int, default=10, metavar="N")
    ds.add_argument("--seed", type=int, default=0, help="reset seed of the first day (then +1 per day)")
    ds.add_argument("--time-limit", type=float, default=60.0, metavar="S", help="oracle time per day")
    ds.add_argument("--out", required=True, metavar="DIR", help="Minari's datasets folder (MINARI_DATASETS_PATH)")
    ds.set_defaults(func=cmd_dataset)

    sw = sub.add_parser(
        "sweep",
        help="a Ray Tune sweep of training runs (tasks x algos x seeds x a hyperparameter grid), early stopping",
        description="Run every trial of SWEEP.toml (see agents.sweep) on Ray Tune with ASHA early stopping on the "
        "validation regret; each trial is a run folder in DIR/trials. Needs the ray extra.",
    )
    sw.add_argument("--config", required=True, metavar="SWEEP.toml", help="the sweep (see agents/sweep.py)")
    sw.add_argument("--out", required=True, metavar="DIR", help="sweep folder (shared storage on a cluster)")
    sw.add_argument(
        "--address", default=None, metavar="auto|HOST:PORT", help="a Ray cluster (default: an embedded Ray here)"
    )
    sw.add_argument("--resume", action="store_true", help="continue the interrupted sweep in --out")
    sw.set_defaults(func=cmd_sweep)

    ev = sub.add_parser(
        "evaluate",
        help="benchmark a saved agent against the heuristics, rolling MILP and oracle",
        description="One row per policy: mean and standard error over episodes of total_usd, "
        "carbon_g, penalty_usd, rid and relative_regret against the hindsight oracle.",
    )
    ev.add_argument("--model", required=True, metavar="PATH", help="a model .zip saved by geoinfer train")
    ev.add_argument(
        "--algo",
        default=None,
        choices=ALGO_CHOICES,
        help="the model's algorithm (default: from the run's config.json or the zip)",
    )
    ev.add_argument(
        "--scenario",
        default=None,
        metavar="default|TASK|PATH",
        help="default: the scenario the model was trained on",
    )
    ev.add_argument("--episodes", type=int, default=10, metavar="N")
    ev.add_argument("--tasks", type=int, default=None, help="tasks per episode (default: Poisson)")
    ev.add_argument("--seed", type=int, default=12345, help="seed of the evaluation episodes")
    ev.add_argument("--out", required=True, metavar="FILE.csv", help="one row per policy")
    ev.add_argument("--episodes-out", default=None, metavar="FILE.csv", help="also one row per (episode, policy)")
    ev.add_argument("--oracle-time-limit", type=float, default=120.0, metavar="S", help="per episode")
    ev.add_argument(
        "--oracle-cache",
        metavar="DIR",
        default=None,
        help="folder where oracle solutions are kept by episode content (reused by later runs)",
    )
    ev.add_argument("--no-oracle", action="store_true")
    ev.add_argument("--no-rolling", action="store_true")
    ev.add_argument("--quiet", action="store_true")
    ev.set_defaults(func=cmd_evaluate)
