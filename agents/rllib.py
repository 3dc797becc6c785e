"""``geoinfer train --algo rllib_ppo``: RLlib's PPO (new API stack) with the region policy and action masks.

Ray is an optional extra (``pip install "geoinfer[ray]"``); this module imports it only when a run starts.

* **Env**: :class:`RLlibPlacementEnv` is ``geoinfer/Placement-v0`` with a ``Dict`` observation:
  ``observations`` (the flat observation) and ``action_mask`` (float, 1 = admissible), the form RLlib's
  masking modules take. It is built from plain settings in whatever process RLlib puts it (an env runner
  on another node imports this module, which imports ``envs`` and so registers the Gymnasium ids there).
* **Module**: :class:`agents.rllib_module.RegionRLModule`, the region net of the SB3 policies with masked
  logits. ``num_env_runners`` (a hyperparameter, default 0: sampling in the driver) sets RLlib's sampling
  processes; ``cfg.num_envs`` episodes run side by side in each.
* **Run folder**: the same as the other algorithms. ``model.zip`` / ``best_model.zip`` and each checkpoint's
  ``.zip`` are MaskablePPO models holding the trained weights (:func:`export_to_sb3`), so ``geoinfer
  evaluate``, ``benchmark`` and ``replay`` take them as they are; ``checkpoints/step_<N>.rllib/`` is RLlib's
  own checkpoint, which ``--resume`` restores. Evaluation on the fixed validation days is the shared
  :class:`agents.callbacks.RegretEval`.
* **Hyperparameters** (:data:`RLLIB_DEFAULTS`) mirror MaskablePPO's algorithm defaults (not its per-task
  ones, ``agents.train.TASK_DEFAULTS``): a rollout of 2048 env steps
  (256 per episode x 8), minibatches of 512, 4 epochs, learning rate ``lin_3e-4`` (linear decay to 0 at
  ``timesteps``), entropy 0.01, clip 0.2, value coefficient 0.5, gradient norm 0.5, no KL term. Rewards are
  not normalised (RLlib has no ``VecNormalize``); the value loss is clipped by RLlib's ``vf_clip_param``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from envs.placement import PlacementEnv

if TYPE_CHECKING:
    from agents.train import TrainConfig, TrainResult
    from envs.scenario import Scenario

RLLIB_ALGOS = ("rllib_ppo",)
RLLIB_DEFAULTS: dict[str, dict[str, Any]] = {
    "rllib_ppo": {
        "learning_rate": "lin_3e-4",
        "train_batch_size": 2048,
        "minibatch_size": 512,
        "num_epochs": 4,
        "gamma": 0.99,
        "lambda_": 0.95,
        "entropy_coeff": 0.01,
        "clip_param": 0.2,
        "vf_loss_coeff": 0.5,
        "vf_clip_param": 10.0,
        "grad_clip": 0.5,
        "num_env_runners": 0,
    }
}


class RLlibPlacementEnv(gym.Env):
    """``PlacementEnv`` with a ``Dict`` observation ``{"observations", "action_mask"}`` (RLlib's masking form).

    ``config`` (RLlib's ``env_config``): ``scenario`` (a name, task or TOML path), ``split`` (a task's split,
    default ``train``), ``num_tasks``, ``reward_scale``, ``invalid_action`` (default ``raise``: a masked policy
    never takes an inadmissible action, so one is a bug).
    """

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        c = dict(config or {})
        scenario = c.get("scenario", "default")
        kwargs: dict[str, Any] = {"num_tasks": c.get("num_tasks"), "invalid_action": c.get("invalid_action", "raise")}
        if "reward_scale" in c:
            kwargs["reward_scale"] = float(c["reward_scale"])
        if "split" in c:
            kwargs["split"] = c["split"]
        self.env = PlacementEnv(scenario, **kwargs)
        assert isinstance(self.env.action_space, spaces.Discrete)
        self.action_space = self.env.action_space
        n = int(self.env.action_space.n)
        self.observation_space = spaces.Dict(
            {
                "observations": self.env.observation_space,
                "action_mask": spaces.Box(0.0, 1.0, (n,), dtype=np.float32),
            }
        )

    def _wrap(self, obs: np.ndarray) -> dict[str, np.ndarray]:
        return {"observations": obs, "action_mask": self.env.action_masks().astype(np.float32)}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        super().reset(seed=seed)  # the wrapper's own generator, as Gymnasium expects; the episode is the inner env's
        obs, info = self.env.reset(seed=seed, options=options)
        return self._wrap(obs), info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        return self._wrap(obs), float(reward), terminated, truncated, info


def _lr(value: Any, timesteps: int) -> float | list[list[float]]:
    """RLlib's form of a learning rate: a number, or for ``lin_<x>`` the schedule [[0, x], [timesteps, 0]]."""
    from agents.train import LinearSchedule, schedule

    s = schedule(value)
    return [[0, s.start], [timesteps, 0.0]] if isinstance(s, LinearSchedule) else float(s)


def check_rllib_hyperparams(hp: Mapping[str, Any]) -> None:
    """``ValueError`` naming a hyperparameter of :data:`RLLIB_DEFAULTS` with a value it cannot take."""

    def need(ok: bool, name: str, expected: str) -> None:
        if not ok:
            raise ValueError(f"TrainConfig.hyperparams[{name!r}] = {hp[name]!r}: expected {expected}")

    def integer(name: str) -> bool:
        return isinstance(hp[name], int) and not isinstance(hp[name], bool)

    for name in ("train_batch_size", "minibatch_size", "num_epochs"):
        if name in hp:
            need(integer(name) and hp[name] >= 1, name, "an integer >= 1")
    if "num_env_runners" in hp:
        need(integer("num_env_runners") and hp["num_env_runners"] >= 0, "num_env_runners", "an integer >= 0")
    for name in ("gamma", "lambda_"):
        if name in hp:
            need(isinstance(hp[name], int | float) and 0 < hp[name] <= 1, name, "a number in (0, 1]")
    for name in ("entropy_coeff", "clip_param", "vf_loss_coeff", "vf_clip_param", "grad_clip"):
        if name in hp:
            need(isinstance(hp[name], int | float) and hp[name] >= 0, name, "a number >= 0")
    batch = hp.get("train_batch_size", RLLIB_DEFAULTS["rllib_ppo"]["train_batch_size"])
    if "minibatch_size" in hp and isinstance(batch, int):
        need(hp["minibatch_size"] <= batch, "minibatch_size", f"at most train_batch_size = {batch}")


def _ppo_config(cfg: TrainConfig, hp: Mapping[str, Any], scen: Scenario, split: str | None) -> Any:
    """RLlib's PPO settings: env runners build ``RLlibPlacementEnv`` from ``cfg.scenario`` (``scen`` is that
    scenario as loaded here, for the observation layout)."""
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec

    from agents.rllib_module import RegionRLModule
    from envs.dynamics import REGION_FEATURES, ObsLayout

    layout = ObsLayout.of(scen)
    env_config: dict[str, Any] = {
        "scenario": cfg.scenario,
        "num_tasks": cfg.num_tasks,
        "reward_scale": cfg.reward_scale,
    }
    if split is not None:
        env_config["split"] = split
    model_config = {
        "task_features": list(layout.task_features),
        "region_features": list(REGION_FEATURES),
        "hidden": cfg.hidden,
    }
    return (
        PPOConfig()
        .environment(RLlibPlacementEnv, env_config=env_config)
        .env_runners(
            num_env_runners=int(hp["num_env_runners"]),
            num_envs_per_env_runner=cfg.num_envs,
            rollout_fragment_length="auto",
        )
        .training(
            lr=_lr(hp["learning_rate"], cfg.timesteps),
            train_batch_size_per_learner=int(hp["train_batch_size"]),
            minibatch_size=int(hp["minibatch_size"]),
            num_epochs=int(hp["num_epochs"]),
            gamma=float(hp["gamma"]),
            lambda_=float(hp["lambda_"]),
            entropy_coeff=float(hp["entropy_coeff"]),
            clip_param=float(hp["clip_param"]),
            vf_loss_coeff=float(hp["vf_loss_coeff"]),
            vf_clip_param=float(hp["vf_clip_param"]),
            grad_clip=float(hp["grad_clip"]),
            grad_clip_by="global_norm",
            use_kl_loss=False,
        )
        .rl_module(rl_module_spec=RLModuleSpec(module_class=RegionRLModule, model_config=model_config))
        .learners(num_learners=0)
        .debugging(seed=cfg.seed)
        .reporting(metrics_num_episodes_for_smoothing=20)
    )


def export_to_sb3(module: Any, model: Any) -> None:
    """Copy an RLlib :class:`~agents.rllib_module.RegionRLModule`'s weights into a MaskablePPO ``model`` built
    with the region policy (the same net; SB3's ``value_net`` is the module's value head)."""
    import torch as th

    from agents.policies import region_net

    with th.no_grad():
        region_net(model.policy).load_state_dict(module.net.state_dict())
        model.policy.value_net.load_state_dict(module.value_head.state_dict())


def run_rllib(
    cfg: TrainConfig,
    scen: Scenario,
    eval_scen: Scenario,
    out: Path,
    ckpt: Path | None,
    log: Callable[[str], Any],
    on_eval: Callable[[dict[str, float]], None] | None = None,
) -> TrainResult:
    """Train ``cfg`` (algo ``rllib_ppo``) in ``out``, from ``ckpt`` when resuming; see the module docstring."""
    from agents.train import hyperparams_of
    from benchmark.parallel import init_ray

    hp = hyperparams_of(cfg)
    init_ray(num_cpus=max(1, int(hp["num_env_runners"])) + 1, what=f"--algo {cfg.algo}")
    from ray.rllib.algorithms.algorithm import Algorithm
    from sb3_contrib import MaskablePPO
    from stable_baselines3.common.logger import configure

    from agents.callbacks import save_run_state
    from agents.imitation import Clock, masked_venv, run_evaluator
    from agents.train import TrainResult, _prune_eval_log, policy_spec
    from envs.tasks import TASKS

    ckpt_dir = out / "checkpoints"
    split = "train" if cfg.scenario in TASKS else None
    venv = masked_venv(cfg, scen)
    policy, kwargs = policy_spec(cfg, scen)  # the MaskablePPO model the weights are exported into
    if ckpt is not None:  # a resumed run's models act as its checkpoint's did (a run begun before: argmax)
        from stable_baselines3.common.save_util import load_from_zip_file

        data = load_from_zip_file(ckpt, device="cpu", load_data=True)[0] or {}
        kwargs["decision"] = data.get("policy_kwargs", {}).get("decision", "argmax")
    host = MaskablePPO(policy, venv, policy_kwargs=kwargs, seed=cfg.seed, device="cpu")
    clock = Clock()
    if ckpt is None:
        algo = _ppo_config(cfg, hp, scen, split).build_algo()
        steps = 0
    else:
        state = json.loads(ckpt.with_suffix(".json").read_text())
        algo = Algorithm.from_checkpoint(str(ckpt.with_suffix(".rllib").resolve()))
        steps, clock = int(state["num_timesteps"]), Clock(state["wall_s"], state["env_s"])
        _prune_eval_log(out / "eval" / "log.csv", steps)
        log(f"resuming {out} from {ckpt.name} at {steps} steps")
    host.num_timesteps = steps
    host.set_logger(configure(str(out / "tb" / f"{cfg.algo}_1"), ["tensorboard"]))
    evaluator = run_evaluator(cfg, eval_scen, out, host, clock, on_eval)
    clock.begin()
    session0, t0 = steps, time.perf_counter()
    deadline = math.inf if cfg.max_minutes is None else t0 + 60 * cfg.max_minutes
    last_eval = last_ckpt = steps

    def checkpoint() -> Path:
        path = ckpt_dir / f"step_{steps:012d}.zip"
        algo.save_to_path(str(path.with_suffix(".rllib").resolve()))
        export_to_sb3(algo.get_module(), host)
        save_run_state(host, path, clock)  # its .json last: the checkpoint is complete
        return path

    saved: Path | None = ckpt
    stopped = False
    while steps < cfg.timesteps:
        if time.perf_counter() > deadline:
            stopped = True
            break
        result = algo.train()
        steps = int(result["num_env_steps_sampled_lifetime"])
        host.num_timesteps = steps
        _record(host, result, clock, cfg.num_envs)
        if evaluator is not None and cfg.eval_every > 0 and steps - last_eval >= cfg.eval_every:
            export_to_sb3(algo.get_module(), host)
            evaluator.evaluate()
            last_eval = steps
        else:
            host.logger.dump(steps)
        if cfg.checkpoint_every > 0 and steps - last_ckpt >= cfg.checkpoint_every:
            saved, last_ckpt = checkpoint(), steps
    if evaluator is not None and steps > last_eval:
        export_to_sb3(algo.get_module(), host)
        evaluator.evaluate()  # the final policy
    if saved is None or saved.name != f"step_{steps:012d}.zip":
        checkpoint()
    export_to_sb3(algo.get_module(), host)
    save_run_state(host, out / "model.zip", clock)
    algo.stop()
    venv.close()
    return TrainResult(
        out,
        out / "model.zip",
        steps,
        steps - session0,
        clock.wall_s,
        clock.env_s,
        time.perf_counter() - t0,
        stopped,
        evaluator.history if evaluator is not None else [],
    )


def _record(host: Any, result: Mapping[str, Any], clock: Any, envs_per_runner: int) -> None:
    """RLlib's training figures into the run's TensorBoard log, under SB3's names where there is one; the time
    its env runners spent stepping the env is added to the run's env time."""
    runners = result.get("env_runners", {})
    for key, name in (("episode_return_mean", "rollout/ep_rew_mean"), ("episode_len_mean", "rollout/ep_len_mean")):
        if key in runners and np.isfinite(runners[key]):
            host.logger.record(name, float(runners[key]))
    learner = result.get("learners", {}).get("default_policy", {})
    for key in ("policy_loss", "vf_loss", "entropy", "vf_explained_var"):
        if key in learner:
            host.logger.record(f"train/{key}", float(learner[key]))
    step_s = runners.get("env_step_timer")  # mean seconds of one step of a runner's vector env (all its envs)
    if step_s is not None and np.isfinite(step_s):
        clock.env_s += float(step_s) * float(runners.get("num_env_steps_sampled", 0)) / envs_per_runner
