"""``--algo rllib_ppo``: RLlib's PPO on the region net with masked logits, exported as a MaskablePPO model.

The env wrapper and the checks of settings need no Ray; the training tests need the optional extra
(``pip install -e ".[ray]"``) and are skipped without it. They start an embedded Ray on the loopback interface.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from gymnasium.utils.env_checker import check_env

from agents.evaluate import Agent, play
from agents.rllib import RLlibPlacementEnv
from agents.train import TrainConfig, train
from envs.costs import evaluate_plan
from envs.instance import Instance


def rllib_config(tmp_path: Path, **kw: object) -> TrainConfig:
    base: dict = {
        "algo": "rllib_ppo",
        "scenario": "residency",
        "timesteps": 2048,
        "out": str(tmp_path / "run"),
        "num_envs": 2,
        "num_tasks": 60,
        "eval_every": 1024,
        "eval_episodes": 2,
        "eval_tasks": 60,
        "oracle_time_limit_s": 10.0,
        "checkpoint_every": 1024,
        "progress_bar": False,
        "hyperparams": {"train_batch_size": 512, "minibatch_size": 128, "num_epochs": 2},
    }
    return TrainConfig(**{**base, **kw})


def test_the_rllib_env_is_the_placement_env_with_its_mask_in_the_observation() -> None:
    # the checker steps random actions: the overflow rule instead of the masked runs' error on inadmissible ones
    env = RLlibPlacementEnv({"scenario": "residency", "split": "train", "num_tasks": 30, "invalid_action": "overflow"})
    check_env(env, skip_render_check=True)
    obs, _ = env.reset(seed=3)
    assert obs["action_mask"].dtype == np.float32
    np.testing.assert_array_equal(obs["action_mask"] > 0.5, env.env.action_masks())
    assert env.observation_space["observations"] == env.env.observation_space


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"hyperparams": {"minibatch_size": 4096}}, r"minibatch_size.*at most train_batch_size = 2048"),
        ({"hyperparams": {"num_env_runners": -1}}, r"num_env_runners.*an integer >= 0"),
        ({"hyperparams": {"lambda_": 1.5}}, r"lambda_.*a number in \(0, 1\]"),
        ({"hyperparams": {"n_steps": 64}}, r"hyperparams.*expected keys among"),
        ({"policy": "mlp"}, r"policy = 'mlp': expected 'region' for rllib_ppo"),
        ({"vec_backend": "subproc"}, r"vec_backend = 'subproc': expected 'batch'"),
        ({"hyperparams": {"policy_kwargs": {"net_arch": [8]}}}, r"no policy_kwargs for rllib_ppo"),
    ],
)
def test_bad_rllib_settings_are_refused_by_name(tmp_path: Path, kw: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        rllib_config(tmp_path, **kw)


def test_rllib_without_ray_says_how_to_install_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    with pytest.raises(ImportError, match=r"--algo rllib_ppo needs Ray.*geoinfer\[ray\]"):
        train(rllib_config(tmp_path), log=lambda m: None)


# --- on Ray (optional extra)


@pytest.mark.ray
def test_the_module_and_its_maskable_ppo_export_score_alike(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    import torch as th
    from ray.rllib.core.columns import Columns
    from sb3_contrib import MaskablePPO

    from agents.imitation import masked_venv
    from agents.rllib import export_to_sb3
    from agents.rllib_module import RegionRLModule
    from agents.train import policy_spec
    from envs.dynamics import REGION_FEATURES, ObsLayout
    from envs.tasks import get_task

    cfg = rllib_config(tmp_path)
    scen = get_task("residency").scenario("train")
    env = RLlibPlacementEnv({"scenario": "residency", "split": "train", "num_tasks": 60})
    layout = ObsLayout.of(scen)
    module = RegionRLModule(
        observation_space=env.observation_space,
        action_space=env.action_space,
        model_config={
            "task_features": list(layout.task_features),
            "region_features": list(REGION_FEATURES),
            "hidden": 64,
        },
    )
    with th.no_grad():  # weights far from the initial ones, so a copy that misses a layer shows
        for p in module.parameters():
            p.add_(th.randn_like(p) * 0.3)
    policy, kwargs = policy_spec(cfg, scen)
    host = MaskablePPO(policy, masked_venv(cfg, scen), policy_kwargs=kwargs, seed=0, device="cpu")
    export_to_sb3(module, host)
    obs, masks = [], []
    o, _ = env.reset(seed=0)
    for _ in range(40):
        obs.append(o["observations"])
        masks.append(o["action_mask"] > 0.5)
        o, *_ = env.step(int(np.flatnonzero(o["action_mask"])[0]))
    x, m = th.as_tensor(np.array(obs)), np.array(masks)
    batch = {Columns.OBS: {"observations": x, "action_mask": th.as_tensor(m, dtype=th.float32)}}
    with th.no_grad():
        logits = module.forward_inference(dict(batch))[Columns.ACTION_DIST_INPUTS].numpy()
        values = module.compute_values(dict(batch)).numpy()
        dist = host.policy.get_distribution(x, action_masks=m)
        sb3_values = host.policy.predict_values(x).squeeze(-1).numpy()
    np.testing.assert_allclose(
        th.log_softmax(th.as_tensor(logits), -1).numpy()[m], dist.distribution.logits.numpy()[m], rtol=1e-5, atol=1e-5
    )
    assert (logits[~m] < -1e30).all()
    np.testing.assert_allclose(values, sb3_values, rtol=1e-5, atol=1e-6)


@pytest.mark.ray
def test_an_rllib_run_with_a_remote_env_runner_resumes_and_evaluates_identically(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    hp = {"train_batch_size": 512, "minibatch_size": 128, "num_env_runners": 1}
    cfg = rllib_config(tmp_path, timesteps=2048, hyperparams=hp)
    res = train(cfg, log=lambda m: None)
    out, ckpts = Path(cfg.out), Path(cfg.out) / "checkpoints"
    assert res.num_timesteps >= 2048 and (ckpts / f"step_{res.num_timesteps:012d}.rllib").is_dir()
    first = pd.read_csv(out / "eval" / "log.csv")
    # the last checkpoint cut short (its .json missing, as when the process is killed while writing it)
    (ckpts / f"step_{res.num_timesteps:012d}.json").unlink()
    with pytest.raises(ValueError, match="timesteps: run has 2048, asked 4096"):  # RLlib keeps the lr schedule
        train(TrainConfig(**{**cfg.to_json(), "timesteps": 4096}), resume=True, log=lambda m: None)
    more = train(cfg, resume=True, log=lambda m: None)
    assert 0 < more.session_steps < more.num_timesteps and more.num_timesteps >= 2048  # from the earlier checkpoint
    log = pd.read_csv(out / "eval" / "log.csv")
    assert log["timesteps"].is_monotonic_increasing and log["timesteps"].is_unique
    assert len(log) == len(first) and log["timesteps"].iloc[-1] == more.num_timesteps
    agent = Agent.load(more.model_path)
    assert agent.algo == "rllib_ppo" and agent.masked
    fixed = [Instance.load(f) for f in sorted((out / "eval").glob("eval_seed*_tasks60.npz"))]
    costs = [evaluate_plan(i, p).total_usd for i, p in zip(fixed, play(agent.act_batch, fixed), strict=True)]
    assert log["total_usd"].iloc[-1] == pytest.approx(np.mean(costs), rel=1e-12)
