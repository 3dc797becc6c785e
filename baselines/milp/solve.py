"""The solvers: the hindsight oracle (every block of the MILP, ``workers`` at a time under one shared time
budget, the plan checked again with :mod:`envs.costs`) and the rolling-horizon baseline (slot by slot)."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping, Sequence
from functools import partial

import numpy as np
from numpy.typing import ArrayLike, NDArray

from baselines.milp.block import (
    BlockSolution,
    HighsValue,
    SolveOptions,
    ensure_single_thread_scheduler,
    merged_highs_options,
    solve_block,
)
from baselines.milp.model import Linking, Method
from baselines.milp.pairs import Pairs, admissible_pairs, independent_blocks
from baselines.milp.replicas import ReplicaSearch, decomposable
from baselines.milp.results import MilpResult, RollingResult
from baselines.milp.schedule import solve_blocks
from envs.costs import (
    CostBreakdown,
    capacity_limit_gpu_s,
    check_plan_feasible,
    cost_matrix,
    evaluate_plan,
    slot_usage_gpu_s,
    static_mask,
)
from envs.instance import Instance

# Share of the float slack on capacity a plan may use: the env's masks allow half (envs.costs.capacity_limit_gpu_s).
ENV_SLACK_SHARE = 0.5


# ---------------------------------------------------------------------------------------------- oracle
def solve_hindsight(
    instance: Instance,
    time_limit_s: float | None = None,
    mip_rel_gap: float = 1e-6,
    *,
    linking: Linking = "strong",
    workers: int | None = None,
    mip_start: bool = True,
    highs_options: Mapping[str, HighsValue] | None = None,
    verbose: bool = False,
    fixed: ArrayLike | None = None,
    method: Method = "decompose",
) -> MilpResult:
    """The hindsight optimum of ``instance``: every task known in advance, one exact MILP (see the package doc).

    Args:
        time_limit_s: wall-clock limit on the whole call, s (preparation included), shared by the blocks
            (see :class:`~baselines.milp.schedule.Budget`); None: until proven. HiGHS is interrupted
            in its MIP and simplex callbacks; a block not started in time keeps its greedy plan and the
            bound of each task's cheapest pair. Only array preparation (cost matrix, models: about a
            second at 100,000 tasks) runs uninterrupted.
        mip_rel_gap: relative gap at which a solve counts as optimal.
        linking: ``'strong'`` (x <= y per pair: tighter LP, the default, see the benchmark) or ``'weak'``
            (sum x <= n y per replica).
        workers: blocks solved side by side (default: min(2, CPUs)).
        mip_start: give HiGHS the greedy / LP-rounding plan as a start.
        highs_options: HiGHS options set on every block's MILP after ours (e.g. ``{"presolve": "on"}``;
            not on the replica search's LPs).
        verbose: HiGHS log on stdout.
        fixed: the actions of the first ``len(fixed)`` tasks, kept as given: the result is the optimum of
            the rest of the episode after those placements (DAgger's expert: the best continuation from a
            state a learner reached). Each must be admissible (budget, residency) and together they must
            fit the capacity; ``ValueError`` names the first that does not.
        method: ``'decompose'`` (blocks joined by replica variables are solved by branching on the replicas
            first, each leaf slot by slot: :mod:`~baselines.milp.replicas`) or ``'direct'`` (each block one
            HiGHS MILP, the method before; kept for comparison).

    Returns a :class:`MilpResult`; raises ``RuntimeError`` if HiGHS fails, or if the plan's cost or
    feasibility, checked again with :mod:`envs.costs`, disagrees with the solver.
    """
    if not (0.0 <= mip_rel_gap < 1.0):
        raise ValueError(f"mip_rel_gap = {mip_rel_gap!r}: expected a number in [0, 1)")
    if method not in ("decompose", "direct"):
        raise ValueError(f"method = {method!r}: expected 'decompose' or 'direct'")
    _check_time_limit(time_limit_s)
    workers = min(2, os.cpu_count() or 1) if workers is None else int(workers)
    t0 = time.perf_counter()
    pc = cost_matrix(instance)
    mask = static_mask(instance, pc)
    prefix = None
    if fixed is not None:
        mask, prefix = _fix_prefix(instance, mask, fixed)
    pairs = admissible_pairs(instance, pc, mask, np.arange(instance.num_tasks), fixed=prefix)
    blocks = independent_blocks(instance, pairs)
    prep_s = time.perf_counter() - t0
    opt = SolveOptions(mip_rel_gap, linking, mip_start, verbose, merged_highs_options(highs_options))
    deadline = math.inf if time_limit_s is None else t0 + time_limit_s
    parts = [pairs.take(b) for b in blocks]
    if method == "direct":
        sols = solve_blocks(instance, parts, deadline, workers, opt)
    else:
        sols = _solve_decomposed(instance, parts, deadline, workers, opt)
    chosen = np.zeros(pairs.task.size, dtype=bool)
    for b, s in zip(blocks, sols, strict=True):
        chosen[b[s.chosen]] = True
    plan = np.full(instance.num_tasks, instance.overflow_action, dtype=np.int64)
    plan[pairs.task[chosen]] = pairs.action[chosen]
    obj = _verify(instance, plan, pairs, chosen).total_usd
    return _hindsight_result(plan, obj, sols, mip_rel_gap, prep_s, t0)


def _solve_decomposed(
    inst: Instance, parts: Sequence[Pairs], deadline: float, workers: int, opt: SolveOptions
) -> list[BlockSolution]:
    """Every block, those joined by replica variables through a :class:`ReplicaSearch`: in rounds, the
    direct blocks and each search's next leaf (its slots) solved side by side, until the searches end."""
    ensure_single_thread_scheduler()  # the searches' LPs run one HiGHS thread each, before any block
    searches = {b: ReplicaSearch(inst, p, opt, deadline) for b, p in enumerate(parts) if decomposable(inst, p)}
    out: dict[int, BlockSolution] = {}
    direct = [b for b in range(len(parts)) if b not in searches]
    while True:
        leaves = [(s, leaf) for s in searches.values() if (leaf := s.next_leaf(deadline)) is not None]
        work = [parts[b] for b in direct] + [slot for _, leaf in leaves for slot in leaf.slots]
        if not work:
            break
        sols = solve_blocks(inst, work, deadline, workers, opt)
        out.update(zip(direct, sols[: len(direct)], strict=True))
        at = len(direct)
        for s, leaf in leaves:
            s.record_leaf(leaf, sols[at : at + len(leaf.slots)])
            at += len(leaf.slots)
        direct = []
    out.update({b: s.solution() for b, s in searches.items()})
    return [out[b] for b in range(len(parts))]


def _fix_prefix(
    inst: Instance, mask: NDArray[np.bool_], fixed: ArrayLike
) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    """``mask`` with the first tasks restricted to their fixed actions, and which tasks are fixed; checked."""
    arr = np.asarray(fixed)
    K, R = inst.num_tasks, inst.num_regions
    if arr.ndim != 1 or arr.size > K or (arr.size and arr.dtype.kind not in "iu"):
        raise ValueError(
            f"fixed: expected at most {K} integer actions (a prefix of the plan), got {arr.dtype} {arr.shape}"
        )
    m = arr.size
    bad = (arr < 0) | (arr > R)
    if bad.any():
        k = int(np.argmax(bad))
        raise ValueError(f"fixed[{k}] = {int(arr[k])}: expected an action in [0, {R}] ({R} is overflow)")
    ok = mask[np.arange(m), arr]
    if not ok.all():
        k = int(np.argmin(ok))
        raise ValueError(f"fixed[{k}] = {int(arr[k])}: not admissible for task {k} (budget or residency)")
    trial = np.concatenate([arr.astype(np.int64), np.full(K - m, R, dtype=np.int64)])
    violations = check_plan_feasible(inst, trial)
    if violations:
        raise ValueError(f"fixed: the prefix does not fit the capacity: {violations[0]}")
    out = mask.copy()
    out[:m] = False
    out[np.arange(m), arr] = True
    prefix = np.zeros(K, dtype=bool)
    prefix[:m] = True
    return out, prefix


def _hindsight_result(
    plan: NDArray[np.int64], obj: float, sols: Sequence[BlockSolution], mip_rel_gap: float, prep_s: float, t0: float
) -> MilpResult:
    """The result of the verified ``plan`` of cost ``obj``, USD, from its blocks' solutions."""
    stats = tuple(s.stats for s in sols)
    # Each block's bound is at most its incumbent (block_bound): the sum exceeds the re-priced plan by
    # float rounding at most
    bound = min(float(sum(s.dual_bound_usd for s in stats)), obj)
    gap = _rel_gap(obj, bound)
    return MilpResult(
        plan=plan,
        objective_usd=obj,
        dual_bound_usd=bound,
        mip_gap=gap,
        status=_status(gap <= mip_rel_gap, any(s.limited for s in sols)),
        mip_rel_gap=mip_rel_gap,
        build_s=prep_s + sum(s.build_s for s in stats),
        solve_s=sum(s.start_s + s.solve_s for s in stats),
        wall_s=time.perf_counter() - t0,
        num_vars=sum(s.num_vars for s in stats),
        num_rows=sum(s.num_rows for s in stats),
        nodes=sum(s.nodes for s in stats),
        start_usd=sum(s.start_usd for s in stats),
        blocks=stats,
    )


# ---------------------------------------------------------------------------------------------- rolling
def solve_rolling(
    instance: Instance,
    time_limit_s: float | None = None,
    mip_rel_gap: float = 1e-6,
    *,
    linking: Linking = "strong",
    verbose: bool = False,
) -> RollingResult:
    """An online baseline: slot by slot, the slot's arrivals placed by an exact MILP, no look-ahead.

    Each slot's MILP sees the slot's fresh capacity and the replicas already opened earlier in the same
    replica window (warm, so free); it knows nothing of later slots. ``time_limit_s`` is shared by the
    slots in proportion to their number of tasks (unused time passes on). Same cost model, same plan
    evaluation as :func:`solve_hindsight`.
    """
    _check_time_limit(time_limit_s)
    ensure_single_thread_scheduler()
    opt = SolveOptions(mip_rel_gap, linking, True, verbose)
    t0 = time.perf_counter()
    inst = instance
    pc = cost_matrix(inst)
    mask = static_mask(inst, pc)
    build_s = time.perf_counter() - t0
    plan = np.full(inst.num_tasks, inst.overflow_action, dtype=np.int64)
    warm = np.zeros((inst.num_windows, inst.num_regions, len(inst.model_names)), dtype=bool)
    groups = _slot_groups(inst)
    remaining = inst.num_tasks
    deadline = math.inf if time_limit_s is None else time.perf_counter() + time_limit_s
    worst, limited, solve_s = 0.0, False, 0.0
    for tasks in groups:
        t1 = time.perf_counter()
        pairs = admissible_pairs(inst, pc, mask, np.sort(tasks), warm)
        build_s += time.perf_counter() - t1
        slot_end = time.perf_counter() + (deadline - time.perf_counter()) * tasks.size / remaining
        remaining -= tasks.size
        sol = solve_block(inst, pairs, deadline, partial(_past, slot_end), opt)
        build_s += sol.stats.build_s
        solve_s += sol.stats.start_s + sol.stats.solve_s
        worst = max(worst, _rel_gap(sol.stats.objective_usd, sol.stats.dual_bound_usd))
        limited |= sol.limited
        _apply(plan, warm, pairs, sol.chosen)
    ev = evaluate_plan(inst, plan)
    _check_feasible(inst, plan, "rolling")
    return RollingResult(
        plan=plan,
        objective_usd=ev.total_usd,
        status=_status(worst <= mip_rel_gap, limited),
        max_slot_gap=worst,
        build_s=build_s,
        solve_s=solve_s,
        num_slots=len(groups),
    )


def _status(proven: bool, limited: bool) -> str:
    """'optimal' when proven within the gap; else 'time_limit' if a limit stopped a block, or 'unproven'."""
    return "optimal" if proven else "time_limit" if limited else "unproven"


def _slot_groups(inst: Instance) -> list[NDArray[np.int64]]:
    """The tasks of each slot with arrivals, slot by slot."""
    order = np.argsort(inst.slot_idx, kind="stable")
    cuts = np.flatnonzero(np.diff(inst.slot_idx[order])) + 1
    return [g for g in np.split(order, cuts) if g.size]


def _apply(plan: NDArray[np.int64], warm: NDArray[np.bool_], pairs: Pairs, chosen: NDArray[np.bool_]) -> None:
    """Write a slot's ``chosen`` pairs into ``plan``, and mark the replicas they open ``warm [W, R, M]``."""
    plan[pairs.task[chosen]] = pairs.action[chosen]
    opened = chosen & (pairs.replica >= 0)
    np.put(warm, pairs.replica_key[pairs.replica[opened]], True)  # key = (window * R + region) * M + model


# ---------------------------------------------------------------------------------------------- checks
def _check_time_limit(time_limit_s: float | None) -> None:
    if time_limit_s is not None and not time_limit_s > 0:
        raise ValueError(f"time_limit_s = {time_limit_s!r}: expected a positive number of seconds or None")


def _past(t: float) -> bool:
    return time.perf_counter() > t


def _rel_gap(obj: float, bound: float) -> float:
    """``(obj - bound) / |obj|``: 0 when the bound reaches the objective, inf without a finite bound."""
    if obj - bound <= 0.0:
        return 0.0
    if not math.isfinite(bound):
        return math.inf
    return (obj - bound) / abs(obj) if obj != 0.0 else math.inf


def _verify(inst: Instance, plan: NDArray[np.int64], pairs: Pairs, chosen: NDArray[np.bool_]) -> CostBreakdown:
    """Re-evaluate the plan with envs.costs: same cost as the MILP's columns, and feasible."""
    ev = evaluate_plan(inst, plan)
    milp = pairs.assignment_cost(chosen)
    if abs(ev.total_usd - milp) > 1e-9 * max(abs(milp), abs(ev.total_usd)):  # relative: objectives may be tiny
        raise RuntimeError(f"evaluate_plan gives {ev.total_usd!r} USD but the MILP columns give {milp!r} USD")
    _check_feasible(inst, plan, "MILP")
    return ev


def _check_feasible(inst: Instance, plan: NDArray[np.int64], what: str) -> None:
    """Feasible by check_plan_feasible, and within the env's tighter capacity slack (so it replays)."""
    bad = check_plan_feasible(inst, plan)
    if bad:
        raise RuntimeError(f"the {what} plan breaks {len(bad)} constraint(s), first: {bad[0]}")
    over = slot_usage_gpu_s(inst, plan) > capacity_limit_gpu_s(inst.capacity_gpu_s, ENV_SLACK_SHARE)
    if over.any():
        s, i = np.argwhere(over)[0]
        raise RuntimeError(
            f"the {what} plan fills slot {s}, region {inst.region_names[i]!r} beyond the "
            "env's capacity slack (solver tolerance)"
        )
