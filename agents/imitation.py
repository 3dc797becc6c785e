"""Imitation of an expert, the hindsight oracle (default) or the online MPC: behaviour cloning (``bc``) and DAgger
(``dagger``) for the region policy.

Both train the actor-critic of MaskablePPO with the region net (:class:`agents.policies.MaskableRegionPolicy`)
by supervised learning, and save it as a MaskablePPO model: ``geoinfer evaluate``, ``geoinfer benchmark`` and
RL fine-tuning (``TrainConfig.init_from``) read it like any other run's model.

* **Behaviour cloning.** Training days are drawn from the task's train split, each solved by the hindsight
  oracle (:func:`baselines.milp.cached_oracle`, kept by episode content), and its plan is replayed through
  the env's dynamics (:func:`envs.dynamics.trace`): every step gives a sample (observation, action mask, the
  oracle's action, and the discounted return of the oracle's plan from that step, for the critic). The
  loss is the cross-entropy of the masked policy on the oracle's action plus ``value_coef`` times the
  critic's squared error on the returns over their standard deviation. The oracle plans with
  ``expert_capacity`` of each slot's capacity (0.85): the exact optimum packs scarce regions on knowledge
  of later arrivals that a clone does not have.
* **DAgger.** Round 0 is behaviour cloning on ``demo_steps`` env steps of oracle days. Each later round
  plays the current policy (deterministic, as evaluated) on ``round_steps`` env steps of new training days
  and relabels the states it reached: at ``solves_per_day`` points ``p`` of each day, the learner's first
  ``p`` placements are fixed and the oracle solves the rest of the day (``solve_hindsight(fixed=...)``).
  Its first action is the expert's label at the learner's state ``p``; the states its continuation then
  visits up to the next point are labelled by the same solve (each action of an optimal continuation is
  the optimum of what remains after the ones before it). The samples of all rounds are aggregated and
  the policy trained ``epochs`` more epochs on them each round.
* **The online MPC as expert** (``expert="mpc"``): :class:`baselines.mpc.OnlineMPC` is online, as the learner:
  it knows no task before it arrives, where the oracle's plans rest on every later arrival. It reads more of
  the forecast than the observation shows (the window's later hours, not only the current one) and the
  replicas of every model.
  Round 0's days are played by the MPC; a DAgger round labels *every* step of the learner's days with the
  MPC's choice in the state the learner reached (``OnlineMPC.plan(inst, follow=plan)``), and the critic
  learns the learner's own returns. No oracle solution is used; the clock's oracle time is the MPC's.

Budgets are counted in env steps (``TrainConfig.timesteps``: the expert's days' steps and the learner's
rollout steps) and in oracle solutions (none with the MPC); the run's ``config.json`` holds every setting.
Every random draw (days, relabelling points, minibatches) derives from ``(seed, round, epoch or day)``, so a run resumed
from a checkpoint continues exactly as the uninterrupted run would have.

Run folder (as the SB3 algorithms', see :mod:`agents.train`)::

    OUT/config.json, OUT/hyperparams.json, OUT/tb/, OUT/eval/log.csv, OUT/best_model.zip, OUT/model.zip
    OUT/data/round_<RRR>.npz            the samples of each round (observations, masks, labels, returns)
    OUT/checkpoints/step_<N>_round_<RRR>_epoch_<EEEE>.zip (+ .json: round, epoch, clocks, solves), written
        once a round's samples are in (epoch 0000), after every epoch and when a session stops
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from baselines.milp import cached_oracle, solve_hindsight
from baselines.mpc import OnlineMPC
from envs.costs import slot_usage_gpu_s
from envs.dynamics import ObsLayout, Trace, trace
from envs.instance import Instance
from envs.scenario import Scenario
from envs.workload import sample_instance

if TYPE_CHECKING:
    from agents.train import TrainConfig, TrainResult

IMITATION_ALGOS = ("bc", "dagger")
EXPERTS = ("oracle", "mpc")

# Hyperparameters (TrainConfig.hyperparams overrides any of them). learning_rate also takes "lin_<start>":
# linear decay to 0 over all the run's epochs. epochs: passes over the samples (BC), per round (DAgger).
_BC_DEFAULTS: dict[str, Any] = {
    "learning_rate": "lin_1e-3",  # linear decay to 0 over all the run's epochs
    "batch_size": 256,
    "epochs": 10,
    "value_coef": 0.5,  # weight of the critic's loss (its targets: the expert's discounted returns)
    # The share of each slot's capacity the oracle plans with. The oracle knows every later arrival and packs
    # scarce regions to the last GPU-second; a clone, which cannot know them, overflows the tight tasks its
    # early placements crowded out (contended: 35-44% regret at 1.0, 6-9% at 0.85, the one value tried).
    "expert_capacity": 0.85,
    # Who labels the states: "oracle" (the hindsight optimum, with expert_capacity) or "mpc" (the online MPC of
    # baselines.mpc, online as the learner is: it knows no task before it arrives; DAgger relabels every step).
    "expert": "oracle",
    "gamma": 0.99,  # discount of those returns, as PPO's fine-tuning uses it (per task: agents.train.TASK_DEFAULTS)
    "max_grad_norm": 0.5,
    # Weight of a label that opens a replica in the cross-entropy (label_weights). An expert opens one at 1-2% of
    # its steps (hubs), and a clone trained unweighted never does: on hubs' validation days, 102% regret after
    # 50k env steps of the MPC's days, 14% with 5 (DAgger of the MPC, seed 0; 5 the one value tried).
    "replica_weight": 5.0,
}
# Keys added after runs had begun, with the value that gives the behaviour such a run had without them: a
# run whose hyperparams.json lacks one resumes with that value (agents.train).
ADDED_SINCE: dict[str, Any] = {"expert": "oracle", "replica_weight": 1.0}
IMITATION_DEFAULTS: dict[str, dict[str, Any]] = {
    "bc": dict(_BC_DEFAULTS),
    "dagger": {
        **_BC_DEFAULTS,
        "epochs": 5,
        "demo_steps": 50_000,  # round 0: env steps of the expert's days (behaviour cloning)
        "round_steps": 25_000,  # each later round: env steps the learner plays
        "solves_per_day": 16,  # relabelling solves per learner day
        "solve_time_limit": 30.0,  # s per relabelling solve
    },
}


def check_imitation_hyperparams(algo: str, timesteps: int, hyperparams: Mapping[str, Any]) -> None:
    """``ValueError`` naming the first bad value among ``algo``'s hyperparameters (unknown keys are the caller's)."""
    hp = {**IMITATION_DEFAULTS[algo], **hyperparams}

    def need(ok: bool, name: str, expected: str) -> None:
        if not ok:
            raise ValueError(f"TrainConfig.hyperparams[{name!r}] = {hp[name]!r}: expected {expected}")

    def integer(name: str) -> bool:
        return isinstance(hp[name], int) and not isinstance(hp[name], bool) and hp[name] >= 1

    def number(name: str) -> bool:
        return isinstance(hp[name], int | float) and not isinstance(hp[name], bool) and math.isfinite(hp[name])

    counts = ("epochs", "batch_size", "demo_steps", "round_steps", "solves_per_day")
    for name in (n for n in counts if n in hp):
        need(integer(name), name, "an integer >= 1")
    need(number("gamma") and 0 < hp["gamma"] <= 1, "gamma", "a number in (0, 1]")
    need(number("value_coef") and hp["value_coef"] >= 0, "value_coef", "a number >= 0")
    need(number("max_grad_norm") and hp["max_grad_norm"] > 0, "max_grad_norm", "a number > 0")
    need(number("replica_weight") and hp["replica_weight"] > 0, "replica_weight", "a number > 0")
    need(number("expert_capacity") and 0 < hp["expert_capacity"] <= 1, "expert_capacity", "a share in (0, 1]")
    need(hp["expert"] in EXPERTS, "expert", f"one of {EXPERTS}")
    if algo == "dagger":
        need(number("solve_time_limit") and hp["solve_time_limit"] > 0, "solve_time_limit", "a number of seconds > 0")
        need(
            timesteps > hp["demo_steps"],
            "demo_steps",
            f"fewer than timesteps = {timesteps} (round 0's expert days; the rest are the learner's rounds)",
        )


def day_seed(seed: int, round_: int, day: int) -> int:
    """The reset seed of training day ``day`` of round ``round_`` of a run seeded ``seed``."""
    return int(np.random.SeedSequence([seed, 0x1D1A, round_, day]).generate_state(1, np.uint32)[0])


# ----------------------------------------------------------------------------------------- samples
@dataclass(frozen=True, slots=True)
class Samples:
    """Labelled states: observation ``[N, D]``, mask ``[N, R + 1]``, expert action ``[N]``, and the discounted
    return (reward units) from that state ``[N]`` of the plan that was played (the expert's, or with the MPC's
    relabelling the learner's)."""

    obs: NDArray[np.float32]
    mask: NDArray[np.bool_]
    action: NDArray[np.int64]
    ret: NDArray[np.float32]

    def __len__(self) -> int:
        return int(self.action.size)

    @classmethod
    def concat(cls, parts: Sequence[Samples]) -> Samples:
        if not parts:
            raise ValueError("no samples")
        return cls(
            np.concatenate([p.obs for p in parts]),
            np.concatenate([p.mask for p in parts]),
            np.concatenate([p.action for p in parts]),
            np.concatenate([p.ret for p in parts]),
        )

    @classmethod
    def of(cls, tr: Trace, reward_scale: float, gamma: float, rows: slice = slice(None)) -> Samples:
        """The rows ``rows`` of a trace, labelled with its own actions; returns discounted from each row on."""
        ret = discounted_returns(-reward_scale * tr.cost_usd, gamma)
        return cls(tr.obs[rows], tr.mask[rows], tr.action[rows], ret[rows].astype(np.float32))

    def opens_replica(self, layout: ObsLayout) -> NDArray[np.bool_]:
        """``[N]`` whether each label opens a replica: serves the task in a region where its model is cold."""
        warm = layout.warm(self.obs)
        served = np.flatnonzero(self.action < warm.shape[1])
        out = np.zeros(self.action.size, dtype=bool)
        out[served] = ~warm[served, self.action[served]]
        return out

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez_compressed(tmp, obs=self.obs, mask=self.mask, action=self.action, ret=self.ret)
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> Samples:
        with np.load(path) as z:
            return cls(z["obs"], z["mask"], z["action"], z["ret"])


def label_weights(data: Samples, layout: ObsLayout, replica_weight: float) -> NDArray[np.float32] | None:
    """The cross-entropy's weight of each sample: ``replica_weight`` where its label opens a replica, 1 elsewhere
    (None when all are 1). Openings are rare (1-2% of an expert's steps on hubs) and each decides a window of
    tasks, so an unweighted clone learns never to open one (see ``replica_weight`` in the defaults)."""
    if replica_weight == 1.0:
        return None
    return np.where(data.opens_replica(layout), replica_weight, 1.0).astype(np.float32)


def discounted_returns(rewards: NDArray[np.float64], gamma: float) -> NDArray[np.float64]:
    """``G_k = sum_{j >= k} gamma^(j - k) r_j`` for every step k of one episode."""
    out = np.empty_like(rewards, dtype=np.float64)
    g = 0.0
    for k in range(rewards.size - 1, -1, -1):
        g = float(rewards[k]) + gamma * g
        out[k] = g
    return out


# ------------------------------------------------------------------------------------------- labels
@dataclass(frozen=True, slots=True)
class Relabelled:
    """The expert's labels for one learner day: the samples and what they cost."""

    samples: Samples
    points: NDArray[np.int64]  # where the learner's prefix was fixed and the rest solved
    continuations: list[NDArray[np.int64]]  # per point: the learner's prefix, then the oracle's best rest
    solves: int
    solve_s: float
    replay_s: float
    worst_gap: float


def relabel(
    inst: Instance,
    learner_plan: NDArray[np.int64],
    points: ArrayLike,
    *,
    reward_scale: float,
    gamma: float,
    time_limit_s: float | None = None,
    expert_capacity: float = 1.0,
) -> Relabelled:
    """DAgger's labels for the states a learner reached on ``inst`` (see the module docstring).

    For each point ``p`` (sorted, distinct, in ``[0, K)``) the learner's actions ``learner_plan[:p]`` are
    fixed and :func:`solve_hindsight` gives the best continuation; the states from ``p`` to the next point
    along that continuation are labelled with its actions. The state at ``p`` is the learner's own.
    ``expert_capacity``: the share of capacity the oracle plans with (:func:`expert_view`).
    """
    K = inst.num_tasks
    pts = np.unique(np.asarray(points, dtype=np.int64))
    if pts.size and (pts[0] < 0 or pts[-1] >= K):
        raise ValueError(f"points: expected indices in [0, {K}), got {pts.min()}..{pts.max()}")
    if pts.size == 0:
        return Relabelled(_empty(inst), pts, [], 0, 0.0, 0.0, 0.0)
    parts: list[Samples] = []
    plans: list[NDArray[np.int64]] = []
    solve_s = replay_s = 0.0
    worst = 0.0
    ends = [*pts[1:].tolist(), K]
    for p, q in zip(pts.tolist(), ends, strict=True):
        t = time.perf_counter()
        prefix = learner_plan[:p]
        res = solve_hindsight(expert_view(inst, expert_capacity, prefix), time_limit_s=time_limit_s, fixed=prefix)
        solve_s += time.perf_counter() - t
        worst = max(worst, float(res.mip_gap))
        plans.append(res.plan)
        t = time.perf_counter()
        parts.append(Samples.of(trace(inst, res.plan, reward_scale), reward_scale, gamma, slice(p, q)))
        replay_s += time.perf_counter() - t
    return Relabelled(Samples.concat(parts), pts, plans, int(pts.size), solve_s, replay_s, worst)


def _empty(inst: Instance) -> Samples:
    D, A = ObsLayout.of(inst).size, inst.num_regions + 1
    return Samples(np.empty((0, D), np.float32), np.empty((0, A), bool), np.empty(0, np.int64), np.empty(0, np.float32))


def expert_view(inst: Instance, share: float, prefix: NDArray[np.int64] | None = None) -> Instance:
    """The episode the oracle plans: ``inst`` with each slot's capacity scaled by ``share``, but never below
    what ``prefix`` (placements already made, DAgger's learner's) uses, so that the prefix still fits."""
    if share == 1.0:
        return inst
    capacity = inst.capacity_gpu_s * share
    if prefix is not None and prefix.size:
        plan = np.full(inst.num_tasks, inst.overflow_action, dtype=np.int64)
        plan[: prefix.size] = prefix
        capacity = np.maximum(capacity, slot_usage_gpu_s(inst, plan))
    return inst.replace(capacity_gpu_s=capacity)


def relabel_points(num_tasks: int, per_day: int, rng: np.random.Generator) -> NDArray[np.int64]:
    """``per_day`` points spread evenly over a day of ``num_tasks`` tasks, with a random offset."""
    n = min(per_day, num_tasks)
    if n <= 0:
        return np.empty(0, dtype=np.int64)
    return np.unique(np.floor((np.arange(n) + rng.random()) * num_tasks / n).astype(np.int64))


# -------------------------------------------------------------------------------------------- training
def supervised_epoch(
    policy: Any,
    data: Samples,
    *,
    batch_size: int,
    lr: float,
    value_coef: float,
    max_grad_norm: float,
    seed: Any,
    value_scale: float = 1.0,
    weight: NDArray[np.float32] | None = None,
) -> dict[str, float]:
    """One pass over ``data`` in shuffled minibatches: masked cross-entropy on the expert's action (a mean
    weighted by ``weight [N]`` if given, :func:`label_weights`) plus ``value_coef`` x the critic's squared error
    on ``ret / value_scale``. Returns the mean losses (the cross-entropy as weighted) and the accuracy (argmax
    = label, unweighted).

    The run passes the returns' standard deviation as ``value_scale``: the scale at which MaskablePPO's
    ``VecNormalize`` shows rewards to its critic, and a loss of the cross-entropy's order. On raw returns
    (a day's standard deviation is tens of reward units) the critic's gradient, through the encoder both
    heads share, swamps the actor's.
    """
    import torch as th

    rng = np.random.default_rng(seed)
    policy.set_training_mode(True)
    for group in policy.optimizer.param_groups:
        group["lr"] = lr
    n = len(data)
    perm = rng.permutation(n)
    sums = {"nll": 0.0, "value_loss": 0.0, "accuracy": 0.0}
    for lo in range(0, n, batch_size):
        idx = perm[lo : lo + batch_size]
        obs = th.as_tensor(data.obs[idx])
        mask = th.as_tensor(data.mask[idx])
        act = th.as_tensor(data.action[idx])
        ret = th.as_tensor(data.ret[idx] / value_scale)
        logits, latent_vf = policy.mlp_extractor(policy.features_extractor(obs))
        logp = th.log_softmax(logits.masked_fill(~mask, -math.inf), dim=1)
        if weight is None:
            nll = -logp.gather(1, act[:, None]).mean()
        else:
            w = th.as_tensor(weight[idx])
            nll = -(w * logp.gather(1, act[:, None]).squeeze(1)).sum() / w.sum()
        value_loss = th.mean((policy.value_net(latent_vf).squeeze(1) - ret) ** 2)
        loss = nll + value_coef * value_loss
        policy.optimizer.zero_grad()
        loss.backward()
        th.nn.utils.clip_grad_norm_(policy.parameters(), max_grad_norm)
        policy.optimizer.step()
        m = idx.size
        sums["nll"] += float(nll.detach()) * m
        sums["value_loss"] += float(value_loss.detach()) * m
        sums["accuracy"] += float((logp.argmax(1) == act).float().sum())
    policy.set_training_mode(False)
    return {k: v / max(n, 1) for k, v in sums.items()}


@dataclass
class Clock:
    """Wall time of a run and where it went (env replay and rollouts, the expert: oracle solves or MPC plans,
    network), cumulated over its sessions. Seconds."""

    wall0: float = 0.0
    env_s: float = 0.0
    oracle_s: float = 0.0
    net_s: float = 0.0
    start: float = 0.0

    def begin(self) -> None:
        self.start = time.perf_counter()

    @property
    def wall_s(self) -> float:
        return self.wall0 + (time.perf_counter() - self.start if self.start else 0.0)


def _checkpoint_name(steps: int, round_: int, epochs_done: int) -> str:
    """``step_<N>_round_<R>_epoch_<E>.zip``, E the round's epochs done (0: its samples collected, no epoch
    yet): names sort in the order they were written."""
    return f"step_{steps:012d}_round_{round_:03d}_epoch_{epochs_done:04d}.zip"


@dataclass
class _Progress:
    """Where an imitation run stands; a checkpoint's sidecar holds it."""

    round: int = 0
    epoch: int = -1  # the last epoch done in ``round`` (-1: none yet)
    collected: bool = False  # ``round``'s samples are in ``data/``
    solves: int = 0
    evaluations: int = 0


def run_imitation(
    cfg: TrainConfig,
    scen: Scenario,
    eval_scen: Scenario,
    out: Path,
    ckpt: Path | None,
    log: Callable[[str], Any],
    on_eval: Callable[[dict[str, float]], None] | None = None,
) -> TrainResult:
    """Train ``cfg`` (algo ``bc`` or ``dagger``) in ``out``, from ``ckpt`` when resuming; see the module doc.
    ``on_eval``: called with each evaluation's row (:class:`agents.callbacks.RegretEval`)."""
    from stable_baselines3.common.logger import configure

    from agents.callbacks import save_run_state
    from agents.train import TrainResult, hyperparams_of

    hp = hyperparams_of(cfg)
    ckpt_dir, eval_dir, data_dir = out / "checkpoints", out / "eval", out / "data"
    venv = masked_venv(cfg, scen)
    model, clock, at = _start(cfg, scen, venv, ckpt)
    parts = [Samples.load(data_dir / f"round_{r:03d}.npz") for r in range(at.round + at.collected)]
    if ckpt is not None:
        _prune_log(eval_dir / "log.csv", at.evaluations)
        done = f"round {at.round}, {at.epoch + 1} epochs done"
        log(f"resuming {out} from {ckpt.name} at {model.num_timesteps} steps ({done})")
    model.set_logger(configure(str(out / "tb" / f"{cfg.algo}_1"), ["tensorboard"]))
    evaluator = run_evaluator(cfg, eval_scen, out, model, clock, on_eval)
    cache = Path(cfg.oracle_cache) if cfg.oracle_cache is not None else out / "oracle"
    rounds, epochs = _num_rounds(cfg, hp), int(hp["epochs"])
    lr_of = _lr_schedule(hp["learning_rate"])
    clock.begin()
    session_steps0 = int(model.num_timesteps)
    deadline = math.inf if cfg.max_minutes is None else time.perf_counter() + 60 * cfg.max_minutes
    saved = ckpt

    def save(path: Path) -> Path:
        save_run_state(model, path, clock, {**dataclasses.asdict(at), "oracle_s": clock.oracle_s, "net_s": clock.net_s})
        return path

    def checkpoint() -> Path:
        return save(ckpt_dir / _checkpoint_name(int(model.num_timesteps), at.round, at.epoch + 1))

    stopped = False
    while not stopped and (at.round < rounds - 1 or not at.collected or at.epoch < epochs - 1):
        if at.collected and at.epoch == epochs - 1:  # the round is done: the next one
            at = dataclasses.replace(at, round=at.round + 1, epoch=-1, collected=False)
        if not at.collected:
            got = _collect(cfg, hp, scen, model, at.round, cache, clock, log, deadline)
            if got is None:
                stopped = True
                break
            samples, steps, n_solves = got
            samples.save(data_dir / f"round_{at.round:03d}.npz")
            parts.append(samples)
            model.num_timesteps += steps
            at = dataclasses.replace(at, collected=True, solves=at.solves + n_solves)
            if cfg.checkpoint_every > 0:
                saved = checkpoint()
        data = Samples.concat(parts)
        value_scale = float(data.ret.std()) or 1.0
        weight = label_weights(data, ObsLayout.of(scen), float(hp["replica_weight"]))
        for e in range(at.epoch + 1, epochs):
            if time.perf_counter() > deadline:
                stopped = True
                break
            lr = lr_of(1.0 - (at.round * epochs + e) / (rounds * epochs))
            stats = _epoch(model, data, hp, lr, [cfg.seed, 0xBA7C, at.round, e], value_scale, clock, weight)
            model.logger.record("train/oracle_solves", at.solves)
            evaluate = evaluator is not None and (e == epochs - 1 or cfg.algo == "bc")
            at = dataclasses.replace(at, epoch=e, evaluations=at.evaluations + evaluate)
            if evaluator is not None and evaluate:
                evaluator.evaluate()  # dumps the logger at this step
            else:
                model.logger.dump(int(model.num_timesteps))
            if cfg.verbose:
                log(f"round {at.round} epoch {e}: {len(data)} samples, accuracy {stats['accuracy']:.4f}")
            if cfg.checkpoint_every > 0:
                saved = checkpoint()
    if saved is None or saved.name != _checkpoint_name(int(model.num_timesteps), at.round, at.epoch + 1):
        checkpoint()  # the session's end, so that --resume goes on from here
    save(out / "model.zip")
    venv.close()
    return TrainResult(
        out,
        out / "model.zip",
        int(model.num_timesteps),
        int(model.num_timesteps) - session_steps0,
        clock.wall_s,
        clock.env_s,
        time.perf_counter() - clock.start,
        stopped,
        evaluator.history if evaluator is not None else [],
        oracle_s=clock.oracle_s,
        oracle_solves=at.solves,
        net_s=clock.net_s,
    )


def run_evaluator(
    cfg: TrainConfig,
    eval_scen: Scenario,
    out: Path,
    model: Any,
    clock: Clock,
    on_eval: Callable[[dict[str, float]], None] | None = None,
) -> Any:
    """The run's evaluation on its fixed validation days (:class:`agents.callbacks.RegretEval`), or None."""
    from agents.callbacks import RegretEval
    from agents.train import evaluation_setup

    if cfg.eval_every <= 0 or cfg.eval_episodes <= 0:
        return None
    instances, oracle, greedy = evaluation_setup(cfg, eval_scen, out / "eval")
    log_csv, best = out / "eval" / "log.csv", out / "best_model.zip"
    evaluator = RegretEval(instances, oracle, greedy, 0, log_csv, best, cfg.algo, clock, on_eval)
    evaluator.init_callback(model)
    return evaluator


def _epoch(
    model: Any,
    data: Samples,
    hp: dict[str, Any],
    lr: float,
    seed: Any,
    value_scale: float,
    clock: Clock,
    weight: NDArray[np.float32] | None,
) -> dict[str, float]:
    """One supervised epoch of ``model``'s policy, timed as the network's, its figures recorded for TensorBoard."""
    t = time.perf_counter()
    stats = supervised_epoch(
        model.policy,
        data,
        batch_size=int(hp["batch_size"]),
        lr=lr,
        value_coef=float(hp["value_coef"]),
        max_grad_norm=float(hp["max_grad_norm"]),
        seed=seed,
        value_scale=value_scale,
        weight=weight,
    )
    clock.net_s += time.perf_counter() - t
    for k, v in stats.items():
        model.logger.record(f"train/{k}", v)
    model.logger.record("train/learning_rate", lr)
    model.logger.record("train/samples", len(data))
    return stats


def _start(cfg: TrainConfig, scen: Scenario, venv: Any, ckpt: Path | None) -> tuple[Any, Clock, _Progress]:
    """The model, the clock and where the run stands: fresh, or as the checkpoint ``ckpt`` left them."""
    from sb3_contrib import MaskablePPO

    from agents.train import policy_spec

    if ckpt is None:
        policy, kwargs = policy_spec(cfg, scen)
        model = MaskablePPO(policy, venv, policy_kwargs=kwargs, seed=cfg.seed, device="cpu")
        model.num_timesteps = 0
        return model, Clock(), _Progress()
    model = MaskablePPO.load(ckpt, env=venv, device="cpu")
    state = json.loads(ckpt.with_name(ckpt.name.removesuffix(".zip") + ".json").read_text())
    clock = Clock(state["wall_s"], state["env_s"], state["oracle_s"], state["net_s"])
    at = _Progress(**{f.name: state[f.name] for f in dataclasses.fields(_Progress)})
    return model, clock, at


def _num_rounds(cfg: TrainConfig, hp: dict[str, Any]) -> int:
    """BC: one round. DAgger: round 0 (``demo_steps``), then rounds of ``round_steps`` up to ``timesteps``."""
    if cfg.algo == "bc":
        return 1
    rest = max(0, cfg.timesteps - int(hp["demo_steps"]))
    return 1 + math.ceil(rest / int(hp["round_steps"]))


def _lr_schedule(value: Any) -> Callable[[float], float]:
    from agents.train import schedule

    s = schedule(value)
    return s if callable(s) else (lambda _p: float(s))


def masked_venv(cfg: TrainConfig, scen: Scenario) -> Any:
    """The env a MaskablePPO model is built on (its spaces): one episode, masks enforced."""
    from agents.vec import make_vec_env

    return make_vec_env(
        scen, 1, "batch", num_tasks=cfg.num_tasks, invalid_action="raise", reward_scale=cfg.reward_scale
    )


def _collect(
    cfg: TrainConfig,
    hp: dict[str, Any],
    scen: Scenario,
    model: Any,
    round_: int,
    cache: Path,
    clock: Clock,
    log: Callable[[str], Any],
    deadline: float = math.inf,
) -> tuple[Samples, int, int] | None:
    """Round ``round_``'s samples: the expert's days (round 0) or the learner's relabelled days; also the env
    steps it played and the oracle solutions it used (one per oracle day, one per relabelling point; a day's
    solution read back from the cache counts too; none with the MPC). ``None`` if the deadline passed before
    the round ended. The MPC is built on the training scenario: its sample tasks come from the train split.

    The round's days are drawn first (until their tasks reach its budget), the learner plays them all in one
    batch, and the expert's work on them runs on ``cfg.expert_workers`` processes; the samples come back in day
    order, so a run is the same whatever the number of workers (as long as no oracle solve stops at its time
    limit). The deadline is checked before the round, after the learner's play and after each day (with
    several workers, the days in flight then finish first)."""
    from agents.evaluate import Agent, play
    from benchmark.parallel import pmap

    if time.perf_counter() > deadline:
        return None
    demo = min(int(hp.get("demo_steps", cfg.timesteps)), cfg.timesteps)
    if round_ == 0:
        budget = demo
    else:  # the last round stops at the run's budget
        budget = min(int(hp["round_steps"]), cfg.timesteps - demo - (round_ - 1) * int(hp["round_steps"]))
    t = time.perf_counter()
    days: list[Instance] = []
    steps = 0
    while steps < budget and len(days) < budget:  # (a day may have no task)
        days.append(sample_instance(scen, seed=day_seed(cfg.seed, round_, len(days)), num_tasks=cfg.num_tasks))
        steps += days[-1].num_tasks
    plans: list[NDArray[np.int64] | None] = [None] * len(days)
    if round_ > 0:
        plans = list(play(Agent.from_model(model, "maskable_ppo").act_batch, days, cfg.reward_scale))
    clock.env_s += time.perf_counter() - t
    if time.perf_counter() > deadline:
        return None
    t = time.perf_counter()
    mpc = OnlineMPC(scen) if hp["expert"] == "mpc" else None
    jobs = [
        (inst, plan, hp, mpc, cache, cfg.reward_scale, cfg.oracle_time_limit_s, [cfg.seed, 0x9017, round_, d])
        for d, (inst, plan) in enumerate(zip(days, plans, strict=True))
    ]
    parts: list[Samples] = []
    solves = 0
    worst = expert_s = env_s = 0.0

    def account() -> None:
        # The workers' time, summed, exceeds the wall time when they run side by side: the wall time is split
        # between the expert and the env in proportion to it.
        wall = time.perf_counter() - t
        clock.oracle_s += wall * expert_s / max(expert_s + env_s, 1e-12)
        clock.env_s += wall * env_s / max(expert_s + env_s, 1e-12)

    # (with one worker, pmap computes a day only when the loop asks for it: none after the deadline)
    for day in pmap(_label_day, jobs, workers=cfg.expert_workers):
        parts.append(day.samples)
        solves += day.solves
        worst = max(worst, day.worst_gap)
        expert_s, env_s = expert_s + day.expert_s, env_s + day.env_s
        if time.perf_counter() > deadline and len(parts) < len(jobs):
            account()
            return None
    account()
    kind = "expert days" if round_ == 0 else "learner days relabelled"
    expert = f"{solves} oracle solutions (worst gap {worst:.1e})" if mpc is None else "labelled by the online MPC"
    log(f"round {round_}: {len(days)} {kind}, {steps:,} env steps, {expert}")
    return Samples.concat(parts), steps, solves


@dataclass(frozen=True, slots=True)
class _Day:
    """One day's samples from the expert, the oracle solutions used, their worst gap and where the time went, s."""

    samples: Samples
    solves: int
    worst_gap: float
    expert_s: float
    env_s: float


def _label_day(
    inst: Instance,
    plan: NDArray[np.int64] | None,
    hp: dict[str, Any],
    mpc: OnlineMPC | None,
    cache: Path,
    reward_scale: float,
    oracle_time_limit_s: float,
    seed: list[int],
) -> _Day:
    """One day's samples (a worker's job of :func:`_collect`). ``plan is None``: the expert plays the day (the
    oracle's cached solution, or the MPC's plan). Otherwise the learner played ``plan`` and the expert labels
    the states it reached: the oracle at ``solves_per_day`` points (:func:`relabel`, points drawn from
    ``seed``), or the MPC at every step (its choice at each state; the critic's targets are the learner's own
    returns)."""
    gamma = float(hp["gamma"])
    t = time.perf_counter()
    if plan is None:
        if mpc is None:
            sol = cached_oracle(expert_view(inst, float(hp["expert_capacity"])), cache, oracle_time_limit_s)
            played, solves, gap = sol.plan, 1, float(sol.mip_gap)
        else:
            played, solves, gap = mpc.plan(inst), 0, 0.0
        expert_s = time.perf_counter() - t
        t = time.perf_counter()
        samples = Samples.of(trace(inst, played, reward_scale), reward_scale, gamma)
        return _Day(samples, solves, gap, expert_s, time.perf_counter() - t)
    if mpc is not None:
        labels = mpc.plan(inst, follow=plan)
        expert_s = time.perf_counter() - t
        t = time.perf_counter()
        own = Samples.of(trace(inst, plan, reward_scale), reward_scale, gamma)
        return _Day(dataclasses.replace(own, action=labels), 0, 0.0, expert_s, time.perf_counter() - t)
    points = relabel_points(inst.num_tasks, int(hp["solves_per_day"]), np.random.default_rng(seed))
    lab = relabel(
        inst,
        plan,
        points,
        expert_capacity=float(hp["expert_capacity"]),
        reward_scale=reward_scale,
        gamma=gamma,
        time_limit_s=float(hp["solve_time_limit"]),
    )
    return _Day(lab.samples, lab.solves, lab.worst_gap, lab.solve_s, lab.replay_s)


def _prune_log(log_csv: Path, rows: int) -> None:
    """Keep the first ``rows`` evaluation rows: a session that ended after its last checkpoint left rows for
    epochs the resume trains again."""
    if log_csv.is_file():
        import pandas as pd

        log = pd.read_csv(log_csv)
        log.iloc[:rows].to_csv(log_csv, index=False)
