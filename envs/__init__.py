"""geoinfer's problem definition: scenarios, sampled instances, the cost model and masks.

Public names::

    from envs import Scenario, Instance, sample_instance, evaluate_plan, check_plan_feasible, static_mask

Importing ``envs`` registers the Gymnasium id ``geoinfer/Placement-v0`` (single env and native vector env),
the paper-faithful default, and one id per benchmark task (``envs.TASK_IDS``, see :mod:`envs.tasks`).
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
from envs.tasks import TASKS, Task, get_task
from envs.workload import sample_instance

ENV_ID = "geoinfer/Placement-v0"

if ENV_ID not in gymnasium.registry:
    gymnasium.register(
        id=ENV_ID,
        entry_point="envs.placement:PlacementEnv",
        vector_entry_point="envs.vector:PlacementVectorEnv",
    )
# The benchmark tasks: random episodes of their training days (envs.tasks); evaluate on Task.instances().
for _task in TASKS.values():
    if _task.env_id not in gymnasium.registry:
        gymnasium.register(
            id=_task.env_id,
            entry_point="envs.placement:PlacementEnv",
            vector_entry_point="envs.vector:PlacementVectorEnv",
            kwargs={"scenario": _task.name, "split": "train"},
        )
TASK_IDS = tuple(t.env_id for t in TASKS.values())

__all__ = [
    "ENV_ID",
    "NAMED_SCENARIOS",
    "RESIDENCY_CLASSES",
    "TASKS",
    "TASK_IDS",
    "ArrivalProcess",
    "CostBreakdown",
    "CostParams",
    "Instance",
    "ModelClass",
    "PairCosts",
    "Scenario",
    "Task",
    "TokenTrace",
    "Violation",
    "WorkloadClass",
    "__version__",
    "check_plan_feasible",
    "cost_matrix",
    "evaluate_plan",
    "get_task",
    "infeasibility_reason",
    "pair_costs",
    "residency_allowed",
    "sample_instance",
    "static_mask",
]
