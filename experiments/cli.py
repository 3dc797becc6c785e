"""The ``geoinfer`` command line.

``geoinfer demo`` is the main job: a short tour of the default scenario (or ``--config FILE``) that
samples one episode, compares every heuristic policy and the exact oracle on it with regret, and
writes a small energy-latency frontier figure. ``geoinfer scenario`` prints a scenario; ``geoinfer sample`` saves an
episode for later replay. ``geoinfer train`` trains a learned agent (:mod:`agents.train`) and
``geoinfer evaluate`` benchmarks a saved one against every heuristic, the rolling MILP and the oracle.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

import envs
from envs import RESIDENCY_CLASSES, Scenario, check_plan_feasible, evaluate_plan, sample_instance, static_mask
from envs.instance import Instance


def scenario_table(s: Scenario) -> pd.DataFrame:
    """One row per compute region: where it is, its mean signals and capacity."""
    homes = {s.region_names[i] for i in s.node_home_idx}
    return pd.DataFrame(
        {
            "region": s.region_names,
            "country": s.region_country,
            "continent": s.region_continent,
            "price_usd_per_kwh": s.price_usd_per_kwh.mean(axis=0).round(4),
            "carbon_g_per_kwh": s.carbon_g_per_kwh.mean(axis=0).round(0),
            "pue": s.pue.mean(axis=0).round(3),
            "gpu_s_per_slot": s.capacity_gpu_s.mean(axis=0).round(0),
            "home_of_a_node": [r in homes for r in s.region_names],
        }
    )


def print_scenario(s: Scenario) -> None:
    print(
        f"scenario {s.name!r}: {s.num_regions} compute regions, {s.num_nodes} service nodes, "
        f"{s.num_hours} hourly slots from hour {s.first_hour} of 2023, residency mode {s.residency_mode!r}"
    )
    print(scenario_table(s).to_string(index=False))
    classes = ", ".join(
        f"{c.name} {c.share:.0%} ({s.models[c.model_idx].name}, slack {c.slack_ms[0]:g}-{c.slack_ms[1]:g} ms)"
        for c in s.classes
    )
    print(
        f"workload: {s.arrival.kind} arrivals, {s.arrival.rate_per_h:g} tasks/h of "
        f"{s.arrival.requests_per_task} requests; classes: {classes}"
    )
    for note in s.notes:
        print(f"data note: {note}")


def print_instance(inst: Instance) -> None:
    mask = static_mask(inst)
    R = inst.num_regions
    rows = []
    for c, name in enumerate(inst.class_names):
        sel = inst.class_idx == c
        rows.append(
            {
                "class": name,
                "tasks": int(sel.sum()),
                "gpu_s": round(float(inst.gpu_s[sel].sum())),
                "mean_budget_ms": round(float(inst.budget_ms[sel].mean()), 0) if sel.any() else 0.0,
                "feasible_regions": round(float(mask[sel, :R].sum(axis=1).mean()), 2) if sel.any() else 0.0,
                **{
                    f"{r}_share": round(float((inst.residency_idx[sel] == j).mean()), 2) if sel.any() else 0.0
                    for j, r in enumerate(RESIDENCY_CLASSES)
                },
            }
        )
    print(f"episode: {inst.num_tasks} tasks over {inst.num_slots} h from hour {inst.start_hour} of the year (UTC)")
    print(pd.DataFrame(rows).to_string(index=False))


def compare_policies(inst: Instance, seed: int) -> pd.DataFrame:
    """Every heuristic's plan and the oracle's on ``inst``, with regret against the oracle."""
    from baselines.heuristics import HEURISTICS, make_heuristic
    from baselines.milp import regret, regret_interval, solve_hindsight

    plans: dict[str, np.ndarray] = {name: make_heuristic(name, inst, seed=seed).plan(inst) for name in HEURISTICS}
    oracle = solve_hindsight(inst)
    plans["oracle"] = oracle.plan
    rows = []
    for name, plan in plans.items():
        bd = evaluate_plan(inst, plan)
        # regret refuses an unproven oracle; the interval's lower end is then reported, labelled by status
        r = regret(bd, oracle, inst) if oracle.proven_optimal else regret_interval(bd, oracle, inst)
        rows.append(
            {
                "policy": name,
                **{k: v for k, v in bd.summary().items() if k != "carbon_usd"},
                "violations": len(check_plan_feasible(inst, plan)),
                "regret_usd": r.regret_usd,
                "relative_regret": r.relative,
                "oracle_status": oracle.status,
            }
        )
    return pd.DataFrame(rows).sort_values("total_usd").reset_index(drop=True)


def cmd_demo(args: argparse.Namespace) -> int:
    s = Scenario.load(args.config)
    print_scenario(s)
    print()
    t = time.perf_counter()
    inst = sample_instance(s, seed=args.seed, num_tasks=args.tasks)
    print_instance(inst)
    print(f"(sampled in {time.perf_counter() - t:.2f} s)\n")
    table = compare_policies(inst, args.seed)
    with pd.option_context("display.float_format", "{:,.4g}".format, "display.width", 200):
        print(table.to_string(index=False))
    if args.out:
        from experiments import paper

        # A small energy-latency frontier of the same scenario: the oracle and every heuristic.
        cfg = dataclasses.replace(
            paper.load_config("frontier"),
            scenario=args.config or "default",
            num_tasks=args.frontier_tasks,
            seeds=1,
            levels=(0.0, 25.0, 100.0, 400.0, 2000.0),
        )
        print()
        df = paper.run_experiment(cfg, args.out, progress=False)
        print(f"frontier ({cfg.num_tasks} tasks, {df.attrs['elapsed_s']:.0f} s) -> {Path(args.out) / 'frontier.png'}")
        print(paper.format_table(df[df["policy"].isin(["oracle", "greedy", "local"])], "frontier"))
    return 0


def cmd_scenario(args: argparse.Namespace) -> int:
    print_scenario(Scenario.load(args.config))
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    inst = sample_instance(Scenario.load(args.config), seed=args.seed, num_tasks=args.tasks)
    inst.save(args.out)
    print(f"wrote {args.out}: {inst.num_tasks} tasks, seed {args.seed}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="geoinfer",
        description="Geo-distributed AI-inference placement: RL environment, baselines and exact oracle.",
    )
    parser.add_argument("--version", action="version", version=f"geoinfer {envs.__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--config", metavar="FILE", help="scenario TOML or a name: default or a task (geoinfer tasks)")
        p.add_argument("--seed", type=int, default=0, help="episode seed (default 0)")
        p.add_argument("--tasks", type=int, default=None, help="tasks in the episode (default: Poisson)")

    demo = sub.add_parser("demo", help="tour of a scenario: one episode, every policy compared, a frontier figure")
    common(demo)
    demo.add_argument(
        "--out",
        default="geoinfer-demo",
        metavar="DIR",
        help="folder for the frontier figure and table (default geoinfer-demo; '' to skip)",
    )
    demo.add_argument("--frontier-tasks", type=int, default=400, metavar="N", help="tasks of the frontier episode")
    demo.set_defaults(func=cmd_demo)
    scen = sub.add_parser("scenario", help="print a scenario's regions, signals and workload")
    scen.add_argument("--config", metavar="FILE", help="scenario TOML or a name: default or a task (geoinfer tasks)")
    scen.set_defaults(func=cmd_scenario)
    sample = sub.add_parser("sample", help="sample an episode and save it (.npz) for replay")
    common(sample)
    sample.add_argument("--out", required=True, metavar="FILE.npz")
    sample.set_defaults(func=cmd_sample)
    from experiments.agents_cli import add_subcommands as add_agent_subcommands
    from experiments.benchmark_cli import add_subcommands as add_benchmark_subcommands
    from experiments.paper import add_subcommands

    add_subcommands(sub)
    add_agent_subcommands(sub)
    add_benchmark_subcommands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from benchmark.parallel import MissingExtra

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (ValueError, FileNotFoundError, MissingExtra) as exc:  # bad configs, arguments, files, a missing extra:
        # one clear line, no traceback
        print(f"geoinfer: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
