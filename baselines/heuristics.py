"""Heuristic placement policies: one interface for online play and offline planning.

A :class:`Heuristic` picks an action from an observation and its action mask (``act``), exactly what an
agent sees in ``geoinfer/Placement-v0``. ``plan(instance)`` plays it over a whole episode through the
env's own dynamics (:class:`envs.dynamics.EpisodeBatch`: capacity per slot, warm replicas per window),
so a heuristic's offline plan and its play in the env are the same plan with the same cost.

Every policy only picks admissible actions; when no region is admissible it overflows.

====================  =====================================================================
name                  rule among admissible regions
====================  =====================================================================
``local``             the task's home region, else overflow (no relocation at all)
``nearest``           lowest latency
``cheapest``          lowest electricity price x PUE (energy cost per kWh)
``greenest``          lowest carbon intensity x PUE (carbon per kWh)
``greedy``            lowest total marginal cost: the task's cost plus a replica charge if cold
``random``            uniformly random (overflow only when nothing else is admissible)
====================  =====================================================================
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from envs.core import DEFAULT_REWARD_SCALE
from envs.dynamics import REGION_FEATURES, InadmissibleAction, ObsLayout, play
from envs.instance import Instance

_F = {name: j for j, name in enumerate(REGION_FEATURES)}


class Heuristic:
    """Base class: subclasses implement :meth:`scores` (lower is better) or override :meth:`act`."""

    name: ClassVar[str] = ""

    def __init__(self, layout: ObsLayout, node_home_idx: NDArray[np.int64], seed: int | None = None) -> None:
        self.layout = layout
        self.node_home_idx = np.asarray(node_home_idx, dtype=np.int64)
        self.R = len(layout.region_names)
        self.ft = layout.num_task_features
        self._node0 = len(layout.class_names) + 3  # first node one-hot entry of the task features
        self._replica = layout.task_features.index("replica_cost")
        self.rng = np.random.default_rng(seed)

    # -------------------------------------------------------------------------- policy
    def regions(self, obs: NDArray[np.float32]) -> NDArray[np.float32]:
        """``[F_r, R]`` region-feature blocks of one observation."""
        return obs[self.ft :].reshape(len(REGION_FEATURES), self.R)

    def home(self, obs: NDArray[np.float32]) -> int:
        node = int(np.argmax(obs[self._node0 : self._node0 + len(self.layout.node_names)]))
        return int(self.node_home_idx[node])

    def scores(self, obs: NDArray[np.float32]) -> NDArray[np.float64]:
        raise NotImplementedError

    def act(self, obs: NDArray[np.float32], mask: NDArray[np.bool_]) -> int:
        """The admissible region with the lowest score (ties: lowest latency, then index), else overflow."""
        ok = np.flatnonzero(mask[: self.R])
        if ok.size == 0:
            return self.R
        score = self.scores(obs)[ok]
        latency = self.regions(obs)[_F["latency_s"], ok]
        return int(ok[np.lexsort((ok, latency, score))[0]])

    def __call__(self, obs: NDArray[np.float32], mask: NDArray[np.bool_]) -> int:
        return self.act(obs, mask)

    # ------------------------------------------------------------------------- planner
    def plan(self, inst: Instance, reward_scale: float = DEFAULT_REWARD_SCALE) -> NDArray[np.int64]:
        """Play this policy over ``inst`` with the env's dynamics; returns one action per task."""
        try:
            return play(self.act, [inst], reward_scale, batched=False, strict=True)[0]
        except InadmissibleAction as exc:  # a heuristic only picks admissible actions: a bug if it does not
            raise InadmissibleAction(f"{self.name}: {exc}") from exc


class Local(Heuristic):
    name = "local"

    def act(self, obs: NDArray[np.float32], mask: NDArray[np.bool_]) -> int:
        home = self.home(obs)
        return home if mask[home] else self.R


class Nearest(Heuristic):
    name = "nearest"

    def scores(self, obs: NDArray[np.float32]) -> NDArray[np.float64]:
        return self.regions(obs)[_F["latency_s"]].astype(np.float64)


class Cheapest(Heuristic):
    name = "cheapest"

    def scores(self, obs: NDArray[np.float32]) -> NDArray[np.float64]:
        r = self.regions(obs)
        return r[_F["price_usd_per_kwh"]].astype(np.float64) * r[_F["pue"]]


class Greenest(Heuristic):
    name = "greenest"

    def scores(self, obs: NDArray[np.float32]) -> NDArray[np.float64]:
        r = self.regions(obs)
        return r[_F["carbon_kg_per_kwh"]].astype(np.float64) * r[_F["pue"]]


class Greedy(Heuristic):
    name = "greedy"

    def scores(self, obs: NDArray[np.float32]) -> NDArray[np.float64]:
        r = self.regions(obs)
        return r[_F["cost"]].astype(np.float64) + (1.0 - r[_F["replica_warm"]]) * float(obs[self._replica])

    def act(self, obs: NDArray[np.float32], mask: NDArray[np.bool_]) -> int:
        a = super().act(obs, mask)
        overflow = float(obs[self.layout.task_features.index("overflow_cost")])
        # Overflow is admissible too: the greedy choice compares it like any region.
        return self.R if a == self.R or overflow < self.scores(obs)[a] else a


class RandomFeasible(Heuristic):
    name = "random"

    def act(self, obs: NDArray[np.float32], mask: NDArray[np.bool_]) -> int:
        ok = np.flatnonzero(mask[: self.R])
        return int(self.rng.choice(ok)) if ok.size else self.R


HEURISTICS: dict[str, type[Heuristic]] = {
    cls.name: cls for cls in (Local, Nearest, Cheapest, Greenest, Greedy, RandomFeasible)
}


def make_heuristic(name: str, source: Any, seed: int | None = None) -> Heuristic:
    """Build heuristic ``name`` for an env (``PlacementEnv``, wrapped or not) or an :class:`Instance`."""
    if name not in HEURISTICS:
        raise ValueError(f"heuristic {name!r}: expected one of {sorted(HEURISTICS)}")
    if isinstance(source, Instance):
        layout = ObsLayout.of(source)
        home = np.zeros(len(source.node_names), dtype=np.int64)
        home[source.node_idx] = source.home_idx  # every node with tasks; others are never asked
        return HEURISTICS[name](layout, home, seed)
    env = getattr(source, "unwrapped", source)
    if not hasattr(env, "layout") or not hasattr(env, "scenario"):
        raise ValueError(f"source = {type(source).__name__}: expected a geoinfer env or an envs.Instance")
    return HEURISTICS[name](env.layout, env.scenario.node_home_idx, seed)
