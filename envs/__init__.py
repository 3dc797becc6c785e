"""geoinfer's problem definition: scenarios, sampled instances, the cost model and masks.

Public names::

    from envs import Scenario, Instance, sample_instance, evaluate_plan, check_plan_feasible, static_mask

Importing ``envs`` registers the Gymnasium id ``geoinfer/Placement-v0`` (single env and native vector env).
"""

import gymnasium

__version__ = "0.2.0.dev0"  # geoinfer's version (pyproject.toml reads it from here); see CHANGELOG.md

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
    NAMED_SCENARIOS,
    RESIDENCY_CLASSES,
    ArrivalProcess,
    CostParams,
    ModelClass,
    Scenario,
    TokenTrace,
    WorkloadClass,
)
from envs.workload import sample_instance

ENV_ID = "geoinfer/Placement-v0"

if ENV_ID not in gymnasium.registry:
    gymnasium.register(
        id=ENV_ID,
        entry_point="envs.placement:PlacementEnv",
        vector_entry_point="envs.vector:PlacementVectorEnv",
    )

__all__ = [
    "ENV_ID",
    "NAMED_SCENARIOS",
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
    "__version__",
    "check_plan_feasible",
    "cost_matrix",
    "evaluate_plan",
    "infeasibility_reason",
    "pair_costs",
    "residency_allowed",
    "sample_instance",
    "static_mask",
]
