"""Regret of a plan against the oracle, USD and relative: exact against a proven oracle (:func:`regret`), an
interval against any (:func:`regret_interval`)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from baselines.milp.results import MilpResult
from envs.costs import CostBreakdown, check_plan_feasible, evaluate_plan
from envs.instance import Instance


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


def _cost_of(plan_or_cost: ArrayLike | float | CostBreakdown, instance: Instance) -> float:
    """USD cost of a breakdown, a number (checked finite) or a plan (checked feasible)."""
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


def _check_oracle(oracle: MilpResult, instance: Instance) -> None:
    """Raise unless the oracle's plan fits ``instance`` and costs its recorded objective there."""
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
