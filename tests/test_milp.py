"""The MILP oracle (baselines.milp): brute force on tiny instances, regret >= 0, monotonicity, honest gaps."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from brute import brute_force, brute_force_after, tiny_instance

from baselines.heuristics import make_heuristic
from baselines.milp import MilpResult, regret, regret_interval, solve_hindsight, solve_rolling
from baselines.milp.block import SolveOptions, block_bound, solve_block
from baselines.milp.model import build_model
from baselines.milp.pairs import Pairs, admissible_pairs, independent_blocks
from baselines.milp.replicas import ReplicaSearch
from baselines.milp.schedule import solve_blocks
from baselines.milp.start import greedy_start
from envs import (
    Instance,
    Scenario,
    check_plan_feasible,
    cost_matrix,
    evaluate_plan,
    sample_instance,
    static_mask,
)
from envs.costs import slot_usage_gpu_s
from envs.scenario import CostParams

TOL = 1e-6  # relative, on objectives


def close(a: float, b: float, rel: float = TOL) -> bool:
    return abs(a - b) <= rel * max(1e-3, abs(a), abs(b))


CASES = [
    (seed, K, R, integer)
    for seed, (K, R, integer) in enumerate(
        [
            (3, 2, False),
            (4, 3, False),
            (5, 2, True),
            (5, 3, False),
            (6, 2, False),
            (6, 3, True),
            (6, 4, False),
            (7, 2, True),
            (7, 3, False),
            (5, 4, True),
            (7, 2, False),
            (6, 3, False),
        ]
    )
]


@pytest.mark.parametrize(("seed", "num_tasks", "num_regions", "integer_gpu"), CASES)
def test_milp_equals_brute_force(seed: int, num_tasks: int, num_regions: int, integer_gpu: bool) -> None:
    inst = tiny_instance(seed, num_tasks, num_regions, integer_gpu=integer_gpu)
    best, _ = brute_force(inst)
    for linking, method in (("strong", "decompose"), ("weak", "decompose"), ("strong", "direct")):
        res = solve_hindsight(inst, linking=linking, method=method)
        assert res.status == "optimal" and res.mip_gap <= TOL
        assert close(res.objective_usd, best), (linking, method, res.objective_usd, best)
        assert res.dual_bound_usd <= best + TOL * best + 1e-12
        assert close(evaluate_plan(inst, res.plan).total_usd, res.objective_usd, 1e-12)
        assert not check_plan_feasible(inst, res.plan)


def test_brute_force_cases_exercise_replicas_and_capacity() -> None:
    """The tiny cases are not trivial: optima pay replica charges, fill capacity, leave tasks unserved."""
    replicas = overflow = full = 0
    for seed, K, R, integer in CASES:
        inst = tiny_instance(seed, K, R, integer_gpu=integer)
        plan = solve_hindsight(inst).plan
        ev = evaluate_plan(inst, plan)
        replicas += ev.replicas_opened > 0
        overflow += ev.num_overflow > 0
        full += bool((slot_usage_gpu_s(inst, plan) > 0.8 * inst.capacity_gpu_s).any())
    assert replicas >= 4 and overflow >= 4 and full >= 4


def capacity_repair(inst: Instance, wanted: np.ndarray) -> np.ndarray:
    """``wanted`` actions kept in task order while capacity lasts, else overflow: a feasible plan."""
    pc = cost_matrix(inst)
    resid = inst.capacity_gpu_s.copy()
    plan = np.full(inst.num_tasks, inst.overflow_action, dtype=np.int64)
    for k, a in enumerate(wanted):
        if a < inst.num_regions and pc.gpu_s[k, a] <= resid[inst.slot_idx[k], a]:
            resid[inst.slot_idx[k], a] -= pc.gpu_s[k, a]
            plan[k] = a
    return plan


def small_instances() -> list[Instance]:
    """Sampled episodes of the default scenario, short and with capacity cut so that it binds."""
    tight = Scenario.from_overrides({"capacity": {"scale": 0.05}})
    return [sample_instance(Scenario.default(), seed=s, num_tasks=300, horizon_h=8.0) for s in range(3)] + [
        sample_instance(tight, seed=10 + s, num_tasks=120, horizon_h=4.0) for s in range(3)
    ]


@pytest.mark.parametrize("inst", small_instances(), ids=lambda i: f"seed{i.seed}")
def test_oracle_beats_simple_plans(inst: Instance) -> None:
    oracle = solve_hindsight(inst, time_limit_s=20.0)
    assert oracle.proven_optimal
    pc = cost_matrix(inst)
    mask = static_mask(inst, pc)
    cheapest = np.where(mask, pc.total_usd, np.inf).argmin(axis=1)
    plans = {
        "local": capacity_repair(inst, inst.home_idx),
        "cheapest": capacity_repair(inst, cheapest),
        "overflow": np.full(inst.num_tasks, inst.overflow_action),
        "rolling": solve_rolling(inst, time_limit_s=10.0).plan,
    }
    for name, plan in plans.items():
        assert not check_plan_feasible(inst, plan), name
        r = regret(plan, oracle, inst)
        assert r.regret_usd >= -TOL * oracle.objective_usd, (name, r)
        assert oracle.objective_usd <= evaluate_plan(inst, plan).total_usd * (1 + TOL), name


@pytest.mark.parametrize("seed", range(4))
def test_relaxing_budgets_never_raises_the_optimum(seed: int) -> None:
    inst = tiny_instance(100 + seed, 7, 3) if seed < 2 else small_instances()[seed - 2]
    base = solve_hindsight(inst, time_limit_s=10.0)
    for extra in (10.0, 100.0, 1e4):
        relaxed = solve_hindsight(inst.replace(budget_ms=inst.budget_ms + extra), time_limit_s=10.0)
        # the relaxed optimum is at most the tighter one's: its bound can never exceed that incumbent
        assert relaxed.dual_bound_usd <= base.objective_usd * (1 + TOL) + 1e-12
        assert base.proven_optimal and relaxed.proven_optimal
        assert relaxed.objective_usd <= base.objective_usd * (1 + TOL) + 1e-12
        base = relaxed


@pytest.fixture(scope="module")
def limited() -> tuple[Instance, MilpResult]:
    """A saturated instance (demand several times capacity) solved with a short time limit."""
    inst = sample_instance(Scenario.default(), seed=3, num_tasks=12000, horizon_h=8.0)
    return inst, solve_hindsight(inst, time_limit_s=3.0)


def test_time_limited_solve_reports_an_honest_gap(limited: tuple[Instance, MilpResult]) -> None:
    inst, res = limited
    assert res.objective_usd == pytest.approx(evaluate_plan(inst, res.plan).total_usd, rel=1e-12)
    assert not check_plan_feasible(inst, res.plan)
    assert res.dual_bound_usd <= res.objective_usd
    expected_gap = (res.objective_usd - res.dual_bound_usd) / res.objective_usd
    assert res.mip_gap == pytest.approx(expected_gap, rel=1e-9)
    assert (res.status == "optimal") == (res.mip_gap <= res.mip_rel_gap)
    assert res.status != "optimal", "expected the 3 s limit to stop this instance short of a proof"
    # the limit is a hard one for the whole call (HiGHS interrupted in its MIP and simplex callbacks)
    assert res.wall_s <= 3.0 + 1.0
    # blocks add up, and each block's bound is below its incumbent
    assert res.dual_bound_usd == pytest.approx(sum(b.dual_bound_usd for b in res.blocks), rel=1e-12)
    assert all(b.dual_bound_usd <= b.objective_usd + 1e-9 for b in res.blocks)
    # the bound is a true lower bound: no feasible plan we know of beats it
    rolling = solve_rolling(inst, time_limit_s=5.0)
    assert res.dual_bound_usd <= rolling.objective_usd


def test_a_block_not_started_in_time_keeps_its_greedy_plan(limited: tuple[Instance, MilpResult]) -> None:
    """Past the deadline a block runs no LP and no MILP: the greedy plan, and each task's cheapest pair as
    its bound (valid: costs and charges are never negative)."""
    inst = limited[0]
    pc = cost_matrix(inst)
    pairs = admissible_pairs(inst, pc, static_mask(inst, pc), np.arange(inst.num_tasks))
    block = pairs.take(independent_blocks(inst, pairs)[0])
    sol = solve_block(inst, block, 0.0, lambda: True, SolveOptions(1e-6, "strong", True, False))
    assert sol.limited and sol.stats.bound_source == "tasks" and "not started" in sol.stats.note
    assert np.array_equal(sol.chosen, greedy_start(inst, block))
    cheapest = sum(block.cost_usd[block.task == k].min() for k in np.unique(block.task))
    assert sol.stats.dual_bound_usd == pytest.approx(cheapest, rel=1e-12)
    assert sol.stats.dual_bound_usd <= sol.stats.objective_usd


def test_regret_refuses_an_unproven_oracle(limited: tuple[Instance, MilpResult]) -> None:
    inst, res = limited
    plan = np.full(inst.num_tasks, inst.overflow_action)
    with pytest.raises(ValueError, match="not proven optimal"):
        regret(plan, res, inst)
    r = regret_interval(plan, res, inst)
    assert not r.proven and "interval" in str(r)
    assert r.regret_usd == pytest.approx(evaluate_plan(inst, plan).total_usd - res.objective_usd)
    assert r.regret_max_usd == pytest.approx(evaluate_plan(inst, plan).total_usd - res.dual_bound_usd)
    assert r.regret_usd <= r.regret_max_usd


def test_regret_checks_its_inputs() -> None:
    inst = tiny_instance(7, 6, 3)
    oracle = solve_hindsight(inst)
    assert regret(oracle.plan, oracle, inst).regret_usd == pytest.approx(0.0, abs=1e-12)
    assert regret(oracle.objective_usd + 1.0, oracle, inst).regret_usd == pytest.approx(1.0)
    with pytest.raises(ValueError, match="below the proven optimum"):
        regret(oracle.objective_usd * 0.5, oracle, inst)
    with pytest.raises(ValueError, match="another instance"):
        regret(oracle.plan[:-1], oracle, inst.subset(np.arange(inst.num_tasks - 1)))
    all_in_0 = np.zeros(inst.num_tasks, dtype=np.int64)
    assert check_plan_feasible(inst, all_in_0)  # this case puts some task out of budget or capacity
    with pytest.raises(ValueError, match="infeasible"):
        regret(all_in_0, oracle, inst)


def test_rolling_is_feasible_and_no_better_than_the_oracle() -> None:
    for seed, K, R, integer in CASES[:6]:
        inst = tiny_instance(seed, K, R, integer_gpu=integer)
        roll = solve_rolling(inst)
        oracle = solve_hindsight(inst)
        assert roll.status == "optimal"
        assert not check_plan_feasible(inst, roll.plan)
        assert roll.objective_usd == pytest.approx(evaluate_plan(inst, roll.plan).total_usd, rel=1e-12)
        assert roll.objective_usd >= oracle.objective_usd * (1 - TOL)


def test_rolling_equals_hindsight_on_one_slot() -> None:
    """With a single slot there is nothing to foresee: the rolling baseline is the oracle."""
    inst = tiny_instance(42, 7, 3)
    one = inst.subset(np.flatnonzero(inst.slot_idx == np.bincount(inst.slot_idx).argmax()))
    assert close(solve_rolling(one).objective_usd, solve_hindsight(one).objective_usd)


def test_rolling_uses_replicas_opened_earlier_in_the_window() -> None:
    """Two tasks in consecutive slots of one window, both best served where no replica is permanent."""
    inst = tiny_instance(5, 2, 2, replica_usd=1e-4)
    inst = inst.replace(
        slot_idx=np.array([0, 1]),
        arrival_h=np.array([0.5, 1.5]),
        model_idx=np.array([1, 1]),
        node_idx=np.array([0, 0]),
        home_idx=np.array([0, 0]),
        residency_idx=np.array([0, 0]),
        budget_ms=np.array([1e6, 1e6]),
        capacity_gpu_s=np.full((4, 2), 100.0),
        residency_ok=np.ones((2, 3, 2), dtype=bool),
        overflow_usd=np.array([1.0, 1.0]),
        price_usd_per_kwh=np.tile([10.0, 0.01], (4, 1)),
    )
    roll, oracle = solve_rolling(inst), solve_hindsight(inst)
    assert list(roll.plan) == [1, 1] == list(oracle.plan)
    assert evaluate_plan(inst, roll.plan).replicas_opened == 1
    assert close(roll.objective_usd, oracle.objective_usd)


def test_bad_arguments() -> None:
    inst = tiny_instance(0, 3, 2)
    with pytest.raises(ValueError, match="mip_rel_gap"):
        solve_hindsight(inst, mip_rel_gap=-1.0)
    with pytest.raises(ValueError, match="time_limit_s"):
        solve_hindsight(inst, time_limit_s=0.0)
    with pytest.raises(ValueError, match="time_limit_s"):
        solve_rolling(inst, time_limit_s=-1.0)


# --------------------------------------------------------------- numerics: any weights, any objective scale
WEIGHTS = [  # (alpha, beta, gamma, eta): each term alone, then mixes
    (1.0, 0.0, 0.0, 0.0),
    (0.0, 1.0, 0.0, 0.0),
    (0.0, 0.0, 1.0, 0.0),
    (0.0, 0.0, 0.0, 1.0),
    (1.0, 1.0, 1.0, 1.0),
    (0.5, 2.0, 0.0, 1.0),
    (0.0, 1.0, 0.0, 1.0),
]


def scaled(inst: Instance, weights: tuple[float, float, float, float], factor: float) -> Instance:
    """``inst`` under ``weights``, with every cost term (weights, SLO penalties) times ``factor``."""
    a, b, g, e = (factor * w for w in weights)
    c = inst.cost
    cost = CostParams(
        alpha=a,
        beta=b,
        gamma=g,
        eta=e,
        carbon_price_usd_per_t=c.carbon_price_usd_per_t,
        state_mult=c.state_mult,
        cache_mult=c.cache_mult,
        egress_mult=c.egress_mult,
        replica_mult=c.replica_mult,
    )
    return inst.replace(cost=cost, overflow_usd=inst.overflow_usd * factor)


def assert_honest(inst: Instance, res: MilpResult) -> None:
    """The plan is feasible, re-prices to the objective, and lies within the reported gap of a bound below it."""
    assert not check_plan_feasible(inst, res.plan)
    obj = evaluate_plan(inst, res.plan).total_usd
    assert abs(obj - res.objective_usd) <= 1e-9 * abs(obj)
    assert res.dual_bound_usd <= obj
    assert obj - res.dual_bound_usd <= res.mip_gap * abs(obj) * (1 + 1e-9)
    assert (res.status == "optimal") == (res.mip_gap <= res.mip_rel_gap)


@pytest.fixture(scope="module")
def contended_day(toy_scenario: Scenario) -> Instance:
    """Two hours of the toy scenario: scarce capacity and cold replicas, so both kinds of rows bind."""
    return sample_instance(toy_scenario, seed=3, num_tasks=130, horizon_h=2.0)


@pytest.mark.parametrize("weights", WEIGHTS, ids=lambda w: "w" + "-".join(f"{x:g}" for x in w))
def test_oracle_is_honest_under_any_weights_and_scale(
    contended_day: Instance, weights: tuple[float, float, float, float]
) -> None:
    """Tiny (carbon-only, 1e-6) and huge (1e6) objectives: never a crash, a valid bound, the same optimum."""
    results = {}
    for factor in (1e-6, 1.0, 1e6):
        inst = scaled(contended_day, weights, factor)
        res = solve_hindsight(inst, time_limit_s=30)
        assert_honest(inst, res)
        assert res.status == "optimal"
        # the bound is valid: no feasible plan beats it (greedy and all-home-or-overflow included)
        greedy = make_heuristic("greedy", inst).plan(inst)
        assert res.dual_bound_usd <= evaluate_plan(inst, greedy).total_usd
        results[factor] = res.objective_usd
    assert results[1e-6] == pytest.approx(1e-6 * results[1.0], rel=1e-5)
    assert results[1e6] == pytest.approx(1e6 * results[1.0], rel=1e-5)


def test_carbon_only_day_is_solved(tmp_path) -> None:
    """A reported crash: a carbon-only objective of about 0.04 USD, where HiGHS's LP objective exceeded the
    plan's cost by its dual tolerance; the oracle now proves it."""
    (tmp_path / "carbon.toml").write_text(
        "[weights]\nalpha = 0.0\nbeta = 1.0\ngamma = 0.0\neta = 0.0\n"
        "[frictions]\nstate = 0.0\ncache = 0.0\negress = 0.0\nreplica = 0.0\n"
        '[capacity]\nscale = 1000.0\n[legal]\nresidency_mode = "off"\n[signals]\nrandom_start = false\n'
        '[workload]\narrival = "poisson"\nslack_scale = 0.0\nslack_add_ms = 200.0\n'
    )
    sc = Scenario.from_toml(tmp_path / "carbon.toml")
    inst = sample_instance(sc, seed=1584, num_tasks=300, start_hour=1584)
    res = solve_hindsight(inst)
    assert_honest(inst, res)
    assert res.status == "optimal"
    # no coupling (capacity x1000, no replica charges): the optimum is each task's cheapest admissible action
    cheapest = np.where(static_mask(inst), cost_matrix(inst).total_usd, np.inf).min(axis=1).sum()
    assert res.objective_usd == pytest.approx(cheapest, rel=1e-12)


def test_solvers_print_nothing(toy_instance: Instance, capfd: pytest.CaptureFixture[str]) -> None:
    """HiGHS's banner and log stay off the user's terminal unless ``verbose`` (checked at the fd level,
    where the C++ library writes)."""
    solve_hindsight(toy_instance)
    solve_rolling(toy_instance)
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    solve_hindsight(toy_instance, verbose=True)
    assert "HiGHS" in capfd.readouterr().out


# ------------------------------------------------------------------------------- the bounds themselves
@pytest.mark.parametrize(("seed", "num_tasks", "num_regions", "integer_gpu"), CASES[:8])
def test_lagrangian_bound_is_valid_for_any_multipliers(
    seed: int, num_tasks: int, num_regions: int, integer_gpu: bool
) -> None:
    """Weak duality: whatever the row multipliers (HiGHS's duals or random ones, any sign), the bound never
    exceeds the brute-force optimum of the whole model."""
    inst = tiny_instance(seed, num_tasks, num_regions, integer_gpu=integer_gpu)
    best, _ = brute_force(inst)
    pc = cost_matrix(inst)
    pairs = admissible_pairs(inst, pc, static_mask(inst, pc), np.arange(inst.num_tasks))
    for linking in ("strong", "weak"):
        model = build_model(inst, pairs, linking)
        # the LP relaxation's duals: the bound is then the LP optimum (tight), still below the integer one
        h = model.highs(verbose=False)
        h.setOptionValue("solve_relaxation", True)
        h.run()
        lp_usd = h.getInfo().objective_function_value * model.cost_scale
        duals = np.asarray(h.getSolution().row_dual)
        assert model.lagrangian_bound(duals) == pytest.approx(lp_usd, rel=1e-9, abs=1e-12)
        rng = np.random.default_rng(seed)
        for y in [
            np.zeros(model.num_row),
            duals,
            *(duals * rng.uniform(0.5, 1.5, duals.size) for _ in range(50)),
            *(rng.normal(0.0, rng.choice([1e-3, 1e-2, 1.0]), model.num_row) for _ in range(50)),
        ]:
            assert model.lagrangian_bound(y) <= best * (1 + 1e-12) + 1e-12


def test_block_bound_keeps_highs_only_when_consistent(toy_instance: Instance) -> None:
    pc = cost_matrix(toy_instance)
    pairs = admissible_pairs(toy_instance, pc, static_mask(toy_instance, pc), np.arange(toy_instance.num_tasks))
    model = build_model(toy_instance, pairs, "strong")
    s, tol = model.cost_scale, 1e-7
    # the bound that needs no LP: every task pays at least its cheapest pair
    c = float(sum(pairs.cost_usd[pairs.task == k].min() for k in np.unique(pairs.task)))
    # HiGHS's bound between the LP bound and the incumbent is used
    assert block_bound(model, c + 1.0, c + 0.5, (c + 0.9) / s, tol) == (pytest.approx(c + 0.9), "highs", True)
    # far above the incumbent: inconsistent, the LP bound stands alone
    assert block_bound(model, c + 1.0, c + 0.5, (c + 2.0) / s, tol) == (c + 0.5, "lp", False)
    # above by less than HiGHS's tolerance: the incumbent is optimal to that precision
    bound, source, trusted = block_bound(model, c + 1.0, c + 0.5, (c + 1.0 + 0.5 * tol * s) / s, tol)
    assert (bound, source, trusted) == (c + 1.0, "highs", True)
    # no LP bound (stopped by the time limit) or a lower one: the cheapest pairs bound the block
    assert block_bound(model, c + 1.0, -math.inf, float("nan"), tol)[:2] == (pytest.approx(c), "tasks")
    assert block_bound(model, c + 1.0, c - 3.0, float("nan"), tol)[:2] == (pytest.approx(c), "tasks")
    # a weak-duality bound above the incumbent is a modelling error, never a proof
    with pytest.raises(RuntimeError, match=r"weak-duality bound .* above the block's incumbent"):
        block_bound(model, c + 1.0, c + 1.5, float("nan"), tol)


@pytest.mark.parametrize("beta", [1e-9, 1e-12])
def test_costs_over_many_orders_of_magnitude_are_reported_unproven(contended_day: Instance, beta: float) -> None:
    """A carbon weight of 1e-12 beside SLO penalties of 0.01 USD: HiGHS cannot prove such a plan, and the
    oracle and the rolling baseline say so ('unproven', no limit was hit) instead of 'optimal'."""
    inst = contended_day.replace(cost=CostParams(alpha=0.0, beta=beta, gamma=0.0, eta=0.0))
    res = solve_hindsight(inst, time_limit_s=60)
    assert_honest(inst, res)
    assert res.status in ("optimal", "unproven")
    roll = solve_rolling(inst, time_limit_s=60)
    assert (roll.status == "optimal") == (roll.max_slot_gap <= 1e-6)
    assert roll.status in ("optimal", "unproven")
    assert res.status != "optimal" or roll.status != "optimal"  # at least one of them cannot prove it here


@pytest.mark.parametrize(("seed", "num_tasks", "num_regions", "integer_gpu"), CASES[:8])
def test_a_fixed_prefix_gives_the_brute_force_optimum_of_the_rest(
    seed: int, num_tasks: int, num_regions: int, integer_gpu: bool
) -> None:
    inst = tiny_instance(seed, num_tasks, num_regions, integer_gpu=integer_gpu)
    rng = np.random.default_rng(seed)
    mask = static_mask(inst)
    for m in (1, num_tasks // 2, num_tasks):
        # a learner's prefix: random admissible actions, kept only while they fit the capacity
        prefix = np.full(m, inst.num_regions, dtype=np.int64)
        for k in range(m):
            trial = prefix.copy()
            trial[k] = rng.choice(np.flatnonzero(mask[k]))
            full = np.concatenate([trial, np.full(num_tasks - m, inst.num_regions)])
            if not check_plan_feasible(inst, full):
                prefix = trial
        res = solve_hindsight(inst, fixed=prefix)
        assert res.status == "optimal"
        np.testing.assert_array_equal(res.plan[:m], prefix)
        assert close(res.objective_usd, brute_force_after(inst, prefix))
        assert res.objective_usd >= solve_hindsight(inst).objective_usd - 1e-12  # fixing never helps


@pytest.mark.parametrize("seed", range(6))
def test_a_prefix_that_needs_a_replica_is_kept_by_both_methods(seed: int) -> None:
    """Replica charges high enough that the greedy start would close a replica the prefix needs, and replica
    decisions that leave a prefix task no pair: both methods still give the brute-force optimum of the rest
    (a review found the replica search crashing on such prefixes)."""
    inst = tiny_instance(seed, 7, 3, replica_usd=0.02)
    rng = np.random.default_rng(100 + seed)
    mask = static_mask(inst)
    needs = ~inst.permanent_replica[:, inst.model_idx].T  # [K, R] a served action there needs a replica
    for _ in range(4):
        m = int(rng.integers(1, 5))
        prefix = np.full(m, inst.num_regions, dtype=np.int64)
        for k in range(m):
            options = np.flatnonzero(mask[k, :-1] & needs[k])  # prefer actions that open a replica
            trial = prefix.copy()
            trial[k] = rng.choice(options) if options.size else inst.num_regions
            full = np.concatenate([trial, np.full(inst.num_tasks - m, inst.num_regions)])
            if not check_plan_feasible(inst, full):
                prefix = trial
        best = brute_force_after(inst, prefix)
        for method in ("decompose", "direct"):
            res = solve_hindsight(inst, fixed=prefix, method=method)
            assert res.status == "optimal", (method, prefix)
            np.testing.assert_array_equal(res.plan[:m], prefix)
            assert close(res.objective_usd, best), (method, prefix, res.objective_usd, best)
        # out of time before any block starts: the greedy plan keeps the prefix too
        late = solve_hindsight(inst, fixed=prefix, method="direct", time_limit_s=1e-6)
        np.testing.assert_array_equal(late.plan[:m], prefix)
        assert late.dual_bound_usd <= best * (1 + 1e-12)


def test_a_bad_prefix_is_refused() -> None:
    inst = tiny_instance(0, 5, 3)
    mask = static_mask(inst)
    with pytest.raises(ValueError, match=r"fixed\[0\] = 9: expected an action in \[0, 3\]"):
        solve_hindsight(inst, fixed=[9])
    k_bad = next(((k, a) for k in range(5) for a in range(3) if not mask[k, a]), None)
    if k_bad is not None:
        k, a = k_bad
        prefix = [inst.num_regions] * k + [a]
        with pytest.raises(ValueError, match=rf"fixed\[{k}\] = {a}: not admissible"):
            solve_hindsight(inst, fixed=prefix)
    with pytest.raises(ValueError, match="at most 5 integer actions"):
        solve_hindsight(inst, fixed=[3] * 6)


# ------------------------------------------------------------------------------- replicas first
def brute_force_with_replica(inst: Instance, pairs: Pairs, replica: int, is_open: bool) -> float:
    """The brute-force optimum with one replica variable fixed: closed (its pairs forbidden), or open (its
    charge paid whether used or not)."""
    key = int(pairs.replica_key[replica])
    M, R = len(inst.model_names), inst.num_regions
    window, region, model = key // M // R, key // M % R, key % M
    needs = (inst.window_idx == window) & (inst.model_idx == model)
    mask = static_mask(inst)
    choices = [
        np.flatnonzero(mask[k] & ~(needs[k] & ~is_open & (np.arange(R + 1) == region))) for k in range(inst.num_tasks)
    ]
    cap = inst.capacity_gpu_s * (1 + 1e-9) + 1e-9
    best = np.inf
    for combo in itertools.product(*choices):
        plan = np.array(combo, dtype=np.int64)
        if (slot_usage_gpu_s(inst, plan) > cap).any():
            continue
        ev = evaluate_plan(inst, plan)
        used = bool((needs & (plan == region)).any())
        best = min(best, ev.total_usd + (pairs.replica_cost_usd[replica] if is_open and not used else 0.0))
    return float(best)


@pytest.mark.parametrize(("seed", "num_tasks", "num_regions", "integer_gpu"), CASES[:6])
def test_lagrangian_bound_with_a_replica_fixed_is_valid(
    seed: int, num_tasks: int, num_regions: int, integer_gpu: bool
) -> None:
    """The node bound of the replica search: with one y column fixed (closed or open), the weak-duality
    bound from any multipliers never exceeds the brute-force optimum under that fixing."""
    inst = tiny_instance(seed, num_tasks, num_regions, integer_gpu=integer_gpu)
    pc = cost_matrix(inst)
    pairs = admissible_pairs(inst, pc, static_mask(inst, pc), np.arange(inst.num_tasks))
    model = build_model(inst, pairs, "strong")
    rng = np.random.default_rng(seed)
    for j in range(model.num_col - model.num_x):
        replica = int(np.unique(pairs.replica[pairs.replica >= 0])[j])
        for is_open in (False, True):
            best = brute_force_with_replica(inst, pairs, replica, is_open)
            lo, hi = np.zeros(model.num_col), np.ones(model.num_col)
            lo[model.num_x + j] = hi[model.num_x + j] = float(is_open)
            h = model.highs(verbose=False)
            h.setOptionValue("solve_relaxation", True)
            h.changeColBounds(model.num_x + j, float(is_open), float(is_open))
            h.run()
            duals = np.asarray(h.getSolution().row_dual)
            for y in [duals, *(duals * rng.uniform(0.5, 1.5, duals.size) for _ in range(10))]:
                assert model.lagrangian_bound(y, lo, hi) <= best * (1 + 1e-12) + 1e-12, (j, is_open)


@pytest.mark.parametrize("seed", range(3))
def test_replicas_first_agrees_with_the_direct_milp(toy_scenario: Scenario, seed: int) -> None:
    """A second formulation: on toy days whose replica windows span two slots with scarce capacity, the
    replica search and one HiGHS MILP per window prove the same optimum, and each bound lies below the
    other's plan."""
    inst = sample_instance(toy_scenario, seed=seed, num_tasks=240)
    dec = solve_hindsight(inst, time_limit_s=60)
    direct = solve_hindsight(inst, time_limit_s=60, method="direct")
    assert any(b.bound_source == "replicas" for b in dec.blocks)
    for res in (dec, direct):
        assert_honest(inst, res)
        assert res.status == "optimal"
    assert close(dec.objective_usd, direct.objective_usd)
    assert dec.dual_bound_usd <= direct.objective_usd * (1 + 1e-12)
    assert direct.dual_bound_usd <= dec.objective_usd * (1 + 1e-12)


def test_a_replica_search_stopped_early_keeps_a_valid_bound(toy_scenario: Scenario) -> None:
    """Out of time after the first leaf, the open nodes' bounds still cover the tree: the bound stays
    below the optimum and the block is reported limited."""
    inst = sample_instance(toy_scenario, seed=1, num_tasks=240)
    best = solve_hindsight(inst).objective_usd
    pc = cost_matrix(inst)
    pairs = admissible_pairs(inst, pc, static_mask(inst, pc), np.arange(inst.num_tasks))
    opt = SolveOptions(1e-6, "strong", True, False)
    bounds, dives = 0.0, 0
    for b in independent_blocks(inst, pairs):
        search = ReplicaSearch(inst, pairs.take(b), opt)
        leaf = search.next_leaf(math.inf)  # the dive; None when the start is already proven
        if leaf is not None:
            dives += 1
            search.record_leaf(leaf, solve_blocks(inst, leaf.slots, math.inf, 1, opt))
            assert search.next_leaf(0.0) is None  # the deadline has passed: nothing more is explored
        sol = search.solution()
        assert sol.stats.dual_bound_usd <= sol.stats.objective_usd
        bounds += sol.stats.dual_bound_usd
    assert dives >= 1
    assert bounds <= best * (1 + 1e-12)
