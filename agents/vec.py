"""Training environments in stable-baselines3's ``VecEnv`` interface.

Three backends, chosen by name in :func:`make_vec_env`:

* ``batch`` (default): :class:`PlacementBatchVecEnv`, N episodes stepped together in numpy through
  :class:`envs.dynamics.EpisodeBatch`, the same step implementation as ``PlacementEnv`` and the native
  ``PlacementVectorEnv``. SB3 wants *same-step* autoreset (the step that ends an episode returns the next
  episode's first observation and puts the last one in ``info["terminal_observation"]``), while the
  Gymnasium vector env resets on the *next* step and plays a dummy transition with reward 0; so this adapter
  drives the episode batch itself rather than wrapping ``PlacementVectorEnv``.
* ``dummy``: SB3's ``DummyVecEnv`` of ``PlacementEnv`` (one Python env per sub-env, in process).
* ``subproc``: SB3's ``SubprocVecEnv`` of ``PlacementEnv`` (one process per sub-env).

All three play the same episodes for the same seed: sub-env ``e`` samples its episodes from a generator
seeded with ``seed + e``, exactly as ``PlacementEnv.reset(seed=seed + e)`` does (SB3's ``VecEnv.seed``).

:class:`TimedVecEnv` wraps any of them and accumulates the wall time spent inside the env (steps and
resets), so a training run can report the share of its time the environment costs.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from numpy.typing import NDArray
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv, VecEnvWrapper
from stable_baselines3.common.vec_env.base_vec_env import VecEnvIndices, VecEnvObs, VecEnvStepReturn

from envs.core import DEFAULT_REWARD_SCALE, CoreAttributes, EnvCore, EpisodeStreams
from envs.instance import Instance
from envs.placement import PlacementEnv
from envs.scenario import Scenario

VEC_BACKENDS = ("batch", "dummy", "subproc")


class PlacementBatchVecEnv(CoreAttributes, VecEnv):
    """``num_envs`` placement episodes as one SB3 ``VecEnv``, with same-step autoreset.

    Observations, actions, rewards and masks are those of :class:`envs.placement.PlacementEnv`
    (``float32 [num_envs, obs]``, ``Discrete(R + 1)``, ``-reward_scale x cost_usd``). ``action_masks()``
    (also through ``env_method("action_masks")``, sb3-contrib's convention) returns ``bool [num_envs, R+1]``.
    With ``invalid_action="overflow"`` (default) a masked action runs the overflow action and the step's info
    has ``invalid_action=True``; with ``"raise"`` it raises ``ValueError``.

    Infos: ``invalid_action`` (bool) on every step; on the last step of an episode also
    ``terminal_observation`` (zeros, as ``PlacementEnv`` returns) and ``TimeLimit.truncated=False``.
    """

    def __init__(
        self,
        num_envs: int,
        scenario: Scenario | str | Path | None = None,
        num_tasks: int | None = None,
        horizon_h: float | None = None,
        invalid_action: str = "overflow",
        reward_scale: float = DEFAULT_REWARD_SCALE,
        split: str | None = None,
    ) -> None:
        self.core = EnvCore.make(scenario, num_tasks, horizon_h, None, invalid_action, reward_scale, num_envs, split)
        self.render_mode = None
        super().__init__(int(num_envs), self.core.observation_space(), self.core.action_space())
        self._batch = self.core.batch(self.num_envs, store_components=False)
        self._streams = EpisodeStreams(self.core, self.num_envs)  # the same draws as PlacementEnv.reset
        self._rows = np.arange(self.num_envs)
        self._mask = np.zeros((self.num_envs, self.num_regions + 1), dtype=bool)
        self._actions = np.zeros(self.num_envs, dtype=np.int64)

    # ------------------------------------------------------------------------------ episodes
    @property
    def instances(self) -> list[Instance | None]:
        """The current episode of each sub-env."""
        return list(self._batch.instances)

    def reset(self) -> VecEnvObs:
        self._streams.reseed(list(self._seeds))
        self._batch.load_all([self._streams.draw(e) for e in range(self.num_envs)])
        self._reset_seeds()
        self._reset_options()
        self._mask, obs = self._batch.masks_and_observations()
        return obs

    def step_async(self, actions: NDArray[Any]) -> None:
        self._actions = np.asarray(actions)

    def step_wait(self) -> VecEnvStepReturn:
        if not self._streams.seeded:
            raise RuntimeError("step() called before reset()")
        a, b = self.core.check_actions(self._actions, self.num_envs, flatten=True), self._batch
        a, invalid = self.core.executed(a, self.core.admissible(self._mask, a), b)
        task_cost, replica = b.advance(a, np.ones(self.num_envs, dtype=bool))
        rewards = (-(task_cost + replica) * self.reward_scale).astype(np.float32)
        dones = b.t >= b.num_tasks
        infos: list[dict[str, Any]] = [{"invalid_action": bool(v)} for v in invalid]
        for j in np.flatnonzero(dones).tolist():
            infos[j]["terminal_observation"] = np.zeros(self.layout.size, dtype=np.float32)
            infos[j]["TimeLimit.truncated"] = False
            b.load(j, self._streams.draw(j))
        self._mask, obs = b.masks_and_observations()
        return obs, rewards, dones, infos

    def action_masks(self) -> NDArray[np.bool_]:
        """``bool [num_envs, R + 1]``: admissible actions of each sub-env's current task."""
        return self._mask.copy()

    # --------------------------------------------------------------------- VecEnv plumbing
    def close(self) -> None:
        pass

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        if attr_name == "action_masks":  # looked up by sb3-contrib's is_masking_supported
            return [self.action_masks for _ in self._get_indices(indices)]
        value = getattr(self, attr_name)  # shared attributes: scenario, layout, render_mode, ...
        return [value for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        raise AttributeError(f"set_attr({attr_name!r}): the sub-envs of {type(self).__name__} share their attributes")

    def env_method(
        self, method_name: str, *method_args: Any, indices: VecEnvIndices = None, **method_kwargs: Any
    ) -> list[Any]:
        idx = list(self._get_indices(indices))
        if method_name == "action_masks":
            return list(self._mask[idx])
        raise AttributeError(f"env_method({method_name!r}): {type(self).__name__} only has 'action_masks'")

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]


class TimedVecEnv(VecEnvWrapper):
    """Accumulates the wall time spent in the wrapped env's ``reset`` and ``step`` (``env_s``, seconds)."""

    def __init__(self, venv: VecEnv) -> None:
        super().__init__(venv)
        self.env_s = 0.0
        self.steps = 0

    def reset(self) -> VecEnvObs:
        t = time.perf_counter()
        obs = self.venv.reset()
        self.env_s += time.perf_counter() - t
        return obs

    def step_async(self, actions: NDArray[Any]) -> None:
        self._t = time.perf_counter()
        self.venv.step_async(actions)

    def step_wait(self) -> VecEnvStepReturn:
        out = self.venv.step_wait()
        self.env_s += time.perf_counter() - self._t
        self.steps += self.num_envs
        return out


def _env_factory(
    scenario: Scenario, num_tasks: int | None, horizon_h: float | None, invalid_action: str, reward_scale: float
) -> Any:
    def make() -> PlacementEnv:
        return PlacementEnv(
            scenario, num_tasks=num_tasks, horizon_h=horizon_h, invalid_action=invalid_action, reward_scale=reward_scale
        )

    return make


def make_vec_env(
    scenario: Scenario,
    num_envs: int,
    backend: str = "batch",
    num_tasks: int | None = None,
    horizon_h: float | None = None,
    invalid_action: str = "overflow",
    reward_scale: float = DEFAULT_REWARD_SCALE,
) -> VecEnv:
    """``num_envs`` placement envs as an SB3 ``VecEnv`` (``backend``: one of :data:`VEC_BACKENDS`).

    Seeding is SB3's: ``venv.seed(s)`` makes sub-env e play the episodes of ``PlacementEnv.reset(seed=s + e)``
    and its successors.
    """
    if backend == "batch":
        return PlacementBatchVecEnv(num_envs, scenario, num_tasks, horizon_h, invalid_action, reward_scale)
    fns: Sequence[Any] = [
        _env_factory(scenario, num_tasks, horizon_h, invalid_action, reward_scale) for _ in range(num_envs)
    ]
    if backend == "dummy":
        return DummyVecEnv(list(fns))
    if backend == "subproc":
        return SubprocVecEnv(list(fns))  # factories are cloudpickled, so any start method works
    raise ValueError(f"vec backend = {backend!r}: expected one of {VEC_BACKENDS}")
