"""MIP starts: greedy plans (by savings per GPU-second, with and without replicas) and LP rounding (greedy
in the order of the LP relaxation's values); the cheapest is handed to HiGHS."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from baselines.milp.pairs import Pairs
from envs.instance import Instance

# Capacity accepted by the greedy plans, relative: a hair below the row's limit, against rounding.
CAPACITY_MARGIN = 1e-12


def greedy_start(inst: Instance, pairs: Pairs, lp_x: NDArray[np.float64] | None = None) -> NDArray[np.bool_]:
    """The cheapest of a few greedy plans ``[P]`` (bool): by savings per GPU-second (with every replica, and
    with none), and, given the LP relaxation's ``lp_x [P]``, by LP value first (LP rounding)."""
    saving = savings(inst, pairs)
    density = saving / np.maximum(pairs.gpu_s, 1e-12)
    served = pairs.action < inst.num_regions
    plans = [
        greedy(inst, pairs, served, [saving], [density]),
        greedy(inst, pairs, served & (pairs.replica < 0), [saving], [density]),
    ]
    if lp_x is not None:
        x = np.round(lp_x, 6)  # LP values within solver tolerance count as equal
        plans.append(greedy(inst, pairs, served, [x, saving], [x, density]))
    return min(plans, key=pairs.assignment_cost)


def savings(inst: Instance, pairs: Pairs) -> NDArray[np.float64]:
    """``[P]`` saving of each pair over its task's overflow action, USD (> 0 for kept served pairs)."""
    over = pairs.action == inst.num_regions
    overflow_pair = np.zeros(inst.num_tasks, dtype=np.int64)
    overflow_pair[pairs.task[over]] = np.flatnonzero(over)
    return pairs.cost_usd[overflow_pair[pairs.task]] - pairs.cost_usd


def greedy(
    inst: Instance,
    pairs: Pairs,
    allowed: NDArray[np.bool_],
    pref: Sequence[NDArray[np.float64]],
    priority: Sequence[NDArray[np.float64]],
) -> NDArray[np.bool_]:
    """A feasible assignment ``[P]`` (bool, one pair per task), built greedily.

    Every task proposes its most preferred remaining pair among ``allowed`` served pairs (keys ``pref``,
    most significant first, larger first); each (slot, region) accepts proposals in ``priority`` order
    while capacity lasts; rejected tasks move on to their next pair. Then leftover tasks fill leftover
    capacity, and replicas whose tasks save less than their charge are closed again (those tasks
    overflow).
    """
    over = pairs.action == inst.num_regions
    saving = savings(inst, pairs)
    # Tasks without an overflow pair (a fixed prefix: their one pair is kept whatever it costs) are placed
    # first and never closed again; the prefix fits the capacity (checked), so they always fit.
    can_overflow = np.zeros(inst.num_tasks, dtype=bool)
    can_overflow[pairs.task[over]] = True
    must = ~can_overflow[pairs.task]
    priority = [must.astype(np.float64), *priority]
    queues = _Queues.of(pairs, (allowed | must) & ~over, pref)
    resid = inst.capacity_gpu_s.ravel().astype(np.float64).copy()
    chosen = _accept_in_rounds(pairs, queues, priority, resid)
    done = np.zeros(inst.num_tasks, dtype=bool)
    done[pairs.task[chosen]] = True
    _fill_leftover(pairs, queues.pair, priority, resid, chosen, done)
    _close_unpaid_replicas(pairs, saving, chosen, done, must)
    chosen[over & ~done[pairs.task]] = True
    return chosen


@dataclass(frozen=True, slots=True)
class _Queues:
    """Each task's candidate pairs, most preferred first: ``pair[first[t] : first[t] + count[t]]``."""

    pair: NDArray[np.int64]  # [C] candidate pair indices, grouped by task
    first: NDArray[np.int64]  # [T] start of each task's candidates in ``pair``
    count: NDArray[np.int64]  # [T] number of candidates of each task

    @staticmethod
    def of(pairs: Pairs, allowed: NDArray[np.bool_], pref: Sequence[NDArray[np.float64]]) -> _Queues:
        ci = np.flatnonzero(allowed)
        ci = ci[np.lexsort((*[-k[ci] for k in reversed(pref)], pairs.task[ci]))]
        ctask = pairs.task[ci]
        first = np.flatnonzero(np.r_[True, ctask[1:] != ctask[:-1]]) if ci.size else np.zeros(0, dtype=np.int64)
        return _Queues(ci, first, np.diff(np.r_[first, ci.size]))


def _accept_in_rounds(
    pairs: Pairs, queues: _Queues, priority: Sequence[NDArray[np.float64]], resid: NDArray[np.float64]
) -> NDArray[np.bool_]:
    """Proposal rounds (at most R, vectorised): the chosen pairs ``[P]``; ``resid`` (GPU-s per slot * R +
    region) is reduced by what they use."""
    chosen = np.zeros(pairs.task.size, dtype=bool)
    ptr = np.zeros(queues.first.size, dtype=np.int64)
    active = np.arange(queues.first.size)
    while active.size:
        p = queues.pair[queues.first[active] + ptr[active]]
        key = pairs.slot_region[p]
        o = np.lexsort((*[-k[p] for k in reversed(priority)], key))
        p, key, act = p[o], key[o], active[o]
        cum = np.cumsum(pairs.gpu_s[p])
        start = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
        base = np.repeat(cum[start] - pairs.gpu_s[p[start]], np.diff(np.r_[start, p.size]))
        # the running sum within a queue only grows, so this accepts a prefix of each queue
        ok = cum - base <= resid[key] * (1 - CAPACITY_MARGIN)
        chosen[p[ok]] = True
        np.subtract.at(resid, key[ok], pairs.gpu_s[p[ok]])
        rej = act[~ok]
        ptr[rej] += 1
        active = rej[ptr[rej] < queues.count[rej]]
    return chosen


def _fill_leftover(
    pairs: Pairs,
    candidates: NDArray[np.int64],
    priority: Sequence[NDArray[np.float64]],
    resid: NDArray[np.float64],
    chosen: NDArray[np.bool_],
    done: NDArray[np.bool_],
) -> None:
    """Leftover tasks into leftover capacity, by priority (few fit, so a short loop); updates in place."""
    left = candidates[~done[pairs.task[candidates]]]
    left = left[pairs.gpu_s[left] <= resid[pairs.slot_region[left]]]
    for p in left[np.lexsort([-k[left] for k in reversed(priority)])]:
        key = pairs.slot_region[p]
        if not done[pairs.task[p]] and pairs.gpu_s[p] <= resid[key] * (1 - CAPACITY_MARGIN):
            chosen[p] = True
            done[pairs.task[p]] = True
            resid[key] -= pairs.gpu_s[p]


def _close_unpaid_replicas(
    pairs: Pairs,
    saving: NDArray[np.float64],
    chosen: NDArray[np.bool_],
    done: NDArray[np.bool_],
    must: NDArray[np.bool_],
) -> None:
    """Unchoose the pairs of replicas whose tasks save less than the replica's charge, except replicas a
    ``must`` pair (a task with no overflow pair) uses; updates in place."""
    used = chosen & (pairs.replica >= 0)
    if not used.any():
        return
    gain = np.bincount(pairs.replica[used], weights=saving[used], minlength=pairs.replica_key.size)
    unpaid = gain < pairs.replica_cost_usd
    unpaid[pairs.replica[used & must]] = False
    drop = used & unpaid[np.maximum(pairs.replica, 0)]
    chosen[drop] = False
    done[pairs.task[drop]] = False
