"""The Gymnasium environment and the native vector env."""

from __future__ import annotations

import subprocess
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest
from conftest import TOY_NODES, TOY_REGIONS
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import envs
from agents.vec import PlacementBatchVecEnv
from envs import ENV_ID, Scenario, check_plan_feasible, evaluate_plan, sample_instance
from envs.costs import capacity_limit_gpu_s
from envs.dynamics import REGION_FEATURES
from envs.placement import PlacementEnv
from envs.vector import PlacementVectorEnv


def random_masked_rollout(env: gym.Env, seed: int, rng_seed: int = 0, options=None):
    """Play uniformly random admissible actions; return (plan, rewards, infos, observations)."""
    rng = np.random.default_rng(rng_seed)
    obs, info = env.reset(seed=seed, options=options)
    plan, rewards, infos, observations = [], [], [info], [obs]
    done = False
    while not done:
        mask = info["action_mask"]
        assert np.array_equal(mask, env.unwrapped.action_masks())
        a = int(rng.choice(np.flatnonzero(mask)))
        obs, r, term, trunc, info = env.step(a)
        assert not trunc
        done = term
        plan.append(info["action"])
        rewards.append(r)
        infos.append(info)
        observations.append(obs)
    return np.array(plan), np.array(rewards), infos, observations


# ------------------------------------------------------------------------------------- API checks
GEOINFER_IDS = sorted(i for i in gym.registry if i.startswith("geoinfer/"))


def test_every_id_is_tested() -> None:
    assert ENV_ID in GEOINFER_IDS


@pytest.mark.parametrize("env_id", GEOINFER_IDS)
def test_gymnasium_and_sb3_checkers_pass_with_default_arguments(env_id: str) -> None:
    """Both checkers step ``action_space.sample()``: with default arguments every action must be accepted."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a checker warning is a failure too
        gym_check_env(gym.make(env_id).unwrapped)
    sb3_check_env(gym.make(env_id), warn=True)


def test_checkers_pass_on_the_toy_scenario(toy_scenario: Scenario) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gym_check_env(gym.make(ENV_ID, scenario=toy_scenario, num_tasks=50).unwrapped)
    sb3_check_env(gym.make(ENV_ID, scenario=toy_scenario, num_tasks=50), warn=True)


@pytest.mark.parametrize("env_id", GEOINFER_IDS)
def test_native_vector_env_accepts_any_action(env_id: str) -> None:
    """Gymnasium has no vector-env checker: step ``action_space.sample()`` through autoresets instead, with
    default arguments, and check spaces, flags and costs."""
    venv = gym.make_vec(env_id, num_envs=3, vectorization_mode="vector_entry_point")
    venv.action_space.seed(0)
    obs, info = venv.reset(seed=0)
    flagged = 0
    for _ in range(300):
        mask = info["action_mask"]
        a = venv.action_space.sample()
        obs, r, term, trunc, info = venv.step(a)
        assert venv.observation_space.contains(obs)
        assert not trunc.any() and np.isfinite(r).all()
        played = info["task_idx"] >= 0
        invalid = played & ~mask[np.arange(3), a]
        assert np.array_equal(info["invalid_action"], invalid)
        assert (info["action"][invalid] == venv.unwrapped.num_regions).all()
        flagged += int(invalid.sum())
    assert flagged > 0  # random actions do hit inadmissible regions


def test_make_with_no_arguments_and_from_a_fresh_interpreter() -> None:
    env = gym.make(ENV_ID)
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    assert info["action_mask"][-1]
    code = (
        "import gymnasium as gym; e = gym.make('envs:geoinfer/Placement-v0', num_tasks=5); "
        "o, i = e.reset(seed=1); print(o.shape[0], e.action_space.n)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    size, n = map(int, out.stdout.split())
    assert size == env.observation_space.shape[0] and n == env.action_space.n


def test_make_takes_scenario_toml_path_episode_length_and_arrival(tmp_path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(
        'regions = ["East US", "West US", "Canada Central"]\n'
        + "".join(
            f"[service_nodes.{n}]\ntraffic_share = 0.0\n"
            for n in Scenario.default().spec["service_nodes"]
            if n not in TOY_NODES
        )
    )
    env = gym.make(ENV_ID, scenario=str(path), num_tasks=7, arrival="bursty", invalid_action="overflow")
    env.reset(seed=0)
    u = env.unwrapped
    assert u.scenario.region_names == tuple(TOY_REGIONS)
    assert u.scenario.arrival.kind == "bursty"
    assert u.instance.num_tasks == 7
    assert env.action_space.n == 4


# ------------------------------------------------------------------------------------ dynamics
def test_reward_sum_equals_plan_cost_and_masked_play_is_feasible(toy_scenario: Scenario) -> None:
    env = PlacementEnv(scenario=toy_scenario)
    opened_any = overflowed = False
    for seed in range(6):
        plan, rewards, infos, _ = random_masked_rollout(env, seed, rng_seed=seed)
        inst = env.instance
        bd = evaluate_plan(inst, plan)
        assert -rewards.sum() / env.reward_scale == pytest.approx(bd.total_usd, rel=1e-9)
        assert check_plan_feasible(inst, plan) == []
        # per-step info components add up to the plan's components
        assert sum(i["energy_usd"] for i in infos[1:]) == pytest.approx(bd.energy_usd, rel=1e-9)
        assert sum(i["carbon_g"] for i in infos[1:]) == pytest.approx(bd.carbon_g, rel=1e-9)
        charged = sum(i["replica_charge_usd"] for i in infos[1:])
        assert charged == pytest.approx(inst.cost.eta * bd.replica_usd, rel=1e-9)
        opened_any |= bd.replicas_opened > 0
        overflowed |= bd.num_overflow > 0
    assert opened_any and overflowed  # the toy scenario exercises replica charges and overflow


def test_capacity_mask_tracks_slot_usage(toy_scenario: Scenario) -> None:
    """The capacity part of the mask is exactly 'GPU time left in this slot covers the task'."""
    env = PlacementEnv(scenario=toy_scenario, num_tasks=200)
    _obs, info = env.reset(seed=3)
    inst = env.instance
    static = envs.static_mask(inst)
    pc = envs.cost_matrix(inst)
    used = np.zeros((inst.num_slots, inst.num_regions))
    saw_capacity_block = False
    rng = np.random.default_rng(0)
    for k in range(inst.num_tasks):
        s = inst.slot_idx[k]
        fits = used[s] + pc.gpu_s[k, :-1] <= inst.capacity_gpu_s[s] * (1 + 1e-12)
        expected = static[k].copy()
        expected[:-1] &= fits
        assert np.array_equal(info["action_mask"], expected)
        saw_capacity_block |= bool((static[k, :-1] & ~fits).any())
        feasible = np.flatnonzero(expected)
        a = int(feasible[0] if rng.random() < 0.7 else rng.choice(feasible))  # fill low regions first
        _, _, _, _, info = env.step(a)
        if a < inst.num_regions:
            used[s, a] += pc.gpu_s[k, a]
    assert saw_capacity_block


def test_determinism_same_seed_same_everything(toy_scenario: Scenario) -> None:
    a = random_masked_rollout(PlacementEnv(scenario=toy_scenario), seed=11, rng_seed=5)
    b = random_masked_rollout(PlacementEnv(scenario=toy_scenario), seed=11, rng_seed=5)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    for oa, ob in zip(a[3], b[3], strict=True):
        np.testing.assert_array_equal(oa, ob)
    for ia, ib in zip(a[2], b[2], strict=True):
        assert ia.keys() == ib.keys()
        for key in ia:
            np.testing.assert_array_equal(ia[key], ib[key])
    c = random_masked_rollout(PlacementEnv(scenario=toy_scenario), seed=12, rng_seed=5)
    assert len(c[0]) != len(a[0]) or not np.array_equal(c[1], a[1])


def test_replaying_an_instance_reproduces_the_episode(toy_scenario: Scenario, tmp_path) -> None:
    env = PlacementEnv(scenario=toy_scenario)
    plan, rewards, _, observations = random_masked_rollout(env, seed=2)
    path = tmp_path / "episode-seed2.npz"
    env.instance.save(path)
    replay_env = PlacementEnv(scenario=toy_scenario)
    obs, info = replay_env.reset(options={"instance": envs.Instance.load(path)})
    np.testing.assert_array_equal(obs, observations[0])
    replayed = []
    for k, a in enumerate(plan):
        obs, r, term, _, _info = replay_env.step(int(a))
        np.testing.assert_array_equal(obs, observations[k + 1])
        replayed.append(r)
    assert term
    np.testing.assert_array_equal(np.array(replayed), rewards)


def test_forecasts_ahead_stop_at_the_horizon_in_a_last_partial_hour(default_scenario: Scenario) -> None:
    # a 2.5-hour episode: in its last slot only the half hour up to the horizon is still to come
    env = PlacementEnv(scenario=default_scenario, horizon_h=2.5, num_tasks=60)
    obs, info = env.reset(seed=1)
    inst, layout = env.instance, env.layout
    assert inst.horizon_h == 2.5
    checked = 0
    for k in range(inst.num_tasks):
        f = {name: layout.split(obs)[1][:, j] for j, name in enumerate(REGION_FEATURES)}
        s, t = inst.slot_idx[k], inst.arrival_h[k]
        left = (2.5 if s == 2 else s + 1.0) - t
        np.testing.assert_allclose(f["arrivals_ahead"], inst.arrival_rate_per_h[s] * left, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(
            f["captive_gpu_h_ahead"], inst.captive_gpu_s_per_h[s] / 3600 * left, rtol=1e-5, atol=1e-9
        )
        checked += s == 2
        obs, _, term, _, info = env.step(int(np.flatnonzero(info["action_mask"])[0]))
        if term:
            break
    assert checked > 5 and (inst.arrival_rate_per_h[2] > 0).any()


def test_observation_fields_match_the_cost_model(toy_scenario: Scenario) -> None:
    env = PlacementEnv(scenario=toy_scenario, num_tasks=30)
    obs, info = env.reset(seed=4)
    inst = env.instance
    pc = envs.cost_matrix(inst)
    layout = env.layout
    used = np.zeros((inst.num_slots, inst.num_regions))  # GPU-s placed so far, per slot and region
    for k in range(inst.num_tasks):
        task, regions = layout.split(obs)
        feats = dict(zip(layout.task_features, task, strict=True))
        f = {name: regions[:, j] for j, name in enumerate(REGION_FEATURES)}
        s = inst.slot_idx[k]
        assert feats[f"class={inst.class_names[inst.class_idx[k]]}"] == 1.0
        assert feats[f"node={inst.node_names[inst.node_idx[k]]}"] == 1.0
        assert sum(v for n, v in feats.items() if "=" in n) == 3.0  # class, residency, node
        assert feats["rounds"] == inst.rounds[k]
        assert feats["hour_elapsed"] == pytest.approx(inst.arrival_h[k] - s, abs=1e-6)
        np.testing.assert_allclose(f["latency_s"], pc.latency_ms[k, :-1] / 1000, rtol=1e-6)
        np.testing.assert_allclose(f["cost"], pc.total_usd[k, :-1] * env.reward_scale, rtol=1e-5)
        np.testing.assert_allclose(f["price_usd_per_kwh"], inst.price_usd_per_kwh[s], rtol=1e-6)
        ahead = inst.arrival_rate_per_h[s] * (1.0 - (inst.arrival_h[k] - s))
        np.testing.assert_allclose(f["arrivals_ahead"], ahead, rtol=1e-5)
        captive = inst.captive_gpu_s_per_h[s] / 3600 * (1.0 - (inst.arrival_h[k] - s))
        np.testing.assert_allclose(f["captive_gpu_h_ahead"], captive, rtol=1e-5)
        left = capacity_limit_gpu_s(inst.capacity_gpu_s[s], share=0.5) - used[s]
        np.testing.assert_allclose(f["gpu_h_left"], left / 3600, rtol=1e-5)
        np.testing.assert_allclose(f["capacity_left"], left / inst.capacity_gpu_s[s], rtol=1e-5)
        np.testing.assert_array_equal(f["feasible"].astype(bool), info["action_mask"][:-1])
        # the step's cost is cost + (1 - warm) * replica_cost, as documented
        a = int(np.flatnonzero(info["action_mask"])[-2 if k % 2 else 0])
        expected = (
            (f["cost"][a] + (1 - f["replica_warm"][a]) * feats["replica_cost"])
            if a < inst.num_regions
            else feats["overflow_cost"]
        )
        if a < inst.num_regions:
            used[s, a] += pc.gpu_s[k, a]
        obs, r, term, _, info = env.step(a)
        assert -r == pytest.approx(expected, rel=1e-5)
    assert term


def test_render_ansi_shows_task_and_regions(toy_scenario: Scenario) -> None:
    env = PlacementEnv(scenario=toy_scenario, num_tasks=3, render_mode="ansi")
    env.reset(seed=0)
    text = env.render()
    assert "task 0/3" in text
    for name in TOY_REGIONS:
        assert name in text
    env.step(env.num_regions)
    assert "last: task 0 -> action 3" in env.render()


# ------------------------------------------------------------------------------- invalid input
def test_masked_action_raises_naming_action_and_reason(toy_scenario: Scenario) -> None:
    env = PlacementEnv(scenario=toy_scenario, num_tasks=300, invalid_action="raise")
    obs, info = env.reset(seed=0)
    while info["action_mask"][:-1].all():
        _obs, _, _, _, info = env.step(0)
    bad = int(np.flatnonzero(~info["action_mask"])[0])
    with pytest.raises(ValueError, match=rf"action {bad} is infeasible for task \d+: (latency|residency|capacity)"):
        env.step(bad)


def test_overflow_mode_executes_overflow_and_flags_it(toy_scenario: Scenario) -> None:
    env = PlacementEnv(scenario=toy_scenario, num_tasks=300)  # the default mode
    obs, info = env.reset(seed=0)
    while info["action_mask"][:-1].all():
        _obs, _, _, _, info = env.step(0)
    bad = int(np.flatnonzero(~info["action_mask"])[0])
    k = info.get("task_idx", 0)
    _, r, _, _, info = env.step(bad)
    assert info["invalid_action"] and info["action"] == env.num_regions
    assert -r / env.reward_scale == pytest.approx(env.instance.overflow_usd[info["task_idx"]])
    assert info["task_idx"] >= k


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"invalid_action": "ignore"}, "invalid_action = 'ignore'"),
        ({"render_mode": "movie"}, "render_mode = 'movie'"),
        ({"reward_scale": -1.0}, "reward_scale = -1.0"),
        ({"num_tasks": 0}, "num_tasks = 0"),
        ({"reward_scale": "1"}, "reward_scale = '1'"),
        ({"reward_scale": True}, "reward_scale = True"),
        ({"horizon_h": -2.0}, "horizon_h = -2.0: expected a positive number"),
        ({"horizon_h": 9000.0}, "horizon_h = 9000.0: expected at most the 8760 hours"),
        ({"arrival": "weekly"}, "workload.arrival = 'weekly'"),
        ({"scenario": 42}, "scenario = 42"),
    ],
)
def test_bad_constructor_arguments(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        PlacementEnv(**kwargs)
    if "render_mode" in kwargs or "arrival" in kwargs:  # arguments only the single env takes
        return
    # every env class checks its arguments the same way
    with pytest.raises(ValueError, match=match):
        PlacementVectorEnv(2, **kwargs)
    with pytest.raises(ValueError, match=match):
        PlacementBatchVecEnv(2, **kwargs)


@pytest.mark.parametrize("num_envs", [0, -1, 1.5, True, "2"])
def test_bad_num_envs(num_envs) -> None:
    for cls in (PlacementVectorEnv, PlacementBatchVecEnv):
        with pytest.raises(ValueError, match="num_envs = "):
            cls(num_envs)


def test_bad_step_and_reset_input(toy_scenario: Scenario, default_scenario: Scenario) -> None:
    env = PlacementEnv(scenario=toy_scenario, num_tasks=2)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)
    env.reset(seed=0)
    for bad in (-1, 4, 1.5, "a"):
        with pytest.raises(ValueError, match="action = "):
            env.step(bad)
    with pytest.raises(ValueError, match="expected only 'instance'"):
        env.reset(options={"instances": []})
    other = sample_instance(default_scenario, seed=0, num_tasks=3)
    with pytest.raises(ValueError, match="region_names"):
        env.reset(options={"instance": other})
    env.step(env.num_regions)
    env.step(env.num_regions)
    with pytest.raises(RuntimeError, match="finished episode"):
        env.step(0)


# ---------------------------------------------------------------------------------- vector env
def test_make_vec_returns_the_native_vector_env() -> None:
    venv = gym.make_vec(ENV_ID, num_envs=3, vectorization_mode="vector_entry_point", num_tasks=4)
    assert isinstance(venv.unwrapped, PlacementVectorEnv)
    obs, info = venv.reset(seed=0)
    assert obs.shape == (3, venv.unwrapped.layout.size)
    assert info["action_mask"].shape == (3, venv.unwrapped.num_regions + 1)


def test_vector_env_equals_single_envs_across_autoresets(toy_scenario: Scenario) -> None:
    n, seed = 4, 100
    venv = PlacementVectorEnv(n, scenario=toy_scenario, info_components=True)
    singles = [PlacementEnv(scenario=toy_scenario) for _ in range(n)]
    vobs, vinfo = venv.reset(seed=seed)
    sobs = [s.reset(seed=seed + e)[0] for e, s in enumerate(singles)]
    s_pending = [False] * n
    rng = np.random.default_rng(0)
    episodes_done = 0
    for _ in range(900):
        np.testing.assert_array_equal(vobs, np.stack(sobs))
        masks = vinfo["action_mask"]
        actions = np.array([int(rng.choice(np.flatnonzero(m))) for m in masks])
        vobs, vrew, vterm, vtrunc, vinfo = venv.step(actions)
        for e, s in enumerate(singles):
            if s_pending[e]:  # NEXT_STEP autoreset: this step resets and returns reward 0
                sobs[e], info = s.reset()
                s_pending[e] = False
                assert vrew[e] == 0.0 and not vterm[e]
                np.testing.assert_array_equal(vinfo["action_mask"][e], info["action_mask"])
                continue
            sobs[e], r, term, _, info = s.step(int(actions[e]))
            assert vrew[e] == r and vterm[e] == term
            assert vinfo["cost_usd"][e] == info["cost_usd"]
            assert vinfo["energy_usd"][e] == info["energy_usd"]
            np.testing.assert_array_equal(vinfo["action_mask"][e], info["action_mask"])
            if term:
                s_pending[e] = True
                episodes_done += 1
    assert episodes_done >= n  # the comparison crossed autoresets
    assert not vtrunc.any()


def test_vector_env_bad_input(toy_scenario: Scenario) -> None:
    venv = PlacementVectorEnv(2, scenario=toy_scenario, num_tasks=5)
    with pytest.raises(RuntimeError, match="reset"):
        venv.step(np.array([0, 0]))
    venv.reset(seed=0)
    with pytest.raises(ValueError, match="expected 2 integers"):
        venv.step(np.array([0]))
    with pytest.raises(ValueError, match=r"actions\[1\] = 9"):
        venv.step(np.array([0, 9]))
    with pytest.raises(ValueError, match="seed has 3 entries"):
        venv.reset(seed=[1, 2, 3])
    with pytest.raises(ValueError, match="num_envs = 0"):
        PlacementVectorEnv(0, scenario=toy_scenario)


def test_a_plan_exactly_at_capacity_replays_through_the_env(default_scenario: Scenario) -> None:
    """A plan check_plan_feasible accepts with capacity tight to the GPU-second (as the MILP's are) must
    replay: the env's capacity mask and the plan-level check share one tolerance rule."""
    from baselines.heuristics import make_heuristic
    from envs.costs import slot_usage_gpu_s

    base = sample_instance(default_scenario, seed=1, num_tasks=600)
    plan = make_heuristic("greedy", base).plan(base)
    usage = slot_usage_gpu_s(base, plan)
    inst = base.replace(capacity_gpu_s=np.where(usage > 0, usage, base.capacity_gpu_s))
    assert check_plan_feasible(inst, plan) == []
    env = PlacementEnv(scenario=default_scenario)
    env.reset(options={"instance": inst})
    total = 0.0
    for a in plan:
        _, r, term, _, _ = env.step(int(a))
        total += r
    assert term
    assert -total / env.reward_scale == pytest.approx(evaluate_plan(inst, plan).total_usd, rel=1e-9)


# ------------------------------------------------------------------------- no look into the future
def test_observations_do_not_depend_on_later_tasks(default_scenario: Scenario) -> None:
    """Two episodes that agree on their first k tasks and differ afterwards (fewer tasks, or other ones)
    give identical observations and masks for those k steps: no feature reads the episode's future."""
    bursty = default_scenario.with_overrides({"workload": {"arrival": "bursty"}})
    inst = sample_instance(bursty, seed=4)
    K, k = inst.num_tasks, 60
    assert k + 50 < K
    later = np.arange(k, K)
    variants = [
        inst.subset(np.r_[0:k, k + 40 : K]),  # 40 fewer tasks after the k-th
        inst.subset(slice(0, k + 1)),  # the episode ends right after
        inst.replace(
            gpu_s=np.where(np.arange(K) >= k, 3 * inst.gpu_s, inst.gpu_s),  # heavier later tasks
            generated_tokens=np.where(np.arange(K) >= k, 2 * inst.generated_tokens, inst.generated_tokens),
        ),
    ]
    assert all(v.num_tasks != K for v in variants[:2]) and later.size
    env, other = PlacementEnv(scenario=bursty), PlacementEnv(scenario=bursty)
    rng = np.random.default_rng(0)
    for variant in variants:
        obs, info = env.reset(options={"instance": inst})
        obs2, info2 = other.reset(options={"instance": variant})
        for step in range(k):
            assert np.array_equal(obs, obs2), f"observation {step} differs"
            assert np.array_equal(info["action_mask"], info2["action_mask"])
            a = int(rng.choice(np.flatnonzero(info["action_mask"])))
            obs, _, _, _, info = env.step(a)
            obs2, _, _, _, info2 = other.step(a)


def test_horizon_elapsed_is_the_clock(toy_scenario: Scenario) -> None:
    inst = sample_instance(toy_scenario, seed=2)
    env = PlacementEnv(scenario=toy_scenario)
    obs, _ = env.reset(options={"instance": inst})
    i = env.layout.task_features.index("horizon_elapsed")
    seen = [obs[i]]
    for _ in range(inst.num_tasks - 1):
        obs, *_ = env.step(inst.overflow_action)
        seen.append(obs[i])
    assert np.allclose(seen, inst.arrival_h / inst.horizon_h)


def test_an_empty_random_draw_is_redrawn_with_a_random_count(default_scenario: Scenario) -> None:
    """A short horizon often draws no task: the env draws again with the count still random (a fixed count
    of 1 would scale the forecasts to it and reveal it)."""
    env = PlacementEnv(scenario=default_scenario, horizon_h=0.01)  # about one task expected
    counts = set()
    for seed in range(40):
        env.reset(seed=seed)
        assert env.instance is not None
        counts.add(env.instance.num_tasks)
        # forecasts are the scenario's rates for that start, not scaled to the drawn count
        inst = env.instance
        same_start = sample_instance(default_scenario, seed=0, horizon_h=0.01, start_hour=inst.start_hour)
        assert np.array_equal(inst.arrival_rate_per_h, same_start.arrival_rate_per_h)
    assert min(counts) >= 1 and len(counts) > 1


def test_batched_envs_check_action_shapes(toy_scenario: Scenario) -> None:
    """The Gymnasium vector env wants ``MultiDiscrete((N,))`` actions exactly; the SB3 batch env also takes
    SB3's ``[N, 1]``; neither takes floats."""
    venv = PlacementVectorEnv(2, scenario=toy_scenario, num_tasks=5)
    venv.reset(seed=0)
    for bad in (np.array([[0], [1]]), np.array([0.0, 1.0]), np.array([0, 1, 2])):
        with pytest.raises(ValueError, match=r"actions has shape .* expected 2 integers"):
            venv.step(bad)
    sb3 = PlacementBatchVecEnv(2, scenario=toy_scenario, num_tasks=5)
    sb3.seed(0)
    sb3.reset()
    sb3.step(np.array([[3], [3]]))  # overflow in both
    with pytest.raises(ValueError, match="expected 2 integers"):
        sb3.step(np.array([3.0, 3.0]))
