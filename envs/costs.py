"""The cost model and the masks: the only definition of cost and feasibility in geoinfer.

Everything is vectorised over ``[task, action]`` pairs; action ``a < R`` runs the task in region ``a``
and action ``R`` is the **overflow** action (the task is not served). For task k with home region h,
service node n, slot s, and region i (``away = i != h``; ``c = cache_mult * away``):

====================  =========================================================================  ========
quantity              formula                                                                    unit
====================  =========================================================================  ========
latency L_k(i)        client[n] + rounds_k * rtt[n, i] + queue[i] + inference_k + c * cache_ms_k  ms
GPU time              gpu_s_k + c * cache_gpu_s_k                                                GPU-s
IT energy             energy_kwh_k + c * cache_kwh_k                                             kWh
facility energy F     IT energy * PUE[s, i]                                                      kWh
energy cost           F * price[s, i]                                                            USD
carbon                F * carbon[s, i]                                                           g CO2
carbon cost           carbon * carbon_price / 1e6                                                USD
delay penalty         delay_usd_per_ms_k * L_k(i)                                                USD
state transfer        state_mult * state_gb_k * transfer[h, i]          (zero at home)           USD
response egress       egress_mult * response_gb_k * transfer[i, h]      (zero at home)           USD
migration             state transfer + response egress                                           USD
====================  =========================================================================  ========

The KV-cache friction is physical: the recomputed prefill appears as extra GPU time, energy (so
energy cost and carbon at the region's own signals) and latency. The overflow action costs the SLO
penalty ``overflow_usd_k`` and nothing else: no energy, no capacity, no latency.

Per task: ``J_k = alpha*energy + beta*carbon_cost + gamma*delay + eta*migration + penalty``.

Replica charges couple tasks: a region i that serves model m in replica window w without a permanent
replica of m pays ``replica_mult * replica_usd[m]`` once for (w, i, m). The episode objective is
``sum_k J_k + eta * replica``.

Masks: region i is admissible for task k iff ``L_k(i) <= budget_k`` and the residency rule allows
it (:func:`residency_allowed`); the overflow action is always admissible. Capacity is the dynamic
constraint: per slot s and region i, the GPU time placed there is at most ``capacity_gpu_s[s, i]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from envs.instance import Instance

# The version of the cost model's rules written in code (what a pair costs, capacity per slot, replica
# windows, free permanent replicas). Bump it with any change to them: shipped optimality certificates
# (benchmark.certificates) carry it and are refused under another version.
COST_MODEL_VERSION = 1
# Slack on capacity checks, for sums of floating GPU-seconds taken in different orders.
CAPACITY_RTOL = 1e-9
CAPACITY_ATOL_GPU_S = 1e-9


def capacity_limit_gpu_s(capacity_gpu_s: ArrayLike, share: float = 1.0) -> NDArray[np.float64]:
    """The most GPU-seconds a slot and region may hold: its capacity plus ``share`` of the float slack.

    :func:`check_plan_feasible` allows the whole slack; the env's masks allow half of it
    (``share=0.5``), so a plan the env accepts task by task always passes the plan-level check, and
    a plan within solver tolerance of the capacity (the MILP's) still replays through the env.
    """
    cap = np.asarray(capacity_gpu_s, dtype=np.float64)
    return cap + share * (CAPACITY_RTOL * cap + CAPACITY_ATOL_GPU_S)


def replica_usd_per_model(inst: Instance) -> NDArray[np.float64]:
    """``[M]`` unweighted replica charge, USD, per (window, region) opening of each model."""
    return inst.cost.replica_mult * inst.replica_usd


def replica_charge_usd(inst: Instance) -> NDArray[np.float64]:
    """``[M]`` weighted charge of one (window, region) opening of each model, USD: ``eta`` times
    :func:`replica_usd_per_model`, what the objective adds per replica opened."""
    return inst.cost.eta * replica_usd_per_model(inst)


def legal_and_in_budget(inst: Instance, task_idx: NDArray[np.int64], pc: PairCosts) -> NDArray[np.bool_]:
    """``[k, R+1]`` static mask rows of tasks ``task_idx`` from their precomputed ``[k, R+1]`` pair costs."""
    R = inst.num_regions
    legal = inst.residency_ok[inst.node_idx[task_idx], inst.residency_idx[task_idx], :]
    mask = np.ones((task_idx.size, R + 1), dtype=bool)
    mask[:, :R] = legal & (pc.latency_ms[:, :R] <= inst.budget_ms[task_idx, None])
    return mask


def residency_allowed(
    mode: str,
    node_country: Sequence[str],
    node_in_eu: NDArray[np.bool_],
    region_country: Sequence[str],
    region_in_eu: NDArray[np.bool_],
    region_adequacy: NDArray[np.bool_],
) -> NDArray[np.bool_]:
    """``[N, 3, R]``: may data of residency class r from node n be processed in region i?

    Residency classes: 0 ``global`` (anywhere), 1 ``regional`` (an EU/EEA node's data stays in the
    EU/EEA, and with mode ``adequacy`` may also go to countries with an EU adequacy decision; other
    nodes' data stays in their country), 2 ``domestic`` (stays in the node's country). Mode ``off``
    allows everything; ``strict`` and ``adequacy`` differ only for EU/EEA nodes' regional data.
    """
    nc, rc = np.asarray(node_country)[:, None], np.asarray(region_country)[None, :]
    N, R = nc.shape[0], rc.shape[1]
    out = np.ones((N, 3, R), dtype=bool)
    if mode == "off":
        return out
    if mode not in ("strict", "adequacy"):
        raise ValueError(f"residency mode {mode!r}: expected one of ('off', 'strict', 'adequacy')")
    same_country = nc == rc
    eu_bloc = np.asarray(region_in_eu, dtype=bool)[None, :]
    if mode == "adequacy":
        eu_bloc = eu_bloc | np.asarray(region_adequacy, dtype=bool)[None, :]
    out[:, 1, :] = np.where(np.asarray(node_in_eu, dtype=bool)[:, None], eu_bloc, same_country)
    out[:, 2, :] = same_country
    return out


@dataclass(frozen=True, slots=True)
class PairCosts:
    """Cost components for (task, action) pairs; every array has the broadcast shape of the pairs."""

    served: NDArray[np.bool_]  # action is a region (not overflow)
    away: NDArray[np.bool_]  # served away from the home region
    latency_ms: NDArray[np.float64]  # 0 for overflow
    gpu_s: NDArray[np.float64]  # GPU-seconds consumed in the arrival slot
    it_kwh: NDArray[np.float64]  # IT energy, kWh (includes the recomputed cache)
    cache_kwh: NDArray[np.float64]  # the recomputed-cache part of it_kwh
    facility_kwh: NDArray[np.float64]
    energy_usd: NDArray[np.float64]
    carbon_g: NDArray[np.float64]
    carbon_usd: NDArray[np.float64]
    delay_usd: NDArray[np.float64]
    state_usd: NDArray[np.float64]
    egress_usd: NDArray[np.float64]
    penalty_usd: NDArray[np.float64]
    total_usd: NDArray[np.float64]  # weighted per-task objective J, replica charges excluded

    @property
    def migration_usd(self) -> NDArray[np.float64]:
        return self.state_usd + self.egress_usd


def pair_costs(inst: Instance, task_idx: ArrayLike, action: ArrayLike) -> PairCosts:
    """Cost components of running tasks ``task_idx`` with actions ``action`` (broadcast together).

    ``pair_costs(inst, np.arange(K)[:, None], np.arange(R + 1)[None, :])`` is the full ``[K, R+1]``
    cost matrix; ``pair_costs(inst, np.arange(K), plan)`` the costs of a plan.
    """
    k = np.asarray(task_idx, dtype=np.int64)
    a = np.asarray(action, dtype=np.int64)
    p = inst.cost
    home = inst.home_idx[k]
    served = a < inst.num_regions
    region = np.where(served, a, home)  # overflow pairs read the home column, then are zeroed
    away = served & (region != home)
    c = away * p.cache_mult
    slot, node = inst.slot_idx[k], inst.node_idx[k]
    gpu_s = served * (inst.gpu_s[k] + c * inst.cache_gpu_s[k])
    cache_kwh = c * inst.cache_kwh[k]
    it_kwh = served * (inst.energy_kwh[k] + cache_kwh)
    facility_kwh = it_kwh * inst.pue[slot, region]
    energy_usd = facility_kwh * inst.price_usd_per_kwh[slot, region]
    carbon_g = facility_kwh * inst.carbon_g_per_kwh[slot, region]
    carbon_usd = carbon_g * (p.carbon_price_usd_per_t / 1e6)
    latency_ms = served * (
        inst.node_client_ms[node]
        + inst.rounds[k] * inst.node_rtt_ms[node, region]
        + inst.queue_ms[region]
        + inst.inference_ms[k]
        + c * inst.cache_ms[k]
    )
    delay_usd = inst.delay_usd_per_ms[k] * latency_ms
    # `away`, not `served`: frictions are zero at home whatever the transfer matrix's diagonal holds.
    state_usd = away * (p.state_mult * inst.state_gb[k] * inst.transfer_usd_per_gb[home, region])
    egress_usd = away * (p.egress_mult * inst.response_gb[k] * inst.transfer_usd_per_gb[region, home])
    penalty_usd = ~served * inst.overflow_usd[k]
    total_usd = (
        p.alpha * energy_usd
        + p.beta * carbon_usd
        + p.gamma * delay_usd
        + p.eta * (state_usd + egress_usd)
        + penalty_usd
    )
    return PairCosts(
        served=served,
        away=away,
        latency_ms=latency_ms,
        gpu_s=gpu_s,
        it_kwh=it_kwh,
        cache_kwh=cache_kwh,
        facility_kwh=facility_kwh,
        energy_usd=energy_usd,
        carbon_g=carbon_g,
        carbon_usd=carbon_usd,
        delay_usd=delay_usd,
        state_usd=state_usd,
        egress_usd=egress_usd,
        penalty_usd=penalty_usd,
        total_usd=total_usd,
    )


def cost_matrix(inst: Instance) -> PairCosts:
    """All ``[K, R+1]`` pairs (the last column is the overflow action)."""
    return pair_costs(inst, np.arange(inst.num_tasks)[:, None], np.arange(inst.num_actions)[None, :])


def home_latency_ms(inst: Instance) -> NDArray[np.float64]:
    """``[K]`` latency of each task at its home region (what budgets are measured from)."""
    return pair_costs(inst, np.arange(inst.num_tasks), inst.home_idx).latency_ms


def static_mask(inst: Instance, costs: PairCosts | None = None) -> NDArray[np.bool_]:
    """``[K, R+1]`` admissible actions ignoring capacity: budget and residency; overflow always True.

    ``costs`` may pass a precomputed :func:`cost_matrix` to avoid computing it twice.
    """
    pc = cost_matrix(inst) if costs is None else costs
    return legal_and_in_budget(inst, np.arange(inst.num_tasks), pc)


def validate_plan(inst: Instance, plan: ArrayLike) -> NDArray[np.int64]:
    """Check a plan's shape and values; return it as int64 or raise ``ValueError`` saying what is wrong."""
    arr = np.asarray(plan)
    K, A = inst.num_tasks, inst.num_actions
    if arr.shape != (K,):
        raise ValueError(f"plan has shape {arr.shape}: expected ({K},), one action per task")
    if arr.dtype.kind not in "iu":
        if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise ValueError(f"plan has dtype {arr.dtype}: expected integer actions in [0, {A})")
    bad = (arr < 0) | (arr >= A)
    if bad.any():
        k = int(np.argmax(bad))
        raise ValueError(f"plan[{k}] = {int(arr[k])}: expected an action in [0, {A}) ({A - 1} is overflow)")
    return arr.astype(np.int64, copy=False)


def replica_users(inst: Instance, plan: ArrayLike) -> NDArray[np.int64]:
    """``[W, R, M]``: how many tasks ``plan`` serves in each replica window, region and model."""
    arr = validate_plan(inst, plan)
    W, R, M = inst.num_windows, inst.num_regions, len(inst.model_names)
    served = arr < R
    key = (inst.window_idx[served] * R + arr[served]) * M + inst.model_idx[served]
    return np.bincount(key, minlength=W * R * M).reshape(W, R, M)


def replica_openings(inst: Instance, plan: ArrayLike) -> NDArray[np.bool_]:
    """``[W, R, M]``: windows, regions and models where ``plan`` pays a replica charge (used, and no
    permanent replica there)."""
    return (replica_users(inst, plan) > 0) & ~inst.permanent_replica[None, :, :]


@dataclass(frozen=True, slots=True, eq=False)
class CostBreakdown:
    """The cost of a plan: per-task components (``task_*``, USD unless named) and episode totals.

    ``total_usd = sum(task_total_usd) + eta * replica_usd``; component totals are unweighted.
    """

    plan: NDArray[np.int64]
    task: PairCosts  # per-task components, shape [K]
    replica_usd: float  # unweighted replica charges (friction multiplier applied)
    replicas_opened: int
    eta: float

    @property
    def total_usd(self) -> float:
        return float(self.task.total_usd.sum() + self.eta * self.replica_usd)

    @property
    def energy_usd(self) -> float:
        return float(self.task.energy_usd.sum())

    @property
    def energy_kwh(self) -> float:
        """IT energy, kWh."""
        return float(self.task.it_kwh.sum())

    @property
    def facility_kwh(self) -> float:
        return float(self.task.facility_kwh.sum())

    @property
    def carbon_g(self) -> float:
        return float(self.task.carbon_g.sum())

    @property
    def carbon_usd(self) -> float:
        return float(self.task.carbon_usd.sum())

    @property
    def delay_usd(self) -> float:
        return float(self.task.delay_usd.sum())

    @property
    def migration_usd(self) -> float:
        """State transfer plus response egress (replica charges are reported apart)."""
        return float(self.task.migration_usd.sum())

    @property
    def penalty_usd(self) -> float:
        return float(self.task.penalty_usd.sum())

    @property
    def num_overflow(self) -> int:
        return int((~self.task.served).sum())

    def summary(self) -> dict[str, float]:
        """Episode totals as a flat dict (for tables)."""
        return {
            "total_usd": self.total_usd,
            "energy_usd": self.energy_usd,
            "energy_kwh": self.energy_kwh,
            "carbon_g": self.carbon_g,
            "carbon_usd": self.carbon_usd,
            "delay_usd": self.delay_usd,
            "migration_usd": self.migration_usd,
            "replica_usd": self.replica_usd,
            "penalty_usd": self.penalty_usd,
            "num_overflow": float(self.num_overflow),
            "replicas_opened": float(self.replicas_opened),
        }


def evaluate_plan(inst: Instance, plan: ArrayLike) -> CostBreakdown:
    """The cost of ``plan`` (one action per task) on ``inst``: the one definition of a plan's cost.

    Feasibility is not checked here (see :func:`check_plan_feasible`): an infeasible plan still has a
    well-defined cost.
    """
    arr = validate_plan(inst, plan)
    task = pair_costs(inst, np.arange(inst.num_tasks), arr)
    opened = replica_openings(inst, arr)
    replica_usd = float((opened * replica_usd_per_model(inst)[None, None, :]).sum())
    return CostBreakdown(
        plan=arr, task=task, replica_usd=replica_usd, replicas_opened=int(opened.sum()), eta=inst.cost.eta
    )


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken constraint of a plan."""

    kind: str  # "latency" | "residency" | "capacity"
    task_idx: int  # -1 for capacity
    slot_idx: int
    region_idx: int
    message: str

    def __str__(self) -> str:
        return self.message


def infeasibility_reason(inst: Instance, task_idx: int, action: int) -> str | None:
    """Why ``action`` is inadmissible for task ``task_idx`` ignoring capacity, or None if admissible."""
    if action == inst.overflow_action:
        return None
    k, i = int(task_idx), int(action)
    node, res = int(inst.node_idx[k]), int(inst.residency_idx[k])
    if not inst.residency_ok[node, res, i]:
        kind = ("global", "regional", "domestic")[res]
        return (
            f"residency: {kind} data from service node {inst.node_names[node]!r} may not be processed in "
            f"{inst.region_names[i]!r}"
        )
    lat = float(pair_costs(inst, k, i).latency_ms)
    if lat > inst.budget_ms[k]:
        return f"latency: {lat:.1f} ms in {inst.region_names[i]!r} exceeds the budget of {inst.budget_ms[k]:.1f} ms"
    return None


def slot_usage_gpu_s(inst: Instance, plan: ArrayLike, task: PairCosts | None = None) -> NDArray[np.float64]:
    """``[S, R]`` GPU-seconds a plan places in each slot and region."""
    arr = validate_plan(inst, plan)
    pc = pair_costs(inst, np.arange(inst.num_tasks), arr) if task is None else task
    S, R = inst.num_slots, inst.num_regions
    served = arr < R
    flat = inst.slot_idx[served] * R + arr[served]
    usage = np.bincount(flat, weights=pc.gpu_s[served], minlength=S * R)
    return usage.reshape(S, R).astype(np.float64, copy=False)


def check_plan_feasible(inst: Instance, plan: ArrayLike) -> list[Violation]:
    """Every violated constraint of ``plan``: budgets, residency, and capacity per slot and region.

    An empty list means the plan is feasible. Checked independently of the masks that enforce it.
    """
    arr = validate_plan(inst, plan)
    K, R = inst.num_tasks, inst.num_regions
    task = pair_costs(inst, np.arange(K), arr)
    out: list[Violation] = []
    served = arr < R
    region = np.where(served, arr, 0)
    legal = inst.residency_ok[inst.node_idx, inst.residency_idx, region]
    late = task.latency_ms > inst.budget_ms
    for k in np.flatnonzero(served & (~legal | late)):
        reason = infeasibility_reason(inst, int(k), int(arr[k]))
        kind = "residency" if not legal[k] else "latency"
        out.append(Violation(kind, int(k), int(inst.slot_idx[k]), int(arr[k]), f"task {k}: {reason}"))
    usage = slot_usage_gpu_s(inst, arr, task)
    over = usage > capacity_limit_gpu_s(inst.capacity_gpu_s)
    for s, i in np.argwhere(over):
        out.append(
            Violation(
                "capacity",
                -1,
                int(s),
                int(i),
                f"capacity: slot {s}, region {inst.region_names[i]!r} uses {usage[s, i]:.1f} GPU-s "
                f"of {inst.capacity_gpu_s[s, i]:.1f}",
            )
        )
    return out
