"""One block's MILP as HiGHS arrays: x columns for the block's pairs, y columns for its replicas, and the
rows (assignment, capacity, replica linking), each group built by its own function."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import highspy
import numpy as np
from numpy.typing import NDArray

from baselines.milp.pairs import Pairs
from envs.instance import Instance

Linking = Literal["strong", "weak"]
Method = Literal["decompose", "direct"]


class SilentHighs(highspy.Highs):
    """``highspy.Highs`` silent from the start: its constructor registers callbacks, which prints HiGHS's
    banner on the user's terminal unless ``output_flag`` is already off (``verbose`` turns it on again)."""

    def enableCallbacks(self) -> None:
        self.silent()
        super().enableCallbacks()


@dataclass(frozen=True, slots=True)
class BlockModel:
    """One block's MILP as HiGHS arrays (columns: x for the block's pairs, then y for its replicas)."""

    num_col: int
    num_row: int
    col_cost: NDArray[np.float64]  # [num_col] USD
    row_lo: NDArray[np.float64]  # [num_row]
    row_hi: NDArray[np.float64]  # [num_row]
    a_start: NDArray[np.int32]  # [num_col + 1] column-wise (CSC) constraint matrix
    a_index: NDArray[np.int32]
    a_value: NDArray[np.float64]
    task_row: NDArray[np.int64]  # [P_b] assignment row (local task) of each x column
    replica_of: NDArray[np.int64]  # [P_b] local y index needed by each x column, -1 if none
    num_tasks: int
    num_x: int
    # USD per unit of the objective HiGHS sees: the mean over tasks of each task's cheapest action, so
    # HiGHS's absolute tolerances (dual feasibility 1e-7 on reduced costs) stay small against the
    # objective whatever its scale (a carbon-only day may cost 0.04 USD in all).
    cost_scale: float

    def highs(self, verbose: bool) -> highspy.Highs:
        """A HiGHS instance holding the model (objective in ``cost_scale`` units, every column binary)."""
        h = SilentHighs()
        h.setOptionValue("output_flag", verbose)
        h.passModel(
            self.num_col,
            self.num_row,
            int(self.a_index.size),
            1,
            1,
            0.0,
            self.col_cost / self.cost_scale,
            np.zeros(self.num_col),
            np.ones(self.num_col),
            self.row_lo,
            self.row_hi,
            self.a_start,
            self.a_index,
            self.a_value,
            np.ones(self.num_col, dtype=np.int32),
        )
        return h

    def lagrangian_bound(
        self,
        row_dual: NDArray[np.float64],
        col_lo: NDArray[np.float64] | None = None,
        col_hi: NDArray[np.float64] | None = None,
    ) -> float:
        """A lower bound on the block's optimum, USD, valid for *any* row multipliers (weak duality).

        With ``x in [col_lo, col_hi]`` (default ``[0, 1]``) and rows ``lo <= A x <= hi``: ``c x >= sum_r y_r
        (lo_r or hi_r) + sum_j min(d_j col_lo_j, d_j col_hi_j)`` with ``d = c - A^T y``, choosing ``lo_r`` where
        ``y_r > 0`` and ``hi_r`` where ``y_r < 0`` (multipliers of one-sided rows are first clipped to their valid
        sign). Fed the LP's duals it equals the LP bound up to their inexactness, and never exceeds the
        optimum of the block with those column bounds, whatever HiGHS's tolerances.
        """
        y = self.valid_duals(row_dual)
        rows_part = np.where(
            y > 0,
            y * np.where(np.isinf(self.row_lo), 0.0, self.row_lo),
            y * np.where(np.isinf(self.row_hi), 0.0, self.row_hi),
        )
        d = self.reduced_costs(y)
        lo = np.zeros(self.num_col) if col_lo is None else col_lo
        hi = np.ones(self.num_col) if col_hi is None else col_hi
        return float(rows_part.sum() + np.minimum(d * lo, d * hi).sum()) * self.cost_scale

    def valid_duals(self, row_dual: NDArray[np.float64]) -> NDArray[np.float64]:
        """Row multipliers clipped to the sign their row allows (``>= 0`` on ``>=`` rows, ``<= 0`` on ``<=`` rows)."""
        y = np.asarray(row_dual, dtype=np.float64)
        y = np.where(np.isinf(self.row_lo), np.minimum(y, 0.0), y)
        return np.where(np.isinf(self.row_hi), np.maximum(y, 0.0), y)

    def reduced_costs(self, y: NDArray[np.float64]) -> NDArray[np.float64]:
        """``[num_col]`` reduced costs ``c - A^T y`` of the columns, in HiGHS's objective units (USD / cost_scale)."""
        col_of = np.repeat(np.arange(self.num_col), np.diff(self.a_start))
        aty = np.bincount(col_of, weights=self.a_value * y[self.a_index], minlength=self.num_col)
        return self.col_cost / self.cost_scale - aty

    def cheapest_usd(self) -> float:
        """A bound needing no LP when costs and charges are never negative (envs.costs): every task pays at
        least its cheapest pair, USD."""
        return float(cheapest_per_task(self.col_cost[: self.num_x], self.task_row, self.num_tasks).sum())

    def columns(self, chosen: NDArray[np.bool_]) -> NDArray[np.float64]:
        """Column values of an assignment of the block's pairs (y = 1 where a chosen pair needs it)."""
        y = np.zeros(self.num_col - self.num_x)
        y[self.replica_of[chosen & (self.replica_of >= 0)]] = 1.0
        return np.concatenate([chosen.astype(np.float64), y])

    def columns_cost(self, chosen: NDArray[np.bool_]) -> float:
        """USD cost of an assignment of the block's pairs (its replicas included)."""
        return float(self.col_cost @ self.columns(chosen))


# ---------------------------------------------------------------------------------------------- columns
@dataclass(frozen=True, slots=True)
class _Columns:
    """The block's columns: x for pairs ``0..num_x-1``, then y for its replicas ``num_x..num_x+num_y-1``."""

    num_x: int
    task_row: NDArray[np.int64]  # [P_b] local task (assignment row) of each x column
    num_tasks: int
    replicas: NDArray[np.int64]  # [num_y] the replica (index into pairs.replica_key) of each y column
    replica_of: NDArray[np.int64]  # [P_b] local y index needed by each x column, -1 if none
    need: NDArray[np.int64]  # x columns that need a replica
    served: NDArray[np.bool_]  # [P_b] x columns of served pairs (not overflow)

    @property
    def num_y(self) -> int:
        return int(self.replicas.size)

    def y_col(self, local: NDArray[np.int64]) -> NDArray[np.int64]:
        """Column of the local replicas ``local``."""
        return self.num_x + local


def _columns(inst: Instance, pairs: Pairs) -> _Columns:
    """The block's x columns (its pairs, in order) and y columns (the replicas they need, ascending)."""
    btasks, task_row = np.unique(pairs.task, return_inverse=True)
    has = pairs.replica >= 0
    replicas, replica_local = np.unique(pairs.replica[has], return_inverse=True)
    replica_of = np.full(pairs.task.size, -1, dtype=np.int64)
    replica_of[has] = replica_local
    return _Columns(
        num_x=pairs.task.size,
        task_row=task_row,
        num_tasks=btasks.size,
        replicas=replicas,
        replica_of=replica_of,
        need=np.flatnonzero(has),
        served=pairs.action < inst.num_regions,
    )


# ---------------------------------------------------------------------------------------------- rows
@dataclass(frozen=True, slots=True)
class _Rows:
    """A group of rows ``lo <= A x <= hi``: entries as (row, column, value), rows numbered from 0 in the group."""

    row: NDArray[np.int64]
    col: NDArray[np.int64]
    value: NDArray[np.float64]
    lo: NDArray[np.float64]
    hi: NDArray[np.float64]

    @staticmethod
    def at_most_zero(
        row: list[NDArray[np.int64]], col: list[NDArray[np.int64]], value: list[NDArray[np.float64]], n: int
    ) -> _Rows:
        """``n`` rows ``... <= 0`` from entry parts (concatenated in order)."""
        return _Rows(np.concatenate(row), np.concatenate(col), np.concatenate(value), np.full(n, -np.inf), np.zeros(n))


def _assignment_rows(c: _Columns) -> _Rows:
    """``sum_a x[k, a] = 1`` for every task k of the block (row = local task)."""
    return _Rows(c.task_row, np.arange(c.num_x), np.ones(c.num_x), np.ones(c.num_tasks), np.ones(c.num_tasks))


def _capacity_rows(inst: Instance, pairs: Pairs, c: _Columns) -> _Rows:
    """``sum_k gpu_s[k, i] x[k, i] <= capacity_gpu_s[s, i]`` per slot s and region i; rows that no
    assignment could fill are left out."""
    gpu = pairs.gpu_s[c.served]
    keys, kinv = np.unique(pairs.slot_region[c.served], return_inverse=True)
    demand = np.bincount(kinv, weights=gpu, minlength=keys.size)
    cap = inst.capacity_gpu_s.ravel()[keys]
    binding = demand > cap
    crow = np.cumsum(binding) - 1
    sel = binding[kinv]
    return _Rows(
        crow[kinv[sel]], np.flatnonzero(c.served)[sel], gpu[sel], np.full(int(binding.sum()), -np.inf), cap[binding]
    )


def _strong_linking_rows(c: _Columns) -> _Rows:
    """``x[k, i] - y[w, i, m] <= 0`` for every pair that needs the replica."""
    n = c.need.size
    lr = np.arange(n)
    return _Rows.at_most_zero([lr, lr], [c.need, c.y_col(c.replica_of[c.need])], [np.ones(n), -np.ones(n)], n)


def _replica_capacity_rows(inst: Instance, pairs: Pairs, c: _Columns) -> _Rows:
    """``sum_{k of model m} gpu_s[k, i] x[k, i] - capacity_gpu_s[s, i] y[w, i, m] <= 0`` per slot s of window w
    where the replica's candidates could overfill the slot.

    A valid row (the capacity row restricted to model m when y = 1), and it makes the LP pay the whole
    charge to use the whole capacity (without it a saturated LP opens replicas at 0.46 and splits 700 tasks
    of a 17,700-task window).
    """
    num_slot_regions = inst.num_slots * inst.num_regions
    need = c.need
    gkey, ginv = np.unique(c.replica_of[need] * num_slot_regions + pairs.slot_region[need], return_inverse=True)
    gdem = np.bincount(ginv, weights=pairs.gpu_s[need], minlength=gkey.size)
    gcap = inst.capacity_gpu_s.ravel()[gkey % num_slot_regions]
    over = gdem > gcap
    grow = np.cumsum(over) - 1
    sel = over[ginv]
    n = int(over.sum())
    return _Rows.at_most_zero(
        [grow[ginv[sel]], np.arange(n)],
        [need[sel], c.y_col(gkey[over] // num_slot_regions)],
        [pairs.gpu_s[need][sel], -gcap[over]],
        n,
    )


def _weak_linking_rows(c: _Columns) -> _Rows:
    """``sum_k x[k, i] - n[w, i, m] y[w, i, m] <= 0``, one row per replica."""
    n_per = np.bincount(c.replica_of[c.need], minlength=c.num_y).astype(np.float64)
    local = np.arange(c.num_y)
    return _Rows.at_most_zero(
        [c.replica_of[c.need], local], [c.need, c.y_col(local)], [np.ones(c.need.size), -n_per], c.num_y
    )


def _linking_rows(inst: Instance, pairs: Pairs, c: _Columns, linking: Linking) -> list[_Rows]:
    if linking == "strong":
        return [_strong_linking_rows(c), _replica_capacity_rows(inst, pairs, c)]
    return [_weak_linking_rows(c)]


# ---------------------------------------------------------------------------------------------- the model
def build_model(inst: Instance, pairs: Pairs, linking: Linking) -> BlockModel:
    """The MILP of a block whose pairs are ``pairs``: x and y columns, rows, and the objective (pair costs
    and replica charges, both straight from :mod:`envs.costs`, see :func:`admissible_pairs`)."""
    c = _columns(inst, pairs)
    groups = [_assignment_rows(c), _capacity_rows(inst, pairs, c), *_linking_rows(inst, pairs, c, linking)]
    num_col = c.num_x + c.num_y
    offsets = np.cumsum([0] + [g.lo.size for g in groups])
    row = np.concatenate([g.row + off for g, off in zip(groups, offsets[:-1], strict=True)])
    col_cost = np.concatenate([pairs.cost_usd, pairs.replica_cost_usd[c.replicas]])
    a_start, a_index, a_value = _csc(
        row, np.concatenate([g.col for g in groups]), np.concatenate([g.value for g in groups]), num_col
    )
    return BlockModel(
        num_col=num_col,
        num_row=int(offsets[-1]),
        col_cost=col_cost,
        row_lo=np.concatenate([g.lo for g in groups]),
        row_hi=np.concatenate([g.hi for g in groups]),
        a_start=a_start,
        a_index=a_index,
        a_value=a_value,
        task_row=c.task_row,
        replica_of=c.replica_of,
        num_tasks=c.num_tasks,
        num_x=c.num_x,
        cost_scale=_cost_scale(pairs.cost_usd, c.task_row, c.num_tasks, col_cost),
    )


def cheapest_per_task(cost: NDArray[np.float64], task_row: NDArray[np.int64], num_tasks: int) -> NDArray[np.float64]:
    """``[num_tasks]`` each task's cheapest pair, USD (``cost`` and ``task_row`` per x column)."""
    cheapest = np.full(num_tasks, np.inf)
    np.minimum.at(cheapest, task_row, cost)
    return cheapest


def _cost_scale(
    cost: NDArray[np.float64], task_row: NDArray[np.int64], num_tasks: int, col_cost: NDArray[np.float64]
) -> float:
    """USD per objective unit for HiGHS: the mean of each task's cheapest pair, else the largest cost, else 1."""
    cheapest = cheapest_per_task(cost, task_row, num_tasks)
    for scale in (float(cheapest.mean()) if num_tasks else 0.0, float(np.abs(col_cost).max(initial=0.0))):
        if math.isfinite(scale) and scale > 0.0:
            return scale
    return 1.0


def _csc(
    rows: NDArray[np.int64], cols: NDArray[np.int64], vals: NDArray[np.float64], num_col: int
) -> tuple[NDArray[np.int32], NDArray[np.int32], NDArray[np.float64]]:
    """Column-wise (CSC) arrays of the entries, rows ascending within each column."""
    o = np.lexsort((rows, cols))
    start = np.searchsorted(cols[o], np.arange(num_col + 1)).astype(np.int32)
    return start, rows[o].astype(np.int32), vals[o]
