"""The benchmark's task suite: registration, date splits, fixed episodes, and the scenario keys they use."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import envs
from envs import TASK_IDS, TASKS, Scenario, get_task, sample_instance
from envs.tasks import SPLITS, read_task, select_tasks

TEXT = """
name = "{name}"
[benchmark]
id = "geoinfer/X-v0"
title = "t"
hard = "h"
realistic = "r"
generalisation = "g"
train = {train}
validation = ["2023-10-01/2023-10-31"]
test = ["2023-11-01/2023-12-31"]
validation_episodes = [[1, {val_hour}]]
test_episodes = [[2, 7296]]
"""


def _task_file(tmp_path: Path, **kw: object) -> Path:
    values = {"name": "x", "train": '["2023-01-01/2023-09-30"]', "val_hour": 24 * 273, **kw}
    path = tmp_path / f"{values['name']}.toml"
    path.write_text(TEXT.format(**values))
    return path


def test_the_suite_has_seven_tasks_each_registered_with_a_train_split() -> None:
    assert len(TASKS) >= 6
    assert set(TASK_IDS) == {t.env_id for t in TASKS.values()}
    for task in TASKS.values():
        spec = gym.spec(task.env_id)
        assert spec.kwargs == {"scenario": task.name, "split": "train"}
        assert Scenario.load(task.name).name == task.name  # the task's scenario by name, whole year
        assert task.hard and task.realistic and task.generalisation
        assert len(task.episodes["test"]) == 10 and len(task.episodes["validation"]) == 5


@pytest.mark.parametrize("name", sorted(TASKS))
def test_splits_are_disjoint_by_date_and_episodes_lie_in_their_split(name: str) -> None:
    task = TASKS[name]
    days = [set(task.days[s]) for s in SPLITS]
    assert not (days[0] & days[1]) and not (days[0] & days[2]) and not (days[1] & days[2])
    for split, episodes in task.episodes.items():
        assert all(e.start_hour % 24 == 0 and e.day in task.days[split] for e in episodes)


def test_a_task_env_plays_only_training_days_and_is_deterministic_by_seed() -> None:
    task = get_task("hubs")
    env = gym.make(task.env_id)
    seen = set()
    for seed in range(12):
        env.reset(seed=seed)
        seen.add(env.unwrapped.instance.start_hour // 24)
    assert seen <= set(task.days["train"]) and len(seen) > 5
    a, _ = env.reset(seed=3)
    digest = env.unwrapped.instance.digest()
    b, _ = gym.make(task.env_id).reset(seed=3)
    np.testing.assert_array_equal(a, b)
    env.reset(seed=3)
    assert env.unwrapped.instance.digest() == digest
    test_env = gym.make(task.env_id, split="test")
    for seed in range(5):
        test_env.reset(seed=seed)
        assert test_env.unwrapped.instance.start_hour // 24 in task.days["test"]


def test_fixed_episodes_are_the_same_every_time() -> None:
    task = get_task("geoinfer/Residency-v0")  # by id too
    first = [i.digest() for i in task.instances("validation")]
    assert first == [i.digest() for i in task.instances("validation")]
    assert [i.start_hour for i in task.instances("validation")] == [e.start_hour for e in task.episodes["validation"]]


def test_bad_names_and_splits_are_refused() -> None:
    with pytest.raises(ValueError, match="task 'nope': expected one of"):
        get_task("nope")
    with pytest.raises(ValueError, match="expected 'all' or task names"):
        select_tasks("hubs,")
    with pytest.raises(ValueError, match="split = 'train': expected one of"):
        get_task("hubs").instances("train")
    with pytest.raises(ValueError, match="split = 'dev'"):
        gym.make("geoinfer/Hubs-v0", split="dev")
    with pytest.raises(ValueError, match="expected the name of a benchmark task"):
        envs.placement.PlacementEnv(scenario=Scenario.default(), split="train")
    with pytest.raises(ValueError, match="task 'default'"):
        envs.placement.PlacementEnv(scenario="default", split="train")


def test_task_files_are_checked(tmp_path: Path) -> None:
    task = read_task(_task_file(tmp_path))
    assert task.days["validation"][0] == 273
    assert task.scenario().name == "x"  # a user's task file is read from its own path, not the suite's
    assert task.scenario("validation").start_days == task.days["validation"]
    with pytest.raises(ValueError, match="splits 'train' and 'validation' share 1 days"):
        read_task(_task_file(tmp_path, train='["2023-01-01/2023-10-01"]'))
    with pytest.raises(ValueError, match="expected 'YYYY-MM-DD/YYYY-MM-DD'"):
        read_task(_task_file(tmp_path, train='["2023-01-01"]'))
    with pytest.raises(ValueError, match="expected a range of 2023"):
        read_task(_task_file(tmp_path, train='["2022-12-01/2023-01-05"]'))
    with pytest.raises(ValueError, match=r"validation_episodes\[0\].*day of its split"):
        read_task(_task_file(tmp_path, val_hour=24 * 10))
    with pytest.raises(ValueError, match="expected a start at 00:00"):
        read_task(_task_file(tmp_path, val_hour=24 * 273 + 5))


def test_start_days_restrict_random_starts_and_are_checked() -> None:
    s = Scenario.default().with_overrides({"signals": {"start_days": [40, 41]}})
    assert {sample_instance(s, seed=i).start_hour for i in range(20)} == {40 * 24, 41 * 24}
    assert sample_instance(s, seed=0, start_hour=100).start_hour == 100  # an explicit start is not a random one
    # an episode of two days starts only where both of its days are in the split
    assert {sample_instance(s, seed=i, horizon_h=48.0).start_hour for i in range(10)} == {40 * 24}
    with pytest.raises(ValueError, match=r"signals.start_days\[0\] = 365"):
        Scenario.default().with_overrides({"signals": {"start_days": [365]}})
    with pytest.raises(ValueError, match="distinct days"):
        Scenario.default().with_overrides({"signals": {"start_days": [3, 3]}})


def test_warm_regions_are_permanent_replicas_and_are_checked() -> None:
    hubs = Scenario.load("hubs")
    inst = sample_instance(hubs, seed=0, num_tasks=20)
    m = inst.model_names.index("llm-70b")
    warm = {inst.region_names[i] for i in np.flatnonzero(inst.permanent_replica[:, m])}
    assert warm == {"East US", "Germany West Central", "Southeast Asia"}
    assert inst.permanent_replica[:, inst.model_names.index("llm-8b")].sum() == len(set(hubs.node_home_idx))
    with pytest.raises(ValueError, match=r"models.llm-70b.warm_regions\[0\] = 'Mars'"):
        Scenario.default().with_overrides({"models": {"llm-70b": {"warm_regions": ["Mars"]}}})
