"""Benchmark of the MILP oracle (baselines.milp): against PuLP + CBC, against its previous method, and on the
benchmark suite's episodes.

Run: ``python -m experiments.bench.milp [--quick] [--skip-stress] [--previous-days]``. Prints, does not
assert. Parts:

1. 20,000 tasks of the default scenario at its own arrival rate (100 tasks/h, so a 200-hour episode):
   ``solve_hindsight`` and PuLP + CBC (one LpVariable per feasible pair, the same constraints and
   coefficients): objectives, build and solve times, their ratio (target <= 0.5).
2. 100,000 tasks of the default scenario at its own rate (1,000 hours), 120 s limit: time, gap, peak
   memory (target: proven optimal, gap <= 1e-6, within 120 s).
3. Overloaded days (``--skip-stress`` leaves them out): 20,000 tasks (120 s) and 100,000 tasks (300 s)
   crammed into the default 24-hour day, whose capacity (2 GPUs per region, 7,200 GPU-s per slot) is sized
   for its 2,400 tasks: about 1.4x and 7x the total capacity, so most regions are saturated and the MILP is
   a set of multiple knapsacks with near-ties. The method (``method='decompose'``: replica decisions first,
   then slot by slot) next to the previous one (``method='direct'``: one HiGHS MILP per replica window),
   each in a fresh process: gap, wall time against the limit (a hard limit: target within 10%), peak
   resident memory (target <= 2 GB at 100,000). Targets: gap <= 1e-4 at 20,000, <= 1e-3 at 100,000.
4. Realistic load: the same counts in one day with capacity scaled to the default day's utilisation
   (target: 20,000 proven in under 2 s), both methods.
5. The benchmark suite: every contended episode (validation and test) and every capacity-binding test
   episode of the tasks, 60 s each: how many are proven to 1e-6, the worst gap and the longest solve
   (target: all proven within 60 s). ``--previous-days`` runs the previous method on them too.
"""

from __future__ import annotations

import argparse
import multiprocessing
import re
import resource
import tempfile
import time
import tracemalloc
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pulp

from baselines.milp import MilpResult, solve_hindsight
from baselines.milp.model import Method
from envs import Instance, Scenario, cost_matrix, evaluate_plan, sample_instance, static_mask
from envs.costs import check_plan_feasible, replica_charge_usd, slot_usage_gpu_s
from envs.tasks import TASKS

METHODS: tuple[Method, ...] = ("direct", "decompose")  # the previous method first, then this one
DEFAULT_TASKS = 2400  # the default scenario's day: 100 tasks/h x 24 h


def pulp_model(inst: Instance) -> tuple[pulp.LpProblem, dict[tuple[int, int], pulp.LpVariable]]:
    """The MILP written the straightforward way: one variable per feasible pair, row by row."""
    pc = cost_matrix(inst)
    mask = static_mask(inst, pc)
    R = inst.num_regions
    prob = pulp.LpProblem("hindsight", pulp.LpMinimize)
    x = {(k, a): pulp.LpVariable(f"x_{k}_{a}", cat=pulp.LpBinary) for k, a in zip(*np.nonzero(mask), strict=True)}
    keys: dict[tuple[int, int, int], list[tuple[int, int]]] = {}
    for k, a in x:
        if a < R and not inst.permanent_replica[a, inst.model_idx[k]]:
            keys.setdefault((int(inst.window_idx[k]), int(a), int(inst.model_idx[k])), []).append((k, a))
    y = {key: pulp.LpVariable(f"y_{key[0]}_{key[1]}_{key[2]}", cat=pulp.LpBinary) for key in keys}
    rep_usd = replica_charge_usd(inst)
    prob += pulp.lpSum(float(pc.total_usd[k, a]) * v for (k, a), v in x.items()) + pulp.lpSum(
        float(rep_usd[key[2]]) * v for key, v in y.items()
    )
    by_task: dict[int, list[pulp.LpVariable]] = {}
    by_cap: dict[tuple[int, int], list[tuple[float, pulp.LpVariable]]] = {}
    for (k, a), v in x.items():
        by_task.setdefault(int(k), []).append(v)
        if a < R:
            by_cap.setdefault((int(inst.slot_idx[k]), int(a)), []).append((float(pc.gpu_s[k, a]), v))
    for vs in by_task.values():
        prob += pulp.lpSum(vs) == 1
    for (s, i), terms in by_cap.items():
        prob += pulp.lpSum(w * v for w, v in terms) <= float(inst.capacity_gpu_s[s, i])
    for key, pairs in keys.items():
        for p in pairs:
            prob += x[p] <= y[key]
    return prob, x


def solve_pulp(inst: Instance, time_limit_s: float, rel_gap: float) -> dict[str, float | str]:
    """Build and solve with CBC; the plan is re-priced with evaluate_plan, CBC's bound read from its log."""
    t0 = time.perf_counter()
    prob, x = pulp_model(inst)
    build_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as d:
        log = Path(d) / "cbc.log"
        solver = pulp.PULP_CBC_CMD(msg=False, timeLimit=time_limit_s, gapRel=rel_gap, logPath=str(log))
        t1 = time.perf_counter()
        prob.solve(solver)
        solve_s = time.perf_counter() - t1
        text = log.read_text() if log.exists() else ""
    plan = np.full(inst.num_tasks, inst.overflow_action, dtype=np.int64)
    for (k, a), v in x.items():
        if (v.varValue or 0.0) > 0.5:
            plan[k] = a
    feasible = not check_plan_feasible(inst, plan)
    # sol_status 1 optimal, 2 integer feasible; else PuLP holds no integer solution (LP values at best)
    has_sol = prob.sol_status in (1, 2) and feasible
    obj = evaluate_plan(inst, plan).total_usd if has_sol else float("nan")
    m = re.search(r"Lower bound:\s*([-0-9.eE+]+)", text)
    optimal = "Optimal solution found" in text
    bound = obj if optimal else (float(m.group(1)) if m else float("nan"))
    status = "optimal" if optimal else ("feasible" if has_sol else "no integer solution")
    return {
        "status": status,
        "objective_usd": obj,
        "bound_usd": bound,
        "build_s": build_s,
        "solve_s": solve_s,
        "feasible": "yes" if feasible else "NO",
        "num_vars": len(prob.variables()),
    }


def show_ours(r: MilpResult, blocks: bool = True) -> None:
    print(
        f"  ours : status {r.status:10s} objective {r.objective_usd:14.6f} USD  bound "
        f"{r.dual_bound_usd:14.6f}  gap {r.mip_gap:.2e}  wall {r.wall_s:7.2f} s (build {r.build_s:.2f} s, "
        f"HiGHS {r.solve_s:.2f} s summed over blocks)"
    )
    print(
        f"         {r.num_vars} vars, {r.num_rows} rows, {len(r.blocks)} blocks, {r.nodes} nodes, "
        f"greedy/LP-rounding start {r.start_usd:.6f} USD"
    )
    for b in r.blocks if blocks else ():
        print(
            f"         window {b.window_idx}: {b.num_tasks:6d} tasks {b.status:20s} "
            f"obj {b.objective_usd:12.6f} bound {b.dual_bound_usd:12.6f} start {b.start_usd:12.6f}  "
            f"build {b.build_s:5.2f} s  LP start {b.start_s:5.2f} s  MILP {b.solve_s:6.2f} s  "
            f"nodes {b.nodes} {b.note}"
        )


def show_pulp(p: dict[str, float | str]) -> None:
    obj, bound = float(p["objective_usd"]), float(p["bound_usd"])
    gap = (obj - bound) / obj if obj else 0.0
    print(
        f"  PuLP : status {p['status']!s} objective {obj:14.6f} USD  bound {bound:14.6f}  "
        f"gap {gap:.2e}  build {float(p['build_s']):6.2f} s  solve {float(p['solve_s']):7.2f} s (CBC)  "
        f"plan read back feasible: {p['feasible']}  {p['num_vars']} vars"
    )


def utilisation(inst: Instance) -> float:
    """Total GPU-seconds the tasks ask for at home over total capacity."""
    return float(inst.gpu_s.sum() / inst.capacity_gpu_s.sum())


def compare(inst: Instance, time_limit_s: float) -> None:
    """Ours and PuLP + CBC on ``inst`` with the same limit and gap; the objectives and the time ratio."""
    print(f"  demand / capacity = {utilisation(inst):.2f}")
    ours = solve_hindsight(inst, time_limit_s=time_limit_s)
    show_ours(ours, blocks=len(ours.blocks) <= 12)
    theirs = solve_pulp(inst, time_limit_s, ours.mip_rel_gap)
    show_pulp(theirs)
    t_pulp = float(theirs["build_s"]) + float(theirs["solve_s"])
    print(
        f"  objective ours - PuLP = {ours.objective_usd - float(theirs['objective_usd']):+.2e} USD; "
        f"total time ours / PuLP = {ours.wall_s:.2f} / {t_pulp:.2f} = {ours.wall_s / t_pulp:.3f}"
    )


def large(inst: Instance, time_limit_s: float) -> None:
    """Ours alone on a large instance: status, gap, time and peak memory."""
    print(f"  demand / capacity = {utilisation(inst):.2f}")
    tracemalloc.start()
    res = solve_hindsight(inst, time_limit_s=time_limit_s)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    show_ours(res, blocks=len(res.blocks) <= 12)
    print(
        f"  peak Python/numpy memory (tracemalloc) {peak / 2**20:.0f} MiB; process peak RSS so far "
        f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10:.0f} MiB"
    )


def isolated_solve(inst: Instance, time_limit_s: float, method: Method) -> dict[str, float | str]:
    """``solve_hindsight`` in a fresh process (so its peak resident memory is its own): the figures."""
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        return pool.submit(_solve_and_measure, inst, time_limit_s, method).result()


def _solve_and_measure(inst: Instance, time_limit_s: float, method: Method) -> dict[str, float | str]:
    res = solve_hindsight(inst, time_limit_s=time_limit_s, method=method)
    return {
        "status": res.status,
        "objective_usd": res.objective_usd,
        "bound_usd": res.dual_bound_usd,
        "gap": res.mip_gap,
        "wall_s": res.wall_s,
        "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10,
    }


def overloaded(inst: Instance, time_limit_s: float, target_gap: float) -> None:
    """The previous method and this one on an overloaded day, each in a fresh process, same limit."""
    print(f"  demand / capacity = {utilisation(inst):.2f}, limit {time_limit_s:.0f} s, target gap {target_gap:g}")
    labels = {"direct": "previous (one MILP per window)", "decompose": "now (replicas first)"}
    for method in METHODS:
        label = labels[method]
        r = isolated_solve(inst, time_limit_s, method)
        wall = float(r["wall_s"])
        print(
            f"  {label:31s}: {r['status']:10s} objective {float(r['objective_usd']):12.4f} USD  bound "
            f"{float(r['bound_usd']):12.4f}  gap {float(r['gap']):.2e}  wall {wall:6.1f} s "
            f"({wall / time_limit_s:.3f}x the limit)  peak RSS {float(r['rss_mib']):6.0f} MiB"
        )


def capacity_binds(inst: Instance, plan: np.ndarray) -> bool:
    """Whether the plan fills some (slot, region) to within 0.1% of its capacity."""
    used = slot_usage_gpu_s(inst, plan)
    return bool((used >= 0.999 * inst.capacity_gpu_s).any())


def suite_days(time_limit_s: float, previous: bool) -> None:
    """Every contended episode and every capacity-binding test episode of the suite, ``time_limit_s`` each."""
    methods: tuple[Method, ...] = ("decompose", "direct") if previous else ("decompose",)
    for method in methods:
        rows = []
        for task in TASKS.values():
            splits = ("validation", "test") if task.name == "contended" else ("test",)
            for split in splits:
                for e, inst in enumerate(task.instances(split)):
                    res = solve_hindsight(inst, time_limit_s=time_limit_s, method=method)
                    if task.name == "contended" or capacity_binds(inst, res.plan):
                        rows.append((task.name, split, e, res.status, res.mip_gap, res.wall_s))
        proven = sum(r[3] == "optimal" for r in rows)
        worst = max(rows, key=lambda r: r[4])
        slowest = max(rows, key=lambda r: r[5])
        by_task = ", ".join(f"{t} {sum(r[0] == t for r in rows)}" for t in dict.fromkeys(r[0] for r in rows))
        print(
            f"  {method:9s}: {proven} of {len(rows)} episodes proven to 1e-6 ({by_task}); worst gap "
            f"{worst[4]:.1e} ({worst[0]}/{worst[1]} #{worst[2]}); longest solve {slowest[5]:.1f} s "
            f"({slowest[0]}/{slowest[1]} #{slowest[2]}); total {sum(r[5] for r in rows):.0f} s"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="shorter time limits (smoke run)")
    ap.add_argument("--skip-stress", action="store_true", help="leave out part 3 (the overloaded days)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--previous-days", action="store_true", help="part 5 with the previous method too (slow)")
    args = ap.parse_args()
    limit_20k, limit_100k = (10.0, 20.0) if args.quick else (60.0, 120.0)
    limit_20k_day, limit_100k_day, limit_days = (20.0, 40.0, 10.0) if args.quick else (120.0, 300.0, 60.0)
    default = Scenario.default()
    rate = default.arrival.rate_per_h

    for n, part in ((20000, 1), (100000, 2)):
        horizon = n / rate
        print(f"\n== {part}. default scenario at its own rate, {n:,} tasks in {horizon:,.0f} h (seed {args.seed})")
        inst = sample_instance(default, seed=args.seed, num_tasks=n, horizon_h=horizon)
        if part == 1:
            compare(inst, limit_20k)
        else:
            large(inst, limit_100k)

    if not args.skip_stress:
        print(
            f"\n== 3. overloaded: the same counts in one {default.arrival.horizon_h:.0f}-hour day "
            f"(capacity sized for {DEFAULT_TASKS:,} tasks)"
        )
        for n, limit, target in ((20000, limit_20k_day, 1e-4), (100000, limit_100k_day, 1e-3)):
            print(f"-- {n:,} tasks")
            overloaded(sample_instance(default, seed=args.seed, num_tasks=n), limit, target)

    print("\n== 4. realistic load: one day, capacity scaled to the default day's utilisation")
    for n in (20000, 100000):
        scale = n / DEFAULT_TASKS
        inst_s = sample_instance(Scenario.from_overrides({"capacity": {"scale": scale}}), seed=args.seed, num_tasks=n)
        print(f"-- {n:,} tasks, capacity x{scale:.2f}")
        for method in METHODS:
            r = solve_hindsight(inst_s, time_limit_s=limit_100k, method=method)
            print(f"  {method:9s}: {r.status:10s} gap {r.mip_gap:.1e}  wall {r.wall_s:6.2f} s")

    print(f"\n== 5. the benchmark suite's episodes, {limit_days:.0f} s each")
    suite_days(limit_days, args.previous_days)


if __name__ == "__main__":
    main()
