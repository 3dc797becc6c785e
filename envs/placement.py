"""``geoinfer/Placement-v0``: place each arriving inference task in a compute region."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from numpy.typing import NDArray

from envs.core import DEFAULT_REWARD_SCALE, INVALID_ACTION_MODES, CoreAttributes, EnvCore
from envs.dynamics import COMPONENTS, REGION_FEATURES
from envs.instance import Instance
from envs.render import COLOR_BY, ColorBy, MapRenderer, close_window, has_display, show
from envs.scenario import Scenario

__all__ = ["DEFAULT_REWARD_SCALE", "INVALID_ACTION_MODES", "PlacementEnv"]


class PlacementEnv(CoreAttributes, gym.Env[NDArray[np.float32], np.int64]):
    """Route each arriving inference task to a compute region, or overflow it.

    An episode is one :class:`~envs.Instance` (sampled at reset, or replayed with
    ``reset(options={"instance": inst})``); one step places one task, in arrival order. Between
    arrivals, time advances: capacity is per hourly slot, price / carbon / PUE are hourly, and replicas
    brought up at a region stay warm until the end of their replica window.

    **Action** ``Discrete(R + 1)``: region index ``0..R-1`` (``scenario.region_names``), or ``R``, the
    overflow action (the task is not served and its SLO penalty is paid; always admissible).

    **Action mask** ``action_masks()`` and ``info["action_mask"]``: bool ``[R + 1]``, region i is
    admissible when the task's latency there is within its budget, the residency rule allows it and the
    slot's GPU-seconds left there cover the task. ``step`` accepts every element of the action space, as
    Gymnasium's contract asks: with ``invalid_action="overflow"`` (default) an inadmissible action executes
    the overflow action and sets ``info["invalid_action"] = True`` (``info["action"]`` is the action
    executed); ``"raise"`` raises ``ValueError`` with the reason instead (for debugging a policy).

    **Observation** ``Box(float32, (F_t + 12 * R,))``: the task features, then the 12 region features
    feature-major (a block of R values per feature, regions in ``scenario.region_names`` order). Names
    are in ``env.unwrapped.layout``; :meth:`ObsLayout.split` returns ``(task [F_t], regions [R, 12])``:

    =====================  ==========  =========================================================
    task feature           shape       meaning (unit)
    =====================  ==========  =========================================================
    class=*                [C]         one-hot workload class
    residency=*            [3]         one-hot residency class (global, regional, domestic)
    node=*                 [N]         one-hot service node (its home region is "local")
    home_slack_s           [1]         budget minus latency at home (s)
    energy_kwh             [1]         cohort IT energy at home (kWh)
    gpu_h                  [1]         cohort GPU time at home (GPU-hours)
    rounds                 [1]         service <-> compute round trips
    overflow_cost          [1]         cost of the overflow action (reward units)
    replica_cost           [1]         charge for bringing up the task's model where it is cold (reward units)
    horizon_elapsed        [1]         share of the episode's horizon gone at the task's arrival, [0, 1]
    hour_utc               [1]         hour of day of the task's slot (UTC)
    hour_elapsed           [1]         share of the task's hour slot gone at its arrival, [0, 1]
    =====================  ==========  =========================================================

    region features (each region): ``price_usd_per_kwh``, ``carbon_kg_per_kwh``, ``pue`` (the slot's
    signals), ``capacity_left`` (share of the slot's GPU-seconds free), ``gpu_h_left`` (the same in
    GPU-hours), ``latency_s`` (the task's end-to-end latency there), ``slack_s`` (budget minus that
    latency), ``cost`` (the task's cost there in reward units, before a replica charge: the step costs
    ``cost + (1 - replica_warm) * replica_cost``), ``arrivals_ahead`` (forecast number of tasks whose home
    is the region still to arrive in the slot: ``Instance.arrival_rate_per_h`` of the slot times the hours
    left in it, ``Instance.slot_end_h - arrival_h`` (the horizon ends a last partial hour early); a forecast
    from the scenario's arrival rate, not the episode's sampled arrivals), ``captive_gpu_h_ahead`` (forecast
    GPU-hours, still to arrive in the slot, of the tasks that can run only in this region, their home:
    ``Instance.captive_gpu_s_per_h / 3600`` times the same hours left; the room the region will need for
    its own), ``replica_warm`` (0/1), ``feasible`` (0/1, the mask).

    **What the observation knows** (audited so that no feature reads the episode's own future draws): the
    current task's own attributes; the current hour's price, carbon and PUE; the state left by earlier
    placements (capacity left, warm replicas); the clock (``hour_utc``, ``hour_elapsed``,
    ``horizon_elapsed``: the horizon is a parameter of the episode, not a draw); and two forecasts from
    the scenario's arrival intensity and a fixed calibration sample (``arrivals_ahead``,
    ``captive_gpu_h_ahead``), never from this episode's arrivals. Nothing depends on how many tasks the
    episode holds or on any later task: two episodes that agree on their first k tasks give the same
    first k observations. Two modelling choices to know: a task's energy, GPU time and costs include
    its generated tokens, i.e. the router is assumed to know each request's output length at arrival
    (an oracle output-length predictor); and with ``num_tasks`` fixed the episode is conditioned on that
    count (a parameter the forecasts are scaled to), whereas by default the count is random.

    **Reward** ``-reward_scale * cost_usd`` where ``cost_usd`` is the step's cost from the shared cost
    model (:mod:`envs.costs`): the task's weighted cost plus ``eta`` times any replica charge it triggers.
    So ``sum(rewards) / -reward_scale == evaluate_plan(instance, plan).total_usd``.

    **Termination** ``terminated=True`` after the episode's last task; never truncated.

    **Info** ``action_mask`` (for the next task), ``task_idx`` and ``action`` (executed), ``invalid_action``,
    ``cost_usd`` (the step's cost), ``replica_charge_usd`` (its weighted part ``eta x`` replica charge, the
    unweighted charge being ``CostBreakdown.replica_usd``'s unit), and the task's unweighted components
    ``energy_usd``, ``carbon_g``, ``delay_usd``, ``migration_usd``, ``penalty_usd``.

    Args:
        scenario: anything :meth:`Scenario.load` takes: a :class:`Scenario`, a registered name (``"default"``,
            ``"contended"``), a TOML path, or ``None`` for the default.
        num_tasks: tasks per episode (default: Poisson around ``rate_per_h * horizon_h``).
        horizon_h: episode length in hours (default: the scenario's).
        arrival: override the arrival process (``poisson``, ``diurnal``, ``bursty``, ``trace``).
        invalid_action: ``"overflow"`` (default: an inadmissible action is played as overflow and flagged in
            ``info``) or ``"raise"`` (a ``ValueError``).
        reward_scale: reward units per USD.
        render_mode: ``None``, ``"ansi"`` (text), ``"rgb_array"`` (a world map, :mod:`envs.render`) or
            ``"human"`` (that map in a window; needs a display). Nothing is drawn unless asked for.
        color_by: what colours the regions of the map: ``"price"`` or ``"carbon"`` (this hour's).
        split: with a benchmark task's name (:mod:`envs.tasks`), random episodes start only on the days of
            this split (``"train"``, ``"validation"``, ``"test"``); the task ids pass ``"train"``.
    """

    metadata = {"render_modes": ["ansi", "rgb_array", "human"], "render_fps": 8}  # noqa: RUF012  (Gymnasium declares it on the class)

    def __init__(
        self,
        scenario: Scenario | str | Path | None = None,
        num_tasks: int | None = None,
        horizon_h: float | None = None,
        arrival: str | None = None,
        invalid_action: str = "overflow",
        reward_scale: float = DEFAULT_REWARD_SCALE,
        render_mode: str | None = None,
        split: str | None = None,
        color_by: ColorBy = "price",
    ) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode = {render_mode!r}: expected None or one of {self.metadata['render_modes']}")
        if color_by not in COLOR_BY:
            raise ValueError(f"color_by = {color_by!r}: expected one of {COLOR_BY}")
        self.core = EnvCore.make(scenario, num_tasks, horizon_h, arrival, invalid_action, reward_scale, split=split)
        self.render_mode = render_mode
        self._renderer: Any = None
        self._window: Any = None
        if render_mode in ("rgb_array", "human"):
            if render_mode == "human" and not has_display():
                # Gymnasium's checker makes the env in every declared mode, where a warning fails it: a log line
                logging.getLogger("envs.render").info(
                    "render_mode='human' found no display (matplotlib's backend is non-interactive): nothing will "
                    "be shown; use render_mode='rgb_array' (frames as arrays) or geoinfer replay (a video file)"
                )
            else:
                self._renderer = MapRenderer(self.core.scenario, color_by)
        self.action_space = self.core.action_space()
        self.observation_space = self.core.observation_space()
        self._batch = self.core.batch(1, precompute_obs=True)
        # the step's constants as plain attributes: a step is a few microseconds, property chains show in it
        self._R, self._scale, self._obs_size = self.core.num_regions, self.core.reward_scale, self.core.layout.size
        self._mask: NDArray[np.bool_] = np.zeros(self._R + 1, dtype=bool)  # never mutated in place
        self._done = True
        self.instance: Instance | None = None
        self._last: dict[str, Any] = {}

    # ---------------------------------------------------------------------------- gym API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[NDArray[np.float32], dict[str, Any]]:
        super().reset(seed=seed)
        options = options or {}
        unknown = set(options) - {"instance"}
        if unknown:
            raise ValueError(f"reset options {sorted(unknown)}: expected only 'instance'")
        inst = options.get("instance")
        if inst is None:
            inst = self.core.sample(self.np_random)
        else:
            inst = self.core.check_instance(inst, "options['instance']")
        self.instance = inst
        self._batch.load(0, inst)
        if self._renderer is not None:
            self._renderer.start(inst)
        self._done = False
        self._mask = self._batch.action_mask_one()
        obs = self._batch.observe_one(self._mask)
        self._last = {}
        return obs, {"action_mask": self._mask.copy(), "task_idx": 0}

    def step(self, action: Any) -> tuple[NDArray[np.float32], float, bool, bool, dict[str, Any]]:
        if self._done:
            raise RuntimeError("step() called on a finished episode: call reset() first")
        try:
            a = int(action)
        except (TypeError, ValueError):
            raise ValueError(f"action = {action!r}: expected an integer in [0, {self._R}]") from None
        if a != action or not 0 <= a <= self._R:
            raise ValueError(f"action = {action!r}: expected an integer in [0, {self._R}] ({self._R} is overflow)")
        b = self._batch
        k = int(b.t[0])
        invalid = not self._mask[a]
        if invalid:
            a = self.core.executed_instead(a, b)
        task_cost, replica = b.advance_one(a)
        cost = task_cost + replica
        comp = b.comp[0, k, a].tolist()
        self._done = bool(b.t[0] >= b.num_tasks[0])
        if self._done:
            obs = np.zeros(self._obs_size, dtype=np.float32)
            self._mask = np.zeros(self._R + 1, dtype=bool)
            self._mask[-1] = True
        else:
            self._mask = b.action_mask_one()
            obs = b.observe_one(self._mask)
        info = {
            "action_mask": self._mask,
            "task_idx": k,
            "action": a,
            "invalid_action": invalid,
            "cost_usd": cost,
            "replica_charge_usd": replica,
            COMPONENTS[0]: comp[0],
            COMPONENTS[1]: comp[1],
            COMPONENTS[2]: comp[2],
            COMPONENTS[3]: comp[3],
            COMPONENTS[4]: comp[4],
        }
        self._last = info
        if self._renderer is not None:
            self._renderer.record(k, a, info)
            if self.render_mode == "human":
                self.render()
        return obs, -cost * self._scale, self._done, False, info

    def action_masks(self) -> NDArray[np.bool_]:
        """Admissible actions for the current task (the method sb3-contrib's MaskablePPO calls)."""
        return self._mask.copy()

    def render(self) -> Any:
        """``"ansi"``: the current task and regions as text; ``"rgb_array"``: the map as an ``H x W x 3`` uint8
        array; ``"human"``: the map shown in a window (None)."""
        if self.render_mode == "ansi":
            return self._render_text()
        if self._renderer is None:
            return None
        if self.instance is None:
            raise RuntimeError("render() before reset(): there is no episode to draw")
        frame = self._renderer.frame(int(self._batch.t[0]))
        if self.render_mode == "rgb_array":
            return frame
        self._window = show(frame, self._window, self.metadata["render_fps"])
        return None

    def close(self) -> None:
        if self._window is not None:
            close_window(self._window)
            self._window = None
        super().close()

    # ------------------------------------------------------------------------------ helpers
    def _render_text(self) -> str:
        if self.instance is None:
            return "(no episode: call reset())"
        inst, b = self.instance, self._batch
        lines = []
        if self._last:
            x = self._last
            lines.append(
                f"last: task {x['task_idx']} -> action {x['action']} cost {x['cost_usd']:.5f} USD"
                + (" (invalid -> overflow)" if x["invalid_action"] else "")
            )
        if self._done:
            lines.append(f"episode done: {inst.num_tasks} tasks")
            return "\n".join(lines)
        k = int(b.t[0])
        s = int(inst.slot_idx[k])
        lines.append(
            f"task {k}/{inst.num_tasks} t={inst.arrival_h[k]:.2f} h slot {s} | "
            f"class {inst.class_names[inst.class_idx[k]]}"
            f" node {inst.node_names[inst.node_idx[k]]} budget {inst.budget_ms[k]:.0f} ms"
            f" {['global', 'regional', 'domestic'][inst.residency_idx[k]]} {inst.gpu_s[k]:.0f} GPU-s"
        )
        obs_regions = self.layout.split(b.observe_one(self._mask))[1]
        lines.append(f"  {'region':<22}{'USD/kWh':>8}{'g/kWh':>7}{'load':>6}{'ms':>7}{'cost':>9} warm ok")
        replica = b.replica_charge[0, inst.model_idx[k]] * self.reward_scale
        for i, name in enumerate(inst.region_names):
            r = dict(zip(REGION_FEATURES, obs_regions[i], strict=True))
            r["cost"] += 0.0 if r["replica_warm"] else replica
            lines.append(
                f"  {name:<22}{r['price_usd_per_kwh']:8.3f}{r['carbon_kg_per_kwh'] * 1000:7.0f}"
                f"{1 - r['capacity_left']:6.0%}{r['latency_s'] * 1000:7.0f}{r['cost']:9.3f}"
                f"  {'w' if r['replica_warm'] else '.'}    {'x' if r['feasible'] else '.'}"
            )
        lines.append(f"  overflow cost {b.cost[0, k, -1] * self.reward_scale:.3f}")
        return "\n".join(lines)
