"""Offline datasets: the hindsight oracle's trajectories on a task's days, as a Minari dataset.

:func:`oracle_dataset` draws ``episodes`` days of a benchmark task's split (seeds ``seed, seed + 1, ...``),
solves each day's hindsight optimum (:func:`baselines.milp.solve_hindsight`) and plays its plan through the
task's registered env: observations, actions, rewards, terminations
and, per step, the action mask (``infos["action_mask"]``, the admissible actions of the step's task). The
dataset is written under ``out`` (Minari's ``MINARI_DATASETS_PATH``), where ``minari.load_dataset`` reads
it back. Offline-RL and imitation learners start from it; every action in it is the certified optimum's,
or (said in the dataset's description) an incumbent within the gap reached in the time limit.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from envs.tasks import Task, get_task

DATASET_VERSION = 0


def dataset_id(task: Task, split: str) -> str:
    """The Minari id of a task's oracle dataset, e.g. ``geoinfer/contended/oracle-train-v0``."""
    return f"geoinfer/{task.name}/oracle-{split}-v{DATASET_VERSION}"


@contextmanager
def datasets_root(out: str | Path) -> Iterator[None]:
    """Point Minari at ``out`` (its ``MINARI_DATASETS_PATH``) for the duration, then restore the old value."""
    old = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(Path(out).resolve())
    try:
        yield
    finally:
        if old is None:
            del os.environ["MINARI_DATASETS_PATH"]
        else:
            os.environ["MINARI_DATASETS_PATH"] = old


def oracle_dataset(
    task: str | Task,
    out: str | Path,
    *,
    split: str = "train",
    episodes: int = 10,
    seed: int = 0,
    time_limit_s: float = 60.0,
) -> Any:
    """Write ``episodes`` oracle trajectories of ``task``'s ``split`` as a Minari dataset under ``out``; returns it."""
    try:
        import minari
        from minari.data_collector import EpisodeBuffer
    except ImportError:
        raise ValueError("writing a dataset needs minari: pip install 'minari[hdf5]'") from None
    from baselines.milp import solve_hindsight

    t = get_task(task) if isinstance(task, str) else task
    if episodes < 1:
        raise ValueError(f"episodes = {episodes}: expected at least 1")
    with datasets_root(out):
        name = dataset_id(t, split)
        if name in minari.list_local_datasets():
            raise ValueError(f"{name} already exists under {out}: choose another --out or remove it")
        env = gym.make(t.env_id, split=split)
        buffers, gaps = [], []
        for e in range(episodes):
            # the episode's steps, played here (Minari's DataCollector would need jax to record them)
            obs, info = env.reset(seed=seed + e)
            res = solve_hindsight(env.unwrapped.instance, time_limit_s=time_limit_s)  # type: ignore[attr-defined]
            gaps.append(res.mip_gap)
            observations, masks = [obs], [np.asarray(info["action_mask"], dtype=bool)]
            rewards, terminations, truncations = [], [], []
            for a in res.plan:
                obs, reward, terminated, truncated, info = env.step(int(a))
                observations.append(obs)
                masks.append(np.asarray(info["action_mask"], dtype=bool))
                rewards.append(float(reward))
                terminations.append(terminated)
                truncations.append(truncated)
            buffers.append(
                EpisodeBuffer(
                    id=e,
                    seed=seed + e,
                    observations=observations,
                    actions=[int(a) for a in res.plan],
                    rewards=rewards,
                    terminations=terminations,
                    truncations=truncations,
                    infos={"action_mask": np.stack(masks)},
                )
            )
        proven = sum(g <= 1e-6 for g in gaps)
        description = (
            f"The hindsight oracle's plans (baselines.milp.solve_hindsight, {time_limit_s:g} s per day) on "
            f"{episodes} days of the {t.name} task's {split} split (reset seeds {seed}..{seed + episodes - 1}); "
            f"{proven} of {episodes} proven optimal to 1e-6, the worst gap {max(gaps):.1e}. infos['action_mask'] "
            "holds each step's admissible actions (the last is overflow)."
        )
        with warnings.catch_warnings():
            # no contact address or code permalink to give: the description names the code (baselines.milp)
            warnings.filterwarnings("ignore", message="`author_email` is set to None")
            warnings.filterwarnings("ignore", message="`code_permalink` is set to None")
            return minari.create_dataset_from_buffers(
                dataset_id=name,
                buffer=buffers,
                env=env,
                eval_env=gym.make(t.env_id, split="validation"),  # model selection on validation days
                algorithm_name="hindsight MILP oracle (geoinfer baselines.milp)",
                author="geoinfer",
                description=description,
            )
