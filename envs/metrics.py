"""The paper's operational metrics, as pure functions of an instance and a plan.

All costs come from :mod:`envs.costs`; nothing here defines a cost.

* **RID** (relocatable inference demand, realised): the share of the IT energy of served tasks that
  runs away from the task's home region.
* **Net benefit** ``NB_k = J_k(home) - J_k(chosen)``, per task, in USD (the per-task objective of the
  cost model, replica charges excluded since they belong to no single task). Relocation pays when
  ``NB > 0``; the **break-even share** is the share of relocated tasks with ``NB > 0``.
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

from envs.costs import CostBreakdown, evaluate_plan, pair_costs, replica_openings, replica_usd_per_model, validate_plan
from envs.instance import Instance

LAYERS = ("local", "regional", "energy", "overflow")
DEFAULT_REGIONAL_RTT_MS = 40.0  # a metro-to-metro round trip inside one grid region / country (assumption)


def rid(inst: Instance, plan: ArrayLike, breakdown: CostBreakdown | None = None) -> float:
    """Share of served IT energy executed away from home, in [0, 1] (0 when nothing is served)."""
    bd = evaluate_plan(inst, plan) if breakdown is None else breakdown
    served = bd.task.served
    total = float(bd.task.it_kwh[served].sum())
    return float(bd.task.it_kwh[bd.task.away].sum()) / total if total > 0 else 0.0


def net_benefit(inst: Instance, plan: ArrayLike) -> NDArray[np.float64]:
    """``[K]`` USD: per-task objective at home minus at the chosen action (positive: the move pays)."""
    arr = validate_plan(inst, plan)
    k = np.arange(inst.num_tasks)
    return pair_costs(inst, k, inst.home_idx).total_usd - pair_costs(inst, k, arr).total_usd


@dataclass(frozen=True, slots=True)
class BreakEven:
    """How relocations fared against staying home."""

    relocated: int  # tasks served away from home
    beneficial: int  # ... with NB > 0
    at_loss: int  # ... with NB < 0 (a heuristic, or capacity, pushed them)
    net_benefit_usd: float  # sum of NB over relocated tasks

    @property
    def share(self) -> float:
        """Share of relocated tasks with NB > 0 (0 when nothing was relocated)."""
        return self.beneficial / self.relocated if self.relocated else 0.0


def break_even(inst: Instance, plan: ArrayLike) -> BreakEven:
    arr = validate_plan(inst, plan)
    moved = (arr < inst.num_regions) & (arr != inst.home_idx)
    nb = net_benefit(inst, arr)[moved]
    return BreakEven(relocated=int(moved.sum()), beneficial=int((nb > 0).sum()), at_loss=int((nb < 0).sum()),
                     net_benefit_usd=float(nb.sum()))


def execution_layers(inst: Instance, plan: ArrayLike,
                     regional_rtt_ms: float = DEFAULT_REGIONAL_RTT_MS) -> NDArray[np.int64]:
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


def return_on_latency(tight: Instance, plan_tight: ArrayLike, loose: Instance,
                      plan_loose: ArrayLike) -> tuple[float, float, float]:
    """``(ERL USD/ms, CRL g/ms, delta_tau ms)`` from budget level ``tight`` to ``loose`` (same tasks).

    ``delta_tau`` is the mean per-task budget increase; ERL and CRL are the episode's energy cost and
    carbon saved per ms of it (NaN when the budgets did not change).
    """
    if tight.num_tasks != loose.num_tasks or not np.array_equal(tight.arrival_h, loose.arrival_h):
        raise ValueError("return_on_latency: expected two budget levels of the same episode (same tasks)")
    delta = float(np.mean(loose.budget_ms - tight.budget_ms)) if tight.num_tasks else 0.0
    if delta < 0:
        raise ValueError(f"return_on_latency: the loose budgets are {-delta:g} ms tighter on average: expected the "
                         "second level to relax the first")
    a, b = evaluate_plan(tight, plan_tight), evaluate_plan(loose, plan_loose)
    erl, crl = returns_per_ms(a.energy_usd - b.energy_usd, a.carbon_g - b.carbon_g, delta)
    return float(erl), float(crl), delta


def returns_per_ms(energy_saved_usd: ArrayLike, carbon_saved_g: ArrayLike, delta_tau_ms: ArrayLike
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
    frame = pd.DataFrame({
        "class": np.asarray(inst.class_names)[inst.class_idx], "tasks": 1, "total_usd": t.total_usd,
        "energy_usd": t.energy_usd, "energy_kwh": t.it_kwh, "carbon_g": t.carbon_g, "delay_usd": t.delay_usd,
        "migration_usd": t.migration_usd, "penalty_usd": t.penalty_usd, "away_kwh": np.where(t.away, t.it_kwh, 0.0),
    })
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

    return pd.DataFrame({
        "region": inst.region_names,
        "tasks": np.bincount(arr[served], minlength=R),
        "relocated_in": np.bincount(arr[served & bd.task.away], minlength=R),
        "energy_kwh": per_region(bd.task.it_kwh),
        "energy_usd": per_region(bd.task.energy_usd),
        "carbon_g": per_region(bd.task.carbon_g),
        "replica_usd": replica,
    })


def summary(inst: Instance, plan: ArrayLike) -> dict[str, float]:
    """The per-plan figures of the experiment tables."""
    bd = evaluate_plan(inst, plan)
    be = break_even(inst, plan)
    return {
        "total_usd": bd.total_usd, "energy_usd": bd.energy_usd, "energy_kwh": bd.energy_kwh, "carbon_g": bd.carbon_g,
        "delay_usd": bd.delay_usd, "migration_usd": bd.migration_usd, "replica_usd": bd.replica_usd,
        "penalty_usd": bd.penalty_usd, "num_overflow": float(bd.num_overflow), "rid": rid(inst, plan, bd),
        "relocated": float(be.relocated), "break_even_share": be.share, "relocated_at_loss": float(be.at_loss),
    }
