"""One block's solve: the model and HiGHS's options, the LP relaxation (a bound, and the order of the
LP-rounding start), the MIP from that start under the shared time budget, the status check, and the
incumbent with its proven bound."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import highspy
import numpy as np
from numpy.typing import NDArray

from baselines.milp.model import BlockModel, Linking, SilentHighs, build_model
from baselines.milp.pairs import Pairs
from baselines.milp.results import BlockStats
from baselines.milp.start import greedy_start
from envs.instance import Instance

HighsValue = bool | int | float | str

# A binary column's value is read as 1 above this.
BINARY_ONE_ABOVE = 0.5
# HiGHS's tolerance on rows of a MIP solution (its default 1e-6 GPU-s could exceed the env's slack).
MIP_FEAS_TOL = 1e-9
# HiGHS options set on every block, after ours (callers may override them; update this dict in place).
HIGHS_OPTIONS: dict[str, HighsValue] = {}
# Model statuses of a solve stopped on a limit (an incumbent, not proven within the gap).
LIMIT_STATUSES = (
    highspy.HighsModelStatus.kTimeLimit,
    highspy.HighsModelStatus.kIterationLimit,
    highspy.HighsModelStatus.kInterrupt,
    highspy.HighsModelStatus.kSolutionLimit,
    highspy.HighsModelStatus.kMemoryLimit,
)
RETRY_NOTE = "HiGHS returned its MIP start, not the solution it reported: solved again without presolve"


@dataclass(frozen=True, slots=True)
class SolveOptions:
    mip_rel_gap: float
    linking: Linking
    mip_start: bool
    verbose: bool
    highs: tuple[tuple[str, HighsValue], ...] = ()  # extra HiGHS options, set last


def merged_highs_options(extra: Mapping[str, HighsValue] | None) -> tuple[tuple[str, HighsValue], ...]:
    """:data:`HIGHS_OPTIONS` updated with ``extra``."""
    return tuple({**HIGHS_OPTIONS, **(extra or {})}.items())


@dataclass(frozen=True, slots=True)
class BlockSolution:
    chosen: NDArray[np.bool_]  # [P_b] chosen pairs of the block
    stats: BlockStats
    limited: bool  # stopped on a limit (not proven within the gap)


@dataclass(frozen=True, slots=True)
class _Times:
    build_s: float  # model, HiGHS options and greedy plans, s
    start_s: float  # LP relaxation and LP rounding, s
    solve_s: float  # the MILP, s


_scheduler_lock = threading.Lock()


def ensure_single_thread_scheduler() -> None:
    """Make HiGHS's process-wide scheduler accept ``threads = 1``.

    HiGHS refuses a run whose ``threads`` differs from the scheduler's, which is fixed by the first run
    in the process (any other HiGHS user may have set it); a 1-variable probe finds out, cheaply.
    """
    with _scheduler_lock:
        h = SilentHighs()
        h.setOptionValue("threads", 1)
        i32 = np.int32
        h.passModel(
            1,
            0,
            0,
            1,
            1,
            0.0,
            np.zeros(1),
            np.zeros(1),
            np.ones(1),
            np.zeros(0),
            np.zeros(0),
            np.zeros(2, dtype=i32),
            np.zeros(0, dtype=i32),
            np.zeros(0),
            np.ones(1, dtype=i32),
        )
        if h.run() != highspy.HighsStatus.kOk:
            highspy.Highs.resetGlobalScheduler(True)


def solve_block(
    inst: Instance, pairs: Pairs, deadline: float, expired: Callable[[], bool], opt: SolveOptions
) -> BlockSolution:
    """Build and solve the MILP of one block (``pairs`` are its pairs) from a greedy / LP-rounding start.

    HiGHS stops at ``deadline`` (a ``time.perf_counter`` value), or earlier once ``expired()``.
    """
    t0 = time.perf_counter()
    model = build_model(inst, pairs, opt.linking)
    h = _configured_highs(model, _oversubscribed(inst, pairs), opt)
    start = greedy_start(inst, pairs)
    build_s = time.perf_counter() - t0
    if time.perf_counter() >= deadline:  # out of time before it began: the greedy plan and the cheap bound
        note = "not started before the time limit: the greedy plan"
        times = _Times(build_s, 0.0, 0.0)
        return _block_solution(inst, pairs, model, None, start, note, -math.inf, model.columns_cost(start), times)
    t1 = time.perf_counter()
    lp_bound, start = _lp_relaxation(h, model, inst, pairs, start, opt.mip_start, deadline)
    if opt.mip_start:
        _set_start(h, model, start)
    start_usd = model.columns_cost(start)
    start_s = time.perf_counter() - t1
    t2 = time.perf_counter()
    run_status = _run_mip(h, deadline, expired)
    times = _Times(build_s, start_s, time.perf_counter() - t2)
    has_solution = _check_status(h, run_status)
    values = np.asarray(h.getSolution().col_value) if has_solution else None
    if values is not None and opt.mip_start and _not_its_reported_objective(h, model, values):
        return _solve_again_without_presolve(inst, pairs, deadline, expired, opt, times)
    chosen, note = _incumbent(model, values, start)
    return _block_solution(inst, pairs, model, h, chosen, note, lp_bound, start_usd, times)


def _oversubscribed(inst: Instance, pairs: Pairs) -> bool:
    """Whether the block's tasks need more GPU-seconds than its slots hold."""
    btasks = np.unique(pairs.task)
    slots = np.unique(inst.slot_idx[btasks])
    return bool(inst.gpu_s[btasks].sum() > inst.capacity_gpu_s[slots].sum())


def _configured_highs(model: BlockModel, oversubscribed: bool, opt: SolveOptions) -> highspy.Highs:
    """HiGHS holding ``model``, with our options, then the caller's."""
    h = model.highs(opt.verbose)
    # one HiGHS thread per block (blocks run side by side); only the relative gap stops a solve
    h.setOptionValue("threads", 1)
    h.setOptionValue("mip_rel_gap", opt.mip_rel_gap)
    h.setOptionValue("mip_abs_gap", 0.0)
    # capacity rows hold to 1e-9 GPU-s, inside the env's slack (envs.costs.capacity_limit_gpu_s)
    h.setOptionValue("mip_feasibility_tolerance", MIP_FEAS_TOL)
    if oversubscribed:
        # Without presolve. Measured on a 17,700-task window at 7x demand, HiGHS 1.16 spent 200 s in the
        # first cut round of the presolved model (deaf to its time limit), 23 s without presolve; with
        # demand under capacity presolve helps or is neutral.
        h.setOptionValue("presolve", "off")
    for name, value in opt.highs:
        if h.setOptionValue(name, value) != highspy.HighsStatus.kOk:
            raise ValueError(f"HiGHS option {name} = {value!r}: not accepted by HiGHS")
    return h


def _lp_relaxation(
    h: highspy.Highs,
    model: BlockModel,
    inst: Instance,
    pairs: Pairs,
    start: NDArray[np.bool_],
    lp_rounding: bool,
    deadline: float,
) -> tuple[float, NDArray[np.bool_]]:
    """The LP relaxation (stopped at ``deadline``): its bound, USD (-inf if the LP failed or was stopped), so
    that every block has a bound even when stopped before its root node; and the MIP start, by LP rounding
    when ``lp_rounding`` and the LP is solved, else ``start``."""
    h.setOptionValue("solve_relaxation", True)
    h.setOptionValue("time_limit", max(deadline - time.perf_counter(), 1e-3))  # the callbacks miss its presolve
    with stop_at(h, deadline):
        h.run()
    lp_bound = -math.inf
    if h.getModelStatus() == highspy.HighsModelStatus.kOptimal:
        # The bound from the LP's duals by weak duality, not HiGHS's LP objective: that one may exceed the
        # true LP optimum by the dual infeasibilities HiGHS tolerates
        lp_bound = model.lagrangian_bound(np.asarray(h.getSolution().row_dual))
        if lp_rounding:
            start = greedy_start(inst, pairs, np.asarray(h.getSolution().col_value)[: model.num_x])
    h.setOptionValue("solve_relaxation", False)
    return lp_bound, start


def _set_start(h: highspy.Highs, model: BlockModel, start: NDArray[np.bool_]) -> None:
    """Give HiGHS the assignment ``start`` as its MIP start."""
    sol = highspy.HighsSolution()
    sol.col_value = model.columns(start).tolist()
    sol.value_valid = True
    h.setSolution(sol)


def _run_mip(h: highspy.Highs, deadline: float, expired: Callable[[], bool]) -> highspy.HighsStatus:
    """Run the MILP until ``deadline`` or, checked in HiGHS's MIP callback, ``expired()``."""
    h.setOptionValue("time_limit", max(deadline - time.perf_counter(), 1e-3))
    with stop_at(h, deadline, expired):
        return h.run()


@contextmanager
def stop_at(h: highspy.Highs, deadline: float, expired: Callable[[], bool] | None = None) -> Iterator[None]:
    """Interrupt HiGHS once ``deadline`` (a ``time.perf_counter`` value) has passed, or ``expired()``: checked in
    its MIP callback and in the simplex iterations of every LP it solves (root cut rounds included), so a
    long cut round stops too."""
    if not math.isfinite(deadline):
        yield
        return

    def stop() -> bool:
        return time.perf_counter() >= deadline or (expired is not None and expired())

    def interrupt(e: highspy.HighsCallbackEvent) -> None:
        if stop():
            e.interrupt()

    h.cbMipInterrupt.subscribe(interrupt)
    h.cbSimplexInterrupt.subscribe(interrupt)
    try:
        yield
    finally:
        h.cbMipInterrupt.unsubscribe(interrupt)
        h.cbSimplexInterrupt.unsubscribe(interrupt)


def _check_status(h: highspy.Highs, run_status: highspy.HighsStatus) -> bool:
    """Whether HiGHS holds a feasible solution; raises when it failed (an error, or neither a solution nor
    a limit) or calls the block infeasible (overflow for every task is always feasible)."""
    ms = h.getModelStatus()
    if ms == highspy.HighsModelStatus.kInfeasible:
        raise RuntimeError(
            "HiGHS reports a block infeasible, but sending every task to overflow is "
            "feasible: a modelling or solver error"
        )
    has_solution = bool(h.getInfo().primal_solution_status == 2)  # kSolutionStatusFeasible
    if run_status == highspy.HighsStatus.kError or not (has_solution or ms in LIMIT_STATUSES):
        raise RuntimeError(
            f"HiGHS failed on a block: run status {run_status}, model status {h.modelStatusToString(ms)!r}"
        )
    return has_solution


def _not_its_reported_objective(h: highspy.Highs, model: BlockModel, values: NDArray[np.float64]) -> bool:
    """Whether the column ``values`` HiGHS returned cost other than the objective it reports.

    HiGHS 1.16 may report the objective of its presolved incumbent yet return the MIP start itself (seen
    when presolve maps the start to a better point).
    """
    obj = float(h.getInfo().objective_function_value) * model.cost_scale
    return abs(float(model.col_cost @ values) - obj) > 1e-9 * max(abs(obj), model.cost_scale)


def _solve_again_without_presolve(
    inst: Instance, pairs: Pairs, deadline: float, expired: Callable[[], bool], opt: SolveOptions, first: _Times
) -> BlockSolution:
    """The block solved again with presolve off, the first attempt's times added to its own."""
    if ("presolve", "off") in opt.highs:
        raise RuntimeError("HiGHS returned a solution whose objective is not the one it reports")
    retry = solve_block(inst, pairs, deadline, expired, replace(opt, highs=(*opt.highs, ("presolve", "off"))))
    st = retry.stats
    stats = replace(
        st,
        build_s=st.build_s + first.build_s,
        start_s=st.start_s + first.start_s,
        solve_s=st.solve_s + first.solve_s,
        note=RETRY_NOTE,
    )
    return replace(retry, stats=stats)


def _incumbent(
    model: BlockModel, values: NDArray[np.float64] | None, start: NDArray[np.bool_]
) -> tuple[NDArray[np.bool_], str]:
    """The chosen pairs ``[P_b]`` of HiGHS's solution ``values``; without one (stopped before HiGHS took the
    start) the start, with a note."""
    if values is None:
        return start, "stopped before HiGHS had a solution: the greedy start is the incumbent"
    return values[: model.num_x] > BINARY_ONE_ABOVE, ""


def _block_solution(
    inst: Instance,
    pairs: Pairs,
    model: BlockModel,
    h: highspy.Highs | None,
    chosen: NDArray[np.bool_],
    note: str,
    lp_bound: float,
    start_usd: float,
    times: _Times,
) -> BlockSolution:
    """The block's incumbent ``chosen``, re-priced in USD, checked, with its bound and statistics (``h`` None:
    HiGHS never ran on it)."""
    obj = model.columns_cost(chosen)  # the incumbent re-priced in USD, not HiGHS's scaled figure
    if h is None:
        ms, status = highspy.HighsModelStatus.kTimeLimit, "Time limit reached"
        mip_bound, nodes, dual_tol = -math.inf, 0, 0.0
    else:
        info = h.getInfo()
        ms = h.getModelStatus()
        status, mip_bound, nodes = h.modelStatusToString(ms), float(info.mip_dual_bound), int(info.mip_node_count)
        dual_tol = float(h.getOptionValue("dual_feasibility_tolerance")[1])
    bound, source, trusted = block_bound(model, obj, lp_bound, mip_bound, dual_tol)
    if not trusted:
        note = (f"{note}; " if note else "") + (
            "HiGHS's dual bound lies above its incumbent beyond its own tolerances: the LP relaxation's bound is kept"
        )
    check_one_action_per_task(model, chosen)
    stats = BlockStats(
        **block_shape(inst, pairs, model),
        status=status,
        objective_usd=obj,
        dual_bound_usd=bound,
        start_usd=start_usd,
        build_s=times.build_s,
        start_s=times.start_s,
        solve_s=times.solve_s,
        nodes=nodes,
        bound_source=source,
        note=note,
    )
    return BlockSolution(chosen=chosen, stats=stats, limited=ms != highspy.HighsModelStatus.kOptimal)


def block_shape(inst: Instance, pairs: Pairs, model: BlockModel) -> dict[str, Any]:
    """The :class:`BlockStats` fields that say which block it is and how large: window, slots, sizes."""
    btasks = np.unique(pairs.task)
    return {
        "window_idx": int(inst.window_idx[btasks[0]]),
        "slots": tuple(int(s) for s in np.unique(inst.slot_idx[btasks])),
        "num_tasks": model.num_tasks,
        "num_vars": model.num_col,
        "num_rows": model.num_row,
    }


def check_one_action_per_task(model: BlockModel, chosen: NDArray[np.bool_]) -> None:
    per_task = np.bincount(model.task_row[chosen], minlength=model.num_tasks)
    if not (per_task == 1).all():
        raise RuntimeError(
            f"HiGHS solution assigns {int(per_task.max())} or {int(per_task.min())} actions "
            "to a task; expected exactly one"
        )


def block_bound(
    model: BlockModel, obj_usd: float, lp_bound_usd: float, mip_bound: float, dual_tol: float
) -> tuple[float, str, bool]:
    """``(bound, source, trusted)``: the block's dual bound, USD, never above its incumbent ``obj_usd``;
    where it comes from (``"lp"``, ``"highs"`` or ``"tasks"``: each task's cheapest pair, where that is
    higher than the LP's, e.g. when no LP was solved in time); whether HiGHS's bound was consistent.

    The LP relaxation's weak-duality bound (``lp_bound_usd``) is valid whatever HiGHS's tolerances, up to
    float rounding: above the incumbent by more than that, the model or the incumbent is wrong, and this
    raises. HiGHS's branch-and-bound bound (``mip_bound``, in its scaled units) is HiGHS's word: it is used
    where higher and at most ``dual_tol`` per task (its reduced-cost tolerance, in the same units) above
    the incumbent (that excess is its inexactness: the incumbent is optimal to that precision); farther
    above, it is inconsistent and the LP bound stands alone.
    """
    rounding = 1e-9 * max(abs(obj_usd), model.num_tasks * model.cost_scale)
    if lp_bound_usd > obj_usd + rounding:
        raise RuntimeError(
            f"the LP relaxation's weak-duality bound {lp_bound_usd!r} USD lies above the block's incumbent "
            f"{obj_usd!r} USD: a modelling or incumbent error"
        )
    bound, source = lp_bound_usd, "lp"
    if model.col_cost.min(initial=0.0) >= 0.0:
        cheapest = model.cheapest_usd()  # costs are never negative: each task pays at least its cheapest pair
        if cheapest > bound:
            bound, source = cheapest, "tasks"
    trusted = True
    if math.isfinite(mip_bound):
        mip_usd = mip_bound * model.cost_scale
        if mip_usd > obj_usd + dual_tol * model.num_tasks * model.cost_scale:
            trusted = False
        elif mip_usd > bound:
            bound, source = mip_usd, "highs"
    return min(bound, obj_usd), source, trusted
