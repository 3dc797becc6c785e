"""Training callbacks, one job each: progress bar, checkpoints, evaluation against the oracle, env timing,
and a wall-clock limit."""

from __future__ import annotations

import csv
import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper
from tqdm import tqdm

from agents.evaluate import Agent, play, vecnormalize_path
from agents.vec import TimedVecEnv
from envs.costs import evaluate_plan
from envs.instance import Instance


def find_timed_env(venv: VecEnv | None) -> TimedVecEnv | None:
    """The :class:`TimedVecEnv` in a chain of VecEnv wrappers, if any."""
    while venv is not None:
        if isinstance(venv, TimedVecEnv):
            return venv
        venv = venv.venv if isinstance(venv, VecEnvWrapper) else None
    return None


class ProgressBar(BaseCallback):
    """A tqdm bar over environment steps, from the run's current step (a resumed run starts part-full)."""

    def __init__(self, total_timesteps: int, enabled: bool = True) -> None:
        super().__init__()
        self.total, self.enabled = int(total_timesteps), enabled
        self.bar: tqdm | None = None

    def _on_training_start(self) -> None:
        self.bar = tqdm(
            total=self.total,
            initial=self.model.num_timesteps,
            unit="step",
            dynamic_ncols=True,
            disable=not self.enabled,
            mininterval=1.0,
        )

    def _on_step(self) -> bool:
        if self.bar is not None:
            self.bar.update(self.training_env.num_envs)
        return True

    def _on_training_end(self) -> None:
        if self.bar is not None:
            self.bar.close()


class WallClockLimit(BaseCallback):
    """Stop training after ``max_s`` seconds of this session's wall time."""

    def __init__(self, max_s: float) -> None:
        super().__init__()
        self.max_s = float(max_s)
        self.start = 0.0
        self.stopped = False

    def _on_training_start(self) -> None:
        self.start = time.perf_counter()

    def _on_step(self) -> bool:
        if time.perf_counter() - self.start >= self.max_s:
            self.stopped = True
            return False
        return True


class RunTimes(Protocol):
    """A run's cumulated wall time and time inside the env, s (:class:`RunClock`, or imitation's clock)."""

    @property
    def wall_s(self) -> float: ...

    @property
    def env_s(self) -> float: ...


class RunClock(BaseCallback):
    """Wall time and time inside the env, cumulated over the sessions of a run (``state.json`` carries them
    across a resume); logs ``time/env_share`` and ``time/steps_per_s`` at each rollout end."""

    def __init__(self, wall_s: float = 0.0, env_s: float = 0.0) -> None:
        super().__init__()
        self.wall0, self.env0 = float(wall_s), float(env_s)
        self.start = 0.0
        self.steps0 = 0
        self._env_start = 0.0

    def _on_training_start(self) -> None:
        self.start = time.perf_counter()
        self.steps0 = self.model.num_timesteps
        timed = find_timed_env(self.training_env)
        self._env_start = timed.env_s if timed is not None else 0.0

    def session_s(self) -> float:
        return time.perf_counter() - self.start if self.start else 0.0

    @property
    def wall_s(self) -> float:
        return self.wall0 + self.session_s()

    @property
    def env_s(self) -> float:
        timed = find_timed_env(self.training_env) if self.training_env is not None else None
        return self.env0 + (timed.env_s - self._env_start if timed is not None else 0.0)

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        s = self.session_s()
        if s > 0:
            self.logger.record("time/env_share", (self.env_s - self.env0) / s)
            self.logger.record("time/steps_per_s", (self.model.num_timesteps - self.steps0) / s)


def save_run_state(model: Any, path_zip: Path, clock: RunTimes | None, extra: dict[str, Any] | None = None) -> None:
    """Save ``model`` to ``path_zip`` with its sidecars: VecNormalize statistics, the replay buffer of an
    off-policy algorithm, and ``.json`` with the step count, the run's cumulated wall / env time and ``extra``.

    The ``.json`` is written last and atomically: a checkpoint without it was cut short (its process was
    killed), and :func:`latest_checkpoint` passes it over.
    """
    path_zip.parent.mkdir(parents=True, exist_ok=True)
    model.save(path_zip)
    norm = model.get_vec_normalize_env()
    if norm is not None:
        norm.save(str(vecnormalize_path(path_zip)))
    if hasattr(model, "replay_buffer") and model.replay_buffer is not None:
        model.save_replay_buffer(path_zip.with_name(path_zip.name.removesuffix(".zip") + ".replay.pkl"))
    state = {
        "num_timesteps": int(model.num_timesteps),
        "wall_s": clock.wall_s if clock else 0.0,
        "env_s": clock.env_s if clock else 0.0,
        **(extra or {}),
    }
    sidecar = path_zip.with_name(path_zip.name.removesuffix(".zip") + ".json")
    tmp = sidecar.with_name(sidecar.name + ".tmp")
    tmp.write_text(json.dumps(state))
    os.replace(tmp, sidecar)


class Checkpoint(BaseCallback):
    """Every ``every`` env steps, save ``checkpoints/step_{N}.zip`` and its sidecars (see
    :func:`save_run_state`); ``--resume`` continues from the latest one."""

    def __init__(self, directory: Path, every: int, clock: RunClock | None = None) -> None:
        super().__init__()
        self.directory, self.every, self.clock = Path(directory), int(every), clock
        self.last = 0

    def _on_training_start(self) -> None:
        self.last = self.model.num_timesteps

    def _on_step(self) -> bool:
        if self.every > 0 and self.model.num_timesteps - self.last >= self.every:
            self.save()
        return True

    def save(self) -> Path:
        self.last = self.model.num_timesteps
        path = self.directory / f"step_{self.model.num_timesteps:012d}.zip"
        save_run_state(self.model, path, self.clock)
        return path


def latest_checkpoint(directory: Path) -> Path | None:
    """The complete checkpoint (its ``.json`` written) with the most steps in ``directory``, or ``None``."""
    found = [p for p in sorted(Path(directory).glob("step_*.zip")) if p.with_suffix(".json").is_file()]
    return found[-1] if found else None


class RegretEval(BaseCallback):
    """Every ``every`` env steps, play the fixed evaluation episodes with the current policy (deterministic)
    and log the mean cost and the relative regret against the oracle.

    Evaluations happen at the start of a rollout, right after the previous update, so the policy that is
    evaluated (and saved as the best one) is the policy of that step count; the trainer evaluates once more
    after the last update.

    TensorBoard: ``eval/total_usd``, ``eval/relative_regret`` (mean over episodes of
    ``(cost - oracle) / oracle``; NaN without oracle), ``eval/vs_reference`` (mean relative gap to the
    reference policy, e.g. greedy). The same figures are appended to ``log_csv``. The policy with the lowest
    mean cost so far is saved to ``best_zip`` (with its sidecars). ``on_eval`` is then called with the row (a
    sweep reports it to Ray Tune). ``first``: also evaluate the policy a fresh run starts with (a fine-tuned
    clone's), so that the best policy kept is never worse on these episodes than the one it started from.
    """

    def __init__(
        self,
        instances: Sequence[Instance],
        oracle_usd: Sequence[float],
        reference_usd: Sequence[float],
        every: int,
        log_csv: Path,
        best_zip: Path | None,
        algo: str,
        clock: RunTimes | None = None,
        on_eval: Callable[[dict[str, float]], None] | None = None,
        first: bool = False,
    ) -> None:
        super().__init__()
        self.on_eval, self.first = on_eval, first
        self.instances = list(instances)
        self.oracle = np.asarray(oracle_usd, dtype=float)
        self.reference = np.asarray(reference_usd, dtype=float)
        self.every, self.log_csv, self.best_zip = int(every), Path(log_csv), best_zip
        self.algo, self.clock = algo, clock
        self.last = 0
        self.best = float("inf")
        self.history: list[dict[str, float]] = []
        if self.log_csv.is_file():  # a resumed run: keep the best so far
            with self.log_csv.open() as f:
                for row in csv.DictReader(f):
                    self.best = min(self.best, float(row["total_usd"]))

    def _on_training_start(self) -> None:
        self.last = self.model.num_timesteps
        if self.first and self.model.num_timesteps == 0:  # not on a resume: that start was evaluated
            self.evaluate()

    def _on_rollout_start(self) -> None:
        if self.every > 0 and self.model.num_timesteps - self.last >= self.every:
            self.evaluate()

    def _on_step(self) -> bool:
        return True

    def evaluate(self) -> dict[str, float]:
        self.last = self.model.num_timesteps
        agent = Agent.from_model(self.model, self.algo, self.model.get_vec_normalize_env())
        t = time.perf_counter()
        plans = play(agent.act_batch, self.instances)
        costs = np.array([evaluate_plan(i, p).total_usd for i, p in zip(self.instances, plans, strict=True)])
        regret = (costs - self.oracle) / self.oracle
        row = {
            "timesteps": float(self.model.num_timesteps),
            "wall_s": self.clock.wall_s if self.clock else float("nan"),
            "total_usd": float(costs.mean()),
            "relative_regret": float(regret.mean()),
            "vs_reference": float(((costs - self.reference) / self.reference).mean()),
            "eval_s": time.perf_counter() - t,
        }
        for key in ("total_usd", "relative_regret", "vs_reference"):
            self.logger.record(f"eval/{key}", row[key])
        self.logger.dump(self.model.num_timesteps)  # as SB3's EvalCallback: written at this step
        self.history.append(row)
        new = not self.log_csv.is_file()
        self.log_csv.parent.mkdir(parents=True, exist_ok=True)
        with self.log_csv.open("a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(row))
            if new:
                w.writeheader()
            w.writerow(row)
        if row["total_usd"] < self.best:
            self.best = row["total_usd"]
            if self.best_zip is not None:
                save_run_state(self.model, self.best_zip, self.clock)
        if self.on_eval is not None:
            self.on_eval(row)
        return row
