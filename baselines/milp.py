"""The exact hindsight oracle and a rolling-horizon baseline: the placement MILP, solved with HiGHS.

Model (the cost model of :mod:`envs.costs`, nothing else). For every *feasible* pair (task k, action a)
of :func:`envs.costs.static_mask` (the overflow action ``a = R`` always included):

* ``x[k, a]`` binary: task k takes action a; ``sum_a x[k, a] = 1``;
* capacity, per slot s and region i: ``sum_k gpu_s[k, i] x[k, i] <= capacity_gpu_s[s, i]``;
* ``y[w, i, m]`` binary for each (replica window, region, model) without a permanent replica: a
  region serves model m in window w only with the replica open (``x[k, i] <= y[w, i, m]``);
* minimise ``sum pair_costs(...).total_usd * x + sum eta * replica_usd_per_model[m] * y``.

Structure exploited (measured; see ``experiments/bench_milp.py``):

* Tasks interact only through capacity (per slot) and replicas (per window), and slots nest inside
  windows, so the MILP splits exactly into one block per window (per slot when no replica variable
  joins the slots): blocks are solved alone, two at a time (HiGHS releases the GIL, and one HiGHS
  thread per block is 2-5x faster than two), and their objectives and dual bounds add up.
* Strong linking ``x <= y`` per pair, not ``sum x <= n y``: with replica charges that matter its LP
  bound is the integer optimum where the aggregated one is 40% lower.
* Pairs that cost at least the overflow penalty are dropped (overflow does as well with no capacity
  and no replica) and capacity rows that no assignment could fill are left out: the optimum is kept.
* The MIP start is the cheapest of greedy plans, one of them ordered by the block's LP relaxation
  (LP rounding), so a time-limited solve always has an incumbent.

Honest status: ``status == 'optimal'`` only when the plan's cost, re-evaluated with
:func:`envs.costs.evaluate_plan`, is within ``mip_rel_gap`` of the dual bound; otherwise the incumbent
is returned with its true gap and :func:`regret` refuses it (:func:`regret_interval` gives the interval).
When capacity binds at many (slot, region) pairs, the blocks are multiple-knapsack problems whose
near-ties (tasks of almost equal value) make a 1e-6 proof slow: expect ``'time_limit'`` there.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import partial
from typing import Literal

import highspy
import numpy as np
from numpy.typing import ArrayLike, NDArray

from envs.costs import (
    CostBreakdown,
    PairCosts,
    capacity_limit_gpu_s,
    check_plan_feasible,
    cost_matrix,
    evaluate_plan,
    replica_usd_per_model,
    slot_usage_gpu_s,
    static_mask,
)
from envs.instance import Instance

Linking = Literal["strong", "weak"]

# A binary is read as 1 above this value.
ONE = 0.5
# HiGHS's tolerance on rows of a MIP solution (its default 1e-6 GPU-s could exceed the env's slack).
MIP_FEAS_TOL = 1e-9
# HiGHS options set on every block, after ours (callers may override them).
HIGHS_OPTIONS: dict[str, bool | int | float | str] = {}


class _Highs(highspy.Highs):
    """``highspy.Highs`` silent from the start: its constructor registers callbacks, which prints HiGHS's
    banner on the user's terminal unless ``output_flag`` is already off (``verbose`` turns it on again)."""

    def enableCallbacks(self) -> None:
        self.silent()
        super().enableCallbacks()


# ---------------------------------------------------------------------------------------------- results
@dataclass(frozen=True, slots=True)
class BlockStats:
    """One independently solved block (a replica window, or a slot) of the MILP."""

    window_idx: int
    slots: tuple[int, ...]
    num_tasks: int
    num_vars: int
    num_rows: int
    status: str  # HiGHS model status, e.g. "Optimal", "Time limit reached"
    objective_usd: float  # the block incumbent's objective as HiGHS reports it
    dual_bound_usd: float
    start_usd: float  # objective of the greedy MIP start
    build_s: float  # model arrays and the greedy plans, s
    start_s: float  # LP relaxation (its bound counts) and LP rounding for the MIP start, s
    solve_s: float  # the MILP solve, s
    nodes: int
    note: str = ""  # anything unusual about this solve


@dataclass(frozen=True, slots=True, eq=False)
class MilpResult:
    """An oracle solve: the plan, its cost, and how far from optimal it is proven to be.

    ``mip_gap = (objective_usd - dual_bound_usd) / |objective_usd|`` (0 when the bound reaches the
    objective) is the true relative gap of the returned plan; ``status == 'optimal'`` iff
    ``mip_gap <= mip_rel_gap``, else ``'time_limit'`` (a solver failure raises).
    """

    plan: NDArray[np.int64]  # [K] action per task (R = overflow)
    objective_usd: float  # evaluate_plan(instance, plan).total_usd
    dual_bound_usd: float  # proven lower bound on the optimum, USD
    mip_gap: float  # relative
    status: str  # 'optimal' | 'time_limit'
    mip_rel_gap: float  # the requested relative gap
    build_s: float  # cost matrix, pairs, blocks' model arrays and greedy plans (summed over blocks), s
    solve_s: float  # HiGHS (LP for the start, then MILP), summed over blocks run side by side, s
    wall_s: float  # the whole call, wall clock, s
    num_vars: int
    num_rows: int
    nodes: int  # branch-and-bound nodes, summed over blocks
    start_usd: float  # cost of the MIP start (greedy / LP rounding), summed over blocks
    blocks: tuple[BlockStats, ...]

    @property
    def proven_optimal(self) -> bool:
        return self.status == "optimal"


@dataclass(frozen=True, slots=True, eq=False)
class RollingResult:
    """The rolling-horizon baseline: slot by slot, each slot's arrivals placed optimally given the state.

    ``status == 'optimal'`` when every slot's MILP was solved within ``mip_rel_gap`` (the *policy* is
    then exactly the myopic one; its cost is not a bound on anything).
    """

    plan: NDArray[np.int64]  # [K]
    objective_usd: float  # evaluate_plan(instance, plan).total_usd
    status: str  # 'optimal' | 'time_limit'
    max_slot_gap: float  # worst relative gap among the slot solves
    build_s: float
    solve_s: float
    num_slots: int  # slots with arrivals


@dataclass(frozen=True, slots=True)
class Regret:
    """Cost of a plan above the oracle, USD. With an unproven oracle it is an interval.

    The optimum lies in ``[dual_bound_usd, oracle_usd]``, so the true regret lies in
    ``[regret_usd, regret_max_usd] = [cost - oracle, cost - dual_bound]``; when ``proven`` the two agree
    up to the requested gap.
    """

    cost_usd: float
    oracle_usd: float  # the oracle's incumbent
    dual_bound_usd: float
    regret_usd: float  # cost - oracle incumbent (a lower end when not proven)
    regret_max_usd: float  # cost - dual bound (the upper end)
    relative: float  # regret_usd / oracle_usd
    proven: bool

    def __str__(self) -> str:
        if self.proven:
            return f"regret {self.regret_usd:.6g} USD ({100 * self.relative:.4g}% of the optimum)"
        return (
            f"regret in [{self.regret_usd:.6g}, {self.regret_max_usd:.6g}] USD (interval: the oracle "
            f"is not proven optimal)"
        )


# ---------------------------------------------------------------------------------------------- data
@dataclass(frozen=True, slots=True)
class _Pairs:
    """The MILP's columns: admissible (task, action) pairs, and the replica charges they can trigger."""

    task: NDArray[np.int64]  # [P] task index
    action: NDArray[np.int64]  # [P] action, R = overflow
    cost_usd: NDArray[np.float64]  # [P] pair_costs(...).total_usd
    gpu_s: NDArray[np.float64]  # [P] GPU-seconds in the arrival slot (0 for overflow)
    knap: NDArray[np.int64]  # [P] slot * R + region, -1 for overflow
    rep: NDArray[np.int64]  # [P] index into rep_key, -1 when no replica charge can arise
    rep_key: NDArray[np.int64]  # [Y] (window * R + region) * M + model
    rep_cost_usd: NDArray[np.float64]  # [Y] eta * replica_usd_per_model[model], USD


def _pairs(
    inst: Instance,
    pc: PairCosts,
    mask: NDArray[np.bool_],
    tasks: NDArray[np.int64],
    warm: NDArray[np.bool_] | None = None,
) -> _Pairs:
    """Columns for ``tasks``. ``warm [W, R, M]``: replicas already open (free), as for rolling solves."""
    R, M = inst.num_regions, len(inst.model_names)
    sub = mask[tasks]
    kk, aa = np.nonzero(sub)
    k = tasks[kk]
    cost = pc.total_usd[k, aa]
    # A served pair costing at least the overflow penalty is never needed: overflow does as well and
    # frees capacity and replicas, so dropping it keeps the optimum.
    keep = (aa == R) | (cost < pc.total_usd[k, R])
    k, aa, cost = k[keep], aa[keep], cost[keep]
    served = aa < R
    region = np.where(served, aa, 0)
    model = inst.model_idx[k]
    window = inst.window_idx[k]
    free = inst.permanent_replica[region, model]
    if warm is not None:
        free = free | warm[window, region, model]
    need = served & ~free
    key = np.where(need, (window * R + region) * M + model, -1)
    rep_key, inv = np.unique(key[need], return_inverse=True)
    rep = np.full(k.size, -1, dtype=np.int64)
    rep[need] = inv
    return _Pairs(
        task=k,
        action=aa,
        cost_usd=cost,
        gpu_s=pc.gpu_s[k, aa],
        knap=np.where(served, inst.slot_idx[k] * R + region, -1),
        rep=rep,
        rep_key=rep_key,
        rep_cost_usd=inst.cost.eta * replica_usd_per_model(inst)[rep_key % M],
    )


def _blocks(inst: Instance, pairs: _Pairs) -> list[NDArray[np.int64]]:
    """Independent blocks as arrays of pair indices: slots joined when they share a replica variable.

    Exact because capacity rows live in one slot and replica rows in one window, and every task in one
    slot; blocks never share a variable or a row.
    """
    slot = inst.slot_idx[pairs.task]
    parent = np.arange(inst.num_slots)

    def find(s: int) -> int:
        while parent[s] != s:
            parent[s] = parent[parent[s]]
            s = int(parent[s])
        return s

    has = pairs.rep >= 0
    for r in np.unique(pairs.rep[has]):  # few replica variables: a loop over them is cheap
        ss = np.unique(slot[has & (pairs.rep == r)])
        root = find(int(ss[0]))
        for s in ss[1:]:
            parent[find(int(s))] = root
    roots = np.array([find(s) for s in range(inst.num_slots)])
    block_of = roots[slot]
    order = np.argsort(block_of, kind="stable")
    cuts = np.flatnonzero(np.diff(block_of[order])) + 1
    return [b for b in np.split(order, cuts) if b.size]


# ---------------------------------------------------------------------------------------------- greedy start
def _take(pairs: _Pairs, idx: NDArray[np.int64]) -> _Pairs:
    """The pairs ``idx`` (replica indices unchanged)."""
    return _Pairs(
        task=pairs.task[idx],
        action=pairs.action[idx],
        cost_usd=pairs.cost_usd[idx],
        gpu_s=pairs.gpu_s[idx],
        knap=pairs.knap[idx],
        rep=pairs.rep[idx],
        rep_key=pairs.rep_key,
        rep_cost_usd=pairs.rep_cost_usd,
    )


def _savings(inst: Instance, pairs: _Pairs) -> NDArray[np.float64]:
    """``[P]`` saving of each pair over its task's overflow action, USD (> 0 for kept served pairs)."""
    over = pairs.action == inst.num_regions
    overflow_pair = np.zeros(inst.num_tasks, dtype=np.int64)
    overflow_pair[pairs.task[over]] = np.flatnonzero(over)
    return pairs.cost_usd[overflow_pair[pairs.task]] - pairs.cost_usd


def _greedy(
    inst: Instance,
    pairs: _Pairs,
    allowed: NDArray[np.bool_],
    pref: Sequence[NDArray[np.float64]],
    priority: Sequence[NDArray[np.float64]],
) -> NDArray[np.bool_]:
    """A feasible assignment ``[P]`` (bool, one pair per task), built greedily.

    Every task proposes its most preferred remaining pair among ``allowed`` served pairs (keys ``pref``,
    most significant first, larger first); each (slot, region) accepts proposals in ``priority`` order
    while capacity lasts; rejected tasks move on to their next pair. Then leftover tasks fill leftover
    capacity, and replicas whose tasks save less than their charge are closed again (those tasks
    overflow). Vectorised per round (at most R rounds).
    """
    R = inst.num_regions
    over = pairs.action == R
    saving = _savings(inst, pairs)
    ci = np.flatnonzero(allowed & ~over)
    ci = ci[np.lexsort((*[-k[ci] for k in reversed(pref)], pairs.task[ci]))]
    ctask = pairs.task[ci]
    first = np.flatnonzero(np.r_[True, ctask[1:] != ctask[:-1]]) if ci.size else np.zeros(0, dtype=np.int64)
    count = np.diff(np.r_[first, ci.size])
    ptr = np.zeros(first.size, dtype=np.int64)
    resid = inst.capacity_gpu_s.ravel().astype(np.float64).copy()
    chosen = np.zeros(pairs.task.size, dtype=bool)
    active = np.arange(first.size)
    while active.size:
        p = ci[first[active] + ptr[active]]
        knap = pairs.knap[p]
        o = np.lexsort((*[-k[p] for k in reversed(priority)], knap))
        p, knap, act = p[o], knap[o], active[o]
        cum = np.cumsum(pairs.gpu_s[p])
        start = np.flatnonzero(np.r_[True, knap[1:] != knap[:-1]])
        base = np.repeat(cum[start] - pairs.gpu_s[p[start]], np.diff(np.r_[start, p.size]))
        # the running sum within a queue only grows, so this accepts a prefix of each queue
        ok = cum - base <= resid[knap] * (1 - 1e-12)
        chosen[p[ok]] = True
        np.subtract.at(resid, knap[ok], pairs.gpu_s[p[ok]])
        rej = act[~ok]
        ptr[rej] += 1
        active = rej[ptr[rej] < count[rej]]
    # fill: leftover tasks into leftover capacity, by priority (few fit, so a short loop)
    done = np.zeros(inst.num_tasks, dtype=bool)
    done[pairs.task[chosen]] = True
    left = ci[~done[pairs.task[ci]]]
    left = left[pairs.gpu_s[left] <= resid[pairs.knap[left]]]
    for p in left[np.lexsort([-k[left] for k in reversed(priority)])]:
        kn = pairs.knap[p]
        if not done[pairs.task[p]] and pairs.gpu_s[p] <= resid[kn] * (1 - 1e-12):
            chosen[p] = True
            done[pairs.task[p]] = True
            resid[kn] -= pairs.gpu_s[p]
    # close replicas that do not pay for themselves
    used = chosen & (pairs.rep >= 0)
    if used.any():
        gain = np.bincount(pairs.rep[used], weights=saving[used], minlength=pairs.rep_key.size)
        bad = gain < pairs.rep_cost_usd
        drop = used & bad[np.maximum(pairs.rep, 0)]
        chosen[drop] = False
        done[pairs.task[drop]] = False
    chosen[over & ~done[pairs.task]] = True
    return chosen


def _assignment_cost(pairs: _Pairs, chosen: NDArray[np.bool_]) -> float:
    used = np.zeros(pairs.rep_key.size, dtype=bool)
    used[pairs.rep[chosen & (pairs.rep >= 0)]] = True
    return float(pairs.cost_usd[chosen].sum() + pairs.rep_cost_usd[used].sum())


def _greedy_start(inst: Instance, pairs: _Pairs, lp_x: NDArray[np.float64] | None = None) -> NDArray[np.bool_]:
    """The cheapest of a few greedy plans: by savings per GPU-second (with every replica, and with
    none), and, given the LP relaxation's ``lp_x [P]``, by LP value first (LP rounding)."""
    saving = _savings(inst, pairs)
    density = saving / np.maximum(pairs.gpu_s, 1e-12)
    served = pairs.action < inst.num_regions
    plans = [
        _greedy(inst, pairs, served, [saving], [density]),
        _greedy(inst, pairs, served & (pairs.rep < 0), [saving], [density]),
    ]
    if lp_x is not None:
        x = np.round(lp_x, 6)  # LP values within solver tolerance count as equal
        plans.append(_greedy(inst, pairs, served, [x, saving], [x, density]))
    return min(plans, key=lambda c: _assignment_cost(pairs, c))


# ---------------------------------------------------------------------------------------------- one block
@dataclass(frozen=True, slots=True)
class _Options:
    mip_rel_gap: float
    linking: Linking
    mip_start: bool
    verbose: bool
    highs: tuple[tuple[str, bool | int | float | str], ...] = ()  # extra HiGHS options, set last


@dataclass(frozen=True, slots=True)
class _BlockSolution:
    chosen: NDArray[np.bool_]  # [P_b] chosen pairs of the block
    stats: BlockStats
    limited: bool  # stopped on a limit (not proven within the gap)


@dataclass(frozen=True, slots=True)
class _Model:
    """One block's MILP as HiGHS arrays (columns: x for the block's pairs, then y for its replicas)."""

    num_col: int
    num_row: int
    col_cost: NDArray[np.float64]
    row_lo: NDArray[np.float64]
    row_hi: NDArray[np.float64]
    a_start: NDArray[np.int32]
    a_index: NDArray[np.int32]
    a_value: NDArray[np.float64]
    task_row: NDArray[np.int64]  # [P_b] assignment row (local task) of each x column
    rep_of: NDArray[np.int64]  # [P_b] local y index needed by each x column, -1 if none
    num_tasks: int
    num_x: int
    # USD per unit of the objective HiGHS sees: the mean over tasks of each task's cheapest action, so
    # HiGHS's absolute tolerances (dual feasibility 1e-7 on reduced costs) stay small against the
    # objective whatever its scale (a carbon-only day may cost 0.04 USD in all).
    cost_scale: float

    def highs(self, verbose: bool) -> highspy.Highs:
        h = _Highs()
        h.setOptionValue("output_flag", verbose)
        h.passModel(
            self.num_col,
            self.num_row,
            int(self.a_index.size),
            1,
            1,
            0.0,
            self.col_cost / self.cost_scale,
            np.zeros(self.num_col),
            np.ones(self.num_col),
            self.row_lo,
            self.row_hi,
            self.a_start,
            self.a_index,
            self.a_value,
            np.ones(self.num_col, dtype=np.int32),
        )
        return h

    def lagrangian_bound(self, row_dual: NDArray[np.float64]) -> float:
        """A lower bound on the block's optimum, USD, valid for *any* row multipliers (weak duality).

        With ``x in [0, 1]`` and rows ``lo <= A x <= hi``: ``c x >= sum_r y_r (lo_r or hi_r) +
        sum_j min(0, c_j - (A^T y)_j)``, choosing ``lo_r`` where ``y_r > 0`` and ``hi_r`` where ``y_r < 0``
        (multipliers of one-sided rows are first clipped to their valid sign). Fed the LP's duals it equals
        the LP bound up to their inexactness, and never exceeds the optimum, whatever HiGHS's tolerances.
        """
        y = np.asarray(row_dual, dtype=np.float64)
        y = np.where(np.isinf(self.row_lo), np.minimum(y, 0.0), y)
        y = np.where(np.isinf(self.row_hi), np.maximum(y, 0.0), y)
        rows_part = np.where(
            y > 0,
            y * np.where(np.isinf(self.row_lo), 0.0, self.row_lo),
            y * np.where(np.isinf(self.row_hi), 0.0, self.row_hi),
        )
        col_of = np.repeat(np.arange(self.num_col), np.diff(self.a_start))
        aty = np.bincount(col_of, weights=self.a_value * y[self.a_index], minlength=self.num_col)
        reduced = self.col_cost / self.cost_scale - aty
        return float(rows_part.sum() + np.minimum(reduced, 0.0).sum()) * self.cost_scale

    def columns(self, chosen: NDArray[np.bool_]) -> NDArray[np.float64]:
        """Column values of an assignment of the block's pairs (y = 1 where a chosen pair needs it)."""
        y = np.zeros(self.num_col - self.num_x)
        y[self.rep_of[chosen & (self.rep_of >= 0)]] = 1.0
        return np.concatenate([chosen.astype(np.float64), y])


def _build(inst: Instance, pairs: _Pairs, linking: Linking) -> _Model:
    """The MILP of a block whose pairs are ``pairs``: data, variables, constraints, objective."""
    # --- data
    R = inst.num_regions
    task, action, knap, gpu = pairs.task, pairs.action, pairs.knap, pairs.gpu_s
    btasks, trow = np.unique(task, return_inverse=True)
    has = pairs.rep >= 0
    reps, rep_local = np.unique(pairs.rep[has], return_inverse=True)
    n_x, n_y, n_t = task.size, reps.size, btasks.size
    rep_of = np.full(n_x, -1, dtype=np.int64)
    rep_of[has] = rep_local
    served = action < R
    # --- variables: x[k, a] for the pairs (columns 0..n_x-1), then y[w, i, m]; all binary
    y_col = n_x + np.arange(n_y)
    # --- constraints (entries gathered as (row, column, value) triples)
    # assignment: sum_a x[k, a] = 1 for every task k (rows 0..n_t-1)
    rows, cols, vals = [trow], [np.arange(n_x)], [np.ones(n_x)]
    row_lo, row_hi = [np.ones(n_t)], [np.ones(n_t)]
    n_r = n_t
    # capacity: sum_k gpu_s[k, i] x[k, i] <= capacity_gpu_s[s, i] per slot s, region i; rows that no
    # assignment could fill are left out
    ks, kinv = np.unique(knap[served], return_inverse=True)
    demand = np.bincount(kinv, weights=gpu[served], minlength=ks.size)
    cap = inst.capacity_gpu_s.ravel()[ks]
    binding = demand > cap
    crow = np.cumsum(binding) - 1
    sel = binding[kinv]
    rows.append(n_r + crow[kinv[sel]])
    cols.append(np.flatnonzero(served)[sel])
    vals.append(gpu[served][sel])
    row_lo.append(np.full(int(binding.sum()), -np.inf))
    row_hi.append(cap[binding])
    n_r += int(binding.sum())
    need = np.flatnonzero(has)
    if linking == "strong":
        # replica, strong: x[k, i] - y[w, i, m] <= 0 for every pair that needs the replica
        lr = n_r + np.arange(need.size)
        rows += [lr, lr]
        cols += [need, y_col[rep_of[need]]]
        vals += [np.ones(need.size), -np.ones(need.size)]
        row_lo.append(np.full(need.size, -np.inf))
        row_hi.append(np.zeros(need.size))
        n_r += need.size
        # replica x capacity: sum_{k of model m} gpu_s[k, i] x[k, i] - capacity_gpu_s[s, i] y[w, i, m] <= 0
        # per slot s of window w, where the replica's candidates could overfill the slot: a valid row
        # (it is the capacity row restricted to model m when y = 1), and it makes the LP pay the whole
        # charge to use the whole capacity (without it a saturated LP opens replicas at 0.46 and splits
        # 700 tasks of a 17,700-task window)
        sk = np.unique(rep_of[need] * (inst.num_slots * R) + knap[need], return_inverse=True)
        gkey, ginv = sk
        gdem = np.bincount(ginv, weights=gpu[need], minlength=gkey.size)
        gcap = inst.capacity_gpu_s.ravel()[gkey % (inst.num_slots * R)]
        over = gdem > gcap
        grow = np.cumsum(over) - 1
        sel = over[ginv]
        n_g = int(over.sum())
        rows += [n_r + grow[ginv[sel]], n_r + np.arange(n_g)]
        cols += [need[sel], y_col[gkey[over] // (inst.num_slots * R)]]
        vals += [gpu[need][sel], -gcap[over]]
        row_lo.append(np.full(n_g, -np.inf))
        row_hi.append(np.zeros(n_g))
        n_r += n_g
    else:
        # replica, weak: sum_k x[k, i] - n[w, i, m] y[w, i, m] <= 0, one row per replica
        n_per = np.bincount(rep_of[need], minlength=n_y).astype(np.float64)
        rows += [n_r + rep_of[need], n_r + np.arange(n_y)]
        cols += [need, y_col]
        vals += [np.ones(need.size), -n_per]
        row_lo.append(np.full(n_y, -np.inf))
        row_hi.append(np.zeros(n_y))
        n_r += n_y
    # --- objective: pair costs and replica charges, both straight from envs.costs (see _pairs)
    col_cost = np.concatenate([pairs.cost_usd, pairs.rep_cost_usd[reps]])
    a_start, a_index, a_value = _csc(np.concatenate(rows), np.concatenate(cols), np.concatenate(vals), n_x + n_y)
    return _Model(
        num_col=n_x + n_y,
        num_row=n_r,
        col_cost=col_cost,
        row_lo=np.concatenate(row_lo),
        row_hi=np.concatenate(row_hi),
        a_start=a_start,
        a_index=a_index,
        a_value=a_value,
        task_row=trow,
        rep_of=rep_of,
        num_tasks=n_t,
        num_x=n_x,
        cost_scale=_cost_scale(pairs.cost_usd, trow, n_t, col_cost),
    )


def _cost_scale(
    cost: NDArray[np.float64], task_row: NDArray[np.int64], num_tasks: int, col_cost: NDArray[np.float64]
) -> float:
    """USD per objective unit for HiGHS: the mean of each task's cheapest pair, else the largest cost, else 1."""
    cheapest = np.full(num_tasks, np.inf)
    np.minimum.at(cheapest, task_row, cost)
    for scale in (float(cheapest.mean()) if num_tasks else 0.0, float(np.abs(col_cost).max(initial=0.0))):
        if math.isfinite(scale) and scale > 0.0:
            return scale
    return 1.0


def _csc(
    rows: NDArray[np.int64], cols: NDArray[np.int64], vals: NDArray[np.float64], num_col: int
) -> tuple[NDArray[np.int32], NDArray[np.int32], NDArray[np.float64]]:
    o = np.lexsort((rows, cols))
    start = np.searchsorted(cols[o], np.arange(num_col + 1)).astype(np.int32)
    return start, rows[o].astype(np.int32), vals[o]


_scheduler_lock = threading.Lock()


def _ensure_single_thread_scheduler() -> None:
    """Make HiGHS's process-wide scheduler accept ``threads = 1``.

    HiGHS refuses a run whose ``threads`` differs from the scheduler's, which is fixed by the first run
    in the process (any other HiGHS user may have set it); a 1-variable probe finds out, cheaply.
    """
    with _scheduler_lock:
        h = _Highs()
        h.setOptionValue("threads", 1)
        i32 = np.int32
        h.passModel(
            1,
            0,
            0,
            1,
            1,
            0.0,
            np.zeros(1),
            np.zeros(1),
            np.ones(1),
            np.zeros(0),
            np.zeros(0),
            np.zeros(2, dtype=i32),
            np.zeros(0, dtype=i32),
            np.zeros(0),
            np.ones(1, dtype=i32),
        )
        if h.run() != highspy.HighsStatus.kOk:
            highspy.Highs.resetGlobalScheduler(True)


def _solve_block(
    inst: Instance, pairs: _Pairs, deadline: float, expired: Callable[[], bool], opt: _Options
) -> _BlockSolution:
    """Build and solve the MILP of one block (``pairs`` are its pairs) from a greedy / LP-rounding start.

    HiGHS stops at ``deadline`` (a ``time.perf_counter`` value), or earlier once ``expired()``.
    """
    t0 = time.perf_counter()
    model = _build(inst, pairs, opt.linking)
    h = model.highs(opt.verbose)
    # one HiGHS thread per block (blocks run side by side); only the relative gap stops a solve
    h.setOptionValue("threads", 1)
    h.setOptionValue("mip_rel_gap", opt.mip_rel_gap)
    h.setOptionValue("mip_abs_gap", 0.0)
    # capacity rows hold to 1e-9 GPU-s, inside the env's slack (envs.costs.capacity_limit_gpu_s)
    h.setOptionValue("mip_feasibility_tolerance", MIP_FEAS_TOL)
    btasks = np.unique(pairs.task)
    slots = np.unique(inst.slot_idx[btasks])
    if inst.gpu_s[btasks].sum() > inst.capacity_gpu_s[slots].sum():
        # Oversubscribed block: without presolve. Measured on a 17,700-task window at 7x demand, HiGHS
        # 1.16 spent 200 s in the first cut round of the presolved model (deaf to its time limit), 23 s
        # without presolve; with demand under capacity presolve helps or is neutral.
        h.setOptionValue("presolve", "off")
    for name, value in opt.highs:
        if h.setOptionValue(name, value) != highspy.HighsStatus.kOk:
            raise ValueError(f"HiGHS option {name} = {value!r}: not accepted by HiGHS")
    start = _greedy_start(inst, pairs)
    build_s = time.perf_counter() - t0
    # --- LP relaxation, always solved in full (a few seconds at most here): a finite bound for every
    # block, even one stopped before its root node, and the order of the LP-rounding start
    t1 = time.perf_counter()
    h.setOptionValue("solve_relaxation", True)
    h.run()
    lp_bound = -math.inf
    if h.getModelStatus() == highspy.HighsModelStatus.kOptimal:
        # The bound from the LP's duals by weak duality, not HiGHS's LP objective: that one may exceed the
        # true LP optimum by the dual infeasibilities HiGHS tolerates
        lp_bound = model.lagrangian_bound(np.asarray(h.getSolution().row_dual))
        if opt.mip_start:
            start = _greedy_start(inst, pairs, np.asarray(h.getSolution().col_value)[: model.num_x])
    h.setOptionValue("solve_relaxation", False)
    if opt.mip_start:
        sol = highspy.HighsSolution()
        sol.col_value = model.columns(start).tolist()
        sol.value_valid = True
        h.setSolution(sol)
    start_usd = _columns_cost(model, start)
    start_s = time.perf_counter() - t1
    # --- solve
    t2 = time.perf_counter()
    h.setOptionValue("time_limit", max(deadline - time.perf_counter(), 1e-3))
    if math.isfinite(deadline):

        def interrupt(e: highspy.HighsCallbackEvent) -> None:
            if expired():
                e.interrupt()

        h.cbMipInterrupt.subscribe(interrupt)
    run_status = h.run()
    solve_s = time.perf_counter() - t2
    # --- check status
    ms = h.getModelStatus()
    info = h.getInfo()
    if ms == highspy.HighsModelStatus.kInfeasible:
        raise RuntimeError(
            "HiGHS reports a block infeasible, but sending every task to overflow is "
            "feasible: a modelling or solver error"
        )
    has_sol = info.primal_solution_status == 2  # kSolutionStatusFeasible
    if run_status == highspy.HighsStatus.kError or not (has_sol or ms in _LIMITS):
        raise RuntimeError(
            f"HiGHS failed on a block: run status {run_status}, model status {h.modelStatusToString(ms)!r}"
        )
    # --- extract
    note = ""
    obj = float(info.objective_function_value) * model.cost_scale
    if has_sol:
        v = np.asarray(h.getSolution().col_value)
        if opt.mip_start and abs(float(model.col_cost @ v) - obj) > 1e-9 * max(abs(obj), model.cost_scale):
            # HiGHS 1.16 may report the objective of its presolved incumbent yet return the MIP start
            # itself (seen when presolve maps the start to a better point): solve again, no presolve.
            if ("presolve", "off") in opt.highs:
                raise RuntimeError("HiGHS returned a solution whose objective is not the one it reports")
            retry = _solve_block(inst, pairs, deadline, expired, replace(opt, highs=(*opt.highs, ("presolve", "off"))))
            st = retry.stats
            return replace(
                retry,
                stats=replace(
                    st,
                    build_s=st.build_s + build_s,
                    start_s=st.start_s + start_s,
                    solve_s=st.solve_s + solve_s,
                    note="HiGHS returned its MIP start, not the solution it reported: solved again without presolve",
                ),
            )
        chosen = v[: model.num_x] > ONE
    else:  # stopped before HiGHS took the start: the start is the incumbent, with whatever bound there is
        chosen = start
        note = "stopped before HiGHS had a solution: the greedy start is the incumbent"
    obj = _columns_cost(model, chosen)  # the incumbent re-priced in USD, not HiGHS's scaled figure
    bound, trusted = _block_bound(
        model, obj, lp_bound, float(info.mip_dual_bound), float(h.getOptionValue("dual_feasibility_tolerance")[1])
    )
    if not trusted:
        note = (f"{note}; " if note else "") + (
            "HiGHS's dual bound lies above its incumbent beyond its own tolerances: the LP relaxation's bound is kept"
        )
    per_task = np.bincount(model.task_row[chosen], minlength=model.num_tasks)
    if not (per_task == 1).all():
        raise RuntimeError(
            f"HiGHS solution assigns {int(per_task.max())} or {int(per_task.min())} actions "
            "to a task; expected exactly one"
        )
    stats = BlockStats(
        window_idx=int(inst.window_idx[btasks[0]]),
        slots=tuple(int(s) for s in slots),
        num_tasks=model.num_tasks,
        num_vars=model.num_col,
        num_rows=model.num_row,
        status=h.modelStatusToString(ms),
        objective_usd=obj,
        dual_bound_usd=bound,
        start_usd=start_usd,
        build_s=build_s,
        start_s=start_s,
        solve_s=solve_s,
        nodes=int(info.mip_node_count),
        note=note,
    )
    return _BlockSolution(chosen=chosen, stats=stats, limited=ms != highspy.HighsModelStatus.kOptimal)


def _columns_cost(model: _Model, chosen: NDArray[np.bool_]) -> float:
    """USD cost of an assignment of the block's pairs (its replicas included)."""
    return float(model.col_cost @ model.columns(chosen))


def _block_bound(
    model: _Model, obj_usd: float, lp_bound_usd: float, mip_bound: float, dual_tol: float
) -> tuple[float, bool]:
    """The block's dual bound, USD, never above its incumbent ``obj_usd``; and whether HiGHS's was kept.

    HiGHS's branch-and-bound bound (``mip_bound``, in its scaled units) is trusted when it lies at most
    ``dual_tol`` per task (its reduced-cost tolerance, in the same units) above the incumbent: such an
    excess is the solver's inexactness, and the incumbent is then optimal to that precision. Farther
    above, it is wrong by more than its tolerances, and the rigorous LP bound stands alone.
    """
    # costs are never negative (envs.costs), so 0 bounds every block: exact where the optimum is 0
    bound = max(lp_bound_usd, 0.0) if model.col_cost.min(initial=0.0) >= 0.0 else lp_bound_usd
    trusted = True
    if math.isfinite(mip_bound):
        mip_usd = mip_bound * model.cost_scale
        if mip_usd <= obj_usd + dual_tol * model.num_tasks * model.cost_scale:
            bound = max(bound, mip_usd)
        else:
            trusted = False
    return min(bound, obj_usd), trusted


_LIMITS = (
    highspy.HighsModelStatus.kTimeLimit,
    highspy.HighsModelStatus.kIterationLimit,
    highspy.HighsModelStatus.kInterrupt,
    highspy.HighsModelStatus.kSolutionLimit,
    highspy.HighsModelStatus.kMemoryLimit,
)


class _Budget:
    """Shares a wall-clock budget among blocks solved ``workers`` at a time.

    Each block is owed ``workers * time_limit * size / total size``. A block may run while the
    worker-time left before the deadline exceeds what the other running blocks hold and what the blocks
    not started yet are owed; its allowance is renewed whenever it runs out and such time is free. So
    blocks that finish early leave their time to the others, and hard blocks use it. Times are
    ``time.perf_counter`` values.
    """

    def __init__(self, sizes: dict[int, int], time_limit_s: float | None, workers: int) -> None:
        self._lock = threading.Lock()
        self._workers = workers
        total = max(sum(sizes.values()), 1)
        limit = math.inf if time_limit_s is None else time_limit_s
        self._owed = {b: workers * limit * n / total for b, n in sizes.items()}
        self._running: dict[int, float] = {}
        self.deadline = time.perf_counter() + limit

    def _grant(self, b: int, now: float) -> None:
        """Set ``b``'s allowance to the free worker-time (lock held)."""
        if math.isinf(self.deadline):
            self._running[b] = math.inf
            return
        held = sum(max(0.0, e - now) for r, e in self._running.items() if r != b)
        free = self._workers * (self.deadline - now) - held - sum(self._owed.values())
        self._running[b] = now + min(max(free, 0.0), self.deadline - now)

    def start(self, b: int) -> None:
        with self._lock:
            self._owed.pop(b)
            self._grant(b, time.perf_counter())

    def expired(self, b: int) -> bool:
        """Whether ``b`` must stop now (its allowance is over and no free time can renew it)."""
        now = time.perf_counter()
        if now <= self._running[b]:
            return False
        with self._lock:
            self._grant(b, now)
            return self._running[b] - now < 0.1

    def finish(self, b: int) -> None:
        with self._lock:
            del self._running[b]


def _solve_blocks(
    inst: Instance,
    pairs: _Pairs,
    blocks: Sequence[NDArray[np.int64]],
    time_limit_s: float | None,
    workers: int,
    opt: _Options,
) -> list[_BlockSolution]:
    """Solve the blocks, largest first, ``workers`` at a time, sharing the budget (see :class:`_Budget`)."""
    _ensure_single_thread_scheduler()
    order = sorted(range(len(blocks)), key=lambda b: -blocks[b].size)
    budget = _Budget({b: int(blocks[b].size) for b in order}, time_limit_s, workers)
    out: list[_BlockSolution | None] = [None] * len(blocks)

    def run(b: int) -> None:
        budget.start(b)
        try:
            out[b] = _solve_block(inst, _take(pairs, blocks[b]), budget.deadline, partial(budget.expired, b), opt)
        finally:
            budget.finish(b)

    if workers <= 1 or len(blocks) <= 1:
        for b in order:
            run(b)
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for f in [pool.submit(run, b) for b in order]:
                f.result()
    return [o for o in out if o is not None]


# ---------------------------------------------------------------------------------------------- oracle
def solve_hindsight(
    instance: Instance,
    time_limit_s: float | None = None,
    mip_rel_gap: float = 1e-6,
    *,
    linking: Linking = "strong",
    workers: int | None = None,
    mip_start: bool = True,
    highs_options: Mapping[str, bool | int | float | str] | None = None,
    verbose: bool = False,
) -> MilpResult:
    """The hindsight optimum of ``instance``: every task known in advance, one exact MILP (see module doc).

    Args:
        time_limit_s: wall-clock budget, s, shared by the blocks' branch and bound (see ``_Budget``);
            None: until proven. Preparation and every block's LP relaxation are not cut short (so
            every block has a finite bound), and HiGHS checks time only now and then: expect overruns
            of seconds on large saturated blocks.
        mip_rel_gap: relative gap at which a solve counts as optimal.
        linking: ``'strong'`` (x <= y per pair: tighter LP, the default, see the benchmark) or ``'weak'``
            (sum x <= n y per replica).
        workers: blocks solved side by side (default: min(2, CPUs)).
        mip_start: give HiGHS the greedy / LP-rounding plan as a start.
        highs_options: HiGHS options set on every block after ours (e.g. ``{"presolve": "on"}``).
        verbose: HiGHS log on stdout.

    Returns a :class:`MilpResult`; raises ``RuntimeError`` if HiGHS fails, or if the plan's cost or
    feasibility, checked again with :mod:`envs.costs`, disagrees with the solver.
    """
    if not (0.0 <= mip_rel_gap < 1.0):
        raise ValueError(f"mip_rel_gap = {mip_rel_gap!r}: expected a number in [0, 1)")
    if time_limit_s is not None and not time_limit_s > 0:
        raise ValueError(f"time_limit_s = {time_limit_s!r}: expected a positive number of seconds or None")
    workers = min(2, os.cpu_count() or 1) if workers is None else int(workers)
    t0 = time.perf_counter()
    pc = cost_matrix(instance)
    mask = static_mask(instance, pc)
    pairs = _pairs(instance, pc, mask, np.arange(instance.num_tasks))
    blocks = _blocks(instance, pairs)
    prep_s = time.perf_counter() - t0
    opt = _Options(mip_rel_gap, linking, mip_start, verbose, _highs_options(highs_options))
    sols = _solve_blocks(instance, pairs, blocks, time_limit_s, workers, opt)
    chosen = np.zeros(pairs.task.size, dtype=bool)
    for b, s in zip(blocks, sols, strict=True):
        chosen[b[s.chosen]] = True
    plan = np.full(instance.num_tasks, instance.overflow_action, dtype=np.int64)
    plan[pairs.task[chosen]] = pairs.action[chosen]
    stats = tuple(s.stats for s in sols)
    bound = float(sum(s.dual_bound_usd for s in stats))
    obj = _verify(instance, plan, pairs, chosen).total_usd
    # Each block's bound is at most its incumbent (_block_bound): the sum exceeds the re-priced plan by
    # float rounding at most
    bound = min(bound, obj)
    gap = _rel_gap(obj, bound)
    return MilpResult(
        plan=plan,
        objective_usd=obj,
        dual_bound_usd=bound,
        mip_gap=gap,
        status="optimal" if gap <= mip_rel_gap else "time_limit",
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


def _highs_options(
    extra: Mapping[str, bool | int | float | str] | None,
) -> tuple[tuple[str, bool | int | float | str], ...]:
    return tuple({**HIGHS_OPTIONS, **(extra or {})}.items())


def _past(t: float) -> bool:
    return time.perf_counter() > t


def _rel_gap(obj: float, bound: float) -> float:
    if obj - bound <= 0.0:
        return 0.0
    if not math.isfinite(bound):
        return math.inf
    return (obj - bound) / abs(obj) if obj != 0.0 else math.inf


def _verify(inst: Instance, plan: NDArray[np.int64], pairs: _Pairs, chosen: NDArray[np.bool_]) -> CostBreakdown:
    """Re-evaluate the plan with envs.costs: same cost as the MILP's columns, and feasible."""
    ev = evaluate_plan(inst, plan)
    milp = _assignment_cost(pairs, chosen)
    if abs(ev.total_usd - milp) > 1e-9 * max(abs(milp), abs(ev.total_usd)):  # relative: objectives may be tiny
        raise RuntimeError(f"evaluate_plan gives {ev.total_usd!r} USD but the MILP columns give {milp!r} USD")
    _check_feasible(inst, plan, "MILP")
    return ev


def _check_feasible(inst: Instance, plan: NDArray[np.int64], what: str) -> None:
    """Feasible by check_plan_feasible, and within the env's tighter capacity slack (so it replays)."""
    bad = check_plan_feasible(inst, plan)
    if bad:
        raise RuntimeError(f"the {what} plan breaks {len(bad)} constraint(s), first: {bad[0]}")
    over = slot_usage_gpu_s(inst, plan) > capacity_limit_gpu_s(inst.capacity_gpu_s, 0.5)
    if over.any():
        s, i = np.argwhere(over)[0]
        raise RuntimeError(
            f"the {what} plan fills slot {s}, region {inst.region_names[i]!r} beyond the "
            "env's capacity slack (solver tolerance)"
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
    if time_limit_s is not None and not time_limit_s > 0:
        raise ValueError(f"time_limit_s = {time_limit_s!r}: expected a positive number of seconds or None")
    _ensure_single_thread_scheduler()
    opt = _Options(mip_rel_gap, linking, True, verbose)
    t0 = time.perf_counter()
    inst = instance
    R, M = inst.num_regions, len(inst.model_names)
    pc = cost_matrix(inst)
    mask = static_mask(inst, pc)
    build_s = time.perf_counter() - t0
    plan = np.full(inst.num_tasks, inst.overflow_action, dtype=np.int64)
    warm = np.zeros((inst.num_windows, R, M), dtype=bool)
    order = np.argsort(inst.slot_idx, kind="stable")
    cuts = np.flatnonzero(np.diff(inst.slot_idx[order])) + 1
    groups = [g for g in np.split(order, cuts) if g.size]
    remaining = inst.num_tasks
    deadline = math.inf if time_limit_s is None else time.perf_counter() + time_limit_s
    worst, limited, solve_s = 0.0, False, 0.0
    for tasks in groups:
        t1 = time.perf_counter()
        pairs = _pairs(inst, pc, mask, np.sort(tasks), warm)
        build_s += time.perf_counter() - t1
        slot_end = time.perf_counter() + (deadline - time.perf_counter()) * tasks.size / remaining
        remaining -= tasks.size
        sol = _solve_block(inst, pairs, deadline, partial(_past, slot_end), opt)
        build_s += sol.stats.build_s
        solve_s += sol.stats.start_s + sol.stats.solve_s
        worst = max(worst, _rel_gap(sol.stats.objective_usd, sol.stats.dual_bound_usd))
        limited |= sol.limited
        ch = sol.chosen
        plan[pairs.task[ch]] = pairs.action[ch]
        opened = ch & (pairs.rep >= 0)
        np.put(warm, pairs.rep_key[pairs.rep[opened]], True)  # key = (window * R + region) * M + model
    ev = evaluate_plan(inst, plan)
    _check_feasible(inst, plan, "rolling")
    optimal = worst <= mip_rel_gap
    return RollingResult(
        plan=plan,
        objective_usd=ev.total_usd,
        status="optimal" if optimal or not limited else "time_limit",
        max_slot_gap=worst,
        build_s=build_s,
        solve_s=solve_s,
        num_slots=len(groups),
    )


# ---------------------------------------------------------------------------------------------- regret
def _cost_of(plan_or_cost: ArrayLike | float | CostBreakdown, instance: Instance) -> float:
    if isinstance(plan_or_cost, CostBreakdown):
        return plan_or_cost.total_usd
    if np.ndim(plan_or_cost) == 0:
        c = float(plan_or_cost)  # type: ignore[arg-type]
        if not math.isfinite(c):
            raise ValueError(f"cost = {c!r}: expected a finite number of USD")
        return c
    bad = check_plan_feasible(instance, plan_or_cost)
    if bad:
        raise ValueError(
            f"the plan is infeasible ({len(bad)} violation(s), first: {bad[0]}): regret is only "
            "defined for feasible plans"
        )
    return evaluate_plan(instance, plan_or_cost).total_usd


def regret_interval(plan_or_cost: ArrayLike | float | CostBreakdown, oracle: MilpResult, instance: Instance) -> Regret:
    """Regret against any oracle result: ``[cost - incumbent, cost - dual bound]`` (``proven`` tells which).

    ``plan_or_cost``: a plan ``[K]`` (checked feasible, then priced with ``evaluate_plan``), a
    :class:`~envs.costs.CostBreakdown`, or a cost in USD.
    """
    _check_oracle(oracle, instance)
    cost = _cost_of(plan_or_cost, instance)
    obj, bound = oracle.objective_usd, oracle.dual_bound_usd
    r = cost - obj
    return Regret(
        cost_usd=cost,
        oracle_usd=obj,
        dual_bound_usd=bound,
        regret_usd=r,
        regret_max_usd=cost - bound,
        relative=r / obj if obj > 0 else (0.0 if r == 0 else math.inf),
        proven=oracle.proven_optimal,
    )


def regret(plan_or_cost: ArrayLike | float | CostBreakdown, oracle: MilpResult, instance: Instance) -> Regret:
    """Regret of a plan (or a cost) against a *proven* oracle, USD and relative to the optimum.

    Raises ``ValueError`` when the oracle is not proven optimal within its requested gap (use
    :func:`regret_interval`), and when the cost lies below the proven optimum by more than the gap
    (then the plan is not of this instance, or the cost is not a feasible plan's).
    """
    if not oracle.proven_optimal:
        raise ValueError(
            f"the oracle is not proven optimal (status {oracle.status!r}, gap "
            f"{oracle.mip_gap:.3g} > {oracle.mip_rel_gap:.3g}): its regret is an interval, see "
            "regret_interval()"
        )
    out = regret_interval(plan_or_cost, oracle, instance)
    slack = oracle.objective_usd - oracle.dual_bound_usd + 1e-9 * abs(oracle.objective_usd)
    if out.regret_usd < -slack:
        raise ValueError(
            f"cost {out.cost_usd!r} USD is below the proven optimum {oracle.objective_usd!r} "
            "USD: not a feasible plan of this instance"
        )
    return out


def _check_oracle(oracle: MilpResult, instance: Instance) -> None:
    if oracle.plan.shape != (instance.num_tasks,):
        raise ValueError(
            f"the oracle's plan has shape {oracle.plan.shape}: expected "
            f"({instance.num_tasks},), an oracle of another instance"
        )
    c = evaluate_plan(instance, oracle.plan).total_usd
    if abs(c - oracle.objective_usd) > 1e-9 * max(abs(c), abs(oracle.objective_usd)):
        raise ValueError(
            f"the oracle's plan costs {c!r} USD on this instance, not "
            f"{oracle.objective_usd!r}: an oracle of another instance"
        )


__all__ = [
    "BlockStats",
    "MilpResult",
    "Regret",
    "RollingResult",
    "regret",
    "regret_interval",
    "solve_hindsight",
    "solve_rolling",
]
