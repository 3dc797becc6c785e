"""What the solvers return: one block's statistics, the hindsight oracle's result, the rolling baseline's."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True, slots=True)
class BlockStats:
    """One independently solved block (a replica window, or a slot) of the MILP."""

    window_idx: int
    slots: tuple[int, ...]
    num_tasks: int
    num_vars: int
    num_rows: int
    status: str  # HiGHS model status, e.g. "Optimal", "Time limit reached"
    objective_usd: float  # the block incumbent's cost, re-priced in USD from its columns
    dual_bound_usd: float
    start_usd: float  # objective of the greedy MIP start
    build_s: float  # model arrays and the greedy plans, s
    start_s: float  # LP relaxation (its bound counts) and LP rounding for the MIP start, s
    solve_s: float  # the MILP solve, s
    nodes: int
    # "lp": the LP relaxation's weak-duality bound; "highs": HiGHS's B&B bound; "tasks": each task's cheapest
    # pair (higher than the LP's, e.g. no LP in time); "replicas": the replica search's tree (milp.replicas)
    bound_source: str = ""
    note: str = ""  # anything unusual about this solve


@dataclass(frozen=True, slots=True, eq=False)
class MilpResult:
    """An oracle solve: the plan, its cost, and how far from optimal it is proven to be.

    ``mip_gap = (objective_usd - dual_bound_usd) / |objective_usd|`` (0 when the bound reaches the
    objective) is the true relative gap of the returned plan. ``status`` is ``'optimal'`` iff
    ``mip_gap <= mip_rel_gap``; otherwise ``'time_limit'`` when a block was stopped by the time limit, or
    ``'unproven'`` when HiGHS finished but its bound could not be used to prove the plan (e.g. costs
    spanning many orders of magnitude). A solver failure raises.
    """

    plan: NDArray[np.int64]  # [K] action per task (R = overflow)
    objective_usd: float  # evaluate_plan(instance, plan).total_usd
    dual_bound_usd: float  # proven lower bound on the optimum, USD
    mip_gap: float  # relative
    status: str  # 'optimal' | 'time_limit' | 'unproven'
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
    then exactly the myopic one; its cost is not a bound on anything); otherwise ``'time_limit'`` or
    ``'unproven'``, as for :class:`MilpResult`.
    """

    plan: NDArray[np.int64]  # [K]
    objective_usd: float  # evaluate_plan(instance, plan).total_usd
    status: str  # 'optimal' | 'time_limit' | 'unproven'
    max_slot_gap: float  # worst relative gap among the slot solves
    build_s: float
    solve_s: float
    num_slots: int  # slots with arrivals
