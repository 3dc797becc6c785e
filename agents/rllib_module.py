"""The region policy as an RLlib RL module (new API stack), with masked logits. Imports Ray: see agents.rllib.

:class:`RegionRLModule` wraps the same :class:`agents.policies.RegionNet` as the SB3 region policies, plus a
linear value head on its critic latent (as SB3's ``value_net``), so its weights load into a MaskablePPO model
unchanged (:func:`agents.rllib.export_to_sb3`). Observations are the ``Dict`` of
:class:`agents.rllib.RLlibPlacementEnv`: ``observations`` (the flat observation) and ``action_mask`` (1.0 for
an admissible action). Inadmissible actions get the lowest float logit: probability 0, in exploration too.
"""

from __future__ import annotations

from typing import Any

import torch as th
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.apis import ValueFunctionAPI
from ray.rllib.core.rl_module.torch import TorchRLModule
from torch import nn

from agents.policies import RegionNet, init_actor_critic

MASKED_LOGIT = float(th.finfo(th.float32).min)


class RegionRLModule(TorchRLModule, ValueFunctionAPI):
    """Actor-critic of the region net. ``model_config``: ``task_features``, ``region_features`` (the names of
    :class:`envs.dynamics.ObsLayout`) and ``hidden`` (width)."""

    def setup(self) -> None:
        mc = self.model_config
        self.net = RegionNet(mc["task_features"], mc["region_features"], int(mc["hidden"]))
        self.value_head = nn.Linear(int(mc["hidden"]), 1)
        init_actor_critic(self.net, self.value_head)

    def _logits(self, obs: dict[str, th.Tensor]) -> tuple[th.Tensor, th.Tensor]:
        logits, latent = self.net(obs["observations"])
        return logits.masked_fill(obs["action_mask"] < 0.5, MASKED_LOGIT), latent

    def _forward(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        logits, _ = self._logits(batch[Columns.OBS])
        return {Columns.ACTION_DIST_INPUTS: logits}

    def _forward_train(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        logits, latent = self._logits(batch[Columns.OBS])
        return {Columns.ACTION_DIST_INPUTS: logits, Columns.EMBEDDINGS: latent}

    def compute_values(self, batch: dict[str, Any], embeddings: Any = None) -> th.Tensor:
        if embeddings is None:
            embeddings = self.net.forward_critic(batch[Columns.OBS]["observations"])
        return self.value_head(embeddings).squeeze(-1)
