"""The cost model and masks (envs/costs.py): hand-worked numbers on the toy instance, then properties.

The toy instance is described in tests/conftest.py; every expected number below is worked out from
that table in the comments next to it.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from envs import (
    CostParams,
    Instance,
    Scenario,
    check_plan_feasible,
    cost_matrix,
    evaluate_plan,
    infeasibility_reason,
    pair_costs,
    residency_allowed,
    sample_instance,
    static_mask,
)
from envs.costs import home_latency_ms, replica_openings, slot_usage_gpu_s, validate_plan

A, B, C, OVER = 0, 1, 2, 3  # toy actions; 3 = overflow

# The feasible reference plan: t0 at home A, t1 away at C, t2 away at C, t3 at home B, t4 overflow.
PLAN = [A, C, C, B, OVER]


def approx(x: float | np.ndarray) -> object:
    return pytest.approx(x, rel=1e-12, abs=1e-12)


# --------------------------------------------------------------------------------------- latency
def test_latency_per_pair(toy_instance: Instance) -> None:
    # L = client[n] + rounds * rtt[n, i] + queue[i] + inference + (cache_ms if away)
    expected = np.array(
        [
            # A: 10+1+5+20      B: 10+20+5+20     C: 10+50+10+20    overflow
            [36.0, 55.0, 90.0, 0.0],  # t0 (n0, rounds 1, inference 20)
            # A: 10+2*1+5+30    B: 10+2*20+5+30+10  C: 10+2*50+10+30+10  (cache 10 ms away from home A)
            [47.0, 95.0, 160.0, 0.0],  # t1
            # A: 5+20+5+40      B: 5+1+5+40       C: 5+40+10+40
            [70.0, 51.0, 95.0, 0.0],  # t2 (n1, rounds 1, inference 40)
            [70.0, 51.0, 95.0, 0.0],  # t3 (same as t2)
            [36.0, 55.0, 90.0, 0.0],  # t4 (same as t0)
        ]
    )
    np.testing.assert_allclose(cost_matrix(toy_instance).latency_ms, expected, rtol=0, atol=1e-12)
    # the latency each task meets at home: t0 at A 36, t1 at A 47, t2/t3 at B 51, t4 at A 36
    np.testing.assert_allclose(home_latency_ms(toy_instance), [36, 47, 51, 51, 36], atol=1e-12)


def test_gpu_time_includes_recomputed_cache_only_away(toy_instance: Instance) -> None:
    gpu = cost_matrix(toy_instance).gpu_s
    # t1: 4 GPU-s at home A; 4 + 1 (recomputed prefill) at B and C; nothing on overflow
    np.testing.assert_allclose(gpu[1], [4.0, 5.0, 5.0, 0.0])
    # t0 has no cache: 2 GPU-s wherever it runs
    np.testing.assert_allclose(gpu[0], [2.0, 2.0, 2.0, 0.0])


# ----------------------------------------------------------------------------- energy and carbon
def test_energy_and_carbon_of_a_cached_task_placed_away(toy_instance: Instance) -> None:
    pc = pair_costs(toy_instance, 1, C)
    # IT energy = 2.0 + 0.5 (recomputed cache) = 2.5 kWh; facility = 2.5 * PUE 1.2 = 3.0 kWh
    assert float(pc.it_kwh) == approx(2.5)
    assert float(pc.cache_kwh) == approx(0.5)
    assert float(pc.facility_kwh) == approx(3.0)
    # energy = 3.0 kWh * 0.05 USD/kWh = 0.15 USD
    assert float(pc.energy_usd) == approx(0.15)
    # carbon = 3.0 kWh * 100 g/kWh = 300 g; at 100 USD/t: 300 * 100 / 1e6 = 0.03 USD
    assert float(pc.carbon_g) == approx(300.0)
    assert float(pc.carbon_usd) == approx(0.03)
    assert bool(pc.away) and bool(pc.served)


def test_same_task_at_home_pays_no_cache_and_no_migration(toy_instance: Instance) -> None:
    pc = pair_costs(toy_instance, 1, A)
    # IT 2.0 kWh * PUE 1.0 = 2.0 kWh; energy 2.0 * 0.10 = 0.20; carbon 2.0 * 400 = 800 g -> 0.08 USD
    assert float(pc.it_kwh) == approx(2.0)
    assert float(pc.cache_kwh) == 0.0
    assert float(pc.energy_usd) == approx(0.20)
    assert float(pc.carbon_g) == approx(800.0)
    assert float(pc.carbon_usd) == approx(0.08)
    # delay 0.001 USD/ms * 47 ms = 0.047; no state, no egress at home
    assert float(pc.delay_usd) == approx(0.047)
    assert float(pc.state_usd) == 0.0 and float(pc.egress_usd) == 0.0
    # total 0.20 + 0.08 + 0.047 = 0.327
    assert float(pc.total_usd) == approx(0.327)
    assert not bool(pc.away)


def test_price_depends_on_the_slot(toy_instance: Instance) -> None:
    # t0 (slot 0) and t4 (slot 2) both use 1 kWh at A (PUE 1.0): 0.10 USD in slot 0, 0.30 USD in slot 2
    assert float(pair_costs(toy_instance, 0, A).energy_usd) == approx(0.10)
    assert float(pair_costs(toy_instance, 4, A).energy_usd) == approx(0.30)


def test_pue_depends_on_the_slot(toy_instance: Instance) -> None:
    # PUE of A raised to 2.0 in slot 2 only: t4 (slot 2) at A uses 1.0 * 2.0 = 2.0 kWh at 0.30 -> 0.60 USD
    # and 2.0 * 400 = 800 g; t0 (slot 0) at A is unchanged at 0.10 USD
    pue = np.array(toy_instance.pue)
    pue[2, A] = 2.0
    inst = toy_instance.replace(pue=pue)
    assert float(pair_costs(inst, 4, A).energy_usd) == approx(0.60)
    assert float(pair_costs(inst, 4, A).carbon_g) == approx(800.0)
    assert float(pair_costs(inst, 0, A).energy_usd) == approx(0.10)


def test_delay_usd(toy_instance: Instance) -> None:
    delay = cost_matrix(toy_instance).delay_usd
    # t2: 0.002 USD/ms * (70, 51, 95) ms = (0.14, 0.102, 0.19); overflow: no latency, no delay
    np.testing.assert_allclose(delay[2], [0.14, 0.102, 0.19, 0.0], atol=1e-12)
    # t1: 0.001 * (47, 95, 160)
    np.testing.assert_allclose(delay[1], [0.047, 0.095, 0.160, 0.0], atol=1e-12)


# --------------------------------------------------------------------------------- migration
def test_state_and_egress_fees(toy_instance: Instance) -> None:
    cm = cost_matrix(toy_instance)
    # t1 (home A, 2.0 GB state, 1.0 GB response):
    #   at B: state 2.0 * A->B 0.02 = 0.04, egress 1.0 * B->A 0.02 = 0.02
    #   at C: state 2.0 * A->C 0.05 = 0.10, egress 1.0 * C->A 0.10 = 0.10
    np.testing.assert_allclose(cm.state_usd[1], [0.0, 0.04, 0.10, 0.0], atol=1e-12)
    np.testing.assert_allclose(cm.egress_usd[1], [0.0, 0.02, 0.10, 0.0], atol=1e-12)
    # t2 (home B, 1.0 GB state, 0.5 GB response):
    #   at A: state 1.0 * B->A 0.02 = 0.02, egress 0.5 * A->B 0.02 = 0.01
    #   at C: state 1.0 * B->C 0.08 = 0.08, egress 0.5 * C->B 0.09 = 0.045
    np.testing.assert_allclose(cm.state_usd[2], [0.02, 0.0, 0.08, 0.0], atol=1e-12)
    np.testing.assert_allclose(cm.egress_usd[2], [0.01, 0.0, 0.045, 0.0], atol=1e-12)
    np.testing.assert_allclose(cm.migration_usd[2], [0.03, 0.0, 0.125, 0.0], atol=1e-12)
    # t0 moves no bytes: no fees anywhere
    assert not cm.migration_usd[0].any()


def test_migration_is_zero_at_home_even_with_a_priced_diagonal(toy_instance: Instance) -> None:
    # A transfer matrix whose diagonal is not zero must not charge local execution (frictions are
    # zero at the local node by definition).
    transfer = np.array(toy_instance.transfer_usd_per_gb) + 1.0
    inst = toy_instance.replace(transfer_usd_per_gb=transfer)
    cm = cost_matrix(inst)
    k = np.arange(inst.num_tasks)
    assert not cm.state_usd[k, inst.home_idx].any()
    assert not cm.egress_usd[k, inst.home_idx].any()
    # away it is charged: t1 at C pays 2.0 * (0.05 + 1) = 2.1 state
    assert cm.state_usd[1, C] == approx(2.1)


def test_a_whole_pair_total_by_hand(toy_instance: Instance) -> None:
    # t1 at B (slot 0): IT 2.0 + 0.5 = 2.5 kWh, facility 2.5 * 1.5 = 3.75 kWh
    #   energy 3.75 * 0.20 = 0.75; carbon 3.75 * 300 = 1125 g -> 0.1125 USD; delay 0.001 * 95 = 0.095
    #   state 0.04 + egress 0.02 = 0.06; total 0.75 + 0.1125 + 0.095 + 0.06 = 1.0175
    pc = pair_costs(toy_instance, 1, B)
    assert float(pc.facility_kwh) == approx(3.75)
    assert float(pc.carbon_g) == approx(1125.0)
    assert float(pc.total_usd) == approx(1.0175)


def test_overflow_costs_the_penalty_and_nothing_else(toy_instance: Instance) -> None:
    cm = cost_matrix(toy_instance)
    for name in (
        "latency_ms",
        "gpu_s",
        "it_kwh",
        "cache_kwh",
        "facility_kwh",
        "energy_usd",
        "carbon_g",
        "carbon_usd",
        "delay_usd",
        "state_usd",
        "egress_usd",
    ):
        assert not getattr(cm, name)[:, OVER].any(), name
    np.testing.assert_array_equal(cm.penalty_usd[:, OVER], 5.0)
    np.testing.assert_array_equal(cm.total_usd[:, OVER], 5.0)
    assert not cm.penalty_usd[:, :OVER].any()
    assert not cm.served[:, OVER].any() and cm.served[:, :OVER].all()


def test_weights_and_multipliers(toy_instance: Instance) -> None:
    cost = CostParams(
        alpha=2.0,
        beta=3.0,
        gamma=0.5,
        eta=4.0,
        carbon_price_usd_per_t=50.0,
        state_mult=2.0,
        cache_mult=0.0,
        egress_mult=0.0,
        replica_mult=3.0,
    )
    pc = pair_costs(toy_instance.replace(cost=cost), 1, C)
    # cache_mult 0: no recomputed prefill -> IT 2.0 kWh, facility 2.4 kWh, latency 160 - 10 = 150 ms,
    # GPU time 4. energy 2.4 * 0.05 = 0.12; carbon 2.4 * 100 = 240 g at 50 USD/t = 0.012 USD;
    # delay 0.001 * 150 = 0.15; state 2 * 2.0 * 0.05 = 0.20; egress 0
    assert float(pc.gpu_s) == approx(4.0)
    assert float(pc.latency_ms) == approx(150.0)
    assert float(pc.energy_usd) == approx(0.12)
    assert float(pc.carbon_usd) == approx(0.012)
    assert float(pc.state_usd) == approx(0.20)
    assert float(pc.egress_usd) == 0.0
    # J = 2 * 0.12 + 3 * 0.012 + 0.5 * 0.15 + 4 * 0.20 = 0.24 + 0.036 + 0.075 + 0.8 = 1.151
    assert float(pc.total_usd) == approx(1.151)
    # cache_mult 2: twice the recomputed prefill -> IT 3.0 kWh, GPU 6, latency 170
    pc2 = pair_costs(toy_instance.replace(cost=CostParams(cache_mult=2.0)), 1, C)
    assert (float(pc2.it_kwh), float(pc2.gpu_s), float(pc2.latency_ms)) == (approx(3.0), 6.0, 170.0)


# ---------------------------------------------------------------------------- plan evaluation
def test_evaluate_reference_plan(toy_instance: Instance) -> None:
    bd = evaluate_plan(toy_instance, PLAN)
    # per task:
    #   t0 at A, slot 0: energy 1.0*1.0*0.10 = 0.10, carbon 400 g -> 0.04, delay 0.001*36 = 0.036 -> 0.176
    #   t1 at C, slot 0: energy 0.15, carbon 0.03, delay 0.16, state 0.10, egress 0.10          -> 0.54
    #   t2 at C, slot 1: energy 1.0*1.2*0.05 = 0.06, carbon 120 g -> 0.012, delay 0.002*95 = 0.19,
    #                    state 0.08, egress 0.045                                                -> 0.387
    #   t3 at B, slot 2: energy 1.0*1.5*0.20 = 0.30, carbon 450 g -> 0.045, delay 0.051        -> 0.396
    #   t4 overflow: penalty 5.0                                                                 -> 5.0
    np.testing.assert_allclose(bd.task.total_usd, [0.176, 0.54, 0.387, 0.396, 5.0], atol=1e-12)
    # totals: energy 0.10 + 0.15 + 0.06 + 0.30 = 0.61; carbon 400 + 300 + 120 + 450 = 1270 g
    assert bd.energy_usd == approx(0.61)
    assert bd.carbon_g == approx(1270.0)
    assert bd.carbon_usd == approx(0.127)
    assert bd.delay_usd == approx(0.036 + 0.16 + 0.19 + 0.051)
    assert bd.migration_usd == approx(0.20 + 0.125)
    assert bd.penalty_usd == 5.0
    assert bd.num_overflow == 1
    # IT energy 1 + 2.5 + 1 + 1 = 5.5 kWh; facility 1 + 3 + 1.2 + 1.5 = 6.7 kWh
    assert bd.energy_kwh == approx(5.5)
    assert bd.facility_kwh == approx(6.7)
    # replicas: (window 0, C, large) for t1 and t2 together: 2.0, once; (window 1, B, large) for t3:
    # 2.0 (B only holds `small` permanently); t0 at A uses a permanent replica -> 4.0 in all
    assert bd.replica_usd == approx(4.0)
    assert bd.replicas_opened == 2
    # total = 6.499 + 1 * 4.0
    assert bd.total_usd == approx(10.499)
    assert bd.summary()["total_usd"] == approx(10.499)


def test_total_with_weights_charges_eta_on_replicas_and_not_on_penalties(toy_instance: Instance) -> None:
    inst = toy_instance.replace(cost=CostParams(alpha=2.0, beta=3.0, gamma=0.5, eta=4.0, replica_mult=3.0))
    bd = evaluate_plan(inst, PLAN)
    # tasks: 2 * 0.61 + 3 * 0.127 + 0.5 * 0.437 + 4 * 0.325 + 5.0 (penalty unweighted)
    #      = 1.22 + 0.381 + 0.2185 + 1.3 + 5.0 = 8.1195
    assert float(bd.task.total_usd.sum()) == approx(8.1195)
    # replica charges 3 * 4.0 = 12.0 (multiplier applied, unweighted); total adds eta * 12 = 48
    assert bd.replica_usd == approx(12.0)
    assert bd.total_usd == approx(8.1195 + 48.0)


@pytest.mark.parametrize(
    ("plan", "openings", "replica_usd"),
    [
        # all permanent: t0 small at B (B holds small), t1 large at A (A holds large), rest overflow
        ([B, A, OVER, OVER, OVER], [], 0.0),
        # t1 and t2 both run `large` at C in window 0 (slots 0 and 1): charged once
        ([A, C, C, OVER, OVER], [(0, C, 1)], 2.0),
        # ... and t3 runs `large` at C in window 1 (slot 2): charged again in the new window
        ([A, C, C, C, OVER], [(0, C, 1), (1, C, 1)], 4.0),
        # t2 runs `large` at B (no permanent large there), t4 `small` at C: 2.0 + 0.5
        ([A, A, B, OVER, C], [(0, B, 1), (1, C, 0)], 2.5),
        # nothing served: nothing charged
        ([OVER] * 5, [], 0.0),
    ],
)
def test_replica_charges(
    toy_instance: Instance, plan: list[int], openings: list[tuple[int, int, int]], replica_usd: float
) -> None:
    opened = replica_openings(toy_instance, plan)
    assert opened.shape == (2, 3, 2)  # windows, regions, models
    assert sorted(map(tuple, np.argwhere(opened).tolist())) == openings
    bd = evaluate_plan(toy_instance, plan)
    assert bd.replica_usd == approx(replica_usd)
    assert bd.replicas_opened == len(openings)
    assert bd.total_usd == approx(float(bd.task.total_usd.sum()) + replica_usd)


def test_replica_window_length_decides_recharging(toy_instance: Instance) -> None:
    # with one window covering all 3 slots, t1/t2 (slots 0, 1) and t3 (slot 2) at C share a charge
    plan = [A, C, C, C, OVER]
    assert evaluate_plan(toy_instance.replace(replica_window_h=3), plan).replica_usd == approx(2.0)
    # with one-slot windows, slot 0 (t1), slot 1 (t2), slot 2 (t3) each pay 2.0
    assert evaluate_plan(toy_instance.replace(replica_window_h=1), plan).replica_usd == approx(6.0)


# ------------------------------------------------------------------------------------- masks
def test_residency_allowed_by_hand(toy_instance: Instance, toy_geography: dict) -> None:
    g = toy_geography
    where = (g["node_country"], g["node_in_eu"], g["region_country"], g["region_in_eu"], g["region_adequacy"])
    strict = residency_allowed("strict", *where)
    np.testing.assert_array_equal(strict, toy_instance.residency_ok)
    adequacy = residency_allowed("adequacy", *where)
    # the EU node's regional data may also go to the US (adequacy decision); domestic stays in DE
    np.testing.assert_array_equal(adequacy[1, 1], [True, True, True])
    np.testing.assert_array_equal(adequacy[1, 2], [False, True, False])
    # a non-EU node is unaffected by the adequacy mode
    np.testing.assert_array_equal(adequacy[0], strict[0])
    assert residency_allowed("off", *where).all()
    with pytest.raises(ValueError, match="residency mode 'lax'"):
        residency_allowed("lax", *where)


def test_static_mask_by_hand(toy_instance: Instance) -> None:
    expected = np.array(
        [
            [1, 0, 0, 1],  # t0: budget 50 ms; B 55 and C 90 too slow
            [1, 1, 1, 1],  # t1: budget 200 ms; 47, 95, 160 all fit, global data
            [0, 1, 1, 1],  # t2: regional data of an EU node: not A (US); 51, 95 fit 100
            [0, 1, 0, 1],  # t3: domestic data of a DE node: B only
            [1, 0, 0, 1],  # t4: regional data of a US node: A only (though all fit the budget)
        ],
        dtype=bool,
    )
    np.testing.assert_array_equal(static_mask(toy_instance), expected)
    np.testing.assert_array_equal(static_mask(toy_instance, cost_matrix(toy_instance)), expected)


def test_static_mask_budget_is_inclusive(toy_instance: Instance) -> None:
    # t0 at B takes exactly 55 ms: a budget of 55 admits it, 54.9 does not
    for value, admitted in ((55.0, True), (54.9, False)):
        budget = np.array(toy_instance.budget_ms)  # a fresh copy: Instance freezes the arrays it is given
        budget[0] = value
        assert static_mask(toy_instance.replace(budget_ms=budget))[0, B] == admitted


def test_overflow_is_always_admissible(toy_instance: Instance) -> None:
    inst = toy_instance.replace(budget_ms=np.zeros(5), residency_ok=np.zeros((2, 3, 3), dtype=bool))
    mask = static_mask(inst)
    assert mask[:, OVER].all()
    assert not mask[:, :OVER].any()


# ------------------------------------------------------------------------------- feasibility
def test_reference_plan_is_feasible(toy_instance: Instance) -> None:
    # capacities used: slot 0: A 2 <= 5, C 5 <= 10; slot 1: C 3; slot 2: B 2
    assert check_plan_feasible(toy_instance, PLAN) == []
    usage = slot_usage_gpu_s(toy_instance, PLAN)
    np.testing.assert_allclose(usage, [[2, 0, 5], [0, 0, 3], [0, 2, 0]])


def test_latency_and_residency_violations(toy_instance: Instance) -> None:
    # t0 at B: 55 ms > 50; t2 at A: EU regional data in the US; t3 at C: DE domestic data in FR
    violations = check_plan_feasible(toy_instance, [B, A, A, C, OVER])
    got = [(v.kind, v.task_idx, v.slot_idx, v.region_idx) for v in violations]
    assert got == [("latency", 0, 0, B), ("residency", 2, 1, A), ("residency", 3, 2, C)]
    assert "55.0 ms" in violations[0].message and "50.0 ms" in violations[0].message
    assert "regional" in violations[1].message and "'n1'" in violations[1].message
    assert "domestic" in str(violations[2])


def test_capacity_violation(toy_instance: Instance) -> None:
    # t0 (2 GPU-s) and t1 (4 GPU-s) both at A in slot 0: 6 > 5
    violations = check_plan_feasible(toy_instance, [A, A, B, B, OVER])
    assert [(v.kind, v.task_idx, v.slot_idx, v.region_idx) for v in violations] == [("capacity", -1, 0, A)]
    assert "6.0 GPU-s of 5.0" in violations[0].message
    # exactly at capacity is feasible: with 6 GPU-s at A in slot 0, 2 + 4 = 6 <= 6
    capacity = np.array(toy_instance.capacity_gpu_s)
    capacity[0, A] = 6.0
    inst = toy_instance.replace(capacity_gpu_s=capacity)
    assert check_plan_feasible(inst, [A, A, B, B, OVER]) == []


def test_capacity_counts_the_recomputed_cache(toy_instance: Instance) -> None:
    # t1 needs 4 GPU-s at home but 5 away; C with 4.5 GPU-s in slot 0 cannot take it
    capacity = np.array(toy_instance.capacity_gpu_s)
    capacity[0, C] = 4.5
    inst = toy_instance.replace(capacity_gpu_s=capacity)
    assert [(v.kind, v.slot_idx, v.region_idx) for v in check_plan_feasible(inst, PLAN)] == [("capacity", 0, C)]


def test_infeasibility_reason(toy_instance: Instance) -> None:
    assert infeasibility_reason(toy_instance, 0, A) is None
    assert infeasibility_reason(toy_instance, 0, OVER) is None
    assert infeasibility_reason(toy_instance, 0, C).startswith("latency: 90.0 ms")
    assert infeasibility_reason(toy_instance, 4, B).startswith("residency: regional data")


# ----------------------------------------------------------------------------- bad plans
@pytest.mark.parametrize(
    ("plan", "match"),
    [
        ([0, 0, 0, 0], r"plan has shape \(4,\): expected \(5,\)"),
        ([[0, 0, 0, 0, 0]], r"plan has shape \(1, 5\): expected \(5,\)"),
        ([0, 0, 0, 0, 4], r"plan\[4\] = 4: expected an action in \[0, 4\) \(3 is overflow\)"),
        ([0, -1, 0, 0, 0], r"plan\[1\] = -1: expected an action in \[0, 4\)"),
        ([0, 0.5, 0, 0, 0], r"plan has dtype float64: expected integer actions in \[0, 4\)"),
        ([0, float("nan"), 0, 0, 0], r"plan has dtype float64"),
        (["a", "b", "c", "d", "e"], r"plan has dtype <U1"),
        ([True, False, True, False, True], r"plan has dtype bool"),
    ],
)
def test_bad_plans_raise(toy_instance: Instance, plan: list[object], match: str) -> None:
    for fn in (validate_plan, evaluate_plan, check_plan_feasible, replica_openings):
        with pytest.raises(ValueError, match=match):
            fn(toy_instance, plan)


def test_integer_valued_floats_are_accepted(toy_instance: Instance) -> None:
    plan = validate_plan(toy_instance, np.array(PLAN, dtype=np.float64))
    assert plan.dtype == np.int64
    np.testing.assert_array_equal(plan, PLAN)
    assert evaluate_plan(toy_instance, np.array(PLAN, dtype=np.float32)).total_usd == approx(10.499)


# -------------------------------------------------------------------------------- properties
@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), K=st.integers(0, 15), R=st.integers(1, 5), S=st.integers(1, 5))
def test_every_component_is_nonnegative(random_instance, seed: int, K: int, R: int, S: int) -> None:
    inst = random_instance(seed, num_tasks=K, num_regions=R, num_slots=S)
    cm = cost_matrix(inst)
    assert cm.total_usd.shape == (K, R + 1)
    for f in dataclasses.fields(cm):
        value = getattr(cm, f.name)
        if value.dtype != bool:
            assert np.all(np.isfinite(value)) and np.all(value >= 0), f.name
    # the weighted total is at least each weighted part
    p = inst.cost
    assert np.all(cm.total_usd >= p.alpha * cm.energy_usd - 1e-12)
    assert np.all(cm.total_usd >= p.eta * cm.migration_usd - 1e-12)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), K=st.integers(1, 12), R=st.integers(1, 4), S=st.integers(1, 4))
def test_cost_matrix_follows_the_formulas_pair_by_pair(random_instance, seed: int, K: int, R: int, S: int) -> None:
    inst = random_instance(seed, num_tasks=K, num_regions=R, num_slots=S)
    cm = cost_matrix(inst)
    p = inst.cost
    for k in range(K):
        n, s, h = int(inst.node_idx[k]), int(inst.slot_idx[k]), int(inst.home_idx[k])
        for i in range(R):
            c = p.cache_mult if i != h else 0.0
            it = inst.energy_kwh[k] + c * inst.cache_kwh[k]
            facility = it * inst.pue[s, i]
            energy = facility * inst.price_usd_per_kwh[s, i]
            carbon_g = facility * inst.carbon_g_per_kwh[s, i]
            latency = (
                inst.node_client_ms[n]
                + inst.rounds[k] * inst.node_rtt_ms[n, i]
                + inst.queue_ms[i]
                + inst.inference_ms[k]
                + c * inst.cache_ms[k]
            )
            state = p.state_mult * inst.state_gb[k] * inst.transfer_usd_per_gb[h, i] if i != h else 0.0
            egress = p.egress_mult * inst.response_gb[k] * inst.transfer_usd_per_gb[i, h] if i != h else 0.0
            delay = inst.delay_usd_per_ms[k] * latency
            total = (
                p.alpha * energy
                + p.beta * carbon_g * p.carbon_price_usd_per_t / 1e6
                + p.gamma * delay
                + p.eta * (state + egress)
            )
            got = (
                cm.gpu_s[k, i],
                cm.it_kwh[k, i],
                cm.energy_usd[k, i],
                cm.carbon_g[k, i],
                cm.latency_ms[k, i],
                cm.state_usd[k, i],
                cm.egress_usd[k, i],
                cm.total_usd[k, i],
            )
            want = (
                inst.gpu_s[k] + c * inst.cache_gpu_s[k],
                it,
                energy,
                carbon_g,
                latency,
                state,
                egress,
                total,
            )
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    region=st.integers(0, 3),
    factor=st.floats(1.0, 10.0),
    extra=st.floats(0.0, 1.0),
)
def test_raising_a_region_price_never_lowers_a_plan_cost(
    random_instance, seed: int, region: int, factor: float, extra: float
) -> None:
    inst = random_instance(seed, num_tasks=15, num_regions=4)
    plan = np.random.default_rng(seed).integers(0, inst.num_actions, inst.num_tasks)
    price = np.array(inst.price_usd_per_kwh)
    price[:, region] = price[:, region] * factor + extra
    dearer = inst.replace(price_usd_per_kwh=price)
    before, after = evaluate_plan(inst, plan), evaluate_plan(dearer, plan)
    assert after.total_usd >= before.total_usd
    # and the increase is exactly alpha * facility kWh placed there * the price step
    at = plan == region
    step = (price - inst.price_usd_per_kwh)[inst.slot_idx[at], region]
    expected = inst.cost.alpha * float((before.task.facility_kwh[at] * step).sum())
    assert after.total_usd - before.total_usd == pytest.approx(expected, rel=1e-9, abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), K=st.integers(0, 20), window=st.integers(1, 4))
def test_evaluate_plan_total_is_the_sum_of_its_parts(random_instance, seed: int, K: int, window: int) -> None:
    inst = random_instance(seed, num_tasks=K, replica_window_h=window)
    plan = np.random.default_rng(seed + 1).integers(0, inst.num_actions, K)
    bd = evaluate_plan(inst, plan)
    p = inst.cost
    cm = cost_matrix(inst)
    k = np.arange(K)
    # per-task totals from the components of the full cost matrix
    parts = (
        p.alpha * cm.energy_usd
        + p.beta * cm.carbon_usd
        + p.gamma * cm.delay_usd
        + p.eta * (cm.state_usd + cm.egress_usd)
        + cm.penalty_usd
    )[k, plan]
    np.testing.assert_allclose(bd.task.total_usd, parts, rtol=1e-12, atol=1e-15)
    # replica charges counted independently: one per distinct (window, region, model) not permanent
    keys = {
        (int(inst.slot_idx[j]) // window, int(plan[j]), int(inst.model_idx[j]))
        for j in range(K)
        if plan[j] < inst.num_regions
    }
    keys = {key for key in keys if not inst.permanent_replica[key[1], key[2]]}
    replica = p.replica_mult * sum(float(inst.replica_usd[m]) for _, _, m in keys)
    assert bd.replicas_opened == len(keys)
    assert bd.replica_usd == pytest.approx(replica, rel=1e-12, abs=1e-15)
    assert bd.total_usd == pytest.approx(float(parts.sum()) + p.eta * replica, rel=1e-12, abs=1e-12)
    summary = bd.summary()
    assert summary["energy_usd"] == pytest.approx(float(cm.energy_usd[k, plan].sum()), rel=1e-12, abs=1e-15)
    assert summary["num_overflow"] == float((plan == inst.num_regions).sum())


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), K=st.integers(1, 20))
def test_plans_drawn_from_the_mask_break_no_task_constraint(random_instance, seed: int, K: int) -> None:
    inst = random_instance(seed, num_tasks=K)
    mask = static_mask(inst)
    rng = np.random.default_rng(seed)
    plan = np.array([rng.choice(np.flatnonzero(row)) for row in mask])
    assert not [v for v in check_plan_feasible(inst, plan) if v.kind != "capacity"]
    # a random plan: exactly its masked-out actions are reported
    plan = rng.integers(0, inst.num_actions, K)
    reported = {v.task_idx for v in check_plan_feasible(inst, plan) if v.kind != "capacity"}
    assert reported == set(np.flatnonzero(~mask[np.arange(K), plan]).tolist())


def independent_latency(scenario: Scenario, inst: Instance) -> np.ndarray:
    """``[K, R]`` latency written out task by task from the scenario's network figures."""
    out = np.empty((inst.num_tasks, inst.num_regions))
    for k in range(inst.num_tasks):
        n = int(inst.node_idx[k])
        for i in range(inst.num_regions):
            cache = inst.cost.cache_mult * inst.cache_ms[k] if i != inst.home_idx[k] else 0.0
            out[k, i] = (
                scenario.node_client_ms[n]
                + inst.rounds[k] * scenario.node_rtt_ms[n, i]
                + scenario.queue_ms[i]
                + inst.inference_ms[k]
                + cache
            )
    return out


@pytest.fixture(scope="module")
def scenarios_by_mode(default_scenario: Scenario) -> dict[str, Scenario]:
    assert default_scenario.residency_mode == "strict"
    return {
        "strict": default_scenario,
        **{m: Scenario.from_overrides({"legal": {"residency_mode": m}}) for m in ("adequacy", "off")},
    }


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), K=st.integers(1, 60), mode=st.sampled_from(["strict", "adequacy", "off"]))
def test_static_mask_of_sampled_instances(scenarios_by_mode, seed: int, K: int, mode: str) -> None:
    scenario = scenarios_by_mode[mode]
    inst = sample_instance(scenario, seed, num_tasks=K)
    mask = static_mask(inst)
    allowed = residency_allowed(
        mode,
        scenario.node_country,
        scenario.node_in_eu,
        scenario.region_country,
        scenario.region_in_eu,
        scenario.region_adequacy,
    )
    legal = allowed[inst.node_idx, inst.residency_idx, :]  # [K, R]
    latency = independent_latency(scenario, inst)  # [K, R]
    fits = latency <= inst.budget_ms[:, None]
    clear = np.abs(latency - inst.budget_ms[:, None]) > 1e-6  # pairs not within rounding of the budget
    # never admits an illegal region, nor one over budget
    assert not (mask[:, :-1] & ~legal).any()
    assert not (mask[:, :-1] & ~fits & clear).any()
    # and admits every legal region within budget
    assert not (~mask[:, :-1] & legal & fits & clear).any()
    assert mask[:, -1].all()
    # the home region is always within budget (budget = home latency + slack, slack >= 0)
    k = np.arange(K)
    assert np.all(cost_matrix(inst).latency_ms[k, inst.home_idx] <= inst.budget_ms)
    np.testing.assert_allclose(latency[k, inst.home_idx], home_latency_ms(inst), rtol=1e-12)


def test_zero_slack_leaves_only_home() -> None:
    # with no slack at all the budget is the home latency: home stays admissible (where legal), and no
    # other region is, since every other region is farther than the node's own (1 ms intra-region RTT)
    scenario = Scenario.from_overrides({"workload": {"slack_scale": 0.0, "slack_add_ms": 0.0}})
    inst = sample_instance(scenario, 3, num_tasks=200)
    k = np.arange(inst.num_tasks)
    np.testing.assert_array_equal(inst.budget_ms, home_latency_ms(inst))
    mask = static_mask(inst)
    legal_home = inst.residency_ok[inst.node_idx, inst.residency_idx, inst.home_idx]
    assert legal_home.all()  # every default node's home is in its own country
    assert mask[k, inst.home_idx].all()
    assert (mask[:, :-1].sum(axis=1) == 1).all()
    assert not [v for v in check_plan_feasible(inst, inst.home_idx) if v.kind != "capacity"]
