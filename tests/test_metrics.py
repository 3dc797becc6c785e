"""The paper's metrics on the hand-made toy instance (numbers worked out by hand) and on sampled ones."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from envs import Instance, Scenario, metrics, sample_instance

# The plan used below: t0 -> A (home), t1 -> B (away, with its KV cache lost), t2 -> C (away),
# t3 -> B (home), t4 -> overflow.
PLAN = np.array([0, 1, 2, 1, 3])


def test_rid_by_hand(toy_instance: Instance) -> None:
    # served IT energy: t0 1.0 + t1 (2.0 + cache 0.5) + t2 1.0 + t3 1.0 = 5.5 kWh; away: t1 2.5 + t2 1.0
    assert metrics.rid(toy_instance, PLAN) == pytest.approx(3.5 / 5.5)
    assert metrics.rid(toy_instance, toy_instance.home_idx) == 0.0
    assert metrics.rid(toy_instance, np.full(5, 3)) == 0.0  # nothing served


def test_net_benefit_and_break_even_by_hand(toy_instance: Instance) -> None:
    # Replica windows: slots 0-1 are window 0 (t0, t1, t2), slot 2 window 1 (t3, t4). Large replica 2 USD,
    # eta 1. Under PLAN, (w0, B, large) is used by t1 alone, (w0, C, large) by t2 alone, (w1, B, large) by t3
    # alone; A holds both models permanently, so t0 and t4 (small, home A) bear nothing.
    rho = metrics.replica_shares(toy_instance, PLAN)
    np.testing.assert_allclose(rho, [0.0, 2.0, 2.0, 2.0, 0.0])
    # at home: t1 (A) 0; t2 would join t1 at (w0, B, large): 2 / 2 users; t3 is home; t4 (A) 0
    rho_home = metrics.replica_shares(toy_instance, PLAN, toy_instance.home_idx)
    np.testing.assert_allclose(rho_home, [0.0, 0.0, 1.0, 2.0, 0.0])
    nb = metrics.net_benefit(toy_instance, PLAN)
    # t1 at home A (slot 0): energy 2.0 kWh * PUE 1.0 * 0.10 = 0.20; carbon 800 g * 1e-4 = 0.08;
    #   latency 10 + 2*1 + 5 + 30 = 47 ms * 0.001 = 0.047                                 J = 0.327
    # t1 at B: IT 2.5 kWh * 1.5 = 3.75 kWh; * 0.20 = 0.75; carbon 1125 g = 0.1125;
    #   latency 10 + 2*20 + 5 + 30 + 10 = 95 ms -> 0.095; state 2 GB * 0.02 + egress 1 GB * 0.02 = 0.06
    #                                                                                      J = 1.0175
    assert nb[1] == pytest.approx(0.327 - (1.0175 + 2.0))
    # t2 at home B (slot 1): 1.5 kWh * 0.20 = 0.30; 450 g = 0.045; 5 + 1 + 5 + 40 = 51 ms * 0.002 = 0.102
    #                                                                                      J = 0.447
    # t2 at C: 1.2 kWh * 0.05 = 0.06; 120 g = 0.012; 5 + 40 + 10 + 40 = 95 ms -> 0.19;
    #   state 1 GB * 0.08 + egress 0.5 GB * 0.09 = 0.125                                   J = 0.387
    # Its pair saving of 0.06 does not pay for the large replica it opens alone at C (2.0), of which half
    # would have been its share at home: NB = (0.447 + 1.0) - (0.387 + 2.0) = -0.94
    assert nb[2] == pytest.approx((0.447 + 1.0) - (0.387 + 2.0))
    assert nb[0] == 0.0 and nb[3] == 0.0  # served at home (t3 bears a replica charge there, on both sides)
    # t4 overflowed: at home A (slot 2) 1 kWh * 0.30 = 0.30; 400 g = 0.04; 10 + 1 + 5 + 20 = 36 ms -> 0.036
    assert nb[4] == pytest.approx(0.376 - 5.0)
    be = metrics.break_even(toy_instance, PLAN)
    assert (be.relocated, be.beneficial, be.at_loss) == (2, 0, 2)  # t2 paid before replica charges counted
    assert be.share == 0.0
    assert be.net_benefit_usd == pytest.approx((0.327 - 3.0175) + (1.447 - 2.387))


def test_relocation_that_opens_a_replica_for_one_task_is_at_a_loss(toy_instance: Instance) -> None:
    # t4 (small model, home A, slot 2 where A is dear) made global so that it may run in C, which holds no
    # replica of the small model (0.5 USD); every other task at home.
    inst = toy_instance.replace(residency_idx=np.array([0, 0, 1, 2, 0]))
    plan = inst.home_idx.copy()
    plan[4] = 2
    # t4 at home A: J = 0.376 (above); at C (slot 2): 1.2 kWh * 0.05 = 0.06; 120 g = 0.012;
    #   10 + 50 + 10 + 20 = 90 ms -> 0.09 (budget 100); no state or response       J = 0.162
    # pair saving 0.214 > 0, but the 0.5 USD replica it opens alone makes the move lose 0.286
    np.testing.assert_allclose(metrics.replica_shares(inst, plan), [0.0, 0.0, 2.0, 2.0, 0.5])
    nb = metrics.net_benefit(inst, plan)
    assert nb[4] == pytest.approx(0.376 - (0.162 + 0.5))
    be = metrics.break_even(inst, plan)
    assert (be.relocated, be.beneficial, be.at_loss) == (1, 0, 1)
    assert be.net_benefit_usd == pytest.approx(-0.286)
    # t2 (home B, no permanent large replica) alone to C: staying home would open B's large replica for it
    # alone too, so the charges cancel and its pair saving 0.447 - 0.387 decides
    plan = toy_instance.home_idx.copy()
    plan[2] = 2
    assert metrics.net_benefit(toy_instance, plan)[2] == pytest.approx(0.447 - 0.387)
    assert metrics.break_even(toy_instance, plan).share == 1.0
    # with no replica charges (friction multiplier 0) NB is the pair saving again
    free = toy_instance.replace(cost=dataclasses.replace(toy_instance.cost, replica_mult=0.0))
    assert np.all(metrics.replica_shares(free, PLAN) == 0.0)
    assert metrics.net_benefit(free, PLAN)[2] == pytest.approx(0.447 - 0.387)


def test_execution_layers_by_hand(toy_instance: Instance) -> None:
    # RTT from the task's node: t1 n0 -> B 20 ms, t2 n1 -> C 40 ms
    layers = metrics.execution_layers(toy_instance, PLAN, regional_rtt_ms=30.0)
    assert [metrics.LAYERS[j] for j in layers] == ["local", "regional", "energy", "local", "overflow"]
    layers = metrics.execution_layers(toy_instance, PLAN, regional_rtt_ms=40.0)
    assert [metrics.LAYERS[j] for j in layers] == ["local", "regional", "regional", "local", "overflow"]
    with pytest.raises(ValueError, match="regional_rtt_ms = -1"):
        metrics.execution_layers(toy_instance, PLAN, regional_rtt_ms=-1)
    shares = metrics.layer_shares(toy_instance, PLAN, regional_rtt_ms=30.0).set_index("class")
    # class chat = t0, t2, t4: local 1.0 kWh, energy-oriented 1.0 kWh (t2), t4 overflowed
    assert shares.loc["chat", "local_energy_share"] == pytest.approx(0.5)
    assert shares.loc["chat", "energy_energy_share"] == pytest.approx(0.5)
    assert shares.loc["chat", "overflow_task_share"] == pytest.approx(1 / 3)
    # class batch = t1 (regional, 2.5 kWh), t3 (local, 1.0 kWh)
    assert shares.loc["batch", "regional_energy_share"] == pytest.approx(2.5 / 3.5)


def test_return_on_latency_by_hand(toy_instance: Instance) -> None:
    loose = toy_instance.replace(budget_ms=toy_instance.budget_ms + 10.0)
    # t2 moves from home B (0.30 USD, 450 g) to C (0.06 USD, 120 g) when budgets relax by 10 ms
    home = toy_instance.home_idx
    moved = home.copy()
    moved[2] = 2
    erl, crl, delta = metrics.return_on_latency(toy_instance, home, loose, moved)
    assert delta == pytest.approx(10.0)
    assert erl == pytest.approx((0.30 - 0.06) / 10.0)
    assert crl == pytest.approx((450.0 - 120.0) / 10.0)
    erl, crl, delta = metrics.return_on_latency(toy_instance, home, toy_instance, home)
    assert delta == 0.0 and np.isnan(erl) and np.isnan(crl)
    with pytest.raises(ValueError, match="same episode"):
        metrics.return_on_latency(toy_instance, home, toy_instance.subset(slice(0, 3)), home[:3])


def test_breakdowns_add_up(toy_instance: Instance) -> None:
    from envs import evaluate_plan

    bd = evaluate_plan(toy_instance, PLAN)
    by_class = metrics.class_breakdown(toy_instance, PLAN)
    assert list(by_class["class"]) == list(toy_instance.class_names)
    assert by_class["energy_usd"].sum() == pytest.approx(bd.energy_usd)
    assert by_class["total_usd"].sum() == pytest.approx(bd.total_usd - bd.eta * bd.replica_usd)
    by_region = metrics.region_breakdown(toy_instance, PLAN)
    assert by_region["carbon_g"].sum() == pytest.approx(bd.carbon_g)
    assert by_region["replica_usd"].sum() == pytest.approx(bd.replica_usd)
    # large-model replicas (2 USD): B holds only the small model, so t1 (window 0) and t3 (window 1) each
    # open one there; t2 opens one at C (window 0)
    assert list(by_region["replica_usd"]) == [0.0, 4.0, 2.0]
    assert list(by_region["relocated_in"]) == [0, 1, 1]


@pytest.fixture(scope="module")
def sampled() -> Instance:
    return sample_instance(Scenario.default(), seed=5, num_tasks=300)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), plan_seed=st.integers(0, 2**31 - 1))
def test_replica_shares_reconcile_with_evaluate_plan(
    random_instance: Callable[..., Instance], seed: int, plan_seed: int
) -> None:
    from envs import evaluate_plan

    inst = random_instance(seed, num_tasks=20, num_regions=3, num_models=2)
    rng = np.random.default_rng(plan_seed)
    # mostly home, some moves and overflows, so that replicas are shared, opened alone and left cold
    plan = np.where(rng.random(inst.num_tasks) < 0.5, inst.home_idx, rng.integers(0, inst.num_actions, inst.num_tasks))
    bd = evaluate_plan(inst, plan)
    rho = metrics.replica_shares(inst, plan)
    assert rho.sum() == pytest.approx(bd.eta * bd.replica_usd, rel=1e-12, abs=1e-12)
    assert np.all(rho[plan == inst.num_regions] == 0.0)
    nb = metrics.net_benefit(inst, plan)
    at_home = plan == inst.home_idx
    np.testing.assert_allclose(nb[at_home], 0.0, atol=1e-12)
    # the per-task objective plus the shares is the plan's objective
    assert (bd.task.total_usd + rho).sum() == pytest.approx(bd.total_usd, rel=1e-12, abs=1e-12)
    # home side: the own share for tasks at home; never more than the whole charge on either side
    rho_home = metrics.replica_shares(inst, plan, inst.home_idx)
    np.testing.assert_allclose(rho_home[at_home], rho[at_home])
    full = inst.cost.eta * inst.cost.replica_mult * inst.replica_usd[inst.model_idx]
    assert np.all(rho_home <= full + 1e-12) and np.all(rho <= full + 1e-12)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_rid_in_unit_interval_and_layers_partition(sampled: Instance, seed: int) -> None:
    plan = np.random.default_rng(seed).integers(0, sampled.num_actions, sampled.num_tasks)
    r = metrics.rid(sampled, plan)
    assert 0.0 <= r <= 1.0
    shares = metrics.layer_shares(sampled, plan)
    served_share = shares[["local_energy_share", "regional_energy_share", "energy_energy_share"]].sum(axis=1)
    has_energy = shares["overflow_task_share"] < 1.0
    np.testing.assert_allclose(served_share[has_energy], 1.0)
    s = metrics.summary(sampled, plan)
    assert 0.0 <= s["break_even_share"] <= 1.0 and s["rid"] == pytest.approx(r)


def test_return_on_latency_refuses_tighter_budgets(toy_instance: Instance) -> None:
    tighter = toy_instance.replace(budget_ms=toy_instance.budget_ms - 1.0)
    with pytest.raises(ValueError, match="1 ms tighter"):
        metrics.return_on_latency(toy_instance, toy_instance.home_idx, tighter, toy_instance.home_idx)
