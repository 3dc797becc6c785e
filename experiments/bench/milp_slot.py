"""One hour of an overloaded day, alone: why the 20,000-task day is not proven (baselines.milp's levers).

Run: ``python -m experiments.bench.milp_slot [--time-limit 60] [--slot 2]``. Prints, does not assert. The slot
is hour ``--slot`` of the default day with 20,000 tasks (seed 0, 1.41x the capacity), every replica open (so
the hour is a block of its own, as a leaf of the replica search makes it). It prints:

1. the LP relaxation's bound and HiGHS on the slot's MILP for ``--time-limit`` s (plan, bound, gap);
2. the LP bound with a weighted-count knapsack cut per region (``sum_k units_k x_ki <= V_i``, ``V_i`` the most
   penalty units of admissible tasks that fit the region's capacity, exact by dynamic programming);
3. the objective lattice: overflow penalties are multiples of 0.5 USD, so the least total penalty of any plan
   (the count-only problem, solved by HiGHS) is a valid row ``penalty >= P*``; the LP bound with that row.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import highspy
import numpy as np

from baselines.milp.block import SolveOptions, ensure_single_thread_scheduler, solve_block
from baselines.milp.model import BlockModel, build_model
from baselines.milp.pairs import Pairs, admissible_pairs
from envs import Scenario, cost_matrix, sample_instance, static_mask
from envs.instance import Instance

PENALTY_UNIT_USD = 0.5  # the default scenario's overflow penalties are multiples of this


def slot_pairs(seed: int, slot: int) -> tuple[Instance, Pairs]:
    inst = sample_instance(Scenario.default(), seed=seed, num_tasks=20000)
    pc = cost_matrix(inst)
    p = admissible_pairs(inst, pc, static_mask(inst, pc), np.flatnonzero(inst.slot_idx == slot))
    return inst, dataclasses.replace(p, replica=np.full(p.task.size, -1))  # every replica open: one slot


def lp_bound(model: BlockModel, rows: list[tuple[np.ndarray, np.ndarray, float, float]]) -> float:
    """The LP relaxation with extra rows ``lo <= sum v x[idx] <= hi`` (in USD for the objective), USD."""
    h = model.highs(False)
    h.setOptionValue("threads", 1)
    for idx, val, lo, hi in rows:
        h.addRow(lo, hi, idx.size, idx.astype(np.int32), val)
    h.setOptionValue("solve_relaxation", True)
    h.run()
    return float(h.getInfo().objective_function_value) * model.cost_scale


def count_cuts(inst: Instance, p: Pairs, slot: int) -> list[tuple[np.ndarray, np.ndarray, float, float]]:
    """Per region whose admissible tasks overfill it: at most ``V_i`` penalty units served there."""
    rows = []
    for i in range(inst.num_regions):
        idx = np.flatnonzero(p.action == i)
        units = np.round(inst.overflow_usd[p.task[idx]] / PENALTY_UNIT_USD).astype(int)
        w, cap = p.gpu_s[idx], float(inst.capacity_gpu_s[slot, i])
        if w.sum() <= cap:
            continue
        least = np.full(units.sum() + 1, np.inf)  # least GPU-s that serves exactly u units
        least[0] = 0.0
        for u, g in zip(units, w, strict=True):
            least[u:] = np.minimum(least[u:], least[:-u] + g)
        rows.append((idx, units.astype(float), -highspy.kHighsInf, float(np.flatnonzero(least <= cap).max())))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--time-limit", type=float, default=60.0)
    ap.add_argument("--slot", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    ensure_single_thread_scheduler()
    inst, p = slot_pairs(args.seed, args.slot)
    model = build_model(inst, p, "strong")
    lp = lp_bound(model, [])
    print(f"slot {args.slot}: {model.num_tasks} tasks, {inst.num_regions} regions; LP bound {lp:.4f} USD")

    t = time.perf_counter()
    opt = SolveOptions(1e-6, "strong", True, False)
    sol = solve_block(inst, p, time.perf_counter() + args.time_limit, lambda: False, opt).stats
    gap = (sol.objective_usd - sol.dual_bound_usd) / sol.objective_usd
    print(
        f"1. HiGHS, {args.time_limit:.0f} s: plan {sol.objective_usd:.4f} USD, bound {sol.dual_bound_usd:.4f}, "
        f"gap {gap:.1e} ({time.perf_counter() - t:.0f} s, {sol.nodes} nodes)"
    )
    cuts = count_cuts(inst, p, args.slot)
    print(f"2. LP bound with {len(cuts)} weighted-count knapsack cuts: {lp_bound(model, cuts):.4f} USD")

    over = np.flatnonzero(p.action == inst.num_regions)
    h = model.highs(False)
    h.setOptionValue("threads", 1)
    h.setOptionValue("presolve", "off")
    h.setOptionValue("time_limit", args.time_limit)
    h.setOptionValue("mip_feasibility_tolerance", 1e-9)
    cost = np.zeros(model.num_col)
    cost[over] = p.cost_usd[over]
    h.changeColsCost(model.num_col, np.arange(model.num_col, dtype=np.int32), cost)
    t = time.perf_counter()
    h.run()
    info = h.getInfo()
    least = np.ceil(info.mip_dual_bound / PENALTY_UNIT_USD - 1e-9) * PENALTY_UNIT_USD  # on the lattice
    print(
        f"3. count-only problem: least total penalty >= {least:.1f} USD ({h.modelStatusToString(h.getModelStatus())}, "
        f"plan {info.objective_function_value:.1f}, {time.perf_counter() - t:.0f} s)"
    )
    row = (over, p.cost_usd[over] / model.cost_scale, (least - 1e-9) / model.cost_scale, highspy.kHighsInf)
    with_row = lp_bound(model, [row])
    print(
        f"   LP bound with penalty >= {least:.1f}: {with_row:.4f} USD "
        f"({(sol.objective_usd - with_row) / sol.objective_usd:.1e} below the plan of part 1)"
    )


if __name__ == "__main__":
    main()
