"""The one core every placement env class is built on.

:class:`EnvCore` holds what the single env (:class:`envs.placement.PlacementEnv`), the Gymnasium vector
env (:class:`envs.vector.PlacementVectorEnv`) and the SB3 batch env (``agents.vec.PlacementBatchVecEnv``)
are made of, checked once: the scenario, the episode rule (tasks, horizon), the action rule
(``invalid_action``), the reward scale, the observation layout and the spaces. It draws episodes, checks
replayed ones, and turns the actions an agent asked for into the actions executed.
:class:`EpisodeStreams` gives each sub-env of a batched env its own random stream, so sub-env ``e``
reseeded with ``s`` plays exactly the episodes of a single env reset with seed ``s``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding
from numpy.typing import NDArray

from envs.dynamics import EpisodeBatch, ObsLayout
from envs.instance import Instance
from envs.scenario import Scenario
from envs.tasks import get_task
from envs.workload import episode_hours, sample_episode

INVALID_ACTION_MODES = ("overflow", "raise")
DEFAULT_REWARD_SCALE = 100.0  # reward units per USD: a reward of -1 is a cost of 1 US cent


def _is_count(value: Any, minimum: int) -> bool:
    return bool(not isinstance(value, bool) and isinstance(value, int | np.integer) and value >= minimum)


@dataclass(frozen=True, slots=True)
class EnvCore:
    """The checked construction arguments of a placement env and what follows from them."""

    scenario: Scenario
    num_tasks: int | None  # tasks per episode; None: the arrival process's own random count
    horizon_h: float | None  # episode length, h; None: the scenario's
    invalid_action: str  # one of INVALID_ACTION_MODES
    reward_scale: float  # reward units per USD
    layout: ObsLayout

    @classmethod
    def make(
        cls,
        scenario: Scenario | str | Path | None = None,
        num_tasks: int | None = None,
        horizon_h: float | None = None,
        arrival: str | None = None,
        invalid_action: str = "overflow",
        reward_scale: float = DEFAULT_REWARD_SCALE,
        num_envs: int | None = None,
        split: str | None = None,
    ) -> EnvCore:
        """Check the arguments every env class shares (``num_envs`` for the batched ones), naming any bad one.

        ``split`` ("train", "validation" or "test") makes random episodes start only on that split's days;
        ``scenario`` must then name a benchmark task (:mod:`envs.tasks`)."""
        if num_envs is not None and not _is_count(num_envs, 1):
            raise ValueError(f"num_envs = {num_envs!r}: expected an integer >= 1")
        if invalid_action not in INVALID_ACTION_MODES:
            raise ValueError(f"invalid_action = {invalid_action!r}: expected one of {INVALID_ACTION_MODES}")
        if isinstance(reward_scale, bool) or not (
            isinstance(reward_scale, int | float | np.number) and np.isfinite(reward_scale) and reward_scale > 0
        ):
            raise ValueError(f"reward_scale = {reward_scale!r}: expected a positive number")
        if num_tasks is not None and not _is_count(num_tasks, 1):
            raise ValueError(f"num_tasks = {num_tasks!r}: expected an integer >= 1 or None")
        if split is None:
            s = Scenario.load(scenario)
        elif isinstance(scenario, str):
            s = get_task(scenario).scenario(split)
        else:
            raise ValueError(f"scenario = {scenario!r} with split = {split!r}: expected the name of a benchmark task")
        if arrival is not None and arrival != s.arrival.kind:
            s = s.with_overrides({"workload": {"arrival": arrival}})
        if horizon_h is not None:
            episode_hours(s, horizon_h)  # the check every sampled episode makes, made once here
        layout = ObsLayout.of(s)
        return cls(
            s, None if num_tasks is None else int(num_tasks), horizon_h, invalid_action, float(reward_scale), layout
        )

    # ------------------------------------------------------------------------------ shapes
    @property
    def num_regions(self) -> int:
        return self.scenario.num_regions

    @property
    def num_models(self) -> int:
        return len(self.scenario.models)

    def action_space(self) -> spaces.Discrete:
        """``Discrete(R + 1)``: a region, or ``R`` for overflow."""
        return spaces.Discrete(self.num_regions + 1)

    def observation_space(self) -> spaces.Box[np.float32]:
        """``Box(float32, (F_t + F_r * R,))`` with the bounds of :meth:`ObsLayout.bounds`."""
        return spaces.Box(*self.layout.bounds(), dtype=np.float32)

    def batch(self, size: int, *, store_components: bool = True, precompute_obs: bool = False) -> EpisodeBatch:
        """The step dynamics of ``size`` episodes of this scenario."""
        return EpisodeBatch(size, self.layout, self.num_models, self.reward_scale, store_components, precompute_obs)

    # ---------------------------------------------------------------------------- episodes
    def sample(self, rng: np.random.Generator) -> Instance:
        """A new episode drawn from ``rng`` (the same draws in every env class)."""
        return sample_episode(self.scenario, rng, self.num_tasks, self.horizon_h)

    def check_instance(self, inst: Any, where: str) -> Instance:
        """``inst`` if it is an episode of this env's scenario (regions, nodes, classes, models), else ValueError."""
        if not isinstance(inst, Instance):
            raise ValueError(f"{where} = {type(inst).__name__}: expected an envs.Instance")
        for name, got, want in (
            ("region_names", inst.region_names, self.layout.region_names),
            ("node_names", inst.node_names, self.layout.node_names),
            ("class_names", inst.class_names, self.layout.class_names),
        ):
            if tuple(got) != tuple(want):
                raise ValueError(f"{where}: instance {name} = {list(got)}: expected the env scenario's {list(want)}")
        if len(inst.model_names) != self.num_models:
            raise ValueError(f"{where}: instance has {len(inst.model_names)} models: expected {self.num_models}")
        return inst

    # ----------------------------------------------------------------------------- actions
    def check_actions(self, actions: Any, num_envs: int, flatten: bool = False) -> NDArray[np.int64]:
        """``actions`` as ``int64 [num_envs]``, each in ``[0, R]``; a ValueError naming the first bad one.

        ``flatten`` accepts any integer array of ``num_envs`` entries (SB3 may pass ``[N, 1]``); without it the
        shape must be ``(num_envs,)``, that of the Gymnasium vector env's ``MultiDiscrete`` action space.
        """
        a = np.asarray(actions)
        R = self.num_regions
        if flatten and a.size == num_envs and a.dtype.kind in "iu":
            a = a.reshape(num_envs)
        if a.shape != (num_envs,) or a.dtype.kind not in "iu":
            raise ValueError(f"actions has shape {a.shape} and dtype {a.dtype}: expected {num_envs} integers")
        if a.min() < 0 or a.max() > R:
            e = int(np.argmax((a < 0) | (a > R)))
            raise ValueError(f"actions[{e}] = {int(a[e])}: expected an integer in [0, {R}] ({R} is overflow)")
        return a.astype(np.int64, copy=False)

    @staticmethod
    def admissible(mask: NDArray[np.bool_], actions: NDArray[np.int64]) -> NDArray[np.bool_]:
        """``[B]``: is ``actions[e]`` allowed by ``mask[e]`` (``[B, A]``)? One flat gather."""
        B, A = mask.shape
        return np.take(mask, np.arange(B) * A + actions)

    def executed(
        self, actions: NDArray[np.int64], admissible: NDArray[np.bool_], batch: EpisodeBatch
    ) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
        """``(executed [B], invalid [B])`` for the asked ``actions`` of episodes whose ``admissible`` flags
        are given (``[B]``): an inadmissible action becomes overflow, or raises with ``"raise"``."""
        invalid = ~admissible
        if not invalid.any():
            return actions, invalid
        if self.invalid_action == "raise":
            e = int(np.argmax(invalid))
            self._refuse(batch, e, int(actions[e]))
        return np.where(invalid, self.num_regions, actions), invalid

    def executed_instead(self, action: int, batch: EpisodeBatch) -> int:
        """The action executed for the single episode's inadmissible ``action``: :meth:`executed` in scalars
        (overflow, or a ValueError with ``"raise"``)."""
        if self.invalid_action == "raise":
            self._refuse(batch, 0, action)
        return self.num_regions

    @staticmethod
    def _refuse(batch: EpisodeBatch, e: int, a: int) -> None:
        sub = f" of sub-env {e}" if batch.B > 1 else ""
        raise ValueError(f"action {a} is infeasible for task {int(batch.t[e])}{sub}: {batch.why_inadmissible(e, a)}")


class CoreAttributes:
    """The core's settings as read-only attributes of an env class (``env.scenario``, ``env.layout``, ...)."""

    core: EnvCore

    @property
    def scenario(self) -> Scenario:
        return self.core.scenario

    @property
    def layout(self) -> ObsLayout:
        """Where each feature sits in the observation."""
        return self.core.layout

    @property
    def num_regions(self) -> int:
        """R: actions are the regions 0..R-1 and R, overflow."""
        return self.core.num_regions

    @property
    def num_tasks(self) -> int | None:
        return self.core.num_tasks

    @property
    def horizon_h(self) -> float | None:
        return self.core.horizon_h

    @property
    def invalid_action(self) -> str:
        return self.core.invalid_action

    @property
    def reward_scale(self) -> float:
        return self.core.reward_scale


class EpisodeStreams:
    """One random stream per sub-env of a batched env, and the episodes drawn from them."""

    def __init__(self, core: EnvCore, num_envs: int) -> None:
        self.core = core
        self.rngs = [np.random.default_rng() for _ in range(num_envs)]
        self.seeded = False

    def reseed(self, seeds: list[int | None]) -> None:
        """Reseed sub-env e with ``seeds[e]``; a ``None`` keeps its stream, except before the first episode."""
        for e, sd in enumerate(seeds):
            if sd is not None or not self.seeded:
                self.rngs[e], _ = seeding.np_random(sd)
        self.seeded = True

    def draw(self, e: int) -> Instance:
        return self.core.sample(self.rngs[e])
