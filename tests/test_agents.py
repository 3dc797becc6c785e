"""Learned agents: training envs, the region policy, training smoke runs, save / load / evaluate, resume,
the evaluation table and the contended scenario. Runs are a few hundred steps on small episodes."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch as th
from conftest import TOY_NODES, TOY_REGIONS

import baselines.milp.cache
from agents.evaluate import (
    Agent,
    detect_algo,
    evaluate_episodes,
    evaluation_instances,
    play,
    summarise,
)
from agents.policies import MaskableRegionPolicy, RegionNet, grouped_mode, region_net
from agents.train import ALGO_DEFAULTS, NAMED_SCENARIOS, SB3_ALGOS, TASK_DEFAULTS, TrainConfig, hyperparams_of, train
from agents.vec import make_vec_env
from baselines.heuristics import HEURISTICS, make_heuristic
from baselines.milp import cached_oracle, solve_hindsight
from envs import Scenario, check_plan_feasible, evaluate_plan
from envs.dynamics import ObsLayout, trace
from envs.instance import Instance
from envs.placement import PlacementEnv
from envs.tasks import TASKS as TASK_NAMES
from experiments.cli import main

TASKS = 40  # tasks per episode in these tests


def small_config(tmp_path: Path, algo: str = "maskable_ppo", **changes: object) -> TrainConfig:
    """A run of a few hundred steps on short episodes, evaluated on two tiny fixed episodes."""
    hp: dict[str, object] = {
        "dqn": {"learning_starts": 64, "buffer_size": 2_000, "target_update_interval": 100},
        "a2c": {"n_steps": 8},
    }.get(algo, {"n_steps": 64, "batch_size": 64, "n_epochs": 2})
    base = {
        "algo": algo,
        "timesteps": 256,
        "out": str(tmp_path / algo),
        "num_envs": 2,
        "num_tasks": TASKS,
        "hidden": 16,
        "hyperparams": hp,
        "eval_every": 128,
        "eval_episodes": 2,
        "eval_tasks": TASKS,
        "checkpoint_every": 128,
        "progress_bar": False,
        "oracle_time_limit_s": 10.0,
    }
    base.update(changes)
    return TrainConfig(**base)  # type: ignore[arg-type]


def params(model: object) -> list[np.ndarray]:
    return [p.detach().numpy().copy() for p in model.policy.parameters()]  # type: ignore[attr-defined]


# ------------------------------------------------------------------------------------- training envs
@pytest.mark.parametrize("backend", ["dummy", "subproc"])
def test_batch_vec_env_plays_the_same_episodes_as_sb3_vec_envs(toy_scenario: Scenario, backend: str) -> None:
    """Same seed, same masked actions: identical observations, rewards, dones and masks across autoresets."""
    envs = [make_vec_env(toy_scenario, 3, b, num_tasks=15) for b in ("batch", backend)]
    for v in envs:
        v.seed(7)
    for v in envs:
        v.reset()
    rng = np.random.default_rng(0)
    dones_seen = 0
    for _ in range(50):
        masks = [np.stack(v.env_method("action_masks")) for v in envs]
        np.testing.assert_array_equal(masks[0], masks[1])
        a = (masks[0] * rng.random(masks[0].shape)).argmax(axis=1)
        out = [v.step(a) for v in envs]
        for j in range(3):
            np.testing.assert_allclose(out[0][j], out[1][j], rtol=1e-6)
        dones_seen += int(out[0][2].sum())
        for e in np.flatnonzero(out[0][2]):
            assert "terminal_observation" in out[0][3][e] and "terminal_observation" in out[1][3][e]
    assert dones_seen >= 6  # several autoresets happened
    for v in envs:
        v.close()


def test_batch_vec_env_rewards_sum_to_plan_cost(toy_scenario: Scenario) -> None:
    venv = make_vec_env(toy_scenario, 1, "batch", num_tasks=20)
    venv.seed(3)
    venv.reset()
    inst = venv.get_attr("instances")[0][0]
    total = 0.0
    plan = []
    for _ in range(inst.num_tasks):
        a = int(np.flatnonzero(venv.env_method("action_masks")[0])[0])
        plan.append(a)
        _obs, r, done, _info = venv.step(np.array([a]))
        total += float(r[0])
    assert done[0]
    assert -total / 100.0 == pytest.approx(evaluate_plan(inst, plan).total_usd, rel=1e-5)


def test_batch_vec_env_overflow_mode_and_bad_actions(toy_scenario: Scenario) -> None:
    venv = make_vec_env(toy_scenario, 2, "batch", num_tasks=10)  # overflow: the default
    venv.seed(0)
    venv.reset()
    mask = np.stack(venv.env_method("action_masks"))
    bad = np.array([int(np.flatnonzero(~m)[0]) if (~m).any() else 0 for m in mask])
    _obs, _r, _d, infos = venv.step(bad)
    assert [i["invalid_action"] for i in infos] == [bool(not mask[e, bad[e]]) for e in range(2)]
    with pytest.raises(ValueError, match="expected an integer"):
        venv.step(np.array([0, 99]))
    strict = make_vec_env(toy_scenario, 1, "batch", num_tasks=10, invalid_action="raise")
    strict.seed(0)
    strict.reset()
    m = strict.env_method("action_masks")[0]
    if (~m).any():
        with pytest.raises(ValueError, match="infeasible"):
            strict.step(np.array([int(np.flatnonzero(~m)[0])]))
    with pytest.raises(ValueError, match="backend"):
        make_vec_env(toy_scenario, 1, "threads")


# -------------------------------------------------------------------------------------- the policy
def test_region_net_runs_on_any_region_set_and_is_permutation_equivariant(
    default_scenario: Scenario, toy_scenario: Scenario
) -> None:
    """One set of weights scores 13 or 3 regions; permuting the regions permutes the logits."""
    lay13 = ObsLayout(
        tuple(c.name for c in default_scenario.classes), default_scenario.node_names, default_scenario.region_names
    )
    lay3 = ObsLayout(tuple(c.name for c in toy_scenario.classes), toy_scenario.node_names, toy_scenario.region_names)
    th.manual_seed(0)
    net13, net3 = RegionNet(lay13.task_features, hidden=16), RegionNet(lay3.task_features, hidden=16)
    net3.load_state_dict(net13.state_dict())  # no weight depends on the regions (nor the nodes)
    cases = [
        (PlacementEnv(default_scenario, num_tasks=30), net13, 13),
        (PlacementEnv(toy_scenario, num_tasks=30), net3, 3),
    ]
    for env, net, R in cases:
        obs, _ = env.reset(seed=0)
        x = th.as_tensor(obs)[None]
        logits, latent = net(x)
        assert logits.shape == (1, R + 1) and latent.shape == (1, 16)
        perm = np.random.default_rng(1).permutation(R)
        ft = env.layout.num_task_features
        blocks = obs[ft:].reshape(-1, R)[:, perm]
        permuted = np.concatenate([obs[:ft], blocks.reshape(-1)])
        logits_p, latent_p = net(th.as_tensor(permuted)[None])
        th.testing.assert_close(logits_p[0, :R], logits[0, perm], rtol=1e-5, atol=1e-5)
        th.testing.assert_close(logits_p[0, R], logits[0, R], rtol=1e-5, atol=1e-5)
        th.testing.assert_close(latent_p, latent, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="does not fit"):
        net3(th.zeros(1, lay3.size + 1))


def test_grouped_mode_picks_the_kind_of_action_of_most_probability() -> None:
    """Warm regions, cold regions, overflow: the kind of most probability in all, then its best action."""
    warm = th.tensor([[True, False, False]] * 4 + [[True, True, False]])
    probs = th.tensor(
        [
            [0.10, 0.30, 0.25, 0.35],  # overflow is the argmax, but cold regions hold 0.55: the best cold one
            [0.40, 0.30, 0.00, 0.30],  # warm 0.40 > cold 0.30, overflow 0.30
            [0.00, 0.20, 0.25, 0.55],  # overflow holds more than half: overflow
            [0.30, 0.20, 0.29, 0.21],  # the warm region is the argmax, the cold ones hold 0.49: the best cold one
            [0.00, 0.50, 0.10, 0.40],  # region 0 masked: the warm kind's best is region 1
        ]
    )
    logits = th.log(probs).clamp_min(-1e8)  # masked actions at a large negative logit, as sb3-contrib holds them
    assert grouped_mode(logits, warm).tolist() == [1, 0, 3, 2, 1]
    assert logits.argmax(1).tolist() == [3, 0, 3, 0, 1]


def test_grouped_decision_of_the_masked_region_policy(tmp_path: Path, toy_scenario: Scenario) -> None:
    """predict(deterministic) follows the policy's decision; it is saved with the model, 'argmax' by default;
    the zero-shot path (another region set) decides as predict does."""
    from sb3_contrib import MaskablePPO

    venv = make_vec_env(toy_scenario, 1, "batch", num_tasks=TASKS, invalid_action="raise")
    layout = ObsLayout.of(toy_scenario)
    kwargs = {"task_features": layout.task_features, "hidden": 16}
    with pytest.raises(ValueError, match=r"policy_kwargs\['decision'\] = 'best': expected one of"):
        MaskablePPO(MaskableRegionPolicy, venv, policy_kwargs={**kwargs, "decision": "best"}, device="cpu")
    default = MaskablePPO(MaskableRegionPolicy, venv, policy_kwargs=kwargs, seed=0, device="cpu")
    assert default.policy.decision == "argmax"
    model = MaskablePPO(
        MaskableRegionPolicy, venv, policy_kwargs={**kwargs, "decision": "grouped"}, seed=0, device="cpu"
    )
    path = tmp_path / "grouped.zip"
    model.save(path)
    agent = Agent.load(path)
    assert agent.model.policy.decision == "grouped"
    inst = evaluation_instances(toy_scenario, [3], TASKS)[0]
    tr = trace(inst, make_heuristic("greedy", inst).plan(inst), 1.0)  # states along greedy's plan
    obs, mask = tr.obs, tr.mask
    with th.no_grad():
        dist = agent.model.policy.get_distribution(th.as_tensor(obs), mask)
        logits = dist.distribution.logits
    warm = th.as_tensor(layout.warm(obs))
    assert warm.any() and not warm.all()  # states with warm and cold regions
    th.testing.assert_close(region_net(agent.model.policy).warm(th.as_tensor(obs)), warm)
    grouped = grouped_mode(logits, warm).numpy()
    assert (grouped != logits.argmax(1).numpy()).any()  # the two decisions differ on these states
    np.testing.assert_array_equal(agent.act_batch(obs, mask), grouped)
    np.testing.assert_array_equal(agent._act_on_other_regions(obs, mask), agent.act_batch(obs, mask))
    agent.model.policy.decision = "argmax"
    np.testing.assert_array_equal(agent.act_batch(obs, mask), logits.argmax(1).numpy())
    # experiments.bench.decision re-saves a model with another decision and the same weights
    from experiments.bench.decision import with_decision

    with_decision(path, tmp_path / "argmax.zip", "argmax")
    copy = Agent.load(tmp_path / "argmax.zip")
    assert copy.model.policy.decision == "argmax"
    np.testing.assert_array_equal(copy.act_batch(obs, mask), logits.argmax(1).numpy())
    for x, y in zip(params(copy.model), params(model), strict=True):
        np.testing.assert_array_equal(x, y)


# ------------------------------------------------------------------------------------ training runs
@pytest.mark.parametrize(("algo", "policy"), [*[(a, "region") for a in SB3_ALGOS], ("maskable_ppo", "mlp")])
def test_training_smoke(tmp_path: Path, toy_scenario: Scenario, algo: str, policy: str) -> None:
    cfg = small_config(tmp_path, algo, policy=policy, eval_every=0)
    res = train(cfg, scenario=toy_scenario, log=lambda _msg: None)
    assert res.num_timesteps >= cfg.timesteps and res.session_steps == res.num_timesteps
    assert res.model_path.is_file() and (Path(cfg.out) / "config.json").is_file()
    assert (
        sorted(p.name for p in (Path(cfg.out) / "checkpoints").glob("*.zip"))[-1]
        == f"step_{res.num_timesteps:012d}.zip"
    )
    assert list((Path(cfg.out) / "tb").iterdir()), "TensorBoard logs are written"
    assert 0 < res.env_share < 1 and res.steps_per_s > 0
    agent = Agent.load(res.model_path)
    assert agent.algo == algo and agent.masked == (algo == "maskable_ppo")
    lone = tmp_path / "elsewhere" / "model.zip"  # away from its run folder: the algorithm is read from the zip
    lone.parent.mkdir()
    lone.write_bytes(res.model_path.read_bytes())
    assert detect_algo(lone) == algo
    assert (agent.obs_mean is not None) == (policy == "mlp")  # VecNormalize on observations only for the MLP
    if policy == "region":
        region_net(agent.model.policy)
    # A new masked region policy acts by the grouped decision (agents.policies), as saved with its model.
    grouped = (algo, policy) == ("maskable_ppo", "region")
    assert getattr(agent.model.policy, "decision", None) == ("grouped" if grouped else None)
    inst = evaluation_instances(toy_scenario, [5], TASKS)[0]
    plan = agent.plan(inst)
    assert check_plan_feasible(inst, plan) == []  # inadmissible choices became overflow


def test_save_load_evaluate_round_trip(tmp_path: Path, toy_scenario: Scenario) -> None:
    """The live model, the reloaded one and single-env play give the same plans and the same numbers."""
    cfg = small_config(tmp_path, policy="mlp")  # the MLP trains with VecNormalize: statistics must travel too
    res = train(cfg, scenario=toy_scenario, log=lambda _msg: None)
    instances = evaluation_instances(toy_scenario, [11, 12, 13], TASKS)
    loaded = Agent.load(res.model_path)
    again = Agent.load(res.model_path)
    p1, p2 = play(loaded.act_batch, instances), play(again.act_batch, instances)
    for a, b in zip(p1, p2, strict=True):
        np.testing.assert_array_equal(a, b)
    t1 = summarise(evaluate_episodes(instances, [loaded], rolling=False, oracle=False))
    t2 = summarise(evaluate_episodes(instances, [again], rolling=False, oracle=False))
    pd.testing.assert_frame_equal(t1.drop(columns="plan_s_mean"), t2.drop(columns="plan_s_mean"))
    # Single-env play with act() gives the plan of batched play, and the rewards sum to its cost.
    env = PlacementEnv(toy_scenario)
    for inst, plan in zip(instances, p1, strict=True):
        obs, info = env.reset(options={"instance": inst})
        total, played = 0.0, []
        done = False
        while not done:
            obs, r, done, _trunc, info = env.step(loaded.act(obs, info["action_mask"]))
            total += r
            played.append(info["action"])
        np.testing.assert_array_equal(played, plan)
        assert -total / env.reward_scale == pytest.approx(evaluate_plan(inst, plan).total_usd, rel=1e-9)
    # The evaluation callback's last figure is the final model's cost on its fixed episodes.
    log = pd.read_csv(Path(cfg.out) / "eval" / "log.csv")
    files = sorted((Path(cfg.out) / "eval").glob("eval_seed*_tasks40.npz"))
    assert len(files) == 2 and log["timesteps"].iloc[-1] == res.num_timesteps
    fixed = [Instance.load(f) for f in files]
    costs = [evaluate_plan(i, p).total_usd for i, p in zip(fixed, play(loaded.act_batch, fixed), strict=True)]
    assert log["total_usd"].iloc[-1] == pytest.approx(np.mean(costs), rel=1e-9)


def test_one_seed_makes_a_run_reproducible(tmp_path: Path, toy_scenario: Scenario) -> None:
    a = train(small_config(tmp_path / "a", eval_every=0), scenario=toy_scenario, log=lambda _msg: None)
    b = train(small_config(tmp_path / "b", eval_every=0), scenario=toy_scenario, log=lambda _msg: None)
    c = train(small_config(tmp_path / "c", eval_every=0, seed=1), scenario=toy_scenario, log=lambda _msg: None)
    pa, pb, pc = (params(Agent.load(r.model_path).model) for r in (a, b, c))
    for x, y in zip(pa, pb, strict=True):
        np.testing.assert_array_equal(x, y)
    assert any(not np.array_equal(x, z) for x, z in zip(pa, pc, strict=True))


def test_resume_continues_a_run(tmp_path: Path, toy_scenario: Scenario) -> None:
    cfg = small_config(tmp_path, timesteps=256, checkpoint_every=128)
    first = train(cfg, scenario=toy_scenario, log=lambda _msg: None)
    assert first.num_timesteps == 256
    with pytest.raises(ValueError, match="already holds a run"):
        train(cfg, scenario=toy_scenario, log=lambda _msg: None)
    with pytest.raises(ValueError, match="differ"):
        train(small_config(tmp_path, timesteps=512, seed=3), resume=True, scenario=toy_scenario)
    log_csv = Path(cfg.out) / "eval" / "log.csv"
    stale = pd.read_csv(log_csv)
    stale.loc[len(stale)] = {**stale.iloc[-1].to_dict(), "timesteps": 9_999}  # a killed session's last row
    stale.to_csv(log_csv, index=False)
    messages: list[str] = []
    second = train(small_config(tmp_path, timesteps=512), resume=True, scenario=toy_scenario, log=messages.append)
    assert any("resuming" in m and "256 steps" in m for m in messages)
    assert second.num_timesteps == 512 and second.session_steps == 256
    assert second.wall_s > first.wall_s  # time cumulates over the sessions
    log = pd.read_csv(Path(cfg.out) / "eval" / "log.csv")
    assert log["timesteps"].tolist() == [128, 256, 384, 512]
    assert len(list((Path(cfg.out) / "tb").iterdir())) == 1  # the same TensorBoard run goes on
    assert json.loads((Path(cfg.out) / "model.json").read_text())["num_timesteps"] == 512
    with pytest.raises(ValueError, match="does not exist"):
        train(small_config(tmp_path / "empty"), resume=True, scenario=toy_scenario)


def test_wall_clock_limit_stops_and_checkpoints(tmp_path: Path, toy_scenario: Scenario) -> None:
    cfg = small_config(tmp_path, timesteps=1_000_000, max_minutes=0.02, eval_every=0, checkpoint_every=0)
    res = train(cfg, scenario=toy_scenario, log=lambda _msg: None)
    assert res.stopped_by_clock and 0 < res.num_timesteps < cfg.timesteps
    assert (Path(cfg.out) / "checkpoints" / f"step_{res.num_timesteps:012d}.zip").is_file()


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="'decision' in policy_kwargs only for a masked region policy"):
        TrainConfig(algo="ppo", hyperparams={"policy_kwargs": {"decision": "grouped"}})
    with pytest.raises(ValueError, match=r"policy_kwargs\['decision'\] among \('argmax', 'grouped'\)"):
        TrainConfig(algo="dagger", hyperparams={"policy_kwargs": {"decision": "best"}})
    with pytest.raises(ValueError, match="algo"):
        TrainConfig(algo="sac")
    with pytest.raises(ValueError, match="hyperparams"):
        TrainConfig(algo="dqn", hyperparams={"n_epochs": 3})
    with pytest.raises(ValueError, match="num_envs"):
        TrainConfig(num_envs=0)
    with pytest.raises(ValueError, match="scenario"):
        Scenario.load("no/such/file.toml")
    for bad in ("lin_x", "lin_-1", "fast", -1e-4, True):
        with pytest.raises(ValueError, match=r"hyperparams\['learning_rate'\] = .*expected a number > 0 or 'lin_"):
            TrainConfig(hyperparams={"learning_rate": bad})


def test_task_defaults_sit_between_the_algorithm_defaults_and_the_run_overrides() -> None:
    for algo, per_task in TASK_DEFAULTS.items():
        for task, hp in per_task.items():
            assert task in TASK_NAMES and set(hp) <= set(ALGO_DEFAULTS[algo]), (algo, task)
    assert hyperparams_of(TrainConfig(scenario="hubs"))["gamma"] == 0.999
    assert hyperparams_of(TrainConfig(scenario="contended"))["gamma"] == 0.99  # no task defaults: the algorithm's
    assert hyperparams_of(TrainConfig(scenario="default"))["gae_lambda"] == 0.95
    assert hyperparams_of(TrainConfig(scenario="hubs", hyperparams={"gamma": 0.98}))["gamma"] == 0.98
    assert hyperparams_of(TrainConfig(algo="ppo", scenario="hubs"))["gamma"] == 0.99  # tuned for maskable_ppo only


def test_a_task_run_trains_and_records_its_task_defaults(tmp_path: Path) -> None:
    cfg = small_config(tmp_path, scenario="hubs", timesteps=128, eval_every=0, checkpoint_every=0)
    train(cfg, log=lambda _msg: None)
    out = Path(cfg.out)
    recorded = json.loads((out / "hyperparams.json").read_text())
    assert recorded == hyperparams_of(cfg) and recorded["gamma"] == 0.999 and recorded["n_steps"] == 64
    agent = Agent.load(out / "model.zip")
    assert agent.model.gamma == 0.999 and agent.model.gae_lambda == 0.99
    with (out / "model.vecnormalize.pkl").open("rb") as f:
        assert pickle.load(f).gamma == 0.999  # rewards normalised at that horizon


def test_linear_schedule_decays_to_zero_over_the_run_and_survives_resume(
    tmp_path: Path, toy_scenario: Scenario
) -> None:
    hp = {"n_steps": 64, "batch_size": 64, "n_epochs": 2, "learning_rate": "lin_1e-3", "clip_range": "lin_0.2"}
    cfg = small_config(tmp_path, timesteps=256, eval_every=0, hyperparams=hp)
    train(cfg, scenario=toy_scenario, log=lambda _msg: None)
    model = Agent.load(Path(cfg.out) / "model.zip").model
    assert model.lr_schedule(1.0) == pytest.approx(1e-3) and model.lr_schedule(0.25) == pytest.approx(2.5e-4)
    assert model.clip_range(0.5) == pytest.approx(0.1)
    # SB3 sets the rate before each update from the progress left after that rollout: 0 at the run's end.
    assert model.policy.optimizer.param_groups[0]["lr"] == 0.0
    messages: list[str] = []
    resumed = train(
        small_config(tmp_path, timesteps=512, eval_every=0, hyperparams=hp),
        resume=True,
        scenario=toy_scenario,
        log=messages.append,
    )
    model = Agent.load(Path(cfg.out) / "model.zip").model
    assert resumed.num_timesteps == 512 and any("resuming" in m for m in messages)
    assert model.lr_schedule(0.25) == pytest.approx(2.5e-4)  # the schedule is saved with the model


# ------------------------------------------------------------------------------ evaluation table
def untrained_agent(scenario: Scenario, tmp_path: Path) -> Agent:
    """An agent saved before any training: evaluation does not care how good it is."""
    cfg = small_config(tmp_path, timesteps=1, eval_every=0, checkpoint_every=0)
    return Agent.load(train(cfg, scenario=scenario, log=lambda _msg: None).model_path)


def test_evaluation_table_without_oracle_has_agent_and_heuristics(tmp_path: Path, toy_scenario: Scenario) -> None:
    agent = untrained_agent(toy_scenario, tmp_path)
    instances = evaluation_instances(toy_scenario, [1, 2], TASKS)
    table = summarise(evaluate_episodes(instances, [agent], rolling=False, oracle=False))
    assert set(table["policy"]) == {agent.name, *HEURISTICS}
    for m in ("total_usd", "carbon_g", "penalty_usd", "rid", "relative_regret"):
        assert {f"{m}_mean", f"{m}_se"} <= set(table.columns)
    assert (table["episodes"] == 2).all() and table["relative_regret_mean"].isna().all()


def test_evaluation_table_has_every_policy_and_nonnegative_regret(tmp_path: Path, toy_scenario: Scenario) -> None:
    agent = untrained_agent(toy_scenario, tmp_path)
    instances = evaluation_instances(toy_scenario, [1, 2, 3], TASKS)
    episodes = evaluate_episodes(instances, [agent], oracle_time_limit_s=30.0)
    assert (episodes.loc[episodes["policy"] == "oracle", "oracle_status"] == "optimal").all()
    table = summarise(episodes)
    assert set(table["policy"]) == {agent.name, *HEURISTICS, "rolling_milp", "oracle"}
    assert (table["relative_regret_mean"] >= -1e-6).all(), table[["policy", "relative_regret_mean"]]
    assert (episodes["relative_regret"] >= -1e-6).all()
    assert table.loc[table["policy"] == "oracle", "relative_regret_mean"].iloc[0] == pytest.approx(0.0, abs=1e-9)


@pytest.fixture
def solves(monkeypatch: pytest.MonkeyPatch) -> list[float | None]:
    """The time limits of the oracle solves run from now on (cache hits add nothing)."""
    calls: list[float | None] = []
    solve = baselines.milp.cache.solve_oracle

    def counting(inst: Instance, time_limit_s: float | None = None) -> object:
        calls.append(time_limit_s)
        return solve(inst, time_limit_s)

    monkeypatch.setattr(baselines.milp.cache, "solve_oracle", counting)
    return calls


def test_cached_oracle_is_reused_for_the_same_episode_only(
    tmp_path: Path, toy_scenario: Scenario, solves: list[float | None]
) -> None:
    a, b = evaluation_instances(toy_scenario, [1, 2], TASKS)
    first = cached_oracle(a, tmp_path, 30.0)
    again = cached_oracle(a, tmp_path, 30.0)
    assert len(solves) == 1 and again.objective_usd == first.objective_usd
    np.testing.assert_array_equal(again.plan, first.plan)
    cached_oracle(b, tmp_path, 30.0)  # another episode: solved, not read from a's file
    assert len(solves) == 2
    # a changed episode (same seed label) is solved again, not served a stale plan
    changed = a.replace(budget_ms=a.budget_ms * 2.0)
    assert cached_oracle(changed, tmp_path, 30.0).objective_usd <= first.objective_usd + 1e-9
    assert len(solves) == 3
    # a result that is not proven optimal is not reused for a longer time limit
    limited = tmp_path / "limited"
    cached_oracle(a, limited, 30.0)
    f = next(limited.glob("oracle_*.npz"))
    with np.load(f) as z:
        data = {k: z[k] for k in z.files}
    np.savez(f, **{**data, "status": np.array("time_limit")})
    cached_oracle(a, limited, 10.0)
    assert len(solves) == 4  # 10 s <= 30 s: reused
    cached_oracle(a, limited, 30.0)
    assert len(solves) == 4  # the same limit: reused
    cached_oracle(a, limited, None)
    assert solves[-1] is None and len(solves) == 5


def test_cached_oracle_re_solves_a_stale_or_broken_file(
    tmp_path: Path, toy_scenario: Scenario, solves: list[float | None]
) -> None:
    (a,) = evaluation_instances(toy_scenario, [1], TASKS)
    first = cached_oracle(a, tmp_path, 30.0)
    (f,) = tmp_path.glob("oracle_*.npz")  # one file, no temporary left behind
    with np.load(f) as z:
        data = {k: z[k] for k in z.files}
    # an objective the plan no longer costs (the cost model changed since): solved again, file replaced
    np.savez(f, **{**data, "objective_usd": np.array(first.objective_usd + 1.0)})
    assert cached_oracle(a, tmp_path, 30.0).objective_usd == pytest.approx(first.objective_usd)
    assert len(solves) == 2
    cached_oracle(a, tmp_path, 30.0)
    assert len(solves) == 2  # the rewritten file is good again
    # a truncated file (a run killed while writing by an older version): a miss, not a crash
    f.write_bytes(f.read_bytes()[:100])
    assert cached_oracle(a, tmp_path, 30.0).objective_usd == pytest.approx(first.objective_usd)
    assert len(solves) == 3 and [p.name for p in tmp_path.iterdir()] == [f.name]


# --------------------------------------------------------------------------------------------- CLI
def test_cli_train_and_evaluate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    toml = tmp_path / "toy.toml"
    drop = "\n".join(
        f"[service_nodes.{n}]\ntraffic_share = 0.0"
        for n in ("us-south", "sao-paulo", "frankfurt", "pune", "tokyo", "seoul", "singapore", "sydney")
    )
    toml.write_text(f"regions = {json.dumps(TOY_REGIONS)}\n[region_defaults]\nnum_gpus = 1\n{drop}\n")
    out = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--algo",
                "maskable_ppo",
                "--scenario",
                str(toml),
                "--timesteps",
                "128",
                "--seed",
                "3",
                "--out",
                str(out),
                "--num-envs",
                "2",
                "--tasks",
                "30",
                "--hp",
                "n_steps=64",
                "--hp",
                "batch_size=64",
                "--eval-every",
                "0",
                "--no-progress",
            ]
        )
        == 0
    )
    assert "steps/s" in capsys.readouterr().out
    assert json.loads((out / "config.json").read_text())["seed"] == 3
    csv = tmp_path / "table.csv"
    assert (
        main(
            [
                "evaluate",
                "--model",
                str(out / "model.zip"),
                "--episodes",
                "2",
                "--tasks",
                "30",
                "--out",
                str(csv),
                "--no-oracle",
                "--no-rolling",
                "--quiet",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    table = pd.read_csv(csv)
    assert set(table["policy"]) == {"maskable_ppo", *HEURISTICS}
    assert "total_usd" in printed and "maskable_ppo" in printed
    assert main(["evaluate", "--model", str(tmp_path / "missing.zip"), "--out", str(csv)]) == 2


# ------------------------------------------------------------------------------ contended scenario
def test_contended_scenario_is_packaged_and_traps_greedy(default_scenario: Scenario) -> None:
    assert NAMED_SCENARIOS["contended"].is_file()
    s = Scenario.load("contended")
    cap = dict(zip(s.region_names, s.capacity_gpu_s[0], strict=True))
    assert cap["Canada Central"] < cap["East US"] and cap["Brazil South"] < cap["East US"]
    assert not any(m.warm_at_home for m in s.models if m.name == "llm-70b")
    inst = evaluation_instances(s, [100], 600)[0]
    plans = {n: make_heuristic(n, inst, seed=0).plan(inst) for n in ("greedy", "local")}
    greedy, local = (evaluate_plan(inst, plans[n]) for n in ("greedy", "local"))
    # Myopia: greedy overflows tasks rather than pay a replica that would serve the whole day.
    assert greedy.num_overflow > local.num_overflow and greedy.total_usd > local.total_usd
    oracle = solve_hindsight(inst, time_limit_s=60.0)
    assert greedy.total_usd > 1.2 * oracle.objective_usd


# ------------------------------------------------------------------------------------------ learning
@pytest.mark.slow
def test_maskable_ppo_learns_a_scenario_where_one_region_is_always_best(
    tmp_path: Path, default_scenario: Scenario
) -> None:
    """Canada Central is cheap, clean, big and reachable by every task, and only energy and carbon count:
    placing every task there is optimal, and MaskablePPO must find it."""
    drop = {n: {"traffic_share": 0.0} for n in default_scenario.spec["service_nodes"] if n not in TOY_NODES}
    s = default_scenario.with_overrides(
        {
            "regions": TOY_REGIONS,
            "service_nodes": drop,
            "legal": {"residency_mode": "off"},
            "region_overrides": {
                "Canada Central": {"num_gpus": 50},
                "East US": {"pue": 10.0},
                "West US": {"pue": 10.0},
            },
            "workload": {"slack_add_ms": 2000.0},
            "frictions": {"replica": 0.0},
            "weights": {"gamma": 0.0, "eta": 0.0},
        }
    )
    cfg = TrainConfig(
        timesteps=24_576,
        out=str(tmp_path / "run"),
        num_tasks=100,
        eval_every=0,
        checkpoint_every=0,
        progress_bar=False,
        hyperparams={"n_steps": 64, "batch_size": 256},
    )
    agent = Agent.load(train(cfg, scenario=s, log=lambda _msg: None).model_path)
    instances = evaluation_instances(s, [1, 2, 3], 100)
    plans = play(agent.act_batch, instances)
    best = s.region_names.index("Canada Central")
    assert np.mean(np.concatenate(plans) == best) >= 0.95
    for inst, plan in zip(instances, plans, strict=True):
        greedy = evaluate_plan(inst, make_heuristic("greedy", inst).plan(inst)).total_usd
        assert evaluate_plan(inst, plan).total_usd <= 1.02 * greedy
