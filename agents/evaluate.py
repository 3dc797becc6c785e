"""Evaluate trained agents against the heuristics, the rolling-horizon MILP and the hindsight oracle.

* :class:`Agent` wraps a trained SB3 model (and the observation statistics of its ``VecNormalize``, if it
  trained with them) behind the heuristics' interface: ``act(obs, mask)`` and ``plan(instance)``.
* :func:`play` runs a policy over several instances at once through :class:`envs.dynamics.EpisodeBatch`,
  the env's own step implementation (one batched forward pass per step for all episodes), and returns one
  plan per instance. An action the mask forbids runs the overflow action, the rule of the env's
  ``invalid_action="overflow"`` under which the unmasked algorithms train.
* :func:`evaluation_instances` writes / reads fixed evaluation episodes as files with the seed in the name.
* :func:`evaluate_episodes` and :func:`summarise` build the benchmark table: per policy, mean and standard
  error over episodes of ``total_usd``, ``carbon_g``, ``penalty_usd`` (SLO penalties), ``rid`` and
  ``relative_regret = (total_usd - oracle_usd) / oracle_usd``.

The oracle and the rolling-horizon baseline come from :mod:`baselines.milp` (oracle solutions are kept by
episode content with :func:`baselines.milp.cached_oracle`).
"""

from __future__ import annotations

import contextlib
import json
import pickle
import time
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from agents.imitation import IMITATION_ALGOS
from agents.rllib import RLLIB_ALGOS
from baselines.milp import cached_oracle, solve_oracle, solve_rolling
from envs.dynamics import PolicyFn
from envs.dynamics import play as rollout
from envs.instance import Instance
from envs.metrics import summary
from envs.placement import DEFAULT_REWARD_SCALE
from envs.scenario import Scenario
from envs.workload import sample_instance

# choose among admissible actions; the imitation and RLlib runs save MaskablePPO models
MASKED_ALGOS = ("maskable_ppo", *IMITATION_ALGOS, *RLLIB_ALGOS)

# The columns of the evaluation table, each reported as mean and standard error over episodes.
METRICS = ("total_usd", "carbon_g", "penalty_usd", "rid", "relative_regret")


@contextlib.contextmanager
def torch_threads(n: int = 1) -> Iterator[None]:
    """Run torch with ``n`` intra-op threads, restoring the previous number after.

    The networks here are small: one thread is fastest, and on a loaded machine several threads that spin on
    each other's barriers make a forward pass a hundred times slower (seen: 130 ms instead of 1 ms).
    """
    import torch as th

    before = th.get_num_threads()
    th.set_num_threads(n)
    try:
        yield
    finally:
        th.set_num_threads(before)


# ------------------------------------------------------------------------------------ the agent
def algo_class(algo: str) -> Any:
    """The SB3 algorithm class of ``algo`` (``maskable_ppo``, ``ppo``, ``a2c``, ``dqn``; the imitation runs
    ``bc`` and ``dagger`` and RLlib's ``rllib_ppo`` save MaskablePPO models)."""
    from sb3_contrib import MaskablePPO
    from stable_baselines3 import A2C, DQN, PPO

    classes = {"maskable_ppo": MaskablePPO, "ppo": PPO, "a2c": A2C, "dqn": DQN}
    classes.update(dict.fromkeys((*IMITATION_ALGOS, *RLLIB_ALGOS), MaskablePPO))
    if algo not in classes:
        raise ValueError(f"algo = {algo!r}: expected one of {sorted(classes)}")
    return classes[algo]


def vecnormalize_path(model_path: str | Path) -> Path:
    """Where the ``VecNormalize`` statistics of a saved model live: ``X.zip`` -> ``X.vecnormalize.pkl``."""
    p = Path(model_path)
    return p.with_name(p.name.removesuffix(".zip") + ".vecnormalize.pkl")


def detect_algo(model_path: str | Path) -> str:
    """The algorithm of a saved model: from the run's ``config.json`` (beside it or one folder up), else
    from the classes recorded in the zip."""
    p = Path(model_path)
    for folder in (p.parent, p.parent.parent):
        cfg = folder / "config.json"
        if cfg.is_file():
            return str(json.loads(cfg.read_text())["algo"])
    with zipfile.ZipFile(p) as z:
        data = json.loads(z.read("data").decode())
    policy = json.dumps(data.get("policy_class", ""))
    if "Maskable" in policy or "maskable" in policy:
        return "maskable_ppo"
    if "exploration_rate" in data:
        return "dqn"
    return "ppo" if "clip_range" in data else "a2c"


@dataclass(frozen=True, slots=True, eq=False)
class Agent:
    """A trained SB3 model behind the heuristics' interface.

    ``masked``: actions are chosen among admissible ones (MaskablePPO); otherwise the model picks freely and
    an inadmissible choice runs the overflow action. ``obs_mean`` / ``obs_var`` / ``clip_obs``: the
    ``VecNormalize`` observation statistics the model was trained with (``None``: raw observations).
    """

    model: Any
    algo: str
    masked: bool
    obs_mean: NDArray[np.float64] | None = None
    obs_var: NDArray[np.float64] | None = None
    clip_obs: float = 10.0
    obs_epsilon: float = 1e-8
    deterministic: bool = True
    name: str = ""

    @classmethod
    def from_model(cls, model: Any, algo: str, vec_normalize: Any = None, name: str = "") -> Agent:
        """Wrap a live model; ``vec_normalize``: its ``VecNormalize`` (or ``None``)."""
        mean = var = None
        clip, eps = 10.0, 1e-8
        if vec_normalize is not None and vec_normalize.norm_obs:
            mean, var = vec_normalize.obs_rms.mean.copy(), vec_normalize.obs_rms.var.copy()
            clip, eps = float(vec_normalize.clip_obs), float(vec_normalize.epsilon)
        return cls(model, algo, algo in MASKED_ALGOS, mean, var, clip, eps, name=name or algo)

    @classmethod
    def load(cls, path: str | Path, algo: str | None = None, name: str = "") -> Agent:
        """Load a saved model (``.zip``) and, when present, its ``X.vecnormalize.pkl`` statistics."""
        p = Path(path)
        if not p.is_file():
            raise ValueError(f"model = {str(p)!r}: no such file (expected a .zip saved by geoinfer train)")
        algo = algo or detect_algo(p)
        model = algo_class(algo).load(p, device="cpu")
        norm = None
        stats = vecnormalize_path(p)
        if stats.is_file():
            with stats.open("rb") as f:
                norm = pickle.load(f)  # a VecNormalize without its venv: only its statistics are used
        return cls.from_model(model, algo, norm, name=name or algo)

    def normalise(self, obs: NDArray[np.float32]) -> NDArray[np.float32]:
        if self.obs_mean is None or self.obs_var is None:
            return obs
        z = (obs - self.obs_mean) / np.sqrt(self.obs_var + self.obs_epsilon)
        return np.clip(z, -self.clip_obs, self.clip_obs).astype(np.float32)

    def act_batch(self, obs: NDArray[np.float32], mask: NDArray[np.bool_]) -> NDArray[np.int64]:
        """``[B]`` actions for observations ``[B, D]`` and masks ``[B, R + 1]``. A region-policy model also
        acts on another region set than it trained on (zero-shot: its weights do not depend on R)."""
        x = self.normalise(obs)
        if x.shape[1] != self.model.observation_space.shape[0]:
            return self._act_on_other_regions(x, mask)
        if self.masked:
            a, _ = self.model.predict(x, deterministic=self.deterministic, action_masks=mask)
        else:
            a, _ = self.model.predict(x, deterministic=self.deterministic)
        return np.asarray(a, dtype=np.int64).reshape(-1)

    def _act_on_other_regions(self, obs: NDArray[np.float32], mask: NDArray[np.bool_]) -> NDArray[np.int64]:
        """The region net's action (masked when the model is), as ``predict`` deterministic: by the policy's
        ``decision`` (:mod:`agents.policies`)."""
        import torch as th

        from agents.policies import deterministic_action, region_net

        size = self.model.observation_space.shape[0]
        if self.obs_mean is not None or not self.deterministic:
            raise ValueError(
                f"observations of size {obs.shape[1]}, the model's are {size}: only a deterministic region "
                "policy without observation normalisation acts on another region set"
            )
        try:
            net = region_net(self.model.policy)
        except ValueError as exc:
            raise ValueError(f"observations of size {obs.shape[1]}, the model's are {size}: {exc}") from None
        x = th.as_tensor(obs, dtype=th.float32)
        with th.no_grad():
            logits = net.forward_actor(x)
            if self.masked:
                logits = logits.masked_fill(~th.as_tensor(mask), -th.inf)
            return deterministic_action(self.model.policy, logits, x).numpy().astype(np.int64)

    def act(self, obs: NDArray[np.float32], mask: NDArray[np.bool_]) -> int:
        """One action for one observation (the heuristics' ``act``); inadmissible choices become overflow."""
        a = int(self.act_batch(obs[None], mask[None])[0])
        return a if mask[a] else len(mask) - 1

    def plan(self, inst: Instance, reward_scale: float = DEFAULT_REWARD_SCALE) -> NDArray[np.int64]:
        """Play the agent over ``inst`` with the env's dynamics; one executed action per task."""
        return play(self.act_batch, [inst], reward_scale)[0]


# ----------------------------------------------------------------------------------- batched play
def play(
    policy: PolicyFn, instances: Sequence[Instance], reward_scale: float = DEFAULT_REWARD_SCALE, batch_size: int = 64
) -> list[NDArray[np.int64]]:
    """Plans of ``policy`` (``[B, D], [B, R+1] -> [B]`` actions) on ``instances``, played in batches by the
    env's one rollout loop (:func:`envs.dynamics.play`) with one torch thread.

    All instances must share regions, nodes, classes and models. Inadmissible actions run overflow.
    """
    with torch_threads(1):
        return rollout(policy, instances, reward_scale, batch_size=batch_size)


# ---------------------------------------------------------------------------- evaluation episodes
def evaluation_seeds(seed: int, n: int) -> list[int]:
    """``n`` episode seeds derived from ``seed`` with ``SeedSequence.spawn`` (disjoint from training's)."""
    children = np.random.SeedSequence([seed, 0xE7A1]).spawn(n)
    return [int(c.generate_state(1, np.uint32)[0]) for c in children]


def evaluation_instances(
    scenario: Scenario, seeds: Sequence[int], num_tasks: int | None = None, directory: str | Path | None = None
) -> list[Instance]:
    """One episode per seed; with ``directory``, each is saved as ``eval_seed{seed}[_tasks{K}].npz`` and
    read back from there on later calls, so every evaluation of a run plays the very same episodes."""
    out = []
    for s in seeds:
        path = None
        if directory is not None:
            name = f"eval_seed{s}" + (f"_tasks{num_tasks}" if num_tasks is not None else "") + ".npz"
            path = Path(directory) / name
        if path is not None and path.is_file():
            inst = Instance.load(path)
        else:
            inst = sample_instance(scenario, seed=s, num_tasks=num_tasks)
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                inst.save(path)
        out.append(inst)
    return out


# --------------------------------------------------------------------------------- the benchmark
def evaluate_episodes(
    instances: Sequence[Instance],
    agents: Sequence[Agent] = (),
    heuristics: Sequence[str] | None = None,
    rolling: bool = True,
    oracle: bool = True,
    oracle_time_limit_s: float | None = None,
    seed: int = 0,
    reward_scale: float = DEFAULT_REWARD_SCALE,
    progress: Callable[[str], None] | None = None,
    oracle_cache: str | Path | None = None,
) -> pd.DataFrame:
    """One row per (episode, policy): the figures of :func:`envs.metrics.summary`, ``plan_s`` (seconds to
    produce the plan) and ``relative_regret`` against the oracle (NaN without one).

    Policies: every agent, every heuristic (default all of ``HEURISTICS``), the rolling-horizon MILP and
    the hindsight oracle (when they are asked for); both MILPs get
    ``oracle_time_limit_s`` per episode. Where the oracle is not proven optimal, regret is measured against
    its incumbent (``oracle_status`` and ``oracle_gap`` say so). ``oracle_cache``: a folder where oracle
    solutions are kept by episode content (:func:`cached_oracle`); the oracle's ``plan_s`` is then the
    time of the solve that produced it.
    """
    from baselines.heuristics import HEURISTICS, make_heuristic

    names = list(HEURISTICS) if heuristics is None else list(heuristics)
    rows: list[dict[str, Any]] = []
    # Agents play all episodes together (one forward pass per step for the whole batch).
    agent_plans: dict[str, tuple[list[NDArray[np.int64]], float]] = {}
    for ag in agents:
        t = time.perf_counter()
        plans = play(ag.act_batch, instances, reward_scale)
        agent_plans[ag.name] = (plans, (time.perf_counter() - t) / max(len(instances), 1))
    for e, inst in enumerate(instances):
        plans_e: dict[str, tuple[str, NDArray[np.int64], float]] = {}
        oracle_usd, oracle_status, oracle_gap = float("nan"), "", float("nan")
        if oracle:
            res = (
                solve_oracle(inst, oracle_time_limit_s)
                if oracle_cache is None
                else cached_oracle(inst, oracle_cache, oracle_time_limit_s)
            )
            plans_e["oracle"] = ("oracle: hindsight", res.plan, res.solve_s)
            oracle_usd, oracle_status, oracle_gap = res.objective_usd, res.status, res.mip_gap
        if rolling:
            t = time.perf_counter()
            r = solve_rolling(inst, time_limit_s=oracle_time_limit_s)
            plan_r = np.asarray(r.plan, dtype=np.int64)
            plans_e["rolling_milp"] = ("milp: clairvoyant within the hour", plan_r, time.perf_counter() - t)
        for name in names:
            t = time.perf_counter()
            plan = make_heuristic(name, inst, seed=seed + e).plan(inst, reward_scale)
            plans_e[name] = ("heuristic", plan, time.perf_counter() - t)
        for ag in agents:
            plans, per_episode_s = agent_plans[ag.name]
            plans_e[ag.name] = ("agent", plans[e], per_episode_s)
        for name, (kind, plan, plan_s) in plans_e.items():
            row: dict[str, Any] = {
                "episode": e,
                "policy": name,
                "kind": kind,
                "tasks": inst.num_tasks,
                **summary(inst, plan),
                "plan_s": plan_s,
                "oracle_status": oracle_status,
                "oracle_gap": oracle_gap,
            }
            row["relative_regret"] = (row["total_usd"] - oracle_usd) / oracle_usd if oracle_usd > 0 else float("nan")
            rows.append(row)
        if progress is not None:
            progress(
                f"episode {e + 1}/{len(instances)}: {inst.num_tasks} tasks"
                + (f", oracle {oracle_status} (gap {oracle_gap:.2g})" if oracle_status else "")
            )
    return pd.DataFrame(rows)


def summarise(episodes: pd.DataFrame, metrics: Sequence[str] = METRICS) -> pd.DataFrame:
    """Per policy: episodes, and mean and standard error (``std / sqrt(n)``, ddof 1) of each metric."""
    rows = []
    for (policy, kind), g in episodes.groupby(["policy", "kind"], sort=False):
        row: dict[str, Any] = {"policy": policy, "kind": kind, "episodes": len(g)}
        for m in metrics:
            v = g[m].to_numpy(dtype=float)
            row[f"{m}_mean"] = float(v.mean())
            row[f"{m}_se"] = float(v.std(ddof=1) / np.sqrt(v.size)) if v.size > 1 else float("nan")
        row["plan_s_mean"] = float(g["plan_s"].mean())
        rows.append(row)
    return pd.DataFrame(rows).sort_values("total_usd_mean", kind="stable").reset_index(drop=True)


def format_table(table: pd.DataFrame) -> str:
    """The summary as text: ``mean +- se`` per metric."""
    out = pd.DataFrame({"policy": table["policy"], "kind": table["kind"], "n": table["episodes"]})
    for m in METRICS:
        mean, se = table[f"{m}_mean"], table[f"{m}_se"]
        fmt = "{:.2%}" if m in ("rid", "relative_regret") else "{:,.4g}"
        out[m] = [
            "n/a" if not np.isfinite(a) else f"{fmt.format(a)} +- {fmt.format(b)}" if np.isfinite(b) else fmt.format(a)
            for a, b in zip(mean, se, strict=True)
        ]
    out["plan_s"] = table["plan_s_mean"].map("{:.2f}".format)
    return out.to_string(index=False)
