"""Benchmark of the problem definition: sample a 100,000-task episode and evaluate a plan for it.

Run: ``python -m experiments.bench.problem [--tasks N] [--repeat R]``. Prints the best of R timings of
each phase and the peak memory traced while it ran (numpy allocations are traced). Targets on a
2-core machine: sampling <= 1 s, evaluate_plan <= 0.2 s.
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np

from envs import Scenario, check_plan_feasible, evaluate_plan, sample_instance


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    t0 = time.perf_counter()
    scenario = Scenario.default()
    print(
        f"Scenario.default(): {time.perf_counter() - t0:.2f} s ({scenario.num_regions} regions, "
        f"{scenario.num_nodes} service nodes, {scenario.num_hours} hourly slots)"
    )

    def timed(fn):  # best of --repeat runs, with the peak traced memory of the last
        best = np.inf
        for _ in range(args.repeat):
            tracemalloc.start()
            t = time.perf_counter()
            out = fn()
            best = min(best, time.perf_counter() - t)
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        return out, best, peak / 2**20

    for kind in ("diurnal", "poisson", "bursty", "trace"):
        s = scenario if kind == scenario.arrival.kind else scenario.with_overrides({"workload": {"arrival": kind}})
        inst, secs, peak = timed(lambda s=s: sample_instance(s, seed=0, num_tasks=args.tasks))
        print(f"sample_instance  {kind:<8} {inst.num_tasks:>7} tasks: {secs:6.3f} s  peak {peak:6.1f} MiB")

    inst = sample_instance(scenario, seed=0, num_tasks=args.tasks)
    plan = np.random.default_rng(0).integers(0, inst.num_actions, inst.num_tasks)
    bd, secs, peak = timed(lambda: evaluate_plan(inst, plan))
    print(
        f"evaluate_plan            {inst.num_tasks:>7} tasks: {secs:6.3f} s  peak {peak:6.1f} MiB "
        f"(total {bd.total_usd:.2f} USD)"
    )
    viol, secs, peak = timed(lambda: check_plan_feasible(inst, inst.home_idx))
    print(
        f"check_plan_feasible      {inst.num_tasks:>7} tasks: {secs:6.3f} s  peak {peak:6.1f} MiB "
        f"({len(viol)} violations of the all-local plan)"
    )


if __name__ == "__main__":
    main()
