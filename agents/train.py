"""Train learned placement agents with stable-baselines3 and sb3-contrib.

``train(TrainConfig(...))`` builds vectorised training envs, the model (MaskablePPO by default; PPO, A2C
and DQN act unmasked through the env's ``invalid_action="overflow"``), and runs it with a progress bar,
TensorBoard logs, periodic checkpoints and an evaluation callback that plays fixed evaluation episodes and
logs cost and relative regret against the hindsight oracle. A run lives in one folder::

    OUT/config.json                  the TrainConfig (a resumed run must match it)
    OUT/hyperparams.json             every hyperparameter the run started with (algorithm, task, overrides)
    OUT/tb/<algo>_1/                 TensorBoard event files (a resume continues the same run)
    OUT/checkpoints/step_<N>.zip     checkpoints; with .vecnormalize.pkl, .replay.pkl (DQN), .json sidecars
    OUT/eval/eval_seed<S>.npz        the fixed evaluation episodes (seed in the name)
    OUT/eval/oracle_<digest>.npz     their oracle solutions, by episode content (or in ``oracle_cache``)
    OUT/eval/log.csv                 evaluation history: timesteps, wall_s, total_usd, relative_regret, ...
    OUT/best_model.zip               the policy with the lowest evaluation cost so far
    OUT/model.zip                    the final policy (+ sidecars)

A benchmark task's name (``TrainConfig.scenario``, see :mod:`envs.tasks`) trains on the days of its
train split and evaluates on days of its validation split: its test days are never seen.

One seed makes a run reproducible: it seeds torch / numpy / the action space (SB3's ``set_random_seed``),
the training episodes (sub-env e samples from ``seed + e``) and the evaluation episodes
(``SeedSequence`` children of the seed). A resumed run reseeds with ``seed + num_timesteps``.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.vec_env import VecEnv, VecMonitor, VecNormalize

from agents.callbacks import (
    Checkpoint,
    ProgressBar,
    RegretEval,
    RunClock,
    WallClockLimit,
    latest_checkpoint,
    save_run_state,
)
from agents.evaluate import (
    MASKED_ALGOS,
    algo_class,
    evaluation_instances,
    evaluation_seeds,
    play,
    torch_threads,
)
from agents.imitation import (
    ADDED_SINCE,
    IMITATION_ALGOS,
    IMITATION_DEFAULTS,
    check_imitation_hyperparams,
    run_imitation,
)
from agents.policies import DECISIONS, MaskableRegionPolicy, RegionActorCriticPolicy, RegionDQNPolicy
from agents.rllib import RLLIB_ALGOS, RLLIB_DEFAULTS, check_rllib_hyperparams
from agents.vec import VEC_BACKENDS, TimedVecEnv, make_vec_env
from baselines.milp import cached_oracle
from envs.costs import evaluate_plan
from envs.dynamics import ObsLayout
from envs.placement import DEFAULT_REWARD_SCALE
from envs.scenario import Scenario
from envs.spec import NAMED_SCENARIOS as NAMED_SCENARIOS  # the registry of scenario names, re-exported
from envs.tasks import TASKS

SB3_ALGOS = ("maskable_ppo", "ppo", "a2c", "dqn")  # reinforcement learning with stable-baselines3 / sb3-contrib
ALGOS = (*SB3_ALGOS, *IMITATION_ALGOS, *RLLIB_ALGOS)  # rllib_ppo: RLlib's PPO (the ray extra), agents.rllib
POLICIES = ("region", "mlp")

# Hyperparameters per algorithm; TrainConfig.hyperparams overrides any of them. n_steps is per sub-env.
# learning_rate and clip_range also take "lin_<start>" (RL Zoo's spelling): linear decay from <start> at
# the first step to 0 at ``timesteps`` (a run stopped by ``max_minutes`` stops earlier on the way down).
_PPO_DEFAULTS: dict[str, Any] = {
    "learning_rate": "lin_3e-4",  # decaying to 0 at the run's end: at a constant rate the evaluation curve swings
    "n_steps": 256,
    "batch_size": 512,
    "n_epochs": 4,
    "gamma": 0.99,
    "gae_lambda": 0.95,
    "ent_coef": 0.01,
    "clip_range": 0.2,
}
ALGO_DEFAULTS: dict[str, dict[str, Any]] = {
    "maskable_ppo": dict(_PPO_DEFAULTS),  # MaskablePPO is PPO with masks: the same settings (task ones aside)
    "ppo": dict(_PPO_DEFAULTS),
    "a2c": {"learning_rate": 7e-4, "n_steps": 16, "gamma": 0.99, "gae_lambda": 0.95, "ent_coef": 0.01},
    "dqn": {
        "learning_rate": 1e-4,
        "buffer_size": 100_000,
        "learning_starts": 2_000,
        "batch_size": 128,
        "train_freq": 4,
        "target_update_interval": 2_000,
        "exploration_fraction": 0.2,
        "exploration_final_eps": 0.02,
        "gamma": 0.99,
    },
    **IMITATION_DEFAULTS,  # bc, dagger: see agents.imitation
    **RLLIB_DEFAULTS,  # rllib_ppo: see agents.rllib
}
# Per-task defaults of a benchmark task's run (``TrainConfig.scenario`` names the task), between the
# algorithm's defaults and ``TrainConfig.hyperparams``, as RL Zoo keeps tuned settings per env. The discount:
# a replica's charge pays off over its window's later tasks, hundreds of steps on, beyond the ~100-step horizon
# of gamma 0.99; gamma 0.999 (~1,000 steps) was better on these five tasks and worse on contended and
# residency, on each task's validation days (never its test days), by ``python -m experiments.bench.discount``
# (MaskablePPO, 100k env steps, seed 0; the figures are in the README, where a second seed tips residency
# towards the long horizon within its spread).
# bc and dagger discount their critic's targets the same way, so that a clone fine-tuned with MaskablePPO
# (--init-from) starts with a critic of the discount it goes on with.
_LONG_HORIZON_TASKS = ("carbon", "flashcrowd", "global", "hubs", "shift")
TASK_DEFAULTS: dict[str, dict[str, dict[str, Any]]] = {
    "maskable_ppo": {task: {"gamma": 0.999, "gae_lambda": 0.99} for task in _LONG_HORIZON_TASKS},
    "bc": {task: {"gamma": 0.999} for task in _LONG_HORIZON_TASKS},
    "dagger": {task: {"gamma": 0.999} for task in _LONG_HORIZON_TASKS},
}


SCHEDULED = ("learning_rate", "clip_range")


@dataclass(frozen=True, slots=True)
class LinearSchedule:
    """SB3 schedule ``progress_remaining -> start * progress_remaining`` (1 at the first step, 0 at the last)."""

    start: float

    def __call__(self, progress_remaining: float) -> float:
        return self.start * progress_remaining


def schedule(value: Any) -> float | LinearSchedule:
    """A number > 0 (constant) or ``"lin_<number>"`` (linear decay to 0); ``ValueError`` otherwise."""
    if isinstance(value, str) and value.startswith("lin_"):
        try:
            start = float(value.removeprefix("lin_"))
        except ValueError:
            start = float("nan")
        if start > 0:
            return LinearSchedule(start)
    elif isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    raise ValueError("expected a number > 0 or 'lin_<number > 0>' (linear decay to 0 over the run)")


@dataclass(frozen=True, slots=True)
class TrainConfig:
    """Everything that defines a training run (saved as ``OUT/config.json``).

    ``timesteps`` is the run's total of env steps (a resume trains up to it). ``num_tasks``: tasks per
    training episode (``None``: the scenario's own Poisson count). ``norm_obs``: ``VecNormalize`` on the
    observations (``None``: on for the ``mlp`` policy, off for ``region``, which scales its inputs itself).
    ``eval_every`` / ``checkpoint_every``: in env steps (0 turns them off; ``bc`` evaluates and checkpoints
    after every epoch, ``dagger`` evaluates after every round and checkpoints after every epoch).
    ``max_minutes``: stop the session after this wall time (a checkpoint is written and ``--resume`` goes on).
    ``oracle_cache``: a folder, shared between runs, where the evaluation episodes' oracle solutions are kept
    by episode content (``None``: the run's ``eval`` folder); ``bc`` and ``dagger`` keep their training days'
    solutions there too (``None``: ``OUT/oracle``). ``init_from``: a model ``.zip`` of the region policy (a
    ``bc`` or ``dagger`` run's, say) whose weights start a ``maskable_ppo`` run: reinforcement fine-tuning of
    a cloned policy. ``expert_workers``: processes that compute ``bc`` and ``dagger``'s expert days and labels
    (oracle solutions, MPC plans) side by side; the run is the same whatever their number.
    """

    algo: str = "maskable_ppo"
    scenario: str = "default"  # a name or a TOML path, as Scenario.load takes it; a task trains on its train split
    timesteps: int = 100_000
    seed: int = 0
    out: str = "runs/agent"
    policy: str = "region"
    hidden: int = 64
    num_envs: int = 8
    vec_backend: str = "batch"
    num_tasks: int | None = None
    norm_obs: bool | None = None
    norm_reward: bool = True
    reward_scale: float = DEFAULT_REWARD_SCALE
    hyperparams: Mapping[str, Any] = field(default_factory=dict)
    eval_every: int = 50_000
    eval_episodes: int = 4
    eval_tasks: int | None = None
    oracle_time_limit_s: float = 120.0
    oracle_cache: str | None = None
    expert_workers: int = 1
    init_from: str | None = None
    checkpoint_every: int = 100_000
    max_minutes: float | None = None
    progress_bar: bool = True
    torch_threads: int = 1
    verbose: int = 0

    def __post_init__(self) -> None:
        def need(ok: bool, name: str, expected: str) -> None:
            if not ok:
                raise ValueError(f"TrainConfig.{name} = {getattr(self, name)!r}: expected {expected}")

        need(self.algo in ALGOS, "algo", f"one of {ALGOS}")
        need(self.policy in POLICIES, "policy", f"one of {POLICIES}")
        need(self.vec_backend in VEC_BACKENDS, "vec_backend", f"one of {VEC_BACKENDS}")
        for name in ("timesteps", "num_envs", "hidden", "torch_threads", "expert_workers"):
            need(isinstance(getattr(self, name), int) and getattr(self, name) >= 1, name, "an integer >= 1")
        for name in ("eval_every", "checkpoint_every", "eval_episodes", "seed"):
            need(isinstance(getattr(self, name), int) and getattr(self, name) >= 0, name, "an integer >= 0")
        for name in ("num_tasks", "eval_tasks"):
            v = getattr(self, name)
            need(v is None or (isinstance(v, int) and v >= 1), name, "an integer >= 1 or None")
        need(self.reward_scale > 0, "reward_scale", "a number > 0")
        need(self.max_minutes is None or self.max_minutes > 0, "max_minutes", "a number > 0 or None")
        if self.algo in IMITATION_ALGOS:
            need(self.policy == "region", "policy", f"'region' for {self.algo} (it imitates with the region net)")
            need(not self.norm_obs, "norm_obs", f"None or False for {self.algo} (the region net scales its inputs)")
            check_imitation_hyperparams(self.algo, self.timesteps, self.hyperparams)
        if self.algo in RLLIB_ALGOS:
            need(self.policy == "region", "policy", f"'region' for {self.algo} (its RL module is the region net)")
            need(not self.norm_obs, "norm_obs", f"None or False for {self.algo} (the region net scales its inputs)")
            need(self.vec_backend == "batch", "vec_backend", f"'batch' for {self.algo} (RLlib runs its own envs)")
            fixed_net = f"no policy_kwargs for {self.algo} (its RL module is the region net as it is)"
            need("policy_kwargs" not in self.hyperparams, "hyperparams", fixed_net)
            check_rllib_hyperparams(self.hyperparams)
        need(
            self.init_from is None or (self.algo == "maskable_ppo" and self.policy == "region" and not self.norm_obs),
            "init_from",
            "None, or a model path with algo 'maskable_ppo', policy 'region' and norm_obs off (as the clone saw them)",
        )
        unknown = set(self.hyperparams) - set(ALGO_DEFAULTS[self.algo]) - {"policy_kwargs"}
        need(not unknown, "hyperparams", f"keys among {sorted(ALGO_DEFAULTS[self.algo])}")
        decision = dict(self.hyperparams.get("policy_kwargs", {})).get("decision")
        if decision is not None:
            masked_region = "a masked region policy (algo maskable_ppo, bc or dagger with policy 'region')"
            need(
                self.masked and self.policy == "region",
                "hyperparams",
                f"a 'decision' in policy_kwargs only for {masked_region}",
            )
            need(decision in DECISIONS, "hyperparams", f"policy_kwargs['decision'] among {DECISIONS}")
        for name in SCHEDULED:
            if name in self.hyperparams:
                try:
                    schedule(self.hyperparams[name])
                except ValueError as err:
                    raise ValueError(f"TrainConfig.hyperparams[{name!r}] = {self.hyperparams[name]!r}: {err}") from None

    @property
    def masked(self) -> bool:
        return self.algo in MASKED_ALGOS

    @property
    def obs_normalised(self) -> bool:
        return self.policy == "mlp" if self.norm_obs is None else self.norm_obs

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["hyperparams"] = dict(self.hyperparams)
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> TrainConfig:
        return cls(**{k: v for k, v in d.items() if k in {f.name for f in dataclasses.fields(cls)}})


@dataclass(frozen=True, slots=True)
class TrainResult:
    """What a training session produced. Times in seconds, cumulated over the sessions of the run."""

    out: Path
    model_path: Path
    num_timesteps: int
    session_steps: int
    wall_s: float
    env_s: float
    session_s: float
    stopped_by_clock: bool
    eval_history: list[dict[str, float]]
    oracle_s: float = 0.0  # imitation: time in the expert (the oracle's solves or the MPC's plans)
    oracle_solves: int = 0
    net_s: float = 0.0  # imitation: time in the network's updates

    @property
    def steps_per_s(self) -> float:
        """Env steps per second of this session (training updates included)."""
        return self.session_steps / self.session_s if self.session_s > 0 else float("nan")

    @property
    def env_share(self) -> float:
        """Share of the run's wall time spent inside the env (steps and resets)."""
        return self.env_s / self.wall_s if self.wall_s > 0 else float("nan")


def build_env(cfg: TrainConfig, scenario: Scenario) -> VecEnv:
    """Training envs: backend, ``TimedVecEnv`` (time inside the env), ``VecMonitor`` (episode returns),
    ``VecNormalize`` when observations or rewards are normalised."""
    venv: VecEnv = make_vec_env(
        scenario,
        cfg.num_envs,
        cfg.vec_backend,
        num_tasks=cfg.num_tasks,
        invalid_action="raise" if cfg.masked else "overflow",
        reward_scale=cfg.reward_scale,
    )
    venv = VecMonitor(TimedVecEnv(venv))
    if cfg.obs_normalised or cfg.norm_reward:
        gamma = float(hyperparams_of(cfg)["gamma"])
        venv = VecNormalize(venv, norm_obs=cfg.obs_normalised, norm_reward=cfg.norm_reward, gamma=gamma)
    return venv


def policy_spec(cfg: TrainConfig, scenario: Scenario) -> tuple[Any, dict[str, Any]]:
    """The SB3 policy (class or name) and its ``policy_kwargs``."""
    extra = dict(cfg.hyperparams.get("policy_kwargs", {}))
    if cfg.policy == "mlp":
        return ("MlpPolicy", extra)
    layout = ObsLayout.of(scenario)
    cls = MaskableRegionPolicy if cfg.masked else RegionDQNPolicy if cfg.algo == "dqn" else RegionActorCriticPolicy
    # A new masked region policy acts by the grouped decision (agents.policies); a saved one as it was saved.
    grouped = {"decision": "grouped"} if cls is MaskableRegionPolicy else {}
    return cls, {"task_features": layout.task_features, "hidden": cfg.hidden, **grouped, **extra}


def hyperparams_of(cfg: TrainConfig) -> dict[str, Any]:
    """The run's hyperparameters: the algorithm's defaults, then the task's (:data:`TASK_DEFAULTS`), then
    ``cfg.hyperparams``."""
    task = TASK_DEFAULTS.get(cfg.algo, {}).get(cfg.scenario, {})
    return {**ALGO_DEFAULTS[cfg.algo], **task, **{k: v for k, v in cfg.hyperparams.items() if k != "policy_kwargs"}}


def _new_model(cfg: TrainConfig, venv: VecEnv, scenario: Scenario, tb: Path) -> Any:
    policy, policy_kwargs = policy_spec(cfg, scenario)
    hp = hyperparams_of(cfg)
    for name in SCHEDULED:
        if name in hp:
            hp[name] = schedule(hp[name])
    if "batch_size" in hp and cfg.algo in ("maskable_ppo", "ppo"):  # a minibatch no larger than a rollout
        hp["batch_size"] = min(int(hp["batch_size"]), int(hp["n_steps"]) * cfg.num_envs)
    model = algo_class(cfg.algo)(
        policy,
        venv,
        policy_kwargs=policy_kwargs,
        seed=cfg.seed,
        tensorboard_log=str(tb),
        verbose=cfg.verbose,
        device="cpu",
        **hp,
    )
    if cfg.init_from is not None:
        _init_weights(model, Path(cfg.init_from))
    return model


def _init_weights(model: Any, path: Path) -> None:
    """Start ``model``'s policy from the weights of the saved model ``path`` (the same region net)."""
    from sb3_contrib import MaskablePPO

    if not path.is_file():
        raise ValueError(f"init_from = {str(path)!r}: no such file (expected a model .zip of the region policy)")
    source = MaskablePPO.load(path, device="cpu")
    try:
        model.policy.load_state_dict(source.policy.state_dict())
    except RuntimeError as exc:
        raise ValueError(f"init_from = {str(path)!r}: its network does not match this run's ({exc})") from None


def _load_model(cfg: TrainConfig, ckpt: Path, venv: VecEnv, tb: Path) -> Any:
    model = algo_class(cfg.algo).load(ckpt, env=venv, device="cpu", tensorboard_log=str(tb))
    replay = ckpt.with_name(ckpt.name.removesuffix(".zip") + ".replay.pkl")
    if replay.is_file() and hasattr(model, "load_replay_buffer"):
        model.load_replay_buffer(replay)
    # Fresh episodes for the rest of the run, reproducible from (seed, checkpoint).
    model.set_random_seed(cfg.seed + int(model.num_timesteps))
    return model


def evaluation_setup(
    cfg: TrainConfig, scenario: Scenario, eval_dir: Path
) -> tuple[list[Any], list[float], list[float]]:
    """The fixed evaluation episodes of a run, their oracle costs (cached beside them, or in
    ``cfg.oracle_cache``) and the greedy heuristic's costs (the reference)."""
    seeds = evaluation_seeds(cfg.seed, cfg.eval_episodes)
    instances = evaluation_instances(scenario, seeds, cfg.eval_tasks, eval_dir)
    oracle: list[float] = []
    cache = Path(cfg.oracle_cache) if cfg.oracle_cache is not None else eval_dir
    for inst in instances:
        oracle.append(cached_oracle(inst, cache, cfg.oracle_time_limit_s).objective_usd)
    greedy = [
        evaluate_plan(i, p).total_usd
        for i, p in zip(instances, play(_greedy_batch(instances), instances, cfg.reward_scale), strict=True)
    ]
    return instances, oracle, greedy


def _greedy_batch(instances: list[Any]) -> Any:
    """The greedy heuristic as a batched policy (it only reads the observation and the mask)."""
    from baselines.heuristics import make_heuristic

    h = make_heuristic("greedy", instances[0])

    def act(obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return np.array([h.act(o, m) for o, m in zip(obs, mask, strict=True)], dtype=np.int64)

    return act


def _prune_eval_log(log_csv: Path, steps: int) -> None:
    """Drop evaluation rows past ``steps``: a session that ended after its last checkpoint (killed, say)
    left rows for a part of the run that the resume trains again."""
    if log_csv.is_file():
        import pandas as pd

        log = pd.read_csv(log_csv)
        log[log["timesteps"] <= steps].to_csv(log_csv, index=False)


def train(
    cfg: TrainConfig,
    resume: bool = False,
    scenario: Scenario | None = None,
    log: Any = print,
    on_eval: Callable[[dict[str, float]], None] | None = None,
) -> TrainResult:
    """Train (or, with ``resume``, continue) the run ``cfg.out``; see the module docstring for its files.

    ``scenario`` overrides ``cfg.scenario`` (for scenarios built in code; such a run cannot be resumed from
    the command line, which reloads the scenario by name). ``on_eval`` is called with each evaluation's row
    of ``eval/log.csv`` as it is written.
    """
    if scenario is not None and cfg.algo in RLLIB_ALGOS:
        raise ValueError(
            f"algo {cfg.algo!r} with a scenario built in code: RLlib builds its envs from TrainConfig.scenario in "
            "its own processes; expected a scenario name, task or TOML path there instead"
        )
    out = Path(cfg.out)
    cfg_path = out / "config.json"
    ckpt_dir, eval_dir, tb = out / "checkpoints", out / "eval", out / "tb"
    ckpt = None
    if resume:
        if not cfg_path.is_file():
            raise ValueError(f"--resume: {cfg_path} does not exist (expected the folder of an earlier run)")
        stored = TrainConfig.from_json(json.loads(cfg_path.read_text()))
        fixed: tuple[str, ...] = (
            "algo",
            "policy",
            "scenario",
            "seed",
            "num_envs",
            "vec_backend",
            "num_tasks",
            "norm_obs",
            "norm_reward",
            "hidden",
            "reward_scale",
        )
        if cfg.algo in (*IMITATION_ALGOS, *RLLIB_ALGOS):  # rounds, learning-rate schedule (RLlib keeps its own)
            fixed = (*fixed, "timesteps")
        diff = [
            f"{k}: run has {getattr(stored, k)!r}, asked {getattr(cfg, k)!r}"
            for k in fixed
            if getattr(stored, k) != getattr(cfg, k)
        ]
        if cfg.algo in (*IMITATION_ALGOS, *RLLIB_ALGOS):
            diff += _hyperparam_differences(cfg, stored, out / "hyperparams.json")
        if diff:
            raise ValueError("--resume with settings that differ from the run's config.json: " + "; ".join(diff))
        ckpt = latest_checkpoint(ckpt_dir)
        if ckpt is None:
            raise ValueError(f"--resume: no checkpoint in {ckpt_dir}")
    elif cfg_path.is_file() and latest_checkpoint(ckpt_dir) is not None:
        raise ValueError(f"{out} already holds a run: pass --resume to continue it, or choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    cfg_path.write_text(json.dumps(cfg.to_json(), indent=2))
    if not resume:  # what the run started with (a resumed SB3 run keeps its checkpoint's)
        (out / "hyperparams.json").write_text(json.dumps(hyperparams_of(cfg), indent=2))

    if scenario is not None:
        scen = eval_scen = scenario
    elif cfg.scenario in TASKS:  # a benchmark task: train on its training days, evaluate on its validation days
        scen, eval_scen = TASKS[cfg.scenario].scenario("train"), TASKS[cfg.scenario].scenario("validation")
    else:
        scen = eval_scen = Scenario.load(cfg.scenario)
    with torch_threads(cfg.torch_threads):  # small networks: one thread per process is fastest on few cores
        if cfg.algo in IMITATION_ALGOS:
            return run_imitation(cfg, scen, eval_scen, out, ckpt, log, on_eval)
        if cfg.algo in RLLIB_ALGOS:
            from agents.rllib import run_rllib

            return run_rllib(cfg, scen, eval_scen, out, ckpt, log, on_eval)
        return _train(cfg, scen, eval_scen, out, ckpt, ckpt_dir, eval_dir, tb, log, on_eval)


def _hyperparam_differences(cfg: TrainConfig, stored: TrainConfig, hp_path: Path) -> list[str]:
    """Why a bc, dagger or rllib_ppo run may not resume with ``cfg`` (its hyperparameters), or nothing.

    With the run's ``hyperparams.json``, the values as resolved must match (task defaults may have changed
    since; an override may be spelled differently: a key given at its default). Without it (a run from before
    the file), the overrides as given. Either way a key of ``ADDED_SINCE`` that the run lacks is one added
    since: the run had it at the value of its former behaviour, and goes on only with that value.
    """
    added = {k: v for k, v in ADDED_SINCE.items() if k in ALGO_DEFAULTS[cfg.algo]}
    diff = []
    if hp_path.is_file():
        started = {**ALGO_DEFAULTS[cfg.algo], **added, **json.loads(hp_path.read_text())}
        now = hyperparams_of(cfg)
        kwargs = (stored.hyperparams.get("policy_kwargs"), cfg.hyperparams.get("policy_kwargs"))  # not in the file
        if kwargs[0] != kwargs[1]:
            diff.append(f"hyperparams' policy_kwargs: run has {kwargs[0]!r}, asked {kwargs[1]!r}")
    else:

        def given(hp: Mapping[str, Any]) -> dict[str, Any]:  # a key given at its former value: as if not given
            return {k: v for k, v in hp.items() if not (k in added and v == added[k])}

        if given(stored.hyperparams) != given(cfg.hyperparams):
            diff.append(f"hyperparams: run has {dict(stored.hyperparams)!r}, asked {dict(cfg.hyperparams)!r}")
        started = {k: v for k, v in added.items() if k not in stored.hyperparams}
        now = {k: hyperparams_of(cfg)[k] for k in started}
    return diff + [
        f"hyperparams.json's {k}: run has {started.get(k)!r}, now {now.get(k)!r} "
        f"(pass --hp {k}={json.dumps(started.get(k))} to go on as the run began)"
        for k in sorted(set(started) | set(now))
        if started.get(k) != now.get(k)
    ]


def _train(
    cfg: TrainConfig,
    scen: Scenario,
    eval_scen: Scenario,
    out: Path,
    ckpt: Path | None,
    ckpt_dir: Path,
    eval_dir: Path,
    tb: Path,
    log: Any,
    on_eval: Callable[[dict[str, float]], None] | None = None,
) -> TrainResult:
    venv = build_env(cfg, scen)
    wall0 = env0 = 0.0
    if ckpt is not None:
        norm_path = ckpt.with_name(ckpt.name.removesuffix(".zip") + ".vecnormalize.pkl")
        if isinstance(venv, VecNormalize) and norm_path.is_file():
            venv = VecNormalize.load(str(norm_path), venv.venv)
        model = _load_model(cfg, ckpt, venv, tb)
        state = json.loads(ckpt.with_name(ckpt.name.removesuffix(".zip") + ".json").read_text())
        wall0, env0 = float(state["wall_s"]), float(state["env_s"])
        _prune_eval_log(eval_dir / "log.csv", int(model.num_timesteps))
        log(f"resuming {out} from {ckpt.name} at {model.num_timesteps} steps")
    else:
        model = _new_model(cfg, venv, scen, tb)
    remaining = cfg.timesteps - int(model.num_timesteps)
    clock = RunClock(wall0, env0)
    checkpoint = Checkpoint(ckpt_dir, cfg.checkpoint_every, clock)
    callbacks: list[Any] = [clock, checkpoint, ProgressBar(cfg.timesteps, cfg.progress_bar)]
    evaluator = None
    if cfg.eval_every > 0 and cfg.eval_episodes > 0:
        instances, oracle, greedy = evaluation_setup(cfg, eval_scen, eval_dir)
        evaluator = RegretEval(
            instances,
            oracle,
            greedy,
            cfg.eval_every,
            eval_dir / "log.csv",
            out / "best_model.zip",
            cfg.algo,
            clock,
            on_eval,
            first=cfg.init_from is not None,  # the clone is a candidate: fine-tuning may only make it worse
        )
        callbacks.append(evaluator)
    limit = WallClockLimit(cfg.max_minutes * 60) if cfg.max_minutes is not None else None
    if limit is not None:
        callbacks.append(limit)
    session0 = int(model.num_timesteps)
    t = time.perf_counter()
    if remaining > 0:
        model.learn(
            total_timesteps=remaining,
            callback=callbacks,
            reset_num_timesteps=ckpt is None,
            tb_log_name=cfg.algo,
            progress_bar=False,
        )
    session_s = time.perf_counter() - t
    if evaluator is not None and remaining > 0:
        evaluator.evaluate()  # the final policy, after the last update
    if remaining > 0:
        checkpoint.save()
    save_run_state(model, out / "model.zip", clock)
    venv.close()
    return TrainResult(
        out,
        out / "model.zip",
        int(model.num_timesteps),
        int(model.num_timesteps) - session0,
        clock.wall_s,
        clock.env_s,
        session_s,
        bool(limit is not None and limit.stopped),
        evaluator.history if evaluator is not None else [],
    )
