"""geoinfer's problem definition: scenarios, sampled instances, the cost model and masks.

Public names::

    from envs import Scenario, Instance, sample_instance, evaluate_plan, check_plan_feasible, static_mask
"""

from envs.costs import (
    CostBreakdown,
    PairCosts,
    Violation,
    check_plan_feasible,
    cost_matrix,
    evaluate_plan,
    infeasibility_reason,
    pair_costs,
    residency_allowed,
    static_mask,
)
from envs.instance import Instance
from envs.scenario import (
    RESIDENCY_CLASSES,
    ArrivalProcess,
    CostParams,
    ModelClass,
    Scenario,
    TokenTrace,
    WorkloadClass,
)
from envs.workload import sample_instance

__all__ = [
    "RESIDENCY_CLASSES",
    "ArrivalProcess",
    "CostBreakdown",
    "CostParams",
    "Instance",
    "ModelClass",
    "PairCosts",
    "Scenario",
    "TokenTrace",
    "Violation",
    "WorkloadClass",
    "check_plan_feasible",
    "cost_matrix",
    "evaluate_plan",
    "infeasibility_reason",
    "pair_costs",
    "residency_allowed",
    "sample_instance",
    "static_mask",
]
