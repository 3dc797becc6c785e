"""Tiny hand-made episodes and their optima by enumeration: the references the MILP and DAgger tests check."""

from __future__ import annotations

import itertools

import numpy as np

from envs import Instance, check_plan_feasible, evaluate_plan, static_mask
from envs.costs import home_latency_ms, slot_usage_gpu_s
from envs.scenario import CostParams


def tiny_instance(
    seed: int,
    num_tasks: int,
    num_regions: int,
    *,
    integer_gpu: bool = False,
    replica_usd: float = 0.006,
    capacity_factor: float = 1.0,
) -> Instance:
    """A hand-made episode: 4 slots, replica windows of 2 slots, 2 nodes, 2 models, tight capacity.

    Model 0 is warm at every home region, model 1 nowhere, so replica charges arise. With
    ``integer_gpu`` GPU-seconds and capacities are integers, so exact ties and full knapsacks occur.
    """
    rng = np.random.default_rng(seed)
    K, R, S, N, M = num_tasks, num_regions, 4, 2, 2
    node_home = np.array([0, R - 1])
    node = rng.integers(0, N, K)
    slot = np.sort(rng.integers(0, S, K))
    gpu = rng.integers(1, 6, K).astype(float) if integer_gpu else rng.uniform(0.5, 5.0, K)
    cache_gpu = np.zeros(K) if integer_gpu else rng.uniform(0.0, 1.0, K)
    per_slot = np.bincount(slot, weights=gpu, minlength=S)
    capacity = capacity_factor * per_slot[:, None] * rng.uniform(0.3, 1.0, (S, R))
    if integer_gpu:
        capacity = np.floor(capacity) + rng.integers(0, 2, (S, R))
    residency_ok = rng.random((N, 3, R)) < 0.8
    residency_ok[np.arange(N), :, node_home] = True  # home always legal
    permanent = np.zeros((R, M), dtype=bool)
    permanent[node_home, 0] = True
    rtt = rng.uniform(1, 150, (N, R))
    rtt[np.arange(N), node_home] = 1.0
    f = np.float64
    inst = Instance(
        arrival_h=np.sort(slot + rng.random(K) * 0.99),
        slot_idx=slot.astype(np.int64),
        node_idx=node.astype(np.int64),
        home_idx=node_home[node].astype(np.int64),
        class_idx=rng.integers(0, 2, K),
        model_idx=rng.integers(0, M, K),
        residency_idx=rng.integers(0, 3, K),
        budget_ms=np.zeros(K),
        rounds=rng.integers(1, 3, K),
        requests=np.ones(K, dtype=np.int64),
        context_tokens=rng.integers(10, 100, K),
        generated_tokens=rng.integers(10, 100, K),
        gpu_s=gpu.astype(f),
        energy_kwh=gpu * 0.7 / 3600,
        inference_ms=rng.uniform(20, 80, K),
        cache_gpu_s=cache_gpu,
        cache_kwh=cache_gpu * 0.7 / 3600,
        cache_ms=rng.uniform(0, 20, K),
        state_gb=rng.uniform(0, 1e-3, K),
        response_gb=rng.uniform(0, 1e-3, K),
        delay_usd_per_ms=rng.uniform(1e-6, 1e-5, K),
        overflow_usd=rng.choice([0.01, 0.02], K),
        price_usd_per_kwh=rng.uniform(0.02, 0.3, (S, R)),
        carbon_g_per_kwh=rng.uniform(50, 800, (S, R)),
        pue=rng.uniform(1.05, 1.5, (S, R)),
        capacity_gpu_s=capacity,
        node_rtt_ms=rtt,
        node_client_ms=rng.uniform(5, 15, N),
        queue_ms=rng.uniform(1, 10, R),
        transfer_usd_per_gb=rng.uniform(0.01, 0.1, (R, R)),
        residency_ok=residency_ok,
        replica_usd=np.array([replica_usd, 2 * replica_usd]),
        permanent_replica=permanent,
        arrival_rate_per_h=np.zeros((S, R)),
        captive_gpu_s_per_h=np.zeros((S, R)),
        replica_window_h=2,
        start_hour=0,
        cost=CostParams(),
        region_names=tuple(f"r{i}" for i in range(R)),
        node_names=("n0", "n1"),
        class_names=("a", "b"),
        model_names=("m0", "m1"),
        seed=seed,
    )
    return inst.replace(budget_ms=home_latency_ms(inst) + rng.uniform(0, 120, K))


def brute_force(inst: Instance) -> tuple[float, np.ndarray]:
    """The cheapest feasible plan by enumerating every combination of admissible actions."""
    mask = static_mask(inst)
    choices = [np.flatnonzero(mask[k]) for k in range(inst.num_tasks)]
    best, best_plan = np.inf, np.zeros(0, dtype=np.int64)
    cap = inst.capacity_gpu_s * (1 + 1e-9) + 1e-9
    for combo in itertools.product(*choices):
        plan = np.array(combo, dtype=np.int64)
        if (slot_usage_gpu_s(inst, plan) > cap).any():
            continue
        c = evaluate_plan(inst, plan).total_usd
        if c < best:
            best, best_plan = c, plan
    assert not check_plan_feasible(inst, best_plan)
    return best, best_plan


def brute_force_after(inst: Instance, prefix: np.ndarray) -> float:
    """The cheapest feasible plan that starts with ``prefix``, by enumeration."""
    mask = static_mask(inst)
    m = prefix.size
    choices = [[int(prefix[k])] if k < m else np.flatnonzero(mask[k]) for k in range(inst.num_tasks)]
    cap = inst.capacity_gpu_s * (1 + 1e-9) + 1e-9
    best = np.inf
    for combo in itertools.product(*choices):
        plan = np.array(combo, dtype=np.int64)
        if not (slot_usage_gpu_s(inst, plan) > cap).any():
            best = min(best, evaluate_plan(inst, plan).total_usd)
    return best
