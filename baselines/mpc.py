"""Model-predictive control (MPC) on the demand forecast: an online optimisation baseline.

:class:`OnlineMPC` places an episode's tasks one at a time, in arrival order, knowing what an agent
knows when task k arrives: task k, the tasks already placed (so the GPU-seconds left in the slot and the
replicas open in the window, kept by the env's own dynamics, :class:`envs.dynamics.EpisodeBatch`), the
episode's forecasts ``arrival_rate_per_h`` and ``captive_gpu_s_per_h``, the current slot's signals and
the public scenario. It never reads a field of a task k' > k. The window's later slots are priced with the
current slot's signals, as an agent's observation shows them (``day_ahead=True`` reads their own, as
day-ahead prices and carbon forecasts).

At each arrival it solves a linear program (LP) over the rest of the slot and of the replica window:

* **task k**: columns ``x[i]`` for its admissible regions i (budget, residency, GPU-seconds left now)
  and overflow; exactly one is chosen (see *integrality*);
* **the future, certainty equivalent**: a fixed set of sample tasks per home region, drawn once from the
  scenario (:func:`envs.workload.sample_instance`, stratified by workload class and by captivity: only
  the home region admissible), stands for the forecast as fluid demand: sample j weighs
  ``arrival_rate_per_h[s, home_j] * weight_j`` tasks per hour of slot s, over what is left of the current
  slot (``slot_end - arrival_h[k]``) or over later slots of the window, pooled in blocks of ``block_h``
  hours (they only matter through replicas). ``phi[p, j, a] in [0, 1]`` is the share of that mass sent to
  action a. Costs and GPU time are :func:`envs.costs.cost_matrix` of the sample tasks set in each slot
  of this episode. The weights are rescaled so that each home's captive GPU time matches the instance's
  ``captive_gpu_s_per_h``;
* **capacity**: per region, ``gpu_k(i) x[i] + sum mass gpu phi <= GPU-s left now`` in the current slot
  and ``<= capacity`` in each later block;
* **replicas**: ``y[i, m] in [0, 1]`` per (region, model) still cold in the window, costing
  :func:`envs.costs.replica_charge_usd` (``eta * replica_mult * replica_usd[m]``); strong linking
  ``x[i] <= y[i, m_k]``, ``phi[p, j, i] <= y[i, m_j]``, and in later blocks ``sum_{j of m} mass gpu phi
  <= capacity * y`` (as in :mod:`baselines.milp.model`). Warm replicas (permanent or opened) are free;
* **safety stock** (``safety_level``): certainty equivalence keeps exactly the *expected* captive demand
  free (tasks whose home is the only admissible region), yet a region's few captive tasks per hour arrive
  as Poisson lumps, and one that finds no room is overflowed at its full penalty. So in the current slot
  a region also keeps the captive arrivals of the rest of the slot up to their ``safety_level`` quantile
  (beyond the mean, times their size-biased mean GPU-s). Task k (unless captive itself) and the fluid
  use that stock only by paying, per GPU-s, what serving a captive task there is worth (its overflow
  penalty minus its cost, per GPU-s, from the samples). ``safety_level=None``: certainty equivalence.

Minimise ``cost_k(x) + sum mass cost(phi) + sum charge y (+ the stock's price)`` (USD).

Integrality: task k's action is exact. When the LP's ``x`` is integral it is the optimum with ``x``
binary (the LP relaxes that program); otherwise the LP is solved with ``x`` fixed to each admissible
action in turn (branch and bound on task k alone: the support of ``x`` first, then the others by reduced
cost, skipping those whose bound ``objective + reduced cost`` cannot win).

Speed: one HiGHS model per slot, changed between arrivals (costs, bounds, task k's capacity
coefficients) and re-solved from the previous basis.

If the chosen action is not admissible live (not expected: ``x``'s bounds come from the live mask) or
HiGHS fails, the cheapest admissible action is played (task cost plus replica charge if cold; overflow
when no region is admissible or cheaper), counted in :attr:`OnlineMPC.stats`. The plan is played through
the env's dynamics, so it is feasible, replays in the env, and :func:`envs.costs.evaluate_plan` prices it.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import highspy
import numpy as np
from numpy.typing import ArrayLike, NDArray

from baselines.milp.model import SilentHighs
from envs.core import DEFAULT_REWARD_SCALE
from envs.costs import cost_matrix, replica_charge_usd, static_mask
from envs.dynamics import EpisodeBatch, ObsLayout
from envs.instance import TASK_FIELDS, Instance
from envs.scenario import Scenario
from envs.workload import sample_instance

# Capacity rows are written in GPU-hours per hour of their period, so their coefficients are O(1).
_GPU_S_PER_UNIT = 3600.0
# The rest of the current slot is never taken shorter than this, h: the current slot's capacity rows are
# divided by the hours left, which must stay finite (36 s of forecast demand is negligible).
_MIN_SLOT_LEFT_H = 0.01
# A column value above this counts as 1 (HiGHS's primal feasibility tolerance is 1e-7).
_ONE = 1.0 - 1e-6
# Poisson quantiles: exact sums up to this mean (with at most that many terms), the normal law above.
_POISSON_NORMAL_ABOVE = 50.0
_POISSON_MAX_TERMS = 200
# Tasks drawn once per OnlineMPC to choose the sample tasks and their weights (see _stratified_sample).
_POOL_TASKS = 1 << 14

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class MpcStats:
    """What :meth:`OnlineMPC.plan` did on its last instance."""

    num_tasks: int
    wall_s: float  # the whole plan, s (forecast costs, models, solves, bookkeeping)
    lp_solves: int  # HiGHS runs, branches included
    branched: int  # tasks whose LP assignment was fractional, settled by branching
    # tasks chosen (played, or labelled with follow) by the cheapest-admissible rule (LP failed or its
    # action inadmissible)
    fallbacks: int
    models_built: int  # one per slot with arrivals
    max_cols: int  # columns of the largest slot model

    @property
    def ms_per_task(self) -> float:
        return 1000.0 * self.wall_s / max(self.num_tasks, 1)


@dataclass(frozen=True, slots=True)
class _Samples:
    """The sample tasks (J of them) that stand for the forecast demand, with their weights."""

    fields: dict[str, NDArray[Any]]  # TASK_FIELDS of the sample tasks (slot and arrival are set per episode)
    weight: FloatArray  # [J] share of its home region's tasks each stands for (sum 1 per home)
    home: IntArray  # [J]
    model: IntArray  # [J]
    gpu_s: FloatArray  # [J] GPU-s at home


@dataclass(frozen=True, slots=True)
class _Forecast:
    """The sample tasks priced in every slot of one episode (``[S, J, A]``, A = R + 1 actions)."""

    cost_usd: FloatArray  # pair_costs(...).total_usd, USD per task
    gpu_s: FloatArray  # GPU-s per task
    ok: BoolArray  # admissible (static mask) and, for a region, cheaper than overflow
    rate_per_h: FloatArray  # [S, J] tasks/h each sample stands for
    hours: FloatArray  # [S] length of each slot, h (the last one may be partial)
    capacity_gpu_s: FloatArray  # [S, R]
    captive_rate_per_h: FloatArray  # [S, R] captive tasks (only their home admissible) per hour, by home
    captive_gpu_s: FloatArray  # [S, R] their size-biased mean GPU-s per task, E[gpu^2] / E[gpu]
    captive_value_usd_per_gpu_s: FloatArray  # [S, R] overflow penalty minus cost of captive tasks, per GPU-s


@dataclass(frozen=True, slots=True)
class _Periods:
    """The horizon of one slot's LP: period 0 is the rest of the slot; periods 1.. are blocks of the window's
    later slots, their demand, costs (demand-weighted) and capacity pooled. ``[P, J, A]``, ``[P, J]``, ``[P, R]``."""

    cost_usd: FloatArray
    gpu_s: FloatArray
    ok: BoolArray
    rate_per_h: FloatArray  # tasks/h each sample stands for, on average over the period
    hours: FloatArray  # [P] hours of the period (period 0: 1, its costs are scaled per arrival)
    capacity_per_h: FloatArray  # [P, R] GPU-s per hour of the period (period 0: set per arrival)


def _periods(fc: _Forecast, s: int, w_end: int, block_h: int, later: bool, day_ahead: bool) -> _Periods:
    """Slot ``s`` and, when ``later``, the window's slots ``s + 1 .. w_end - 1`` in blocks of ``block_h``.
    Without ``day_ahead`` the later slots are priced with slot ``s``'s signals (persistence: what an agent's
    observation shows); with it, with their own (day-ahead prices and carbon forecasts taken as exact)."""
    _, J, A = fc.cost_usd.shape
    blocks = [np.array([s])]
    if later:
        blocks += [np.arange(b, min(b + block_h, w_end)) for b in range(s + 1, w_end, block_h)]
    P = len(blocks)
    cost, gpu = np.zeros((P, J, A)), np.zeros((P, J, A))
    ok = np.zeros((P, J, A), dtype=bool)
    rate, hours, cap = np.zeros((P, J)), np.ones(P), np.zeros((P, A - 1))
    for p, b in enumerate(blocks):
        mass = fc.rate_per_h[b] * fc.hours[b, None]  # [|b|, J] tasks
        total = mass.sum(axis=0)
        w = np.divide(mass, total, out=np.zeros_like(mass), where=total > 0)[:, :, None]
        priced = b if day_ahead else np.full(b.size, s)  # the slots whose signals price this period
        cost[p], gpu[p] = (w * fc.cost_usd[priced]).sum(axis=0), (w * fc.gpu_s[priced]).sum(axis=0)
        # A region at least as dear as overflow never helps: overflow uses no capacity and no replica.
        ok[p] = fc.ok[priced].any(axis=0) & (cost[p] < cost[p, :, -1:])
        ok[p, :, -1] = True
        if p:
            hours[p] = fc.hours[b].sum()
            rate[p] = total / hours[p]
            cap[p] = fc.capacity_gpu_s[b].sum(axis=0) / hours[p]
        else:
            rate[p] = fc.rate_per_h[s]
    ok &= rate[:, :, None] > 0
    return _Periods(cost, gpu, ok, rate, hours, cap)


class _Rows:
    """Row groups ``lo <= A z <= hi`` collected as (row, column, value) entries, rows numbered in order."""

    def __init__(self) -> None:
        self.entries: list[tuple[IntArray, IntArray, FloatArray]] = []
        self.lo: list[FloatArray] = []
        self.hi: list[FloatArray] = []
        self.num = 0

    def add(self, row: IntArray, col: IntArray, value: FloatArray, lo: float, hi: FloatArray) -> int:
        """Rows ``lo <= sum value z[col] <= hi`` numbered ``row`` within the group; returns the group's first row."""
        first = self.num
        self.entries.append((row + first, col, value))
        self.lo.append(np.full(hi.size, lo))
        self.hi.append(hi)
        self.num += hi.size
        return first

    def links(self, col: IntArray, y_col: IntArray, coef: FloatArray) -> None:
        """``coef * z[col] - z[y_col] <= 0``, one row per entry."""
        n = col.size
        r = np.arange(n)
        self.add(np.tile(r, 2), np.concatenate([col, y_col]), np.concatenate([coef, -np.ones(n)]), -np.inf, np.zeros(n))


class _SlotModel:
    """The LP of one slot (its arrivals share it), held in HiGHS and changed between arrivals.

    Columns: ``x`` (R * M region-model columns, then overflow; only task k's model is open), ``y`` (replicas
    cold at build time), ``u`` (safety stock used, per region; with a stock), ``phi``. Every capacity row
    reads GPU-hours per hour of its period; the current slot's are divided by the hours left.
    """

    def __init__(
        self, per: _Periods, model: IntArray, cold: BoolArray, charge_usd: FloatArray, cost_scale: float, stock: bool
    ) -> None:
        P, J, A = per.cost_usd.shape
        R, M = A - 1, charge_usd.size
        self.R, self.M, self.cost_scale = R, M, cost_scale
        self.nx = R * M + 1
        ycold = np.flatnonzero(cold.ravel())  # i * M + m of each y column
        self.y_col = np.full(R * M, -1, dtype=np.int64)
        self.y_col[ycold] = self.nx + np.arange(ycold.size)
        u0 = self.nx + ycold.size
        self.u_col = (u0 + np.arange(R)).astype(np.int32) if stock else np.zeros(0, dtype=np.int32)
        phi0 = u0 + self.u_col.size
        # ---- phi columns: (period, sample, action) of every admissible pair with forecast demand
        t, j, a = np.nonzero(per.ok)
        phi = phi0 + np.arange(t.size)
        rate = per.rate_per_h[t, j]
        cost_per_h = rate * per.cost_usd[t, j, a] / cost_scale
        cur = t == 0
        self.cur_phi = phi[cur].astype(np.int32)  # their cost is per hour, times the hours left per arrival
        self.cur_phi_cost_per_h = cost_per_h[cur]
        col_cost = np.concatenate([np.zeros(self.nx), charge_usd[ycold % M] / cost_scale, np.zeros(self.u_col.size),
                                   cost_per_h * per.hours[t]])  # fmt: skip
        served = a < R
        region = np.minimum(a, R - 1)
        gpu = rate * per.gpu_s[t, j, a] / _GPU_S_PER_UNIT  # capacity coefficient
        cap = per.capacity_per_h / _GPU_S_PER_UNIT  # [P, R]
        rows = _Rows()
        # ---- assignment: sum_a x[a] = 1, sum_a phi[p, j, a] = 1
        rows.add(np.zeros(self.nx, dtype=np.int64), np.arange(self.nx), np.ones(self.nx), 1.0, np.ones(1))
        keys, group = np.unique(t * J + j, return_inverse=True)
        rows.add(group, phi, np.ones(t.size), 1.0, np.ones(keys.size))
        # ---- current slot, per region: (gpu_k / hours) x + sum gpu phi <= left / hours (bounds per arrival)
        now = served & cur
        self.cap_row0 = rows.add(a[now], phi[now], gpu[now], -np.inf, np.full(R, np.inf))
        # ---- the same, less the safety stock unless paid for: ... - u <= (left - stock) / hours; task k's
        # x enters it unless task k is captive (the stock is kept for such tasks)
        self.stock_row0 = -1
        if stock:
            ent = np.concatenate([a[now], np.arange(R)])
            col = np.concatenate([phi[now], self.u_col])
            self.stock_row0 = rows.add(ent, col, np.concatenate([gpu[now], -np.ones(R)]), -np.inf, np.full(R, np.inf))
        # ---- later blocks: sum gpu phi <= capacity, where the samples could overfill it
        later = served & ~cur
        key, inv = np.unique((t * R + a)[later], return_inverse=True)
        limit = cap.ravel()[key]
        binding = np.bincount(inv, weights=gpu[later], minlength=key.size) > limit
        sel = binding[inv]
        rows.add((np.cumsum(binding) - 1)[inv[sel]], phi[later][sel], gpu[later][sel], -np.inf, limit[binding])
        # ---- strong linking: x[i, m] <= y[i, m] and phi[p, j, i] <= y[i, m_j] where (i, m) is cold
        rows.links(ycold, self.y_col[ycold], np.ones(ycold.size))
        need = served & cold[region, model[j]]
        rows.links(phi[need], self.y_col[region[need] * M + model[j][need]], np.ones(int(need.sum())))
        # ---- later blocks: sum_{j of m} gpu phi[p, j, i] <= capacity[p, i] y[i, m] where the replica's
        # candidates could overfill the region: the LP then pays the whole charge to use all the capacity
        nl = need & ~cur
        gkey, ginv = np.unique((model[j][nl] * P + t[nl]) * R + a[nl], return_inverse=True)
        glim = cap.ravel()[gkey % (P * R)]
        over = np.bincount(ginv, weights=gpu[nl], minlength=gkey.size) > glim
        gsel = over[ginv]
        n = int(over.sum())
        gy = self.y_col[(gkey[over] % R) * M + gkey[over] // (P * R)]
        rows.add(np.concatenate([(np.cumsum(over) - 1)[ginv[gsel]], np.arange(n)]),
                 np.concatenate([phi[nl][gsel], gy]), np.concatenate([gpu[nl][gsel], -glim[over]]),
                 -np.inf, np.zeros(n))  # fmt: skip
        # ---- the model: x is opened per arrival, u is unbounded, y and phi are shares
        self.num_col = phi0 + t.size
        r, c, v = (np.concatenate([e[q] for e in rows.entries]) for q in range(3))
        start, index, value = _csc(r, c, v, self.num_col)
        col_hi = np.ones(self.num_col)
        col_hi[: self.nx] = 0.0
        col_hi[self.u_col] = np.inf
        h = SilentHighs()
        h.setOptionValue("output_flag", False)
        # Small LPs re-solved from the previous basis: presolve would throw the basis away.
        h.setOptionValue("presolve", "off")
        h.passModel(
            self.num_col, rows.num, int(index.size), 1, 1, 0.0, col_cost, np.zeros(self.num_col), col_hi,
            np.concatenate(rows.lo), np.concatenate(rows.hi), start, index, value,
            np.zeros(self.num_col, dtype=np.int32),
        )  # fmt: skip
        self.h = h
        self.x_cols = np.arange(self.nx, dtype=np.int32)
        self.cap_rows = np.arange(self.cap_row0, self.cap_row0 + R, dtype=np.int32)
        self.stock_rows = np.arange(self.stock_row0, self.stock_row0 + R, dtype=np.int32)
        self.task_cols = np.full(R + 1, self.nx - 1, dtype=np.int32)  # x column of each action of task k
        self.admissible = np.zeros(R + 1, dtype=bool)

    def open_replica(self, i: int, m: int) -> None:
        """Replica (i, m) is now warm: its y is 1 and free."""
        col = int(self.y_col[i * self.M + m])
        if col >= 0:
            self.h.changeColBounds(col, 1.0, 1.0)
            self.h.changeColCost(col, 0.0)

    def set_task(
        self,
        m: int,
        cost_usd: FloatArray,
        gpu_s: FloatArray,
        admissible: BoolArray,
        captive: bool,
        left_gpu_s: FloatArray,
        hours_left: float,
        stock_gpu_s: FloatArray,
        stock_value_usd_per_gpu_s: FloatArray,
    ) -> None:
        """Task k (model m; ``[R + 1]`` costs, USD, GPU-s and live mask; captive or not) and the live state
        (``[R]`` GPU-s left, hours left in the slot, safety stock GPU-s and its value, USD per GPU-s)."""
        R, M, h = self.R, self.M, self.h
        per_h = 1.0 / hours_left / _GPU_S_PER_UNIT  # GPU-s used now -> GPU-hours per hour of what is left
        h.changeColsCost(self.cur_phi.size, self.cur_phi, self.cur_phi_cost_per_h * hours_left)
        left = np.maximum(left_gpu_s, 0.0)
        no_lo = np.full(R, -np.inf)
        h.changeRowsBounds(R, self.cap_rows, no_lo, left * per_h)  # type: ignore[attr-defined]  # not in the stubs
        if self.stock_row0 >= 0:
            free = np.maximum(left - stock_gpu_s, 0.0)
            h.changeRowsBounds(R, self.stock_rows, no_lo, free * per_h)  # type: ignore[attr-defined]
            u_cost = stock_value_usd_per_gpu_s * _GPU_S_PER_UNIT * hours_left / self.cost_scale
            h.changeColsCost(R, self.u_col, u_cost)
        cols = (np.arange(R) * M + m).astype(np.int32)
        xc, xu = np.zeros(self.nx), np.zeros(self.nx)
        xc[cols], xu[cols] = cost_usd[:R] / self.cost_scale, admissible[:R]
        xc[-1], xu[-1] = cost_usd[R] / self.cost_scale, 1.0  # overflow is always admissible
        h.changeColsCost(self.nx, self.x_cols, xc)
        h.changeColsBounds(self.nx, self.x_cols, np.zeros(self.nx), xu)
        for i in np.flatnonzero(admissible[:R]).tolist():
            coef = float(gpu_s[i]) * per_h
            h.changeCoeff(self.cap_row0 + i, int(cols[i]), coef)
            if self.stock_row0 >= 0:
                h.changeCoeff(self.stock_row0 + i, int(cols[i]), 0.0 if captive else coef)
        self.task_cols[:R] = cols
        self.admissible = admissible.copy()
        self.admissible[R] = True

    def solve(self) -> tuple[bool, float, FloatArray, FloatArray]:
        """``(optimal, objective, x [R + 1], reduced costs of x [R + 1])`` of the LP as it stands."""
        h = self.h
        h.run()
        if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
            # A hot start can end in numerical trouble (status "Unknown"): solve again from scratch.
            h.clearSolver()
            h.run()
            if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
                return False, math.inf, np.zeros(0), np.zeros(0)
        sol = h.getSolution()
        x = np.asarray(sol.col_value[: self.nx])[self.task_cols]
        rc = np.asarray(sol.col_dual[: self.nx])[self.task_cols]
        return True, float(h.getInfo().objective_function_value), x, rc

    def fix(self, a: int | None) -> None:
        """Fix task k's action to ``a`` (None: free again among its admissible actions)."""
        lb, ub = np.zeros(self.R + 1), self.admissible.astype(np.float64)
        if a is not None:
            ub = np.zeros(self.R + 1)
            ub[a] = lb[a] = 1.0
        self.h.changeColsBounds(self.R + 1, self.task_cols, lb, ub)


class OnlineMPC:
    """Online MPC: each task placed, at its arrival, by an LP of the rest of its slot and replica window in
    which the future is the instance's demand forecast (see the module docstring).

    Args:
        scenario: the public parameters of the episodes to plan (their regions, nodes, classes and models);
            its sample tasks stand for the forecast demand.
        samples_per_region: sample tasks per home region, shared among its strata (workload class x
            captive or not) by frequency, at least one each: more is closer to the forecast's mix, slower.
        seed: seed of the one draw the samples come from (the same samples for every instance).
        block_h: the window's later slots are pooled in blocks of this many hours (demand, capacity, and
            costs weighted by demand): they only value replicas, and a smaller LP re-solves faster.
        calibrate: rescale the samples' weights to the instance's ``captive_gpu_s_per_h`` forecast.
        safety_level: the safety stock of a region covers its captive arrivals in the rest of the slot with
            this probability (Poisson); None: no stock (certainty equivalence).
        min_slot_left_h: the rest of the current slot is never taken shorter than this, h.
        day_ahead: price the window's later slots with their own signals (day-ahead prices and carbon
            forecasts, which an agent's observation does not show); default: with the current slot's.
    """

    def __init__(
        self,
        scenario: Scenario,
        *,
        samples_per_region: int = 10,
        seed: int = 0,
        block_h: int = 6,
        calibrate: bool = True,
        safety_level: float | None = 0.975,
        min_slot_left_h: float = _MIN_SLOT_LEFT_H,
        day_ahead: bool = False,
    ) -> None:
        for name, value in (("samples_per_region", samples_per_region), ("block_h", block_h)):
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
                raise ValueError(f"{name} = {value!r}: expected an integer >= 1")
        if safety_level is not None and not (isinstance(safety_level, int | float) and 0.5 <= safety_level < 1.0):
            raise ValueError(
                f"safety_level = {safety_level!r}: expected a probability in [0.5, 1) or None (certainty equivalence)"
            )
        if not (isinstance(min_slot_left_h, int | float) and 0.0 < min_slot_left_h <= 1.0):
            raise ValueError(f"min_slot_left_h = {min_slot_left_h!r}: expected hours in (0, 1]")
        self.scenario = scenario
        self.samples_per_region = int(samples_per_region)
        self.seed = seed
        self.block_h = int(block_h)
        self.calibrate = bool(calibrate)
        self.safety_level = None if safety_level is None else float(safety_level)
        self.min_slot_left_h = float(min_slot_left_h)
        self.day_ahead = bool(day_ahead)
        self._samples = _stratified_sample(scenario, self.samples_per_region, seed)
        self.stats: MpcStats | None = None  # of the last plan

    # ------------------------------------------------------------------------------------------ plan
    def plan(self, instance: Instance, follow: ArrayLike | None = None) -> NDArray[np.int64]:
        """The actions of ``instance``'s tasks, each chosen at its arrival from what is known then, played in
        arrival order through the env's dynamics. :attr:`stats` says how it went.

        ``follow``: another policy's actions (one per task), played instead of the MPC's own: the result is
        then the MPC's choice at each state that policy reached (DAgger's labels with the MPC as expert). Each
        must be admissible when played (budget, residency, capacity left); ``ValueError`` names the first
        that is not.
        """
        inst = instance
        self.stats = None
        self._check_compatible(inst)
        t0 = time.perf_counter()
        K, R, W = inst.num_tasks, inst.num_regions, inst.replica_window_h
        played = None if follow is None else _followed(follow, K, R)
        plan = np.full(K, R, dtype=np.int64)
        if K == 0:
            self.stats = MpcStats(0, time.perf_counter() - t0, 0, 0, 0, 0, 0)
            return plan
        fc = self._forecast(inst)
        charge = replica_charge_usd(inst)  # [M] USD per opening
        # Objective unit: a sample task's cheapest action on average, so HiGHS's absolute tolerances stay
        # small against the objective whatever its scale.
        scale = float(np.where(fc.ok, fc.cost_usd, np.inf).min(axis=2).mean())
        scale = scale if math.isfinite(scale) and scale > 0 else 1.0
        # The env's own dynamics keep the live state (GPU-s left, warm replicas) and the live mask.
        batch = EpisodeBatch(1, ObsLayout.of(inst), len(inst.model_names), DEFAULT_REWARD_SCALE, False, False)
        batch.load(0, inst)
        static = batch.mask[0]  # [K, R + 1] budget and residency; row k is read at task k only
        slot_end = inst.slot_end_h
        model: _SlotModel | None = None
        slot = -1
        solves = branched = fallbacks = built = max_cols = 0
        for k in range(K):
            s, m, home = int(inst.slot_idx[k]), int(inst.model_idx[k]), int(inst.home_idx[k])
            if model is None or s != slot:
                cold = ~batch.warm[0].T  # [R, M]
                # Later slots interact with this one only through replicas still cold in the window.
                w_end = min((s // W + 1) * W, inst.num_slots)
                per = _periods(fc, s, w_end, self.block_h, bool(cold.any()), self.day_ahead)
                model = _SlotModel(per, self._samples.model, cold, charge, scale, self.safety_level is not None)
                slot, built, max_cols = s, built + 1, max(max_cols, model.num_col)
            live = batch.action_mask_one()  # [R + 1] budget, residency and the GPU-s left now
            cost, gpu = batch.cost[0, k], batch.gpu[0, k]  # task k's row of the cost matrix (envs.costs)
            a: int | None = R  # nothing to decide when no region can take the task now
            if live[:R].any():
                hours_left = max(float(slot_end[s] - inst.arrival_h[k]), self.min_slot_left_h)
                stock = self._stock_gpu_s(fc, s, hours_left)
                captive = bool(static[k, home]) and int(static[k, :R].sum()) == 1
                model.set_task(
                    m, cost, gpu, live, captive, batch.left[0, :R], hours_left, stock,
                    fc.captive_value_usd_per_gpu_s[s],
                )  # fmt: skip
                a, n, fractional = _choose(model)
                solves, branched = solves + n, branched + fractional
            if a is None or not live[a]:
                a = _cheapest_admissible(cost, live, ~batch.warm[0, m] * charge[m])
                fallbacks += 1
            plan[k] = a
            if played is not None:  # the followed policy's action is the one played
                a = int(played[k])
                if not live[a]:
                    raise ValueError(
                        f"follow[{k}] = {a}: not admissible when played (budget, residency or capacity left); "
                        f"expected one of {np.flatnonzero(live).tolist()}"
                    )
            if a < R and not batch.warm[0, m, a]:
                model.open_replica(a, m)
            batch.advance_one(a)
        self.stats = MpcStats(K, time.perf_counter() - t0, solves, branched, fallbacks, built, max_cols)
        return plan

    def _stock_gpu_s(self, fc: _Forecast, s: int, hours_left: float) -> FloatArray:
        """``[R]`` safety stock, GPU-s: the captive arrivals of the rest of slot s that exceed their mean with
        probability ``1 - safety_level`` (a Poisson quantile), less the mean (already in the fluid), times
        their size-biased mean GPU-s. A quantile, not a multiple of the deviation: a few captive tasks per hour arrive
        as lumps, and one late task overflows when no room is left."""
        if self.safety_level is None:
            return np.zeros(fc.capacity_gpu_s.shape[1])
        mean = fc.captive_rate_per_h[s] * hours_left
        return np.maximum(_poisson_quantile(mean, self.safety_level) - mean, 0.0) * fc.captive_gpu_s[s]

    # ------------------------------------------------------------------------------------------ forecast
    def _forecast(self, inst: Instance) -> _Forecast:
        """The sample tasks set at the start of every slot of ``inst`` and priced there with envs.costs."""
        smp = self._samples
        S, J, R = inst.num_slots, smp.weight.size, inst.num_regions
        fields = {n: np.tile(a, S) for n, a in smp.fields.items()}
        slot_idx = np.repeat(np.arange(S, dtype=np.int64), J)
        fields["slot_idx"], fields["arrival_h"] = slot_idx, slot_idx.astype(np.float64)
        samples = inst.replace(**fields)  # this episode's signals, the sample tasks
        pc = cost_matrix(samples)
        mask = static_mask(samples, pc).reshape(S, J, R + 1)
        cost = pc.total_usd.reshape(S, J, R + 1)
        # A region at least as dear as overflow never helps: overflow uses no capacity and no replica.
        ok = mask & (cost < cost[:, :, R:])
        ok[:, :, R] = True
        regions = mask[0, :, :R]  # the static mask does not depend on the slot
        captive = regions[np.arange(J), smp.home] & (regions.sum(axis=1) == 1)
        weight = _calibrated_weights(smp, captive, inst) if self.calibrate else np.tile(smp.weight, (S, 1))
        rate = inst.arrival_rate_per_h[:, smp.home] * weight  # [S, J]
        by_home = np.zeros((J, R))
        by_home[np.arange(J), smp.home] = captive
        captive_rate = rate @ by_home
        gpu_rate = (rate * smp.gpu_s) @ by_home
        # Size-biased: the task that finds no room tends to be a big one (GPU-s per task are heavy-tailed).
        lump = np.divide((rate * smp.gpu_s**2) @ by_home, gpu_rate, out=np.zeros((S, R)), where=gpu_rate > 0)
        # What serving a captive task at home saves, per GPU-s: its penalty minus its cost there.
        saved = (cost[:, np.arange(J), R] - cost[:, np.arange(J), smp.home]) * rate
        value = np.divide(saved @ by_home, gpu_rate, out=np.zeros((S, R)), where=gpu_rate > 0)
        hours = inst.slot_end_h - np.arange(S)
        gpu = pc.gpu_s.reshape(S, J, R + 1)
        return _Forecast(cost, gpu, ok, rate, hours, inst.capacity_gpu_s, captive_rate, lump, np.maximum(value, 0.0))

    def _check_compatible(self, inst: Instance) -> None:
        sc = self.scenario
        for what, ours, theirs in (
            ("region_names", tuple(sc.region_names), inst.region_names),
            ("node_names", tuple(sc.node_names), inst.node_names),
            ("class_names", tuple(c.name for c in sc.classes), inst.class_names),
            ("model_names", tuple(x.name for x in sc.models), inst.model_names),
        ):
            if tuple(ours) != tuple(theirs):
                raise ValueError(
                    f"instance.{what} = {list(theirs)}: expected the scenario's {list(ours)} "
                    f"(OnlineMPC was built for scenario {sc.name!r})"
                )


# ---------------------------------------------------------------------------------------------- helpers
def _followed(follow: ArrayLike, num_tasks: int, num_regions: int) -> IntArray:
    """``follow`` as ``[K]`` actions, checked: one integer action in ``[0, R]`` per task."""
    arr = np.asarray(follow)
    if arr.shape != (num_tasks,) or (arr.size and arr.dtype.kind not in "iu"):
        raise ValueError(f"follow: expected {num_tasks} integer actions (one per task), got {arr.dtype} {arr.shape}")
    bad = (arr < 0) | (arr > num_regions)
    if bad.any():
        k = int(np.argmax(bad))
        raise ValueError(
            f"follow[{k}] = {int(arr[k])}: expected an action in [0, {num_regions}] ({num_regions} is overflow)"
        )
    return arr.astype(np.int64)


def _choose(model: _SlotModel) -> tuple[int | None, int, bool]:
    """``(action or None if HiGHS failed, LP solves, fractional)``: task k's action, by the LP and, when its
    x is fractional, by branching on task k's action."""
    ok, obj, x, rc = model.solve()
    if not ok:
        return None, 1, False
    best = int(np.argmax(x))
    if x[best] >= _ONE:
        return best, 1, False
    # The support of x first, then the other admissible actions by reduced cost: fixing x[a] = 1 costs at
    # least obj + rc[a] (weak duality), so an action whose bound cannot beat the best so far is skipped.
    cand = np.flatnonzero(model.admissible)
    order = cand[np.lexsort((cand, rc[cand], x[cand] <= 1e-9))]
    best_a, best_obj, solves = None, math.inf, 1
    for a in order.tolist():
        if x[a] <= 1e-9 and obj + rc[a] >= best_obj:
            continue
        model.fix(a)
        ok_a, obj_a, _, _ = model.solve()
        solves += 1
        if ok_a and obj_a < best_obj:
            best_a, best_obj = a, obj_a
    model.fix(None)
    return best_a, solves, True


def _poisson_quantile(mean: FloatArray, level: float) -> FloatArray:
    """The smallest n with ``P(N <= n) >= level`` for ``N ~ Poisson(mean)``, elementwise (as floats); the
    normal approximation above a mean of ``_POISSON_NORMAL_ABOVE``."""
    pmf = np.exp(-np.minimum(mean, _POISSON_NORMAL_ABOVE))  # P(N = 0)
    cdf = pmf.copy()
    n = np.zeros_like(mean)
    for k in range(1, _POISSON_MAX_TERMS):
        below = cdf < level
        if not below.any():
            break
        n[below] = k
        pmf = pmf * mean / k
        cdf = cdf + pmf
    big = mean > _POISSON_NORMAL_ABOVE
    n[big] = np.ceil(mean[big] + NormalDist().inv_cdf(level) * np.sqrt(mean[big]))
    return n


def _cheapest_admissible(cost_usd: FloatArray, live: BoolArray, replica_usd: FloatArray) -> int:
    """The admissible action of least marginal cost (task cost, plus the replica charge where cold): the
    cheapest admissible region, or overflow when none is admissible or overflow is cheaper."""
    R = live.size - 1
    marginal = np.where(live[:R], cost_usd[:R] + replica_usd, np.inf)
    i = int(np.argmin(marginal))
    return i if marginal[i] <= cost_usd[R] else R


def _calibrated_weights(smp: _Samples, captive: BoolArray, inst: Instance) -> FloatArray:
    """``[S, J]`` sample weights per slot, rescaled so that each home's captive samples demand the instance's
    ``captive_gpu_s_per_h`` forecast: a few samples per region estimate that GPU time poorly, and it is what
    a region must keep free for its own.

    Per slot and home: captive samples' weights times ``f = forecast / sampled`` captive GPU-s per task,
    the others' times ``(1 - f c) / (1 - c)`` (c: the captive share; at least 0), so they still sum to 1
    where they can. A home whose forecast has captive demand but whose samples have none is left as is.
    """
    S, R = inst.num_slots, inst.num_regions
    rate = inst.arrival_rate_per_h
    target = np.divide(inst.captive_gpu_s_per_h, rate, out=np.zeros((S, R)), where=rate > 0)  # GPU-s per task
    sampled = np.bincount(smp.home, weights=smp.weight * captive * smp.gpu_s, minlength=R)  # [R]
    share = np.bincount(smp.home, weights=smp.weight * captive, minlength=R)
    f = np.divide(target, sampled, out=np.ones((S, R)), where=sampled > 0)
    g = np.divide(1.0 - f * share, 1.0 - share, out=np.ones((S, R)), where=share < 1.0)
    factor = np.where(captive[None, :], f[:, smp.home], np.maximum(g, 0.0)[:, smp.home])
    return smp.weight[None, :] * factor


def _stratified_sample(scenario: Scenario, per_region: int, seed: int) -> _Samples:
    """The sample tasks of ``scenario`` and their weights, summing to 1 per home region.

    One pool of ``_POOL_TASKS`` tasks is drawn (seed ``seed``) and split, per home region, into strata:
    workload class x captive (only the home region admissible, by the static mask). Each stratum present
    gets at least one representative (its first tasks in the pool) and the ``per_region`` budget is shared
    by frequency (largest remainders); a representative weighs its stratum's frequency over its count.
    Captivity matters: a region must keep room (and, without a permanent replica, open one) for the tasks
    that can run nowhere else, and a plain draw of a few tasks per region often misses them.
    """
    pool = sample_instance(scenario, seed=seed, num_tasks=_POOL_TASKS)
    R = pool.num_regions
    mask = static_mask(pool)[:, :R]
    captive = mask[np.arange(pool.num_tasks), pool.home_idx] & (mask.sum(axis=1) == 1)
    stratum = pool.class_idx * 2 + captive
    picks: list[IntArray] = []
    weights: list[FloatArray] = []
    for r in np.unique(pool.home_idx):
        at_r = np.flatnonzero(pool.home_idx == r)
        count = np.bincount(stratum[at_r], minlength=2 * len(scenario.classes))
        present = np.flatnonzero(count)
        freq = count[present] / at_r.size
        n = np.maximum(1, np.floor(per_region * freq)).astype(np.int64)
        spare = per_region - int(n.sum())
        if spare > 0:
            n[np.argsort(-(per_region * freq - n), kind="stable")[:spare]] += 1
        for st, fr, k in zip(present.tolist(), freq.tolist(), n.tolist(), strict=True):
            found = at_r[stratum[at_r] == st][:k]
            picks.append(found)
            weights.append(np.full(found.size, fr / found.size))
    idx = np.concatenate(picks)
    fields = {name: np.array(getattr(pool, name)[idx]) for name in TASK_FIELDS}
    return _Samples(
        fields=fields,
        weight=np.concatenate(weights),
        home=np.array(pool.home_idx[idx]),
        model=np.array(pool.model_idx[idx]),
        gpu_s=np.array(pool.gpu_s[idx]),
    )


def _csc(
    rows: IntArray, cols: IntArray, vals: FloatArray, num_col: int
) -> tuple[NDArray[np.int32], NDArray[np.int32], FloatArray]:
    """Column-wise (CSC) ``(start, index, value)`` of the entries, rows ascending within each column."""
    o = np.lexsort((rows, cols))
    start = np.searchsorted(cols[o], np.arange(num_col + 1)).astype(np.int32)
    return start, rows[o].astype(np.int32), vals[o].astype(np.float64)
