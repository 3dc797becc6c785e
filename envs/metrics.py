"""The paper's operational metrics, as pure functions of an instance and a plan.

All costs come from :mod:`envs.costs`; nothing here defines a cost.

* **RID** (relocatable inference demand, realised): the share of the IT energy of served tasks that
  runs away from the task's home region.
* **Replica shares** (:func:`replica_shares`): each replica the plan opens (a window w, region i and
  model m where no permanent replica of m is warm) costs ``eta * replica_mult * replica_usd[m]`` in the
  objective, exactly as :func:`envs.costs.evaluate_plan` charges it. That weighted charge is split
  equally among the plan's tasks of model m served in region i in window w, so the shares of all tasks
  add up to the plan's weighted replica charges (``eta * CostBreakdown.replica_usd``). More generally
  ``rho_k(i)`` is the share task k would bear in region i with every other task where the plan put
  it: ``eta * replica_mult * replica_usd[m_k] / n`` where n counts the plan's tasks of model m_k in
  window w_k at i, task k included, and 0 where i holds a permanent replica of m_k (or i is overflow).
* **Net benefit** ``NB_k = [J_k(home) + rho_k(home)] - [J_k(chosen) + rho_k(chosen)]``, per task, in
  USD, with J_k the per-task objective of the cost model. The chosen side bears the task's share of
  the replica it uses; the home side is the same rule applied to the counterfactual "task k alone
  stays home": 0 where a permanent replica is warm at home, a share of the home replica where the plan
  opened it anyway (the task would join ``n`` users, so ``1/(n+1)`` of it), and the whole charge
  where the plan did not open it (staying home would have opened it for this task alone). So a task
  served at home has ``NB = 0``, a relocation that opens a replica nobody else uses is charged all of
  it, and a move away from a home whose replica is cold is not blamed for a charge staying home would
  have paid too. Relocation pays when ``NB > 0``; the **break-even share** is the share of relocated
  tasks with ``NB > 0``. NB is a per-task, others-fixed attribution: summed over tasks it is not the
  saving of the whole plan against the all-home plan (compare ``evaluate_plan`` totals for that).
* **Execution layers**: ``local`` (home region), ``regional`` (another region within
  ``regional_rtt_ms`` round trip of the task's service node), ``energy`` (farther: an energy-oriented
  placement), and ``overflow`` (not served).
* **ERL / CRL** (energy / carbon return on latency) between two budget levels of the same episode:
  energy cost (USD) and carbon (g) saved per ms of budget relaxation, the relaxation being the mean
  per-task budget increase.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from envs.costs import (
    CostBreakdown,
    evaluate_plan,
    pair_costs,
    replica_charge_usd,
    replica_openings,
    replica_usd_per_model,
    replica_users,
    validate_plan,
)
from envs.instance import Instance

LAYERS = ("local", "regional", "energy", "overflow")
DEFAULT_REGIONAL_RTT_MS = 40.0  # a metro-to-metro round trip inside one grid region / country (assumption)


def rid(inst: Instance, plan: ArrayLike, breakdown: CostBreakdown | None = None) -> float:
    """Share of served IT energy executed away from home, in [0, 1] (0 when nothing is served)."""
    bd = evaluate_plan(inst, plan) if breakdown is None else breakdown
    served = bd.task.served
    total = float(bd.task.it_kwh[served].sum())
    return float(bd.task.it_kwh[bd.task.away].sum()) / total if total > 0 else 0.0


def replica_shares(inst: Instance, plan: ArrayLike, region: ArrayLike | None = None) -> NDArray[np.float64]:
    """``[K]`` USD: the weighted replica charge each task bears, ``rho_k``, split equally among users.

    With ``region`` omitted, each task's share at its chosen action under ``plan`` (0 for overflow and
    where a permanent replica is warm); these add up to ``eta * evaluate_plan(inst, plan).replica_usd``.
    With ``region`` (``[K]`` actions), the share task k would bear at ``region[k]`` with every other task
    where ``plan`` put it (task k counted among the users there); overflow entries bear 0.
    """
    arr = validate_plan(inst, plan)
    try:
        at = arr if region is None else validate_plan(inst, region)
    except ValueError as exc:
        raise ValueError(f"region: {exc}") from None
    R = inst.num_regions
    w, m = inst.window_idx, inst.model_idx
    users = replica_users(inst, arr)  # [W, R, M]
    there = at < R
    i = np.where(there, at, 0)
    n = users[w, i, m] + (there & (arr != at))  # task k joins the users at region[k] if not already there
    # A permanent replica costs nothing; any other opening costs what evaluate_plan charges for it.
    charge = np.where(inst.permanent_replica[i, m], 0.0, replica_charge_usd(inst)[m])
    out = np.zeros(inst.num_tasks, dtype=np.float64)
    out[there] = charge[there] / n[there]
    return out


def net_benefit(inst: Instance, plan: ArrayLike) -> NDArray[np.float64]:
    """``[K]`` USD: ``[J_k(home) + rho_k(home)] - [J_k(chosen) + rho_k(chosen)]`` (positive: the move pays).

    ``rho`` is the task's equal share of a replica charge (:func:`replica_shares`); at home it is the
    share the task would bear had it alone stayed home (module docstring). 0 for tasks served at home.
    """
    arr = validate_plan(inst, plan)
    k = np.arange(inst.num_tasks)
    home = pair_costs(inst, k, inst.home_idx).total_usd + replica_shares(inst, arr, inst.home_idx)
    chosen = pair_costs(inst, k, arr).total_usd + replica_shares(inst, arr)
    return home - chosen


@dataclass(frozen=True, slots=True)
class BreakEven:
    """How relocations fared against staying home."""

    relocated: int  # tasks served away from home
    beneficial: int  # ... with NB > 0
    at_loss: int  # ... with NB < 0 (a heuristic, capacity, or a replica charge it bears made them lose)
    net_benefit_usd: float  # sum of NB over relocated tasks (replica shares included)

    @property
    def share(self) -> float:
        """Share of relocated tasks with NB > 0 (0 when nothing was relocated)."""
        return self.beneficial / self.relocated if self.relocated else 0.0


def break_even(inst: Instance, plan: ArrayLike) -> BreakEven:
    """How the plan's relocations (served away from home) fared by :func:`net_benefit`, replica shares included."""
    arr = validate_plan(inst, plan)
    moved = (arr < inst.num_regions) & (arr != inst.home_idx)
    nb = net_benefit(inst, arr)[moved]
    return BreakEven(
        relocated=int(moved.sum()),
        beneficial=int((nb > 0).sum()),
        at_loss=int((nb < 0).sum()),
        net_benefit_usd=float(nb.sum()),
    )


def execution_layers(
    inst: Instance, plan: ArrayLike, regional_rtt_ms: float = DEFAULT_REGIONAL_RTT_MS
) -> NDArray[np.int64]:
    """``[K]`` index into :data:`LAYERS` of each task's execution layer."""
    if not (np.isfinite(regional_rtt_ms) and regional_rtt_ms >= 0):
        raise ValueError(f"regional_rtt_ms = {regional_rtt_ms!r}: expected a number >= 0")
    arr = validate_plan(inst, plan)
    R = inst.num_regions
    served = arr < R
    rtt = inst.node_rtt_ms[inst.node_idx, np.minimum(arr, R - 1)]
    layer = np.where(arr == inst.home_idx, 0, np.where(rtt <= regional_rtt_ms, 1, 2))
    return np.where(served, layer, 3).astype(np.int64)


def layer_shares(inst: Instance, plan: ArrayLike, regional_rtt_ms: float = DEFAULT_REGIONAL_RTT_MS) -> pd.DataFrame:
    """Per workload class: share of its IT energy executed local / regional / energy-oriented, and the
    share of its tasks overflowed. One row per class plus ``all``."""
    bd = evaluate_plan(inst, plan)
    layer = execution_layers(inst, plan, regional_rtt_ms)
    rows = []
    for c, name in [*enumerate(inst.class_names), (-1, "all")]:
        sel = inst.class_idx == c if c >= 0 else np.ones(inst.num_tasks, dtype=bool)
        energy = bd.task.it_kwh[sel]
        total = float(energy.sum())
        row: dict[str, float | str | int] = {"class": name, "tasks": int(sel.sum())}
        for j, lay in enumerate(LAYERS[:3]):
            row[f"{lay}_energy_share"] = float(energy[layer[sel] == j].sum()) / total if total > 0 else 0.0
        row["overflow_task_share"] = float((layer[sel] == 3).mean()) if sel.any() else 0.0
        rows.append(row)
    return pd.DataFrame(rows)


def return_on_latency(
    tight: Instance, plan_tight: ArrayLike, loose: Instance, plan_loose: ArrayLike
) -> tuple[float, float, float]:
    """``(ERL USD/ms, CRL g/ms, delta_tau ms)`` from budget level ``tight`` to ``loose`` (same tasks).

    ``delta_tau`` is the mean per-task budget increase; ERL and CRL are the episode's energy cost and
    carbon saved per ms of it (NaN when the budgets did not change).
    """
    if tight.num_tasks != loose.num_tasks or not np.array_equal(tight.arrival_h, loose.arrival_h):
        raise ValueError("return_on_latency: expected two budget levels of the same episode (same tasks)")
    delta = float(np.mean(loose.budget_ms - tight.budget_ms)) if tight.num_tasks else 0.0
    if delta < 0:
        raise ValueError(
            f"return_on_latency: the loose budgets are {-delta:g} ms tighter on average: expected the "
            "second level to relax the first"
        )
    a, b = evaluate_plan(tight, plan_tight), evaluate_plan(loose, plan_loose)
    erl, crl = returns_per_ms(a.energy_usd - b.energy_usd, a.carbon_g - b.carbon_g, delta)
    return float(erl), float(crl), delta


def returns_per_ms(
    energy_saved_usd: ArrayLike, carbon_saved_g: ArrayLike, delta_tau_ms: ArrayLike
) -> tuple[NDArray[np.float64] | float, NDArray[np.float64] | float]:
    """ERL = energy cost saved / budget relaxed (USD/ms), CRL = carbon saved / budget relaxed (g/ms);
    NaN where nothing was relaxed. Works elementwise on arrays (sweeps) or on numbers."""
    d = np.asarray(delta_tau_ms, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        erl = np.where(d != 0, np.asarray(energy_saved_usd, dtype=np.float64) / d, np.nan)
        crl = np.where(d != 0, np.asarray(carbon_saved_g, dtype=np.float64) / d, np.nan)
    if erl.ndim == 0:
        return float(erl), float(crl)
    return erl, crl


def class_breakdown(inst: Instance, plan: ArrayLike) -> pd.DataFrame:
    """Totals per workload class (replica charges are per region, see :func:`region_breakdown`)."""
    bd = evaluate_plan(inst, plan)
    t = bd.task
    frame = pd.DataFrame(
        {
            "class": np.asarray(inst.class_names)[inst.class_idx],
            "tasks": 1,
            "total_usd": t.total_usd,
            "energy_usd": t.energy_usd,
            "energy_kwh": t.it_kwh,
            "carbon_g": t.carbon_g,
            "delay_usd": t.delay_usd,
            "migration_usd": t.migration_usd,
            "penalty_usd": t.penalty_usd,
            "away_kwh": np.where(t.away, t.it_kwh, 0.0),
        }
    )
    out = frame.groupby("class", sort=False).sum().reindex(list(inst.class_names), fill_value=0).reset_index()
    out["rid"] = (out["away_kwh"] / out["energy_kwh"]).fillna(0.0)  # 0/0: a class with nothing served
    return out.drop(columns="away_kwh")


def region_breakdown(inst: Instance, plan: ArrayLike) -> pd.DataFrame:
    """Per region: tasks, energy, carbon, and replica charges of the plan."""
    arr = validate_plan(inst, plan)
    bd = evaluate_plan(inst, arr)
    R = inst.num_regions
    served = arr < R
    opened = replica_openings(inst, arr)  # [W, R, M]
    replica = (opened * replica_usd_per_model(inst)[None, None, :]).sum(axis=(0, 2))

    def per_region(values: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.bincount(arr[served], weights=values[served], minlength=R).astype(np.float64)

    return pd.DataFrame(
        {
            "region": inst.region_names,
            "tasks": np.bincount(arr[served], minlength=R),
            "relocated_in": np.bincount(arr[served & bd.task.away], minlength=R),
            "energy_kwh": per_region(bd.task.it_kwh),
            "energy_usd": per_region(bd.task.energy_usd),
            "carbon_g": per_region(bd.task.carbon_g),
            "replica_usd": replica,
        }
    )


def summary(inst: Instance, plan: ArrayLike) -> dict[str, float]:
    """The per-plan figures of the experiment tables."""
    bd = evaluate_plan(inst, plan)
    be = break_even(inst, plan)
    return {
        "total_usd": bd.total_usd,
        "energy_usd": bd.energy_usd,
        "energy_kwh": bd.energy_kwh,
        "carbon_g": bd.carbon_g,
        "delay_usd": bd.delay_usd,
        "migration_usd": bd.migration_usd,
        "replica_usd": bd.replica_usd,
        "penalty_usd": bd.penalty_usd,
        "num_overflow": float(bd.num_overflow),
        "rid": rid(inst, plan, bd),
        "relocated": float(be.relocated),
        "break_even_share": be.share,
        "relocated_at_loss": float(be.at_loss),
    }
