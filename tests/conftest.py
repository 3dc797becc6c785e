"""Shared fixtures: the default scenario (loaded once), a hand-made toy instance, random instances.

The toy instance is written out by hand so that tests/test_costs.py can check the cost model against
arithmetic done on paper. Its numbers are round on purpose; every figure a test uses is derived there.

Toy instance (all cost weights 1, carbon price 100 USD/t, friction multipliers 1):

    regions   A (US)   B (DE, EU)   C (FR, EU)        nodes  n0 (US, home A)   n1 (DE, home B)
    models    small (replica 0.5 USD), large (replica 2.0 USD)
    permanent replicas: A has small + large, B has small only, C has none
    slots 0, 1, 2; replica_window_h = 2, so windows are {0, 1} and {2}

    signals [slot, region]       A      B      C
      price USD/kWh   slot 0   0.10   0.20   0.05
                      slot 1   0.10   0.20   0.05
                      slot 2   0.30   0.20   0.05     (A is dearer in slot 2)
      carbon g/kWh    every    400    300    100
      PUE             every    1.0    1.5    1.2
      capacity GPU-s  slot 0     5     10     10
                      other     10     10     10
      forecast tasks/h slot 0     2      1      0     (arrival_rate_per_h: tasks whose home is the region)
                      slot 1      3      1      0
                      slot 2      2      4      0
      captive GPU-s/h slot 0  3600      0      0     (captive_gpu_s_per_h: of tasks that can run only at home)
                      slot 1  3600   1800      0
                      slot 2     0   1800      0
    rtt ms      n0: A 1, B 20, C 50      n1: A 20, B 1, C 40
    client ms   n0: 10, n1: 5            queue ms: A 5, B 5, C 10
    transfer USD/GB (row = source)   A->B 0.02  A->C 0.05  B->A 0.02  B->C 0.08  C->A 0.10  C->B 0.09

    task  node  slot  model  residency  rounds  budget  gpu_s  kWh  infer_ms  cache (gpu_s, kWh, ms)
    t0    n0    0     small  global     1       50      2      1.0  20        -
    t1    n0    0     large  global     2       200     4      2.0  30        (1, 0.5, 10)
    t2    n1    1     large  regional   1       100     3      1.0  40        -
    t3    n1    2     large  domestic   1       100     2      1.0  40        -
    t4    n0    2     small  regional   1       100     3      1.0  20        -
    state_gb: t1 2.0, t2 1.0; response_gb: t1 1.0, t2 0.5; others 0
    delay USD/ms: t2 0.002, others 0.001; overflow USD: 5.0 each

Residency (strict mode): n0 (US, not EU): regional and domestic = US only = {A};
n1 (DE, EU): regional = EU/EEA = {B, C}, domestic = DE only = {B}; global = everywhere.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np
import pytest

from envs import CostParams, Instance, Scenario

# Ray clusters started by tests (tests/test_parallel.py, tests/test_sweep.py) listen on the loopback interface
# only. Ray reads this when it is first imported, so it is set before any test imports it.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

T, F = True, False


def _f(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float64)


def _i(*values: int) -> np.ndarray:
    return np.array(values, dtype=np.int64)


TOY_REGION_COUNTRY = ("US", "DE", "FR")
TOY_REGION_IN_EU = np.array([F, T, T])
TOY_REGION_ADEQUACY = np.array([T, F, F])  # the US has an EU adequacy decision (DPF)
TOY_NODE_COUNTRY = ("US", "DE")
TOY_NODE_IN_EU = np.array([F, T])


def make_toy_instance() -> Instance:
    """The hand-made instance described in the module docstring."""
    return Instance(
        arrival_h=_f(0.25, 0.5, 1.5, 2.25, 2.5),
        slot_idx=_i(0, 0, 1, 2, 2),
        node_idx=_i(0, 0, 1, 1, 0),
        home_idx=_i(0, 0, 1, 1, 0),
        class_idx=_i(0, 1, 0, 1, 0),
        model_idx=_i(0, 1, 1, 1, 0),
        residency_idx=_i(0, 0, 1, 2, 1),
        budget_ms=_f(50, 200, 100, 100, 100),
        rounds=_i(1, 2, 1, 1, 1),
        requests=_i(10, 10, 10, 10, 10),
        context_tokens=_i(100, 1000, 200, 200, 100),
        generated_tokens=_i(10, 100, 20, 20, 10),
        gpu_s=_f(2, 4, 3, 2, 3),
        energy_kwh=_f(1.0, 2.0, 1.0, 1.0, 1.0),
        inference_ms=_f(20, 30, 40, 40, 20),
        cache_gpu_s=_f(0, 1, 0, 0, 0),
        cache_kwh=_f(0, 0.5, 0, 0, 0),
        cache_ms=_f(0, 10, 0, 0, 0),
        state_gb=_f(0, 2.0, 1.0, 0, 0),
        response_gb=_f(0, 1.0, 0.5, 0, 0),
        delay_usd_per_ms=_f(0.001, 0.001, 0.002, 0.001, 0.001),
        overflow_usd=_f(5, 5, 5, 5, 5),
        price_usd_per_kwh=np.array([[0.10, 0.20, 0.05], [0.10, 0.20, 0.05], [0.30, 0.20, 0.05]]),
        carbon_g_per_kwh=np.array([[400.0, 300.0, 100.0]] * 3),
        pue=np.array([[1.0, 1.5, 1.2]] * 3),
        capacity_gpu_s=np.array([[5.0, 10.0, 10.0], [10.0, 10.0, 10.0], [10.0, 10.0, 10.0]]),
        node_rtt_ms=np.array([[1.0, 20.0, 50.0], [20.0, 1.0, 40.0]]),
        node_client_ms=_f(10, 5),
        queue_ms=_f(5, 5, 10),
        transfer_usd_per_gb=np.array([[0.0, 0.02, 0.05], [0.02, 0.0, 0.08], [0.10, 0.09, 0.0]]),
        residency_ok=np.array(
            [
                # n0 (US):   A  B  C
                [
                    [T, T, T],  # global
                    [T, F, F],  # regional: US only
                    [T, F, F],
                ],  # domestic: US only
                # n1 (DE, EU)
                [
                    [T, T, T],  # global
                    [F, T, T],  # regional: EU/EEA
                    [F, T, F],
                ],  # domestic: DE only
            ]
        ),
        replica_usd=_f(0.5, 2.0),
        permanent_replica=np.array([[T, T], [T, F], [F, F]]),
        arrival_rate_per_h=np.array([[2.0, 1.0, 0.0], [3.0, 1.0, 0.0], [2.0, 4.0, 0.0]]),  # homes: n0 A, n1 B
        captive_gpu_s_per_h=np.array([[3600.0, 0.0, 0.0], [3600.0, 1800.0, 0.0], [0.0, 1800.0, 0.0]]),
        replica_window_h=2,
        start_hour=0,
        cost=CostParams(),
        region_names=("A", "B", "C"),
        node_names=("n0", "n1"),
        class_names=("chat", "batch"),
        model_names=("small", "large"),
        scenario_name="toy",
        seed=None,
    )


@pytest.fixture
def toy_instance() -> Instance:
    return make_toy_instance()


@pytest.fixture
def toy_geography() -> dict[str, object]:
    """The countries and EU flags the toy's residency table was derived from (strict mode)."""
    return {
        "node_country": TOY_NODE_COUNTRY,
        "node_in_eu": TOY_NODE_IN_EU,
        "region_country": TOY_REGION_COUNTRY,
        "region_in_eu": TOY_REGION_IN_EU,
        "region_adequacy": TOY_REGION_ADEQUACY,
    }


def make_random_instance(
    seed: int,
    num_tasks: int = 12,
    num_regions: int = 4,
    num_nodes: int = 3,
    num_slots: int = 5,
    num_models: int = 2,
    replica_window_h: int = 2,
) -> Instance:
    """A synthetic instance with random (valid) arrays, for property tests of the cost model."""
    rng = np.random.default_rng(seed)
    K, R, N, S, M = num_tasks, num_regions, num_nodes, num_slots, num_models

    def pos(*shape: int, scale: float = 1.0) -> np.ndarray:
        return rng.uniform(0.0, scale, shape)

    node = rng.integers(0, N, K)
    home_of_node = rng.integers(0, R, N)
    gpu_s = pos(K, scale=10.0)
    cache_share = rng.uniform(0, 1, K) * (rng.random(K) < 0.5)
    arrival = np.sort(rng.uniform(0, S, K))
    transfer = pos(R, R, scale=0.1)
    np.fill_diagonal(transfer, 0.0)
    return Instance(
        arrival_h=arrival,
        slot_idx=np.minimum(np.floor(arrival), S - 1).astype(np.int64),
        node_idx=node.astype(np.int64),
        home_idx=home_of_node[node].astype(np.int64),
        class_idx=rng.integers(0, 2, K),
        model_idx=rng.integers(0, M, K),
        residency_idx=rng.integers(0, 3, K),
        budget_ms=pos(K, scale=400.0),
        rounds=rng.integers(1, 4, K),
        requests=rng.integers(1, 100, K),
        context_tokens=rng.integers(0, 5000, K),
        generated_tokens=rng.integers(0, 500, K),
        gpu_s=gpu_s,
        energy_kwh=gpu_s * 0.7 / 3600,
        inference_ms=pos(K, scale=100.0),
        cache_gpu_s=gpu_s * cache_share,
        cache_kwh=gpu_s * cache_share * 0.7 / 3600,
        cache_ms=pos(K, scale=50.0) * (cache_share > 0),
        state_gb=pos(K, scale=0.01),
        response_gb=pos(K, scale=0.001),
        delay_usd_per_ms=pos(K, scale=1e-3),
        overflow_usd=pos(K, scale=2.0),
        price_usd_per_kwh=pos(S, R, scale=0.3),
        carbon_g_per_kwh=pos(S, R, scale=800.0),
        pue=1.0 + pos(S, R, scale=0.5),
        capacity_gpu_s=pos(S, R, scale=30.0),
        node_rtt_ms=pos(N, R, scale=200.0),
        node_client_ms=pos(N, scale=20.0),
        queue_ms=pos(R, scale=10.0),
        transfer_usd_per_gb=transfer,
        residency_ok=rng.random((N, 3, R)) < 0.7,
        replica_usd=pos(M, scale=2.0),
        permanent_replica=rng.random((R, M)) < 0.4,
        arrival_rate_per_h=np.full((S, R), K / (S * R)),  # not drawn: keeps the other draws as they were
        captive_gpu_s_per_h=np.full((S, R), 10.0 * K / (S * R)),
        replica_window_h=replica_window_h,
        start_hour=0,
        cost=CostParams(
            alpha=rng.uniform(0, 2),
            beta=rng.uniform(0, 2),
            gamma=rng.uniform(0, 2),
            eta=rng.uniform(0, 2),
            carbon_price_usd_per_t=rng.uniform(0, 300),
            state_mult=rng.uniform(0, 2),
            cache_mult=rng.uniform(0, 2),
            egress_mult=rng.uniform(0, 2),
            replica_mult=rng.uniform(0, 2),
        ),
        region_names=tuple(f"r{i}" for i in range(R)),
        node_names=tuple(f"n{i}" for i in range(N)),
        class_names=("c0", "c1"),
        model_names=tuple(f"m{i}" for i in range(M)),
        scenario_name="random",
        seed=seed,
    )


@pytest.fixture(scope="session")
def random_instance() -> Callable[..., Instance]:
    """Factory of synthetic instances (session scoped, so hypothesis tests may use it)."""
    return make_random_instance


@pytest.fixture(scope="session")
def default_scenario() -> Scenario:
    """The packaged default scenario, loaded once per session (loading takes about 0.5 s)."""
    return Scenario.default()


@pytest.fixture(scope="session")
def poisson_scenario() -> Scenario:
    """The default scenario with homogeneous Poisson arrivals."""
    return Scenario.from_overrides({"workload": {"arrival": "poisson"}})


# Three North-American regions and their nodes: the small scenario the env and agent tests play.
TOY_REGIONS = ["East US", "West US", "Canada Central"]
TOY_NODES = {"us-east", "us-west", "toronto"}


@pytest.fixture(scope="session")
def toy_scenario(default_scenario: Scenario) -> Scenario:
    """The toy regions with scarce capacity and cold replicas, so masks, replicas and overflow bite in
    short episodes."""
    drop = {n: {"traffic_share": 0.0} for n in default_scenario.spec["service_nodes"] if n not in TOY_NODES}
    return default_scenario.with_overrides(
        {
            "regions": TOY_REGIONS,
            "service_nodes": drop,
            "region_defaults": {"num_gpus": 1},
            "workload": {"rate_per_h": 60.0, "horizon_h": 6.0},
            "frictions": {"replica_window_h": 2},
            "models": {"llm-70b": {"warm_at_home": False}},
        }
    )
