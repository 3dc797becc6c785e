"""The MILP's columns: admissible (task, action) pairs, the replica charges they can trigger, and the
independent blocks they fall into."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from envs.costs import PairCosts, replica_charge_usd
from envs.instance import Instance


@dataclass(frozen=True, slots=True)
class Pairs:
    """Admissible (task, action) pairs (the x columns) and the replica charges they can trigger (the y columns)."""

    task: NDArray[np.int64]  # [P] task index
    action: NDArray[np.int64]  # [P] action, R = overflow
    cost_usd: NDArray[np.float64]  # [P] pair_costs(...).total_usd
    gpu_s: NDArray[np.float64]  # [P] GPU-seconds in the arrival slot (0 for overflow)
    slot_region: NDArray[np.int64]  # [P] capacity row key slot * R + region, -1 for overflow
    replica: NDArray[np.int64]  # [P] index into replica_key, -1 when no replica charge can arise
    replica_key: NDArray[np.int64]  # [Y] (window * R + region) * M + model
    replica_cost_usd: NDArray[np.float64]  # [Y] replica_charge_usd[model]: eta x the charge, USD

    def take(self, idx: NDArray[np.int64]) -> Pairs:
        """The pairs ``idx`` (replica indices unchanged)."""
        return Pairs(
            task=self.task[idx],
            action=self.action[idx],
            cost_usd=self.cost_usd[idx],
            gpu_s=self.gpu_s[idx],
            slot_region=self.slot_region[idx],
            replica=self.replica[idx],
            replica_key=self.replica_key,
            replica_cost_usd=self.replica_cost_usd,
        )

    def assignment_cost(self, chosen: NDArray[np.bool_]) -> float:
        """USD cost of the ``chosen [P]`` pairs, each replica they need charged once."""
        used = np.zeros(self.replica_key.size, dtype=bool)
        used[self.replica[chosen & (self.replica >= 0)]] = True
        return float(self.cost_usd[chosen].sum() + self.replica_cost_usd[used].sum())


def admissible_pairs(
    inst: Instance,
    pc: PairCosts,
    mask: NDArray[np.bool_],
    tasks: NDArray[np.int64],
    warm: NDArray[np.bool_] | None = None,
    fixed: NDArray[np.bool_] | None = None,
) -> Pairs:
    """Columns for ``tasks`` among ``mask [K, R + 1]``. ``warm [W, R, M]``: replicas already open (free), as
    for rolling solves. ``fixed [K]``: tasks whose one admissible pair in ``mask`` is kept whatever it costs
    (a prefix of the plan, fixed)."""
    R, M = inst.num_regions, len(inst.model_names)
    kk, aa = np.nonzero(mask[tasks])
    k = tasks[kk]
    cost = pc.total_usd[k, aa]
    # A served pair costing at least the overflow penalty is never needed: overflow does as well and
    # frees capacity and replicas, so dropping it keeps the optimum.
    keep = (aa == R) | (cost < pc.total_usd[k, R])
    if fixed is not None:
        keep |= fixed[k]
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
    replica_key, inv = np.unique(key[need], return_inverse=True)
    replica = np.full(k.size, -1, dtype=np.int64)
    replica[need] = inv
    return Pairs(
        task=k,
        action=aa,
        cost_usd=cost,
        gpu_s=pc.gpu_s[k, aa],
        slot_region=np.where(served, inst.slot_idx[k] * R + region, -1),
        replica=replica,
        replica_key=replica_key,
        replica_cost_usd=replica_charge_usd(inst)[replica_key % M],
    )


def independent_blocks(inst: Instance, pairs: Pairs) -> list[NDArray[np.int64]]:
    """Independent blocks as arrays of pair indices: slots joined when they share a replica variable.

    Exact because capacity rows live in one slot and replica rows in one window, and every task in one
    slot; blocks never share a variable or a row.
    """
    slot = inst.slot_idx[pairs.task]
    roots = _slot_roots(inst.num_slots, slot, pairs.replica)
    block_of = roots[slot]
    order = np.argsort(block_of, kind="stable")
    cuts = np.flatnonzero(np.diff(block_of[order])) + 1
    return [b for b in np.split(order, cuts) if b.size]


def _slot_roots(num_slots: int, slot: NDArray[np.int64], replica: NDArray[np.int64]) -> NDArray[np.int64]:
    """``[S]`` a representative slot per slot, equal for slots joined by a replica (union-find)."""
    parent = np.arange(num_slots)

    def find(s: int) -> int:
        while parent[s] != s:
            parent[s] = parent[parent[s]]
            s = int(parent[s])
        return s

    has = replica >= 0
    for r in np.unique(replica[has]):  # few replica variables: a loop over them is cheap
        ss = np.unique(slot[has & (replica == r)])
        root = find(int(ss[0]))
        for s in ss[1:]:
            parent[find(int(s))] = root
    return np.array([find(s) for s in range(num_slots)])
