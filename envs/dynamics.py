"""Step dynamics of placement episodes, batched over B episodes: the one implementation behind the
single env, the native vector env, the SB3 batch env, and the one rollout loop (:func:`play`) under the
heuristics' plans and agent evaluation.

At load, each episode's :class:`~envs.Instance` is turned into per-task rows taken from the shared
cost model (:mod:`envs.costs`): the weighted cost of every action, GPU time, latency, the static
mask. A step is then a few array reads: the capacity left in the current slot and the warm replicas
of the current window are the only state. Tasks are played in arrival order; when the slot changes
the capacity is fresh, when the replica window changes only permanent replicas stay warm.

The observation is a flat ``float32`` vector: ``task_features`` followed by the region features,
feature-major (``F_r`` blocks of ``R`` values, one block per name in ``REGION_FEATURES``; see
:class:`ObsLayout`), so each block is written with one contiguous copy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np
from numpy.typing import ArrayLike, NDArray

from envs.costs import (
    capacity_limit_gpu_s,
    infeasibility_reason,
    legal_and_in_budget,
    pair_costs,
    replica_charge_usd,
)
from envs.instance import Instance
from envs.scenario import Scenario

# Rows of the [K, A] cost matrix computed at a time, which bounds the temporaries of a long episode.
_CHUNK = 8192

# Scalar task features (after the one-hots) stored per task.
_NUM_SCALARS = 9

# Info components stored per (task, action), in this order.
COMPONENTS = ("energy_usd", "carbon_g", "delay_usd", "migration_usd", "penalty_usd")

REGION_FEATURES = (
    "price_usd_per_kwh",  # electricity price in the task's slot, USD/kWh
    "carbon_kg_per_kwh",  # grid carbon intensity in the slot, kg CO2/kWh
    "pue",  # power usage effectiveness in the slot
    "capacity_left",  # share of the slot's GPU-seconds still free, [0, 1]
    "gpu_h_left",  # GPU-hours still free in the slot (absolute: tells 1 GPU from 8 at the same share)
    "latency_s",  # the task's end-to-end latency there, s
    "slack_s",  # budget minus latency there, s (negative: over budget)
    "cost",  # the task's cost there, reward units (USD * reward_scale), before any replica charge
    "arrivals_ahead",  # forecast tasks whose home is this region still to arrive in the hour, at arrival
    "captive_gpu_h_ahead",  # forecast GPU-hours still to arrive in the hour that only this region can serve
    "replica_warm",  # 1 if the task's model has a warm replica there
    "feasible",  # 1 if the action is admissible now (budget, residency, capacity)
)
# Blocks of the region part: the slot's signals, the dynamic capacity pair, the per-task rows, warm, mask.
_SIGNALS, _CAP_SHARE, _CAP_GPU_H = slice(0, 3), 3, 4
_TASK_ROWS, _WARM, _FEASIBLE = slice(5, 10), 10, 11
_NUM_ROWS = _TASK_ROWS.stop - _TASK_ROWS.start
assert REGION_FEATURES[_SIGNALS] == ("price_usd_per_kwh", "carbon_kg_per_kwh", "pue")
assert REGION_FEATURES[_TASK_ROWS] == ("latency_s", "slack_s", "cost", "arrivals_ahead", "captive_gpu_h_ahead")
assert (
    REGION_FEATURES[_CAP_SHARE],
    REGION_FEATURES[_CAP_GPU_H],
    REGION_FEATURES[_WARM],
    REGION_FEATURES[_FEASIBLE],
) == ("capacity_left", "gpu_h_left", "replica_warm", "feasible")


@dataclass(frozen=True, slots=True)
class ObsLayout:
    """Where each feature sits in the flat observation vector."""

    class_names: tuple[str, ...]
    node_names: tuple[str, ...]
    region_names: tuple[str, ...]

    @classmethod
    def of(cls, source: Instance | Scenario) -> ObsLayout:
        """The layout of a scenario's episodes, or of an instance's."""
        if isinstance(source, Instance):
            return cls(tuple(source.class_names), tuple(source.node_names), tuple(source.region_names))
        return cls(tuple(c.name for c in source.classes), tuple(source.node_names), tuple(source.region_names))

    @property
    def task_features(self) -> tuple[str, ...]:
        return (
            *(f"class={c}" for c in self.class_names),  # one-hot workload class
            "residency=global",
            "residency=regional",
            "residency=domestic",  # one-hot residency class
            *(f"node={n}" for n in self.node_names),  # one-hot service node (its home is "local")
            "home_slack_s",  # budget minus latency at home, s
            "energy_kwh",  # cohort IT energy at home, kWh
            "gpu_h",  # cohort GPU-hours at home
            "rounds",  # service <-> compute round trips
            "overflow_cost",  # cost of the overflow action, reward units
            "replica_cost",  # charge for bringing up the task's model where it is not warm, reward units
            "horizon_elapsed",  # share of the episode's horizon gone at the task's arrival, [0, 1]
            "hour_utc",  # hour of day of the task's slot, [0, 24)
            "hour_elapsed",  # share of the task's hour slot already gone at its arrival, [0, 1]
        )

    @property
    def num_task_features(self) -> int:
        return len(self.task_features)

    @property
    def num_region_features(self) -> int:
        return len(REGION_FEATURES)

    @property
    def size(self) -> int:
        return self.num_task_features + len(self.region_names) * len(REGION_FEATURES)

    def bounds(self) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        """``(low, high)`` of every observation entry: [0, 1] for one-hots, flags and shares, [0, 24) for
        the hour, [0, max float32] for the other quantities, and both signs for slacks."""
        big = np.finfo(np.float32).max
        unit = {"capacity_left", "replica_warm", "feasible", "horizon_elapsed", "hour_elapsed"}
        low_t = [-big if f == "home_slack_s" else 0.0 for f in self.task_features]
        high_t = [1.0 if "=" in f or f in unit else 24.0 if f == "hour_utc" else big for f in self.task_features]
        low_r = [-big if f == "slack_s" else 0.0 for f in REGION_FEATURES]
        high_r = [1.0 if f in unit else big for f in REGION_FEATURES]
        R = len(self.region_names)
        low = np.array(low_t + [v for v in low_r for _ in range(R)], dtype=np.float32)
        high = np.array(high_t + [v for v in high_r for _ in range(R)], dtype=np.float32)
        return low, high

    def split(self, obs: NDArray[np.float32]) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        """``(task [..., F_t], regions [..., R, F_r])`` views of (a batch of) observations."""
        ft = self.num_task_features
        blocks = obs[..., ft:].reshape(*obs.shape[:-1], len(REGION_FEATURES), len(self.region_names))
        return obs[..., :ft], np.swapaxes(blocks, -1, -2)

    def warm(self, obs: NDArray[np.float32]) -> NDArray[np.bool_]:
        """``[..., R]`` whether the task's model is warm in each region (its ``replica_warm`` feature)."""
        return self.split(obs)[1][..., _WARM] > 0.5


class EpisodeBatch:
    """B placement episodes stepped together. Arrays are padded to the longest episode loaded."""

    def __init__(
        self,
        batch: int,
        layout: ObsLayout,
        num_models: int,
        reward_scale: float,
        store_components: bool = True,
        precompute_obs: bool = False,
    ) -> None:
        self.B, self.layout, self.M = batch, layout, num_models
        self.R = len(layout.region_names)
        self.A = self.R + 1
        self.C, self.N = len(layout.class_names), len(layout.node_names)
        self.ft = layout.num_task_features
        self.reward_scale = float(reward_scale)
        self.store_components = store_components
        # Single episodes store each task's observation with its static fields filled at load (one
        # float32 row per task), so a step only patches the few dynamic fields.
        self.precompute_obs = precompute_obs
        # The one-hot part of every possible task (class, residency, node), indexed by a task's code:
        # one gather from this small table replaces a scatter of three ones per task.
        C, N = self.C, self.N
        node, res, cls = (g.ravel() for g in np.indices((N, 3, C)))  # row = cls + C * (res + 3 * node)
        self.onehot_table = np.zeros((C * 3 * N, C + 3 + N), dtype=np.float32)
        rows = np.arange(cls.size)
        self.onehot_table[rows, cls] = self.onehot_table[rows, C + res] = self.onehot_table[rows, C + 3 + node] = 1.0
        self.instances: list[Instance | None] = [None] * batch
        self.cap = 0  # padded task capacity per episode
        self.S = 0  # padded slot capacity
        self._alloc(1, 1)
        # state
        self.t = np.zeros(batch, dtype=np.int64)  # index of the current task
        # GPU-s left in the current slot, per action: the overflow column is infinite (it uses none), so
        # the capacity test is one comparison over whole rows.
        self.left = np.zeros((batch, self.A))
        self.left[:, self.R] = np.inf
        self.warm = np.zeros((batch, self.M, self.R), dtype=bool)  # warm replicas in the current window
        # The current slot's signals and 1 / capacity, copied at each slot change so that a step reads
        # them contiguously instead of gathering them per task.
        self.slot_signals = np.zeros((batch, 3, self.R), dtype=np.float32)
        self.slot_inv_capacity = np.zeros((batch, self.R))
        self._rows = np.arange(batch)

    # ----------------------------------------------------------------------------- storage
    def _alloc(self, cap: int, slots: int) -> None:
        """(Re)allocate padded per-task and per-slot arrays, keeping what is loaded."""
        B, A, R, M = self.B, self.A, self.R, self.M
        old = self.__dict__.copy() if self.cap else None
        self.num_tasks = np.zeros(B, dtype=np.int64) if old is None else old["num_tasks"]
        self.cost = np.zeros((B, cap, A))  # weighted per-task cost, USD (replica excluded)
        self.comp = np.zeros((B, cap, A, len(COMPONENTS)) if self.store_components else (B, 0, A, 5))
        self.gpu = np.zeros((B, cap, A))  # GPU-s consumed
        self.mask = np.zeros((B, cap, A), dtype=bool)  # static mask
        self.slot = np.zeros((B, cap), dtype=np.int64)
        self.window = np.zeros((B, cap), dtype=np.int64)
        self.model = np.zeros((B, cap), dtype=np.int64)
        self.boundary = np.zeros((B, cap), dtype=np.int8)  # after task k: bit 1 a new slot, bit 2 a new window
        # The per-task part of the observation packed in one row, read with one gather per step:
        # [task scalars | latency_s (R) | slack_s (R) | cost in reward units (R) | arrivals_ahead (R) |
        #  captive_gpu_h_ahead (R)].
        self.obs_rows = np.zeros((B, cap, _NUM_SCALARS + _NUM_ROWS * R), dtype=np.float32)
        self.code = np.zeros((B, cap), dtype=np.int64)  # row of onehot_table: class + C * (residency + 3 * node)
        self.signals = np.zeros((B, slots, 3, R), dtype=np.float32)  # price, carbon kg, pue
        self.capacity = np.ones((B, slots, R))  # GPU-s a slot may hold: capacity_limit_gpu_s(share=0.5)
        self.permanent = np.zeros((B, M, R), dtype=bool)
        self.replica_charge = np.zeros((B, M))  # eta * replica_mult * replica_usd, USD
        self.start_hour = np.zeros(B, dtype=np.int64)
        self.static_obs = np.zeros((B, cap if self.precompute_obs else 0, self.layout.size), dtype=np.float32)
        self.inv_capacity = np.zeros((B, slots, R))  # 1 / capacity, 0 where capacity is 0
        if old is not None:
            k, s = min(old["cap"], cap), min(old["S"], slots)
            for name in (
                "cost",
                "comp",
                "gpu",
                "mask",
                "slot",
                "window",
                "model",
                "boundary",
                "obs_rows",
                "code",
                "static_obs",
            ):
                getattr(self, name)[:, :k] = old[name][:, :k]
            self.signals[:, :s] = old["signals"][:, :s]
            self.capacity[:, :s] = old["capacity"][:, :s]
            self.inv_capacity[:, :s] = old["inv_capacity"][:, :s]
            for name in ("permanent", "replica_charge", "start_hour"):
                setattr(self, name, old[name])
        self.cap, self.S = cap, slots

    def reserve(self, num_tasks: int, num_slots: int) -> None:
        """Make room for episodes of up to ``num_tasks`` tasks and ``num_slots`` slots.

        Growth is geometric (x1.25), so the autoresets of a vector env rarely reallocate.
        """
        if num_tasks > self.cap or num_slots > self.S:
            grow = max(num_tasks, int(1.25 * self.cap)) if num_tasks > self.cap else self.cap
            self._alloc(grow, max(num_slots, self.S))

    def load(self, e: int, inst: Instance) -> None:
        """Put ``inst`` into episode slot ``e`` and reset its state to the first task."""
        K, S = inst.num_tasks, inst.num_slots
        if K < 1:
            raise ValueError("the episode has no tasks: expected an instance with num_tasks >= 1")
        self.reserve(K, S)
        A, R = self.A, self.R
        charge = replica_charge_usd(inst)  # [M] weighted, USD
        slot_end = inst.slot_end_h
        self.num_tasks[e] = K
        for lo in range(0, K, _CHUNK):
            k = np.arange(lo, min(K, lo + _CHUNK))
            pc = pair_costs(inst, k[:, None], np.arange(A)[None, :])
            rows = slice(lo, lo + k.size)
            self.cost[e, rows] = pc.total_usd
            self.gpu[e, rows] = pc.gpu_s
            self.mask[e, rows] = legal_and_in_budget(inst, k, pc)
            if self.store_components:
                comp = self.comp[e, rows]
                comp[..., 0], comp[..., 1], comp[..., 2] = pc.energy_usd, pc.carbon_g, pc.delay_usd
                comp[..., 3], comp[..., 4] = pc.migration_usd, pc.penalty_usd
            home_lat = pc.latency_ms[np.arange(k.size), inst.home_idx[k]]
            row = self.obs_rows[e, rows]
            row[:, _NUM_SCALARS : _NUM_SCALARS + R] = pc.latency_ms[:, :R] / 1000.0
            row[:, _NUM_SCALARS + R : _NUM_SCALARS + 2 * R] = (inst.budget_ms[k, None] - pc.latency_ms[:, :R]) / 1000.0
            row[:, _NUM_SCALARS + 2 * R : _NUM_SCALARS + 3 * R] = pc.total_usd[:, :R] * self.reward_scale
            elapsed = np.clip(inst.arrival_h[k] - inst.slot_idx[k], 0.0, 1.0)
            # The clock, not the task count: how many tasks an episode holds is one of its future draws.
            horizon_elapsed = np.clip(inst.arrival_h[k] / slot_end[-1], 0.0, 1.0)
            # The forecast rates over the rest of the slot (the clock hour, or up to the horizon in a last
            # partial one): what a demand forecast can tell ahead.
            left = np.clip(slot_end[inst.slot_idx[k]] - inst.arrival_h[k], 0.0, 1.0)[:, None]
            row[:, _NUM_SCALARS + 3 * R : _NUM_SCALARS + 4 * R] = inst.arrival_rate_per_h[inst.slot_idx[k]] * left
            row[:, _NUM_SCALARS + 4 * R :] = inst.captive_gpu_s_per_h[inst.slot_idx[k]] / 3600.0 * left
            row[:, :_NUM_SCALARS] = np.stack(
                [
                    (inst.budget_ms[k] - home_lat) / 1000.0,
                    inst.energy_kwh[k],
                    inst.gpu_s[k] / 3600.0,
                    inst.rounds[k],
                    pc.total_usd[:, R] * self.reward_scale,
                    charge[inst.model_idx[k]] * self.reward_scale,
                    horizon_elapsed,
                    (inst.start_hour + inst.slot_idx[k]) % 24,
                    elapsed,
                ],
                axis=1,
            )
        self.slot[e, :K] = inst.slot_idx
        self.window[e, :K] = inst.window_idx
        self.model[e, :K] = inst.model_idx
        self.boundary[e, :K] = 0
        self.boundary[e, : K - 1] = (np.diff(inst.slot_idx) != 0) + 2 * (np.diff(inst.window_idx) != 0)
        self.code[e, :K] = inst.class_idx + self.C * (inst.residency_idx + 3 * inst.node_idx)
        self.signals[e, :S, 0] = inst.price_usd_per_kwh
        self.signals[e, :S, 1] = inst.carbon_g_per_kwh / 1000.0
        self.signals[e, :S, 2] = inst.pue
        # Half the float slack of check_plan_feasible (see capacity_limit_gpu_s): what the env admits
        # task by task always passes the plan-level check.
        self.capacity[e, :S] = capacity_limit_gpu_s(inst.capacity_gpu_s, share=0.5)
        self.inv_capacity[e, :S] = np.divide(
            1.0, inst.capacity_gpu_s, out=np.zeros((S, R)), where=inst.capacity_gpu_s > 0
        )
        self.permanent[e] = inst.permanent_replica.T
        self.replica_charge[e] = charge
        self.start_hour[e] = inst.start_hour
        self.instances[e] = inst
        self.t[e] = 0
        self._enter_slot(np.array([e]))
        self.warm[e] = inst.permanent_replica.T
        if self.precompute_obs:
            self._fill_static_obs(e, K)

    def load_all(self, instances: Sequence[Instance]) -> None:
        """Put ``instances[e]`` into episode slot ``e`` for every e (one reallocation at most)."""
        self.reserve(max(i.num_tasks for i in instances), max(i.num_slots for i in instances))
        for e, inst in enumerate(instances):
            self.load(e, inst)

    def _enter_slot(self, es: NDArray[np.int64]) -> None:
        """Episodes ``es`` start the slot of their current task: fresh capacity, that slot's signals."""
        s = self.slot[es, self.t[es]]
        self.left[es, : self.R] = self.capacity[es, s]
        self.slot_signals[es] = self.signals[es, s]
        self.slot_inv_capacity[es] = self.inv_capacity[es, s]

    def _fill_static_obs(self, e: int, K: int) -> None:
        """Each task's observation with the dynamic region fields at their start-of-slot values."""
        nh, ft, R, F = self.ft - _NUM_SCALARS, self.ft, self.R, len(REGION_FEATURES)
        for lo in range(0, K, _CHUNK):
            k = np.arange(lo, min(K, lo + _CHUNK))
            out = self.static_obs[e, k]
            out[:, :nh] = self.onehot_table[self.code[e, k]]
            row = self.obs_rows[e, k]
            out[:, nh:ft] = row[:, :_NUM_SCALARS]
            region = out[:, ft:].reshape(k.size, F, R)
            region[:, _SIGNALS] = self.signals[e, self.slot[e, k]]
            region[:, _CAP_SHARE] = 1.0
            region[:, _CAP_GPU_H] = self.capacity[e, self.slot[e, k]] / 3600.0
            region[:, _TASK_ROWS] = row[:, _NUM_SCALARS:].reshape(k.size, _NUM_ROWS, R)
            self.static_obs[e, k] = out

    # ------------------------------------------------------------------------------ views
    def why_inadmissible(self, e: int, a: int) -> str:
        """Why action ``a`` is not admissible for episode ``e``'s current task: budget, residency or capacity."""
        inst = self.instances[e]
        assert inst is not None
        k = int(self.t[e])
        reason = infeasibility_reason(inst, k, a)
        if reason is not None:
            return reason
        return (
            f"capacity: {inst.region_names[a]!r} has {self.left[e, a]:.1f} GPU-s left in slot {int(self.slot[e, k])}, "
            f"the task needs {self.gpu[e, k, a]:.1f}"
        )

    @property
    def current(self) -> NDArray[np.int64]:
        """``[B]`` current task of each episode, held at the last task once an episode is over."""
        return np.minimum(self.t, np.maximum(self.num_tasks - 1, 0))

    def action_masks(self) -> NDArray[np.bool_]:
        """``[B, A]`` admissible actions for each episode's current task (capacity included)."""
        return self.masks_and_observations(observe=False)[0]

    def observe(self, mask: NDArray[np.bool_] | None = None) -> NDArray[np.float32]:
        """``[B, obs]`` observations of each episode's current task (a finished one shows its last)."""
        m, obs = self.masks_and_observations()
        if mask is not None:  # a caller's own mask (e.g. with finished episodes blanked)
            obs[:, self.ft + _FEASIBLE * self.R :] = mask[:, : self.R]
        return obs

    def masks_and_observations(self, observe: bool = True) -> tuple[NDArray[np.bool_], NDArray[np.float32]]:
        """``([B, A] masks, [B, obs] observations)`` of each episode's current task, sharing the gathers."""
        B, R, A, ft = self.B, self.R, self.A, self.ft
        # Gathers of whole rows with np.take along axis 0: about 3x faster than fancy indexing.
        flat = self._rows * self.cap + self.current  # one flat gather index is cheaper than two
        mask = np.take(self.mask.reshape(-1, A), flat, axis=0)
        mask &= np.take(self.gpu.reshape(-1, A), flat, axis=0) <= self.left
        if not observe:
            return mask, np.empty((B, 0), dtype=np.float32)
        obs = np.empty((B, self.layout.size), dtype=np.float32)  # every entry is written below
        row = np.take(self.obs_rows.reshape(B * self.cap, -1), flat, axis=0)
        obs[:, : ft - _NUM_SCALARS] = np.take(self.onehot_table, np.take(self.code, flat), axis=0)
        obs[:, ft - _NUM_SCALARS : ft] = row[:, :_NUM_SCALARS]
        region = obs[:, ft:].reshape(B, len(REGION_FEATURES), R)
        region[:, _SIGNALS] = self.slot_signals
        left = self.left[:, :R]
        np.multiply(left, self.slot_inv_capacity, out=region[:, _CAP_SHARE], casting="same_kind")
        np.multiply(left, 1.0 / 3600.0, out=region[:, _CAP_GPU_H], casting="same_kind")
        region[:, _TASK_ROWS] = row[:, _NUM_SCALARS:].reshape(B, _NUM_ROWS, R)
        warm_rows = self._rows * self.M + np.take(self.model, flat)
        region[:, _WARM] = np.take(self.warm.reshape(-1, R), warm_rows, axis=0)
        region[:, _FEASIBLE] = mask[:, :R]
        return mask, obs

    # ------------------------------------------------------------------------------- step
    def advance(
        self, action: NDArray[np.int64], active: NDArray[np.bool_]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Apply ``action`` in the episodes where ``active``; return (task cost, replica charge) in USD.

        Feasibility is the caller's business (see :meth:`action_masks`). Moves each active episode to its
        next task, refreshing capacity at a new slot and replicas at a new window. Episodes whose last
        task was placed keep ``t == num_tasks``.
        """
        R, A = self.R, self.A
        if active.all():  # the common case: skip the boolean selections
            moved, a = self._rows, action
        else:
            moved, a = self._rows[active], action[active]
        e = moved  # narrowed to the served episodes below
        k = self.t[e]
        flat = e * self.cap + k
        m = np.take(self.model, flat)
        task_cost = np.zeros(self.B)
        replica = np.zeros(self.B)
        task_cost[e] = np.take(self.cost, flat * A + a)
        self.t[e] = k + 1
        flags = np.take(self.boundary, flat)
        served = a < R
        if not served.all():
            e, m, a, flat = e[served], m[served], a[served], flat[served]
        # Flat indices: each episode appears once, so the in-place updates below have no duplicates.
        warm_idx = (e * self.M + m) * R + a
        warm = self.warm.reshape(-1)
        replica[e] = ~np.take(warm, warm_idx) * np.take(self.replica_charge, e * self.M + m)
        warm[warm_idx] = True
        self.left.reshape(-1)[e * A + a] -= np.take(self.gpu, flat * A + a)
        if flags.any():  # after the task's own slot and window: the next task may start new ones
            self._enter_slot(moved[(flags & 1) > 0])
            new_window = moved[(flags & 2) > 0]
            self.warm[new_window] = self.permanent[new_window]
        return task_cost, replica

    # ----------------------------------------------------- single-episode fast path (e = 0)
    # The same rules as action_masks / observe / advance, written for one episode with scalar indices:
    # numpy call overhead dominates a one-row step. tests/test_env.py checks both paths agree.
    def action_mask_one(self) -> NDArray[np.bool_]:
        k = int(self.t[0])
        mask = self.mask[0, k].copy()
        mask &= self.gpu[0, k] <= self.left[0]
        return mask

    def observe_one(self, mask: NDArray[np.bool_]) -> NDArray[np.float32]:
        k = int(self.t[0])
        obs = self.static_obs[0, k].copy()
        region = obs[self.ft :].reshape(-1, self.R)
        left = self.left[0, : self.R]
        region[_CAP_SHARE] = left * self.slot_inv_capacity[0]
        region[_CAP_GPU_H] = left * (1.0 / 3600.0)
        region[_WARM] = self.warm[0, self.model[0, k]]
        region[_FEASIBLE] = mask[: self.R]
        return obs

    def advance_one(self, a: int) -> tuple[float, float]:
        k = int(self.t[0])
        task_cost = float(self.cost[0, k, a])
        replica = 0.0
        if a < self.R:
            m = self.model[0, k]
            if not self.warm[0, m, a]:
                replica = float(self.replica_charge[0, m])
                self.warm[0, m, a] = True
            self.left[0, a] -= self.gpu[0, k, a]
        self.t[0] = k + 1
        flags = self.boundary[0, k]
        if flags:
            if flags & 1:
                s = self.slot[0, k + 1]
                self.left[0, : self.R] = self.capacity[0, s]
                self.slot_inv_capacity[0] = self.inv_capacity[0, s]
                self.slot_signals[0] = self.signals[0, s]  # read by the batch path only; kept in step
            if flags & 2:
                self.warm[0] = self.permanent[0]
        return task_cost, replica

    def components(self, action: NDArray[np.int64], k: NDArray[np.int64]) -> NDArray[np.float64]:
        """``[B, len(COMPONENTS)]`` unweighted cost components of ``action`` for tasks ``k``."""
        if not self.store_components:
            raise ValueError("cost components were not stored (store_components=False)")
        return self.comp[self._rows, k, action]


# ------------------------------------------------------------------------------------------- rollouts
PolicyFn = Callable[[NDArray[np.float32], NDArray[np.bool_]], ArrayLike]  # batched: [B, D], [B, A] -> [B]
ActFn = Callable[[NDArray[np.float32], NDArray[np.bool_]], int]  # one observation: [D], [A] -> action


def play(
    policy: PolicyFn | ActFn,
    instances: Sequence[Instance],
    reward_scale: float,
    *,
    batched: bool = True,
    batch_size: int = 64,
    strict: bool = False,
) -> list[NDArray[np.int64]]:
    """The plan (one executed action per task) of ``policy`` on each of ``instances``, played with these
    dynamics: the one rollout loop behind heuristic plans and agent evaluation.

    ``policy(obs [B, D], mask [B, R + 1]) -> [B]`` actions, ``B`` episodes at a time (at most
    ``batch_size``; all instances share regions, nodes, classes and models); with ``batched=False``,
    ``policy(obs [D], mask [R + 1]) -> action`` for one episode at a time (no batching overhead for a
    policy that acts on one observation). An inadmissible action is played as overflow, or raises
    :class:`InadmissibleAction` (naming the task and the instance) with ``strict``; one outside
    ``[0, R]`` always raises it. An instance without
    tasks gets an empty plan.
    """
    size = batch_size if batched else 1
    plans: list[NDArray[np.int64]] = []
    for lo in range(0, len(instances), size):
        block = list(instances[lo : lo + size])
        ids = [lo + j for j, i in enumerate(block) if i.num_tasks > 0]  # an episode without tasks: an empty plan
        chunk = [instances[j] for j in ids]
        played: list[NDArray[np.int64]] = []
        if chunk:
            first = chunk[0]
            layout = ObsLayout.of(first)
            single = len(chunk) == 1
            batch = EpisodeBatch(len(chunk), layout, len(first.model_names), reward_scale, False, single)
            if not batched:
                played = [_play_one(cast(ActFn, policy), batch, first, strict, ids[0])]
            elif single:
                played = [_play_one(_one_at_a_time(cast(PolicyFn, policy)), batch, first, strict, ids[0])]
            else:
                played = _play_batch(cast(PolicyFn, policy), batch, chunk, strict, ids)
        it = iter(played)
        plans.extend(next(it) if i.num_tasks > 0 else np.empty(0, dtype=np.int64) for i in block)
    return plans


@dataclass(frozen=True, slots=True)
class Trace:
    """What a policy saw and paid along one episode, one row per task (imitation learning's samples)."""

    obs: NDArray[np.float32]  # [K, D] the observation before each task's action
    mask: NDArray[np.bool_]  # [K, R + 1] its admissible actions
    action: NDArray[np.int64]  # [K] the action taken
    cost_usd: NDArray[np.float64]  # [K] the step's cost: the task's weighted cost plus a replica charge, USD


def trace(inst: Instance, plan: ArrayLike, reward_scale: float) -> Trace:
    """Replay ``plan`` (one action per task) with these dynamics and record every step.

    ``reward_scale`` sets the observation's cost features, as in the env the policy trains in. Every action
    must be admissible at its step (:class:`InadmissibleAction` otherwise): a plan the oracle or a masked
    policy produced always is. ``sum(cost_usd)`` is the plan's ``evaluate_plan(...).total_usd``.
    """
    actions = np.asarray(plan, dtype=np.int64).reshape(-1)
    K, R = inst.num_tasks, inst.num_regions
    if actions.size != K:
        raise ValueError(f"plan: expected {K} actions (one per task), got {actions.size}")
    layout = ObsLayout.of(inst)
    obs = np.empty((K, layout.size), dtype=np.float32)
    masks = np.empty((K, R + 1), dtype=bool)
    cost = np.empty(K)
    if K:
        batch = EpisodeBatch(1, layout, len(inst.model_names), reward_scale, False, True)
        batch.load(0, inst)
        for k in range(K):
            masks[k] = batch.action_mask_one()
            obs[k] = batch.observe_one(masks[k])
            a = int(actions[k])
            if not 0 <= a <= R:
                _check_range(actions[k : k + 1], R, np.array([k]), [0])
            if not masks[k, a]:
                _refuse(a, k, 0)
            task_cost, replica = batch.advance_one(a)
            cost[k] = task_cost + replica
    return Trace(obs, masks, actions.copy(), cost)


def _one_at_a_time(policy: PolicyFn) -> ActFn:
    """A batched policy asked about one observation at a time."""
    return lambda obs, mask: int(np.asarray(policy(obs[None], mask[None])).reshape(-1)[0])


class InadmissibleAction(ValueError):
    """A policy chose an action outside ``[0, R]`` (always refused) or, played with ``strict=True``, one the
    mask forbids."""


def _check_range(a: NDArray[np.int64], R: int, k: NDArray[np.int64], episodes: list[int]) -> None:
    bad = (a < 0) | (a > R)
    if bad.any():
        e = int(np.argmax(bad))
        raise InadmissibleAction(
            f"the policy chose action {int(a[e])} for task {int(k[e])} of instances[{episodes[e]}]: expected an "
            f"integer in [0, {R}] ({R} is overflow)"
        )


def _refuse(a: int, k: int, episode: int) -> None:
    raise InadmissibleAction(f"the policy chose the inadmissible action {a} for task {k} of instances[{episode}]")


def _play_one(act: ActFn, batch: EpisodeBatch, inst: Instance, strict: bool, episode: int) -> NDArray[np.int64]:
    """One episode through the scalar fast path; ``act(obs [D], mask [R + 1]) -> action``."""
    batch.load(0, inst)
    R = inst.num_regions
    plan = np.empty(inst.num_tasks, dtype=np.int64)
    for k in range(inst.num_tasks):  # capacity and replicas make each choice depend on the earlier ones
        mask = batch.action_mask_one()
        a = int(act(batch.observe_one(mask), mask))
        if not 0 <= a <= R:
            _check_range(np.array([a]), R, np.array([k]), [episode])
        if not mask[a]:
            if strict:
                _refuse(a, k, episode)
            a = R
        plan[k] = a
        batch.advance_one(a)
    return plan


def _play_batch(
    policy: PolicyFn, batch: EpisodeBatch, chunk: list[Instance], strict: bool, episodes: list[int]
) -> list[NDArray[np.int64]]:
    batch.load_all(chunk)
    R = chunk[0].num_regions
    out = [np.full(i.num_tasks, -1, dtype=np.int64) for i in chunk]
    rows = np.arange(len(chunk))
    active = batch.t < batch.num_tasks
    while active.any():
        mask = batch.action_masks()
        a = np.asarray(policy(batch.observe(mask), mask), dtype=np.int64).reshape(-1)
        _check_range(np.where(active, a, 0), R, batch.t, episodes)
        bad = active & ~mask[rows, a]
        if strict and bad.any():
            e = int(np.argmax(bad))
            _refuse(int(a[e]), int(batch.t[e]), episodes[e])
        a = np.where(bad, R, a)
        for j in np.flatnonzero(active).tolist():
            out[j][batch.t[j]] = a[j]
        batch.advance(a, active)
        active = batch.t < batch.num_tasks
    return out
