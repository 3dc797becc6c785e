"""Offline datasets (agents.datasets): the oracle's trajectories as a Minari dataset, read back by Minari."""

from __future__ import annotations

import gymnasium as gym
import minari
import numpy as np
import pytest

import envs  # noqa: F401  (registers the ids)
from agents.datasets import dataset_id, datasets_root, oracle_dataset
from baselines.milp import solve_hindsight
from envs.costs import evaluate_plan
from envs.tasks import get_task


@pytest.fixture(scope="module")
def hubs_dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, object]:
    out = tmp_path_factory.mktemp("minari")
    oracle_dataset("hubs", out, episodes=2, seed=3)
    return str(out), get_task("hubs")


def test_minari_reads_back_the_oracles_trajectories(hubs_dataset) -> None:
    out, task = hubs_dataset
    env = gym.make(task.env_id, split="train")
    with datasets_root(out):
        ds = minari.load_dataset(dataset_id(task, "train"))
        assert ds.total_episodes == 2
        assert ds.spec.env_spec is not None and ds.spec.env_spec.id == task.env_id
        for e, ep in enumerate(ds.iterate_episodes()):
            env.reset(seed=3 + e)  # the same day, drawn again
            inst = env.unwrapped.instance
            plan = solve_hindsight(inst, time_limit_s=60).plan
            np.testing.assert_array_equal(ep.actions, plan)  # the oracle's actions, in task order
            K = inst.num_tasks
            assert ep.observations.shape == (K + 1, env.observation_space.shape[0])
            masks = ep.infos["action_mask"]
            assert masks.shape == (K + 1, inst.num_regions + 1)
            assert masks[np.arange(K), ep.actions].all()  # every action admissible under its step's mask
            scale = env.unwrapped.reward_scale
            assert ep.rewards.sum() == pytest.approx(-scale * evaluate_plan(inst, plan).total_usd, rel=1e-9)
            assert ep.terminations[-1] and not ep.terminations[:-1].any() and not ep.truncations.any()
        assert isinstance(ds.recover_environment().unwrapped, type(env.unwrapped))


def test_bad_requests_are_refused(hubs_dataset, tmp_path) -> None:
    out, task = hubs_dataset
    with pytest.raises(ValueError, match="already exists"):
        oracle_dataset(task, out, episodes=1)
    with pytest.raises(ValueError, match="episodes = 0"):
        oracle_dataset(task, tmp_path, episodes=0)
    with pytest.raises(ValueError, match="nosuch"):
        oracle_dataset("nosuch", tmp_path, episodes=1)


def test_the_dataset_command(tmp_path, capsys) -> None:
    from experiments.cli import main

    assert main(["dataset", "--task", "residency", "--episodes", "1", "--out", str(tmp_path)]) == 0
    assert "geoinfer/residency/oracle-train-v0: 1 episodes" in capsys.readouterr().out
