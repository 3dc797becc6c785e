"""A torch policy that scales with the number of regions: one shared scorer per region.

:class:`RegionNet` reads the flat observation of ``geoinfer/Placement-v0`` (task features, then the
region features feature-major, see :class:`envs.dynamics.ObsLayout`) and scores every action with the same
weights:

1. **Task encoder** ``t = MLP(task)``: workload class and residency one-hots, the task's scalars (slack,
   energy, GPU time, rounds, overflow and replica charges, the shares of the horizon and of the hour slot gone) and
   the hour of day as sin / cos. The service-node one-hot is left out on purpose: its length is tied to
   the scenario's nodes, and what it tells (which region is near and which is home) is already in each
   region's latency, slack and cost.
2. **Region encoder** ``h_i = MLP(region_i, t)`` for every region i, plus one pseudo-region for the
   overflow action (cost = the SLO penalty, always feasible, flagged ``is_overflow``), so overflow is
   scored by the same network against the same cost scale (its own logit, from the task features).
   Derived inputs give the scorer the greedy signal directly: the full marginal cost
   ``cost + (1 - warm) x replica_cost``, that cost minus the overflow cost and minus the cheapest
   admissible action's, how many tasks like this one the region's slot still holds (the same share left
   means little room on one GPU and much on eight), and how many once the region's captive demand still
   to come this hour is set aside (capacity foresight: room that home-only tasks will need).
3. **Context** ``c = [mean_i h_i, max_i h_i]`` (permutation-invariant pooling, DeepSets style), so each
   score can depend on the other regions (capacity elsewhere, how much cheaper the best option is).
4. **Scorer** ``logit_i = w . MLP(h_i, c)``: one logit per action, ``[B, R + 1]``, overflow last.
5. **Critic** ``v = MLP(t, c)``.

No weight depends on R, so one trained network runs on any region set (with the same workload classes);
:func:`region_net_state` / ``load_state_dict`` move it between scenarios. Inputs are squashed with a
fixed ``symlog(x) = sign(x) log(1 + |x|)`` after a unit scale per feature, rather than with running
statistics per observation entry (``VecNormalize``), which would tie the input scaling to region positions.

Policies: :class:`MaskableRegionPolicy` (sb3-contrib MaskablePPO), :class:`RegionActorCriticPolicy`
(PPO, A2C) and :class:`RegionDQNPolicy` (DQN: the logits are the Q-values).

**Deterministic decision** (:class:`MaskableRegionPolicy`'s ``decision``). ``"argmax"`` plays the most probable
action. ``"grouped"`` (what ``geoinfer train`` builds) first picks the kind of action of most probability in
all (a warm region, a cold region, overflow), then the most probable action of that kind
(:func:`grouped_mode`). Near-equivalent cold regions split the probability of opening a replica, so
overflow, a single action, can win the argmax although opening is what the policy prefers: DAgger clones of
the online MPC on the global task's test days, the same weights, scored 122% regret by the argmax and 48%
grouped (README, *Learned agents*). Sampling (PPO's rollouts) is unchanged.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from functools import partial
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
from stable_baselines3.common.policies import ActorCriticPolicy, BasePolicy
from stable_baselines3.dqn.policies import DQNPolicy, QNetwork
from torch import nn

from envs.dynamics import REGION_FEATURES

# Multipliers that bring each raw feature to O(1) before symlog, from the magnitudes of the default scenario
# (USD/kWh ~ 0.1, a task's cohort ~ 0.01-1 kWh and 0.005-0.5 GPU-h, costs ~ 0.1-100 reward units).
TASK_SCALARS: dict[str, float] = {
    "home_slack_s": 10.0,
    "energy_kwh": 100.0,
    "gpu_h": 100.0,
    "rounds": 1.0,
    "overflow_cost": 1.0,
    "replica_cost": 1.0,
}
REGION_SCALES: dict[str, float] = {
    "price_usd_per_kwh": 10.0,
    "carbon_kg_per_kwh": 2.0,
    "pue": 1.0,
    "capacity_left": 1.0,
    "gpu_h_left": 1.0,
    "latency_s": 10.0,
    "slack_s": 10.0,
    "cost": 1.0,
    "arrivals_ahead": 0.1,
    "captive_gpu_h_ahead": 1.0,
    "replica_warm": 1.0,
    "feasible": 1.0,
}
_SYMLOG_REGION = {"latency_s", "slack_s", "cost", "arrivals_ahead"}  # heavy-tailed: squashed; the others are bounded
# is_overflow, symlog(full cost), symlog(full - overflow), symlog(full - cheapest admissible), symlog(tasks that fit),
# symlog(tasks that fit beside the captive demand ahead)
NUM_DERIVED = 6


def symlog(x: th.Tensor) -> th.Tensor:
    """``sign(x) log(1 + |x|)``: identity near 0, logarithmic for large magnitudes, keeps the sign."""
    return th.sign(x) * th.log1p(th.abs(x))


def _mlp(sizes: Sequence[int], activation: type[nn.Module]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in itertools.pairwise(sizes):
        layers += [nn.Linear(a, b), activation()]
    return nn.Sequential(*layers)


class RegionNet(nn.Module):
    """Shared per-region scorer and critic (see the module docstring).

    Args:
        task_features: names of the task features (``ObsLayout.task_features``), in observation order.
        region_features: names of the region features (``REGION_FEATURES``), in observation order.
        hidden: width of every hidden layer.
        activation: activation module class.

    ``forward(obs [B, D]) -> (logits [B, R + 1], critic latent [B, hidden])`` with R = (D - F_t) / F_r.
    """

    # buffers (not saved: they follow from the feature names)
    onehot_idx: th.Tensor
    scalar_idx: th.Tensor
    scalar_scale: th.Tensor
    region_scale: th.Tensor
    region_symlog: th.Tensor
    region_shift: th.Tensor
    overflow_row: th.Tensor

    def __init__(
        self,
        task_features: Sequence[str],
        region_features: Sequence[str] = REGION_FEATURES,
        hidden: int = 64,
        activation: type[nn.Module] = nn.Tanh,
    ) -> None:
        super().__init__()
        names = list(task_features)
        self.num_task_features = len(names)
        self.num_region_features = len(region_features)
        missing = [n for n in (*TASK_SCALARS, "horizon_elapsed", "hour_utc", "hour_elapsed") if n not in names]
        missing += [n for n in REGION_SCALES if n not in region_features]
        if missing:
            raise ValueError(f"observation layout lacks features {missing}: expected the layout of envs.dynamics")
        onehot = [j for j, n in enumerate(names) if n.startswith(("class=", "residency="))]
        self.register_buffer("onehot_idx", th.tensor(onehot, dtype=th.long), persistent=False)
        self.register_buffer(
            "scalar_idx", th.tensor([names.index(n) for n in TASK_SCALARS], dtype=th.long), persistent=False
        )
        self.register_buffer("scalar_scale", th.tensor(list(TASK_SCALARS.values())), persistent=False)
        self.i_horizon, self.i_hour = names.index("horizon_elapsed"), names.index("hour_utc")
        self.i_elapsed = names.index("hour_elapsed")
        self.i_overflow, self.i_replica = names.index("overflow_cost"), names.index("replica_cost")
        self.i_gpu_h = names.index("gpu_h")
        rf = list(region_features)
        self.f_cost, self.f_warm, self.f_feasible = rf.index("cost"), rf.index("replica_warm"), rf.index("feasible")
        self.f_gpu_left, self.f_captive = rf.index("gpu_h_left"), rf.index("captive_gpu_h_ahead")
        self.register_buffer("region_scale", th.tensor([REGION_SCALES[n] for n in rf]), persistent=False)
        self.register_buffer("region_symlog", th.tensor([n in _SYMLOG_REGION for n in rf]), persistent=False)
        self.register_buffer("region_shift", th.tensor([1.0 if n == "pue" else 0.0 for n in rf]), persistent=False)
        # The overflow pseudo-region: no energy, nothing used, no latency, always warm and admissible.
        pseudo = th.zeros(len(rf))
        for n, v in (("capacity_left", 1.0), ("replica_warm", 1.0), ("feasible", 1.0), ("pue", 1.0)):
            pseudo[rf.index(n)] = v
        self.register_buffer("overflow_row", pseudo, persistent=False)

        task_in = len(onehot) + len(TASK_SCALARS) + 4  # + horizon and hour elapsed, sin and cos of the hour
        region_in = len(rf) + NUM_DERIVED
        self.task_mlp = _mlp([task_in, hidden, hidden], activation)
        self.encoder = _mlp([region_in + hidden, hidden, hidden], activation)
        self.decoder = _mlp([3 * hidden, hidden], activation)
        self.logit = nn.Linear(hidden, 1)
        self.critic = _mlp([3 * hidden, hidden, hidden], activation)
        self.hidden = hidden
        self.latent_dim_pi = 1  # unused: the actor output is already one logit per action
        self.latent_dim_vf = hidden

    def num_regions(self, obs_dim: int) -> int:
        r, rest = divmod(obs_dim - self.num_task_features, self.num_region_features)
        if rest or r < 1:
            raise ValueError(
                f"observation of size {obs_dim} does not fit {self.num_task_features} task features "
                f"plus whole blocks of {self.num_region_features} region features"
            )
        return r

    def _encode(self, obs: th.Tensor) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
        """``(t [B, H], h [B, R + 1, H], c [B, 2H])``."""
        B, D = obs.shape
        R, ft = self.num_regions(D), self.num_task_features
        task = obs[:, :ft]
        hour = task[:, self.i_hour] * (2 * math.pi / 24)
        t_in = th.cat(
            [
                task[:, self.onehot_idx],
                symlog(task[:, self.scalar_idx] * self.scalar_scale),
                task[:, self.i_horizon, None],
                task[:, self.i_elapsed, None],
                th.sin(hour)[:, None],
                th.cos(hour)[:, None],
            ],
            dim=1,
        )
        t = self.task_mlp(t_in)

        raw = obs[:, ft:].reshape(B, self.num_region_features, R).transpose(1, 2)  # [B, R, F_r]
        overflow = task[:, self.i_overflow]
        pseudo = self.overflow_row.expand(B, 1, -1).clone()
        pseudo[:, 0, self.f_cost] = overflow
        raw = th.cat([raw, pseudo], dim=1)  # [B, R + 1, F_r]
        full = raw[..., self.f_cost] + (1.0 - raw[..., self.f_warm]) * task[:, self.i_replica, None]
        admissible = raw[..., self.f_feasible] > 0.5
        cheapest = th.where(admissible, full, th.full_like(full, math.inf)).min(dim=1, keepdim=True).values
        is_overflow = th.zeros_like(full)
        is_overflow[:, -1] = 1.0
        scaled = (raw - self.region_shift) * self.region_scale
        scaled = th.where(self.region_symlog, symlog(scaled), scaled)
        per_task = task[:, self.i_gpu_h, None].clamp_min(1e-9)
        fits = raw[..., self.f_gpu_left] / per_task  # 0 for overflow
        # Room left once the region's own captive tasks still to come are served (negative: taking this
        # task now is likely to push one of them into overflow later in the hour).
        spare = (raw[..., self.f_gpu_left] - raw[..., self.f_captive]) / per_task
        derived = th.stack(
            [
                is_overflow,
                symlog(full),
                symlog(full - overflow[:, None]),
                symlog(full - cheapest),
                symlog(fits),
                symlog(spare),
            ],
            -1,
        )
        x = th.cat([scaled, derived], dim=-1)
        h = self.encoder(th.cat([x, t[:, None, :].expand(-1, R + 1, -1)], dim=-1))
        c = th.cat([h.mean(dim=1), h.max(dim=1).values], dim=-1)
        return t, h, c

    def forward(self, obs: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        t, h, c = self._encode(obs)
        z = self.decoder(th.cat([h, c[:, None, :].expand(-1, h.shape[1], -1)], dim=-1))
        return self.logit(z).squeeze(-1), self.critic(th.cat([t, c], dim=-1))

    def forward_actor(self, obs: th.Tensor) -> th.Tensor:
        return self.forward(obs)[0]

    def warm(self, obs: th.Tensor) -> th.Tensor:
        """``[B, R]`` whether the task's model is warm in each region (its ``replica_warm`` feature)."""
        B, D = obs.shape
        R, ft = self.num_regions(D), self.num_task_features
        return obs[:, ft:].reshape(B, self.num_region_features, R)[:, self.f_warm] > 0.5

    def forward_critic(self, obs: th.Tensor) -> th.Tensor:
        t, _h, c = self._encode(obs)
        return self.critic(th.cat([t, c], dim=-1))


DECISIONS = ("argmax", "grouped")


def grouped_mode(logits: th.Tensor, warm: th.Tensor) -> th.Tensor:
    """``[B]`` the grouped decision: the kind of action of most probability in all (a warm region, a cold
    region, overflow, the last action; ties in that order), then its most probable action.

    ``logits [B, R + 1]``: masked (inadmissible actions at -inf or a large negative value, as sb3-contrib's
    masked distribution holds them); ``warm [B, R]``: whether the task's model is warm in each region.
    """
    R = warm.shape[1]
    p = th.softmax(logits, dim=1)
    region = p[:, :R]
    mass = th.stack([(region * warm).sum(1), (region * ~warm).sum(1), p[:, R]], dim=1)
    kind = mass.argmax(dim=1)
    low = th.finfo(logits.dtype).min
    best_warm = th.where(warm, logits[:, :R], low).argmax(dim=1)
    best_cold = th.where(~warm, logits[:, :R], low).argmax(dim=1)
    return th.where(kind == 0, best_warm, th.where(kind == 1, best_cold, th.full_like(kind, R)))


def deterministic_action(policy: nn.Module, logits: th.Tensor, obs: th.Tensor) -> th.Tensor:
    """``[B]`` the action a region policy plays when deterministic, from its masked ``logits [B, R + 1]`` and
    the raw observations ``obs [B, D]``: by its ``decision`` (``"argmax"`` for a policy without one)."""
    if getattr(policy, "decision", "argmax") == "grouped":
        return grouped_mode(logits, region_net(policy).warm(obs))
    return logits.argmax(dim=1)


def init_actor_critic(net: RegionNet, value_head: nn.Module) -> None:
    """SB3's orthogonal initialisation of an actor-critic: gains sqrt(2) inside, 0.01 for the logits, 1 for
    the value (the SB3 policies and the RLlib module start from the same kind of network)."""
    net.apply(partial(BasePolicy.init_weights, gain=np.sqrt(2)))
    net.logit.apply(partial(BasePolicy.init_weights, gain=0.01))
    value_head.apply(partial(BasePolicy.init_weights, gain=1.0))


def _build_region_actor_critic(policy: Any, lr_schedule: Any) -> None:
    """``_build`` of SB3's actor-critic policies with the region net as extractor and no action layer."""
    policy.mlp_extractor = RegionNet(policy.task_features, policy.region_features, policy.hidden, policy.activation_fn)
    policy.action_net = nn.Identity()  # the extractor's actor output is one logit per action already
    policy.value_net = nn.Linear(policy.mlp_extractor.latent_dim_vf, 1)
    if policy.ortho_init:
        init_actor_critic(policy.mlp_extractor, policy.value_net)
    policy.optimizer = policy.optimizer_class(policy.parameters(), lr=lr_schedule(1), **policy.optimizer_kwargs)


class _RegionArgs:
    """The region net's constructor arguments on an SB3 policy: taken, kept, and saved with the model."""

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule: Any,
        task_features: Sequence[str] = (),
        region_features: Sequence[str] = REGION_FEATURES,
        hidden: int = 64,
        **kwargs: Any,
    ) -> None:
        self.task_features, self.region_features, self.hidden = tuple(task_features), tuple(region_features), hidden
        super().__init__(observation_space, action_space, lr_schedule, **kwargs)  # type: ignore[call-arg]

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data: dict[str, Any] = super()._get_constructor_parameters()  # type: ignore[misc]
        data.update(task_features=self.task_features, region_features=self.region_features, hidden=self.hidden)
        return data


class _RegionPolicyMixin(_RegionArgs):
    """The region net in an SB3 actor-critic: its arguments (tanh by default) and ``_build``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("activation_fn", nn.Tanh)
        super().__init__(*args, **kwargs)

    def _build(self, lr_schedule: Any) -> None:
        _build_region_actor_critic(self, lr_schedule)


class MaskableRegionPolicy(_RegionPolicyMixin, MaskableActorCriticPolicy):
    """MaskablePPO's actor-critic with :class:`RegionNet` (``policy_kwargs``: ``task_features``, ``hidden``,
    ``decision``: how it acts when deterministic, ``"argmax"`` or ``"grouped"``, see the module docstring; the
    class default is ``"argmax"``, so that a model saved before the option existed acts as it did)."""

    def __init__(self, *args: Any, decision: str = "argmax", **kwargs: Any) -> None:
        if decision not in DECISIONS:
            raise ValueError(f"policy_kwargs['decision'] = {decision!r}: expected one of {DECISIONS}")
        self.decision = decision
        super().__init__(*args, **kwargs)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(decision=self.decision)
        return data

    def _predict(self, observation: Any, deterministic: bool = False, action_masks: Any = None) -> th.Tensor:
        if not deterministic or self.decision == "argmax":
            return super()._predict(observation, deterministic, action_masks)
        dist = self.get_distribution(observation, action_masks).distribution
        assert isinstance(dist, th.distributions.Categorical)  # one Discrete action: one categorical
        return deterministic_action(self, dist.logits, observation.float())


class RegionActorCriticPolicy(_RegionPolicyMixin, ActorCriticPolicy):
    """PPO's and A2C's actor-critic with :class:`RegionNet` (``policy_kwargs``: ``task_features``, ``hidden``)."""


class RegionQNetwork(QNetwork):
    """DQN's Q-network: Q(s, a) is :class:`RegionNet`'s score of action a."""

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Discrete,
        task_features: Sequence[str],
        region_features: Sequence[str],
        hidden: int,
        **kwargs: Any,
    ) -> None:
        super().__init__(observation_space, action_space, **kwargs)
        self.task_features, self.region_features, self.hidden = tuple(task_features), tuple(region_features), hidden
        self.q_net = RegionNet(task_features, region_features, hidden, self.activation_fn)  # type: ignore[assignment]

    def forward(self, obs: Any) -> th.Tensor:
        return self.q_net.forward_actor(self.extract_features(obs, self.features_extractor))  # type: ignore[operator]

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(task_features=self.task_features, region_features=self.region_features, hidden=self.hidden)
        return data


class RegionDQNPolicy(_RegionArgs, DQNPolicy):
    """DQN's policy with :class:`RegionQNetwork` (``policy_kwargs``: ``task_features``, ``hidden``)."""

    def make_q_net(self) -> QNetwork:
        net_args = self._update_features_extractor(self.net_args, features_extractor=None)
        return RegionQNetwork(
            **net_args, task_features=self.task_features, region_features=self.region_features, hidden=self.hidden
        ).to(self.device)


def region_net(policy: nn.Module) -> RegionNet:
    """The :class:`RegionNet` inside an SB3 policy built with one of the region policies."""
    net = getattr(policy, "mlp_extractor", None)
    if net is None:
        q = getattr(policy, "q_net", None)
        net = getattr(q, "q_net", None)
    if not isinstance(net, RegionNet):
        raise ValueError(f"{type(policy).__name__} has no RegionNet: expected a policy of agents.policies")
    return net


def region_net_state(policy: nn.Module) -> dict[str, th.Tensor]:
    """The weights of a policy's :class:`RegionNet`: none depends on the number of regions."""
    return region_net(policy).state_dict()
