"""Imitation of the hindsight oracle: behaviour cloning (``bc``) and DAgger (``dagger``) for the region policy.

Both train the actor-critic of MaskablePPO with the region net (:class:`agents.policies.MaskableRegionPolicy`)
by supervised learning, and save it as a MaskablePPO model: ``geoinfer evaluate``, ``geoinfer benchmark`` and
RL fine-tuning (``TrainConfig.init_from``) read it like any other run's model.

* **Behaviour cloning.** Training days are drawn from the task's train split, each solved by the hindsight
  oracle (:func:`baselines.milp.cached_oracle`, kept by episode content), and its plan is replayed through
  the env's dynamics (:func:`envs.dynamics.trace`): every step gives a sample (observation, action mask, the
  oracle's action, and the discounted return of the oracle's plan from that step, for the critic). The
  loss is the cross-entropy of the masked policy on the oracle's action plus ``value_coef`` times the
  critic's squared error.
* **DAgger.** Round 0 is behaviour cloning on ``demo_steps`` env steps of oracle days. Each later round
  plays the current policy (deterministic, as evaluated) on ``round_steps`` env steps of new training days
  and relabels the states it reached: at ``solves_per_day`` points ``p`` of each day, the learner's first
  ``p`` placements are fixed and the oracle solves the rest of the day (``solve_hindsight(fixed=...)``).
  Its first action is the expert's label at the learner's state ``p``; the states its continuation then
  visits up to the next point are labelled by the same solve (each action of an optimal continuation is
  the optimum of what remains after the ones before it). The samples of all rounds are aggregated and
  the policy trained ``epochs`` more epochs on them each round.

Budgets are counted in env steps (``TrainConfig.timesteps``: the oracle days' steps and the learner's
rollout steps) and in oracle solves; the run's ``config.json`` holds every setting. Every random draw
(days, relabelling points, minibatches) derives from ``(seed, round, epoch or day)``, so a run resumed
from a checkpoint continues exactly as the uninterrupted run would have.

Run folder (as the SB3 algorithms', see :mod:`agents.train`)::

    OUT/config.json, OUT/tb/, OUT/eval/log.csv, OUT/best_model.zip, OUT/model.zip
    OUT/data/round_<RRR>.npz            the samples of each round (observations, masks, labels, returns)
    OUT/checkpoints/step_<N>_round_<RRR>_epoch_<EEE>.zip (+ .json: round, epoch, clocks, solves)
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from baselines.milp import cached_oracle, solve_hindsight
from envs.dynamics import Trace, trace
from envs.instance import Instance
from envs.scenario import Scenario
from envs.workload import sample_instance

if TYPE_CHECKING:
    from agents.train import TrainConfig, TrainResult

IMITATION_ALGOS = ("bc", "dagger")

# Hyperparameters (TrainConfig.hyperparams overrides any of them). learning_rate also takes "lin_<start>":
# linear decay to 0 over all the run's epochs. epochs: passes over the samples (BC), per round (DAgger).
_BC_DEFAULTS: dict[str, Any] = {
    "learning_rate": "lin_1e-3",  # linear decay to 0 over all the run's epochs
    "batch_size": 256,
    "epochs": 10,
    "value_coef": 0.5,  # weight of the critic's loss (its targets: the oracle's discounted returns)
    "gamma": 0.99,  # discount of those returns, as PPO's fine-tuning uses it
    "max_grad_norm": 0.5,
}
IMITATION_DEFAULTS: dict[str, dict[str, Any]] = {
    "bc": dict(_BC_DEFAULTS),
    "dagger": {
        **_BC_DEFAULTS,
        "epochs": 5,
        "demo_steps": 50_000,  # round 0: env steps of oracle days (behaviour cloning)
        "round_steps": 25_000,  # each later round: env steps the learner plays
        "solves_per_day": 16,  # relabelling solves per learner day
        "solve_time_limit": 30.0,  # s per relabelling solve
    },
}


def day_seed(seed: int, round_: int, day: int) -> int:
    """The reset seed of training day ``day`` of round ``round_`` of a run seeded ``seed``."""
    return int(np.random.SeedSequence([seed, 0x1D1A, round_, day]).generate_state(1, np.uint32)[0])


# ----------------------------------------------------------------------------------------- samples
@dataclass(frozen=True, slots=True)
class Samples:
    """Labelled states: observation ``[N, D]``, mask ``[N, R + 1]``, expert action ``[N]``, and the discounted
    return (reward units) of the expert's plan from that state ``[N]``."""

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

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez_compressed(tmp, obs=self.obs, mask=self.mask, action=self.action, ret=self.ret)
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> Samples:
        with np.load(path) as z:
            return cls(z["obs"], z["mask"], z["action"], z["ret"])


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
) -> Relabelled:
    """DAgger's labels for the states a learner reached on ``inst`` (see the module docstring).

    For each point ``p`` (sorted, distinct, in ``[0, K)``) the learner's actions ``learner_plan[:p]`` are
    fixed and :func:`solve_hindsight` gives the best continuation; the states from ``p`` to the next point
    along that continuation are labelled with its actions. The state at ``p`` is the learner's own.
    """
    K = inst.num_tasks
    pts = np.unique(np.asarray(points, dtype=np.int64))
    if pts.size and (pts[0] < 0 or pts[-1] >= K):
        raise ValueError(f"points: expected indices in [0, {K}), got {pts.min()}..{pts.max()}")
    parts: list[Samples] = []
    plans: list[NDArray[np.int64]] = []
    solve_s = replay_s = 0.0
    worst = 0.0
    ends = [*pts[1:].tolist(), K]
    for p, q in zip(pts.tolist(), ends, strict=True):
        t = time.perf_counter()
        res = solve_hindsight(inst, time_limit_s=time_limit_s, fixed=learner_plan[:p])
        solve_s += time.perf_counter() - t
        worst = max(worst, float(res.mip_gap))
        plans.append(res.plan)
        t = time.perf_counter()
        parts.append(Samples.of(trace(inst, res.plan, reward_scale), reward_scale, gamma, slice(p, q)))
        replay_s += time.perf_counter() - t
    samples = Samples.concat(parts) if parts else _empty(inst)
    return Relabelled(samples, pts, plans, int(pts.size), solve_s, replay_s, worst)


def _empty(inst: Instance) -> Samples:
    from envs.dynamics import ObsLayout

    D, A = ObsLayout.of(inst).size, inst.num_regions + 1
    return Samples(np.empty((0, D), np.float32), np.empty((0, A), bool), np.empty(0, np.int64), np.empty(0, np.float32))


def relabel_points(num_tasks: int, per_day: int, rng: np.random.Generator) -> NDArray[np.int64]:
    """``per_day`` points spread evenly over a day of ``num_tasks`` tasks, with a random offset."""
    n = min(per_day, num_tasks)
    if n <= 0:
        return np.empty(0, dtype=np.int64)
    return np.unique(np.floor((np.arange(n) + rng.random()) * num_tasks / n).astype(np.int64))


# -------------------------------------------------------------------------------------------- training
def supervised_epoch(
    policy: Any, data: Samples, *, batch_size: int, lr: float, value_coef: float, max_grad_norm: float, seed: Any
) -> dict[str, float]:
    """One pass over ``data`` in shuffled minibatches: masked cross-entropy on the expert's action plus
    ``value_coef`` x the critic's squared error. Returns the mean losses and the accuracy (argmax = label)."""
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
        ret = th.as_tensor(data.ret[idx])
        logits, latent_vf = policy.mlp_extractor(policy.features_extractor(obs))
        logp = th.log_softmax(logits.masked_fill(~mask, -math.inf), dim=1)
        nll = -logp.gather(1, act[:, None]).mean()
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
    """Wall time of a run and where it went (env replay and rollouts, oracle, network), cumulated over
    its sessions. Seconds."""

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


def _checkpoint_name(steps: int, round_: int, epoch: int) -> str:
    return f"step_{steps:012d}_round_{round_:03d}_epoch_{epoch:03d}.zip"


def run_imitation(
    cfg: TrainConfig,
    scen: Scenario,
    eval_scen: Scenario,
    out: Path,
    ckpt: Path | None,
    log: Callable[[str], Any],
) -> TrainResult:
    """Train ``cfg`` (algo ``bc`` or ``dagger``) in ``out``, from ``ckpt`` when resuming; see the module doc."""
    from stable_baselines3.common.logger import configure

    from agents.callbacks import RegretEval, save_run_state
    from agents.train import TrainResult, evaluation_setup, hyperparams_of

    hp = hyperparams_of(cfg)
    ckpt_dir, eval_dir, data_dir = out / "checkpoints", out / "eval", out / "data"
    venv = _plain_venv(cfg, scen)
    model, clock, progress = _start(cfg, scen, venv, ckpt, data_dir)
    round0, epoch0, solves, evaluations, parts = progress
    if ckpt is not None:
        _prune_log(eval_dir / "log.csv", evaluations)
        log(f"resuming {out} from {ckpt.name} at {model.num_timesteps} steps (round {round0}, epoch {epoch0})")
    model.set_logger(configure(str(out / "tb" / f"{cfg.algo}_1"), ["tensorboard"]))
    evaluator = None
    if cfg.eval_every > 0 and cfg.eval_episodes > 0:
        instances, oracle, greedy = evaluation_setup(cfg, eval_scen, eval_dir)
        evaluator = RegretEval(
            instances, oracle, greedy, 0, eval_dir / "log.csv", out / "best_model.zip", cfg.algo, clock
        )
        evaluator.init_callback(model)
    cache = Path(cfg.oracle_cache) if cfg.oracle_cache is not None else out / "oracle"
    rounds = _num_rounds(cfg, hp)
    epochs = int(hp["epochs"])
    total_epochs = rounds * epochs
    lr_of = _lr_schedule(hp["learning_rate"])
    clock.begin()
    session_steps0 = int(model.num_timesteps)
    deadline = math.inf if cfg.max_minutes is None else time.perf_counter() + 60 * cfg.max_minutes
    stopped = False
    last = (round0, epoch0 - 1)

    def save(path: Path, r: int, e: int) -> None:
        save_run_state(model, path, clock)
        sidecar = {
            "num_timesteps": int(model.num_timesteps),
            "round": r,
            "epoch": e,
            "solves": solves,
            "evaluations": evaluations,
            "wall_s": clock.wall_s,
            "env_s": clock.env_s,
            "oracle_s": clock.oracle_s,
            "net_s": clock.net_s,
        }
        path.with_name(path.name.removesuffix(".zip") + ".json").write_text(json.dumps(sidecar))

    for r in range(round0, rounds):
        if r > round0 or epoch0 == 0:  # the round's samples, unless a resume is within the round
            if time.perf_counter() > deadline:
                stopped = True
                break
            samples, steps, n_solves = _collect(cfg, hp, scen, model, r, cache, clock, log)
            samples.save(data_dir / f"round_{r:03d}.npz")
            parts.append(samples)
            model.num_timesteps += steps
            solves += n_solves
            epoch0 = 0
        data = Samples.concat(parts)
        for e in range(epoch0, epochs):
            if time.perf_counter() > deadline:
                stopped = True
                break
            lr = lr_of(1.0 - (r * epochs + e) / total_epochs)
            t = time.perf_counter()
            stats = supervised_epoch(
                model.policy,
                data,
                batch_size=int(hp["batch_size"]),
                lr=lr,
                value_coef=float(hp["value_coef"]),
                max_grad_norm=float(hp["max_grad_norm"]),
                seed=[cfg.seed, 0xBA7C, r, e],
            )
            clock.net_s += time.perf_counter() - t
            for k, v in stats.items():
                model.logger.record(f"train/{k}", v)
            model.logger.record("train/learning_rate", lr)
            model.logger.record("train/samples", len(data))
            model.logger.record("train/oracle_solves", solves)
            if evaluator is not None and (e == epochs - 1 or cfg.algo == "bc"):
                evaluator.evaluate()  # dumps the logger at this step
                evaluations += 1
            else:
                model.logger.dump(int(model.num_timesteps))
            if cfg.verbose:
                log(f"round {r} epoch {e}: {len(data)} samples, accuracy {stats['accuracy']:.4f}")
            if cfg.checkpoint_every > 0:
                save(ckpt_dir / _checkpoint_name(int(model.num_timesteps), r, e), r, e)
            last = (r, e)
        if stopped:
            break
        epoch0 = 0
    save(out / "model.zip", *last)
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
        oracle_solves=solves,
        net_s=clock.net_s,
    )


def _start(
    cfg: TrainConfig, scen: Scenario, venv: Any, ckpt: Path | None, data_dir: Path
) -> tuple[Any, Clock, tuple[int, int, int, int, list[Samples]]]:
    """The model, the clock and where the run stands ``(round, next epoch, solves, evaluations, samples)``:
    fresh, or as the checkpoint ``ckpt`` left them."""
    from sb3_contrib import MaskablePPO

    from agents.train import policy_spec

    if ckpt is None:
        policy, kwargs = policy_spec(cfg, scen)
        model = MaskablePPO(policy, venv, policy_kwargs=kwargs, seed=cfg.seed, device="cpu")
        model.num_timesteps = 0
        return model, Clock(), (0, 0, 0, 0, [])
    model = MaskablePPO.load(ckpt, env=venv, device="cpu")
    state = json.loads(ckpt.with_name(ckpt.name.removesuffix(".zip") + ".json").read_text())
    clock = Clock(state["wall_s"], state["env_s"], state["oracle_s"], state["net_s"])
    r = int(state["round"])
    parts = [Samples.load(data_dir / f"round_{i:03d}.npz") for i in range(r + 1)]
    return model, clock, (r, int(state["epoch"]) + 1, int(state["solves"]), int(state["evaluations"]), parts)


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


def _plain_venv(cfg: TrainConfig, scen: Scenario) -> Any:
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
) -> tuple[Samples, int, int]:
    """Round ``round_``'s samples: oracle days (round 0) or the learner's relabelled days; also the env steps
    it played and the oracle solves it made."""
    from agents.evaluate import Agent, play

    budget = cfg.timesteps if cfg.algo == "bc" else int(hp["demo_steps"] if round_ == 0 else hp["round_steps"])
    if round_ > 0:  # the last round stops at the run's budget
        done = int(hp["demo_steps"]) + (round_ - 1) * int(hp["round_steps"])
        budget = max(1, min(budget, cfg.timesteps - done))
    gamma = float(hp["gamma"])
    parts: list[Samples] = []
    steps = solves = day = 0
    agent = Agent.from_model(model, "maskable_ppo") if round_ > 0 else None
    worst = 0.0
    while steps < budget:
        inst = sample_instance(scen, seed=day_seed(cfg.seed, round_, day), num_tasks=cfg.num_tasks)
        if agent is None:
            t = time.perf_counter()
            sol = cached_oracle(inst, cache, cfg.oracle_time_limit_s)
            clock.oracle_s += time.perf_counter() - t
            worst = max(worst, float(sol.mip_gap))
            t = time.perf_counter()
            parts.append(Samples.of(trace(inst, sol.plan, cfg.reward_scale), cfg.reward_scale, gamma))
            clock.env_s += time.perf_counter() - t
            solves += 1
        else:
            t = time.perf_counter()
            plan = play(agent.act_batch, [inst], cfg.reward_scale)[0]
            clock.env_s += time.perf_counter() - t
            rng = np.random.default_rng([cfg.seed, 0x9017, round_, day])
            points = relabel_points(inst.num_tasks, int(hp["solves_per_day"]), rng)
            lab = relabel(
                inst,
                plan,
                points,
                reward_scale=cfg.reward_scale,
                gamma=gamma,
                time_limit_s=float(hp["solve_time_limit"]),
            )
            clock.oracle_s += lab.solve_s
            clock.env_s += lab.replay_s
            worst = max(worst, lab.worst_gap)
            parts.append(lab.samples)
            solves += lab.solves
        steps += inst.num_tasks
        day += 1
    kind = "oracle days" if agent is None else "learner days relabelled"
    log(f"round {round_}: {day} {kind}, {steps:,} env steps, {solves} oracle solves (worst gap {worst:.1e})")
    return Samples.concat(parts), steps, solves


def _prune_log(log_csv: Path, rows: int) -> None:
    """Keep the first ``rows`` evaluation rows: a session that ended after its last checkpoint left rows for
    epochs the resume trains again."""
    if log_csv.is_file():
        import pandas as pd

        log = pd.read_csv(log_csv)
        log.iloc[:rows].to_csv(log_csv, index=False)
