"""Replica decisions first: a branch and bound over a block's replica variables whose leaves split into slots.

A block joins the slots of a replica window only through its replica variables ``y``: once every ``y`` is
fixed, the pairs that need a closed replica are gone, an open replica's charge is a constant, and the block
falls apart into one independent multiple-knapsack per slot, each far smaller than the window and solved
directly (:func:`baselines.milp.schedule.solve_blocks`). HiGHS on the whole window spends its time on the
knapsack near-ties of all slots at once and rarely proves it (measured on the contended task: 60 s for a
gap of 1e-4, against 5 s to prove the optimum this way; see ``experiments/bench/milp.py``).

The search, per block (:class:`ReplicaSearch`):

* the root: the block's LP relaxation, its weak-duality bound and reduced costs (:meth:`BlockModel.lagrangian_bound`,
  valid whatever HiGHS's tolerances); the first leaf is the LP's replicas rounded (a dive);
* every node: the LP with the node's ``y`` fixed; a node whose bound reaches the cutoff is closed;
  reduced-cost fixing (forcing ``y_j`` against its reduced cost ``d_j`` raises the Lagrangian bound by
  ``|d_j|``, so where that reaches the cutoff ``y_j`` is fixed); a node with every ``y`` fixed is a leaf,
  solved slot by slot; otherwise it branches on the most fractional free ``y``, the LP's side first;
* the cutoff is the incumbent less half the requested gap, so the proof is never looser than asked.

The block's bound is the smallest of the closed nodes' bounds, the leaves' bounds (their slots' bounds plus
the open replicas' charges) and the parents' bounds of nodes left open when time ran out: each covers a
part of the tree, and together they cover all of it. It is raised to the root LP's bound and to each
task's cheapest pair where those are higher (both bound the whole block), and never exceeds the incumbent.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace

import highspy
import numpy as np
from numpy.typing import NDArray

from baselines.milp.block import BlockSolution, SolveOptions, block_shape, check_one_action_per_task, stop_at
from baselines.milp.model import BlockModel, build_model
from baselines.milp.pairs import Pairs
from baselines.milp.results import BlockStats
from baselines.milp.start import greedy_start
from envs.instance import Instance


def decomposable(inst: Instance, pairs: Pairs) -> bool:
    """Whether a block's slots are joined by replica variables (so fixing them splits it)."""
    has = pairs.replica >= 0
    return bool(has.any()) and np.unique(inst.slot_idx[pairs.task]).size > 1


@dataclass(frozen=True, slots=True)
class Leaf:
    """A full replica decision of a block: the slot blocks it splits into, and how they map back."""

    y: NDArray[np.int8]  # [Y_b] 0/1 per local replica of the block
    keep: NDArray[np.int64]  # the block's pairs kept (those not needing a closed replica)
    slots: list[Pairs]  # one block per slot, pairs indexing ``keep``
    slot_pairs: list[NDArray[np.int64]]  # [per slot] indices into ``keep``
    charge_usd: float  # the open replicas' charges


@dataclass(slots=True)
class _Node:
    y_lo: NDArray[np.float64]
    y_hi: NDArray[np.float64]
    bound_usd: float  # the parent's bound for this child
    lp: tuple[float, NDArray[np.float64], NDArray[np.float64]] | None = None  # its LP, when already solved


@dataclass(slots=True)
class _Tally:
    build_s: float = 0.0
    lp_s: float = 0.0
    solve_s: float = 0.0
    lp_nodes: int = 0
    leaves: int = 0
    slot_blocks: int = 0
    highs_nodes: int = 0
    limited: bool = False
    notes: list[str] = field(default_factory=list)


class ReplicaSearch:
    """Branch and bound over one block's replica variables (see the module doc); leaves are solved outside,
    side by side with other blocks' work, through :meth:`next_leaf` and :meth:`record_leaf`."""

    def __init__(self, inst: Instance, pairs: Pairs, opt: SolveOptions, deadline: float = math.inf) -> None:
        t0 = time.perf_counter()
        self.inst, self.pairs, self.opt = inst, pairs, opt
        self.model: BlockModel = build_model(inst, pairs, opt.linking)
        self.num_y = self.model.num_col - self.model.num_x
        self.y_cols = np.arange(self.model.num_x, self.model.num_col, dtype=np.int32)
        self._h = self.model.highs(opt.verbose)
        self._h.setOptionValue("threads", 1)
        self._h.setOptionValue("solve_relaxation", True)
        self._lp_x: NDArray[np.float64] | None = None  # the last node LP's x values
        start = greedy_start(inst, pairs)
        self.tally = _Tally(build_s=time.perf_counter() - t0)
        ones = np.ones(self.num_y)
        root = self._lp(np.zeros(self.num_y), ones, deadline)
        root_bound, _, y_val = root
        self.root_bound = root_bound
        if np.isfinite(y_val).all() and self._lp_x is not None:
            start = min(start, greedy_start(inst, pairs, self._lp_x), key=pairs.assignment_cost)
        check_one_action_per_task(self.model, start)
        self.best = start
        self.best_usd = pairs.assignment_cost(start)
        self.start_usd = self.best_usd
        self._dive: NDArray[np.int8] | None = (y_val > 0.5).astype(np.int8) if np.isfinite(y_val).all() else None
        self._stack = [_Node(np.zeros(self.num_y), ones, root_bound, root)]
        self._closed = math.inf  # smallest bound of a closed part of the tree
        self._solved: set[bytes] = set()

    # ------------------------------------------------------------------------------------------ the LPs
    def _lp(
        self, y_lo: NDArray[np.float64], y_hi: NDArray[np.float64], deadline: float
    ) -> tuple[float, NDArray[np.float64], NDArray[np.float64]]:
        """The node LP with ``y`` in ``[y_lo, y_hi]``, stopped at ``deadline``: its weak-duality bound, USD, the
        ``y`` reduced costs, USD, and the ``y`` values (NaN and a bound of -inf if HiGHS did not solve it)."""
        t0 = time.perf_counter()
        m = self.model
        self._h.changeColsBounds(self.num_y, self.y_cols, y_lo, y_hi)
        # HiGHS's own limit too: the callbacks do not reach its LP presolve
        self._h.setOptionValue("time_limit", max(deadline - time.perf_counter(), 1e-3))
        with stop_at(self._h, deadline):
            self._h.run()
        self.tally.lp_nodes += 1
        self._lp_x = None
        status = self._h.getModelStatus()
        if status != highspy.HighsModelStatus.kOptimal:
            self.tally.lp_s += time.perf_counter() - t0
            if status == highspy.HighsModelStatus.kInfeasible:  # no plan here (a fixed prefix needs a closed replica)
                return math.inf, np.zeros(self.num_y), np.full(self.num_y, np.nan)
            self.tally.notes.append(f"a node LP ended {self._h.modelStatusToString(status)!r}: its parent's bound kept")
            return -math.inf, np.zeros(self.num_y), np.full(self.num_y, np.nan)
        sol = self._h.getSolution()
        duals = m.valid_duals(np.asarray(sol.row_dual))
        lo, hi = np.zeros(m.num_col), np.ones(m.num_col)
        lo[m.num_x :], hi[m.num_x :] = y_lo, y_hi
        bound = m.lagrangian_bound(duals, lo, hi)
        d_y = m.reduced_costs(duals)[m.num_x :] * m.cost_scale
        values = np.asarray(sol.col_value)
        self._lp_x = values[: m.num_x]
        self.tally.lp_s += time.perf_counter() - t0
        return bound, d_y, values[m.num_x :]

    def _cutoff(self) -> float:
        """Nodes whose bound reaches this are closed: the incumbent less half the requested gap."""
        return self.best_usd - 0.5 * self.opt.mip_rel_gap * abs(self.best_usd)

    # ------------------------------------------------------------------------------------------ search
    def next_leaf(self, deadline: float) -> Leaf | None:
        """The next leaf to solve; None when the tree is exhausted or ``deadline`` (perf_counter) has passed.
        The dive comes first even past the deadline (its slots are then not started: their greedy plans)."""
        if self._dive is not None:
            dive, self._dive = self._dive, None
            if self.root_bound < self._cutoff() and (leaf := self._leaf(dive)) is not None:
                return leaf  # else the start is already proven (an integral root LP), or the dive has no plan
        # Past the deadline, a node whose LP is known (the root) is still expanded: no LP to solve, and
        # its reduced-cost fixing usually closes the tree around the dive's leaf.
        while self._stack and (time.perf_counter() < deadline or self._stack[-1].lp is not None):
            node = self._stack.pop()
            if node.bound_usd >= self._cutoff():
                self._closed = min(self._closed, node.bound_usd)
                continue
            y = self._expand(node, deadline)
            if y is not None and y.tobytes() not in self._solved:
                if time.perf_counter() >= deadline:
                    self._stack.append(_Node(y.astype(np.float64), y.astype(np.float64), node.bound_usd))
                    break
                if (leaf := self._leaf(y)) is not None:
                    return leaf
        return None

    def _expand(self, node: _Node, deadline: float) -> NDArray[np.int8] | None:
        """Solve a node's LP: close it, fix replicas by reduced cost, and branch or return its leaf."""
        lp_bound, d, y_val = node.lp if node.lp is not None else self._lp(node.y_lo, node.y_hi, deadline)
        bound = max(lp_bound, node.bound_usd)  # both are valid for this node
        cutoff = self._cutoff()
        if bound >= cutoff:
            self._closed = min(self._closed, bound)
            return None
        free = node.y_lo < node.y_hi
        if not np.isfinite(y_val).all():
            d, y_val = np.zeros(self.num_y), np.full(self.num_y, 0.5)
        # the bound with y_j forced to 1 (to 0): this LP's Lagrangian with the column fixed, or the node's own
        up = np.maximum(lp_bound + np.maximum(d, 0.0), bound)
        down = np.maximum(lp_bound + np.maximum(-d, 0.0), bound)
        fix0, fix1 = free & (up >= cutoff), free & (down >= cutoff)
        if (fix0 | fix1).any():
            self._closed = min(self._closed, float(np.min(np.r_[up[fix0], down[fix1]])))
        lo, hi = node.y_lo.copy(), node.y_hi.copy()
        hi[fix0], lo[fix1] = 0.0, 1.0
        free &= ~(fix0 | fix1)
        if not free.any():
            return lo.astype(np.int8)
        j = int(np.flatnonzero(free)[np.argmin(np.abs(y_val[free] - 0.5))])
        lo0, hi0, lo1, hi1 = lo.copy(), hi.copy(), lo.copy(), hi.copy()
        hi0[j], lo1[j] = 0.0, 1.0
        zero, one = _Node(lo0, hi0, float(down[j])), _Node(lo1, hi1, float(up[j]))
        # depth first, the LP's side of the branch first (popped last pushed)
        self._stack.extend([zero, one] if y_val[j] < 0.5 else [one, zero])
        return None

    def _leaf(self, y: NDArray[np.int8]) -> Leaf | None:
        """The slot blocks of the replica decision ``y``; None when it leaves a task no pair (a task of a fixed
        prefix whose one pair needs a replica ``y`` closes): no plan has these replicas."""
        t0 = time.perf_counter()
        self._solved.add(y.tobytes())
        p = self.pairs
        local = self.model.replica_of  # [P_b] local replica of each pair, -1 if none
        keep = np.flatnonzero((local < 0) | (y[np.maximum(local, 0)] == 1))
        if np.unique(self.model.task_row[keep]).size < self.model.num_tasks:
            return None
        kept = replace(p.take(keep), replica=np.full(keep.size, -1, dtype=np.int64))
        slot = self.inst.slot_idx[kept.task]
        order = np.argsort(slot, kind="stable")
        cuts = np.flatnonzero(np.diff(slot[order])) + 1
        groups = [g for g in np.split(order, cuts) if g.size]
        replicas = np.unique(p.replica[p.replica >= 0])
        charge = float(p.replica_cost_usd[replicas[y == 1]].sum())
        self.tally.build_s += time.perf_counter() - t0
        return Leaf(y, keep, [kept.take(g) for g in groups], groups, charge)

    def record_leaf(self, leaf: Leaf, sols: list[BlockSolution]) -> None:
        """Take a solved leaf: its plan may become the incumbent, its bound closes its part of the tree."""
        chosen = np.zeros(self.pairs.task.size, dtype=bool)
        bound = leaf.charge_usd
        for g, s in zip(leaf.slot_pairs, sols, strict=True):
            chosen[leaf.keep[g[s.chosen]]] = True
            bound += s.stats.dual_bound_usd
            self.tally.solve_s += s.stats.build_s + s.stats.start_s + s.stats.solve_s
            self.tally.highs_nodes += s.stats.nodes
            self.tally.limited |= s.limited
        self.tally.leaves += 1
        self.tally.slot_blocks += len(sols)
        check_one_action_per_task(self.model, chosen)
        usd = self.pairs.assignment_cost(chosen)  # only the replicas the plan uses are charged
        if usd < self.best_usd:
            self.best, self.best_usd = chosen, usd
        self._closed = min(self._closed, bound)

    # ------------------------------------------------------------------------------------------ result
    def solution(self) -> BlockSolution:
        """The incumbent with the bound of the whole tree (open nodes included) and the search's statistics."""
        open_bound = min((n.bound_usd for n in self._stack), default=math.inf)
        bound = max(min(self._closed, open_bound), self.root_bound, self.model.cheapest_usd())
        bound = min(bound, self.best_usd)
        gap = (self.best_usd - bound) / abs(self.best_usd) if self.best_usd else 0.0
        proven = gap <= self.opt.mip_rel_gap
        limited = bool(self._stack) or (self.tally.limited and not proven)
        t = self.tally
        note = (
            f"replica branching: {t.lp_nodes} LP nodes, {t.leaves} leaves of {t.slot_blocks} slot blocks"
            + (f"; {len(self._stack)} nodes left open" if self._stack else "")
            + "".join(f"; {n}" for n in dict.fromkeys(t.notes))
        )
        stats = BlockStats(
            **block_shape(self.inst, self.pairs, self.model),
            status="Optimal" if proven else "Time limit reached" if limited else "Unproven",
            objective_usd=self.best_usd,
            dual_bound_usd=bound,
            start_usd=self.start_usd,
            build_s=t.build_s,
            start_s=t.lp_s,
            solve_s=t.solve_s,
            nodes=t.lp_nodes + t.highs_nodes,
            bound_source="replicas",
            note=note,
        )
        return BlockSolution(chosen=self.best, stats=stats, limited=limited and not proven)
