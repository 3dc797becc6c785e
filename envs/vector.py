"""A native numpy vector env: N placement episodes stepped at once (``vector_entry_point``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space
from numpy.typing import NDArray

from envs.core import DEFAULT_REWARD_SCALE, CoreAttributes, EnvCore, EpisodeStreams
from envs.dynamics import COMPONENTS
from envs.instance import Instance
from envs.scenario import Scenario


class PlacementVectorEnv(CoreAttributes, VectorEnv):
    """``num_envs`` independent ``geoinfer/Placement-v0`` episodes, stepped together in numpy.

    Spaces, rewards and the action mask are those of :class:`~envs.placement.PlacementEnv`. Sub-env e
    has its own generator: ``reset(seed=s)`` seeds it with ``s + e`` (or ``seed[e]`` for a list), so it
    plays exactly the trajectory of a single env reset with that seed. Autoreset follows Gymnasium's
    ``NEXT_STEP`` mode: the step after a sub-env's episode ends resets it, ignores its action and returns
    its first observation with reward 0.

    Infos are arrays over sub-envs: ``action_mask`` ``[N, R+1]``, ``task_idx``, ``action`` (executed),
    ``invalid_action``, ``cost_usd``, ``replica_charge_usd``; with ``info_components=True`` also the unweighted
    components of :class:`PlacementEnv`'s info (stored per task and action: more memory).
    ``reset(options={"instances": [...]})`` replays given instances (one per sub-env).
    """

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": []}  # noqa: RUF012  (Gymnasium declares it on the class)

    def __init__(
        self,
        num_envs: int = 1,
        scenario: Scenario | str | Path | None = None,
        num_tasks: int | None = None,
        horizon_h: float | None = None,
        arrival: str | None = None,
        invalid_action: str = "overflow",
        reward_scale: float = DEFAULT_REWARD_SCALE,
        info_components: bool = False,
        render_mode: str | None = None,
        split: str | None = None,
    ) -> None:
        self.core = EnvCore.make(scenario, num_tasks, horizon_h, arrival, invalid_action, reward_scale, num_envs, split)
        if render_mode is not None:
            raise ValueError(f"render_mode = {render_mode!r}: the vector env does not render (expected None)")
        self.num_envs = int(num_envs)
        self.render_mode = None
        self.single_action_space = self.core.action_space()
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.single_observation_space = self.core.observation_space()
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self._batch = self.core.batch(self.num_envs, store_components=info_components)
        self.info_components = info_components
        self._streams = EpisodeStreams(self.core, self.num_envs)
        self._mask = np.zeros((self.num_envs, self.num_regions + 1), dtype=bool)
        self._prev_done = np.zeros(self.num_envs, dtype=bool)
        self._rows = np.arange(self.num_envs)

    @property
    def instances(self) -> list[Instance | None]:
        """The current episode of each sub-env."""
        return list(self._batch.instances)

    def reset(
        self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[NDArray[np.float32], dict[str, Any]]:
        if seed is None:
            seeds: list[int | None] = [None] * self.num_envs
        elif isinstance(seed, int | np.integer):
            seeds = [int(seed) + e for e in range(self.num_envs)]
        else:
            seeds = list(seed)
            if len(seeds) != self.num_envs:
                raise ValueError(f"seed has {len(seeds)} entries: expected num_envs = {self.num_envs}")
        self._streams.reseed(seeds)
        options = options or {}
        unknown = set(options) - {"instances"}
        if unknown:
            raise ValueError(f"reset options {sorted(unknown)}: expected only 'instances'")
        given = options.get("instances")
        if given is not None and len(given) != self.num_envs:
            raise ValueError(f"options['instances'] has {len(given)} entries: expected num_envs = {self.num_envs}")
        episodes = [
            self._streams.draw(e) if given is None else self.core.check_instance(given[e], f"options['instances'][{e}]")
            for e in range(self.num_envs)
        ]
        self._batch.load_all(episodes)
        self._prev_done[:] = False
        self._mask, obs = self._batch.masks_and_observations()
        return obs, {"action_mask": self._mask, "task_idx": np.zeros(self.num_envs, dtype=np.int64)}

    def step(
        self, actions: Any
    ) -> tuple[NDArray[np.float32], NDArray[np.float64], NDArray[np.bool_], NDArray[np.bool_], dict[str, Any]]:
        if not self._streams.seeded:
            raise RuntimeError("step() called before reset()")
        a = self.core.check_actions(actions, self.num_envs)
        b = self._batch
        resetting = self._prev_done.copy()
        active = ~resetting
        k = b.t.copy()
        a, invalid = self.core.executed(a, resetting | self.core.admissible(self._mask, a), b)
        task_cost, replica = b.advance(a, active)
        cost = task_cost + replica
        terminated = active & (b.t >= b.num_tasks)
        for j in np.flatnonzero(resetting):
            b.load(int(j), self._streams.draw(int(j)))
        self._mask, obs = b.masks_and_observations()
        if terminated.any():
            obs[terminated] = 0.0
            self._mask[terminated] = False
            self._mask[terminated, -1] = True
        self._prev_done = terminated
        all_active = not resetting.any()
        info: dict[str, Any] = {  # the mask array is replaced, never mutated, after this step
            "action_mask": self._mask,
            "task_idx": k if all_active else np.where(active, k, -1),
            "action": a if all_active else np.where(active, a, -1),
            "invalid_action": invalid,
            "cost_usd": cost,
            "replica_charge_usd": replica,
        }
        if self.info_components:
            comp = b.components(a, np.minimum(k, b.cap - 1))
            for c, name in enumerate(COMPONENTS):
                info[name] = np.where(active, comp[:, c], 0.0)
        return obs, -cost * self.reward_scale, terminated, np.zeros(self.num_envs, dtype=bool), info

    def action_masks(self) -> NDArray[np.bool_]:
        """``[num_envs, R+1]`` admissible actions of each sub-env's current task."""
        return self._mask.copy()
