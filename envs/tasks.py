"""The benchmark's task suite: named hard scenarios with date splits and fixed evaluation episodes.

A task is a scenario file in ``envs/data/tasks`` whose ``[benchmark]`` table says what makes it hard, why
it is realistic, what its splits measure, which days of 2023 belong to each split (inclusive UTC date
ranges, ``"2023-01-01/2023-09-30"``; no day in two splits) and which episodes are the fixed validation and
test episodes (``[seed, start_hour]`` pairs). Importing :mod:`envs` registers each task's Gymnasium id
(``geoinfer/<Task>-v0``); ``gym.make(id)`` plays random episodes of the *train* split, so a policy trained
on it never sees a test day. Usage::

    from envs.tasks import TASKS, get_task
    task = get_task("hubs")
    env = gym.make(task.env_id)                      # random training days
    for inst in task.instances("test"):              # the fixed test episodes
        obs, info = env.reset(options={"instance": inst})
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from envs.instance import Instance
from envs.scenario import Scenario
from envs.spec import data_dir, read_toml
from envs.workload import sample_instance

SPLITS = ("train", "validation", "test")
EVAL_SPLITS = ("validation", "test")  # the splits with fixed episodes
YEAR_START = date(2023, 1, 1)  # day 0 of the signal files (hour 0 = 2023-01-01T00:00Z)
_TEXT_FIELDS = ("id", "title", "hard", "realistic", "generalisation")


def tasks_dir() -> Path:
    """The folder of packaged task files (``envs/data/tasks``)."""
    return data_dir() / "tasks"


@dataclass(frozen=True, slots=True)
class Episode:
    """A fixed evaluation episode: the seed that draws its tasks and its first hour (of 2023, UTC)."""

    seed: int
    start_hour: int

    @property
    def day(self) -> int:
        return self.start_hour // 24


@dataclass(frozen=True, slots=True)
class Task:
    """One task of the suite, as its file's ``[benchmark]`` table states it (see the module docstring)."""

    name: str  # the scenario name: Scenario.load(name), --tasks name
    env_id: str  # its Gymnasium id, geoinfer/<Task>-v0
    title: str
    hard: str  # the mechanism that makes it hard
    realistic: str  # why it is realistic
    generalisation: str  # what its splits measure
    days: dict[str, tuple[int, ...]]  # split -> days of 2023 (0 = Jan 1), sorted
    episodes: dict[str, tuple[Episode, ...]]  # "validation" / "test" -> fixed episodes
    path: Path

    def scenario(self, split: str | None = None) -> Scenario:
        """The task's scenario; with ``split``, its random episodes start only on that split's days."""
        days = None if split is None else self.days[_check_split(split, SPLITS)]
        return _scenario(self.path, days)

    def instances(self, split: str = "test") -> list[Instance]:
        """The fixed episodes of ``split`` ("validation" or "test"), in file order."""
        s = self.scenario()
        return [sample_instance(s, seed=e.seed, start_hour=e.start_hour) for e in self.episodes[_check_split(split)]]


@functools.cache
def _scenario(path: Path, days: tuple[int, ...] | None) -> Scenario:
    """Scenarios are immutable and slow to read (data files): one per (task file, split) and process."""
    base = Scenario.from_toml(path)
    return base if days is None else base.with_overrides({"signals": {"start_days": list(days)}})


def _check_split(split: Any, allowed: tuple[str, ...] = EVAL_SPLITS) -> str:
    if split not in allowed:
        raise ValueError(f"split = {split!r}: expected one of {allowed}")
    return str(split)


def _days(where: str, ranges: Any) -> tuple[int, ...]:
    """Days of 2023 in a list of inclusive ``"YYYY-MM-DD/YYYY-MM-DD"`` ranges."""
    if not isinstance(ranges, list) or not ranges:
        raise ValueError(f"{where} = {ranges!r}: expected a non-empty list of 'YYYY-MM-DD/YYYY-MM-DD' date ranges")
    days: set[int] = set()
    for j, text in enumerate(ranges):
        try:
            first, last = (date.fromisoformat(part) for part in str(text).split("/"))
        except ValueError:
            raise ValueError(f"{where}[{j}] = {text!r}: expected 'YYYY-MM-DD/YYYY-MM-DD'") from None
        if not (YEAR_START <= first <= last < YEAR_START.replace(year=2024)):
            raise ValueError(f"{where}[{j}] = {text!r}: expected a range of 2023, first day <= last day")
        days.update(range((first - YEAR_START).days, (last - YEAR_START).days + 1))
    return tuple(sorted(days))


def _episodes(where: str, rows: Any, days: tuple[int, ...]) -> tuple[Episode, ...]:
    if not isinstance(rows, list) or not rows:
        raise ValueError(f"{where} = {rows!r}: expected a non-empty list of [seed, start_hour] pairs")
    out = []
    for j, row in enumerate(rows):
        if not (isinstance(row, list) and len(row) == 2 and all(isinstance(v, int) and v >= 0 for v in row)):
            raise ValueError(f"{where}[{j}] = {row!r}: expected [seed, start_hour], two integers >= 0")
        ep = Episode(*row)
        if ep.start_hour % 24 or ep.day not in days:
            day = YEAR_START + timedelta(days=ep.day)
            raise ValueError(
                f"{where}[{j}] = {row!r}: expected a start at 00:00 UTC of a day of its split (hour {ep.start_hour} "
                f"is {day.isoformat()} {ep.start_hour % 24:02d}:00)"
            )
        out.append(ep)
    if len({(e.seed, e.start_hour) for e in out}) != len(out):
        raise ValueError(f"{where}: expected distinct episodes")
    return tuple(out)


def read_task(path: Path) -> Task:
    """Read and check a task file's ``[benchmark]`` table (the scenario is read on demand)."""
    raw = read_toml(path, "task file")
    name = raw.get("name")
    table = raw.get("benchmark")
    if not isinstance(table, dict):
        raise ValueError(f"task file {str(path)!r}: expected a [benchmark] table")
    where = f"{path.name}: benchmark"
    for key in _TEXT_FIELDS:
        if not isinstance(table.get(key), str) or not table[key].strip():
            raise ValueError(f"{where}.{key} = {table.get(key)!r}: expected a non-empty string")
    unknown = set(table) - {*_TEXT_FIELDS, *SPLITS, *(f"{s}_episodes" for s in EVAL_SPLITS)}
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}")
    days = {split: _days(f"{where}.{split}", table.get(split)) for split in SPLITS}
    for i, a in enumerate(SPLITS):
        for b in SPLITS[i + 1 :]:
            shared = set(days[a]) & set(days[b])
            if shared:
                first = YEAR_START + timedelta(days=min(shared))
                raise ValueError(f"{where}: splits {a!r} and {b!r} share {len(shared)} days (first {first})")
    episodes = {s: _episodes(f"{where}.{s}_episodes", table.get(f"{s}_episodes"), days[s]) for s in EVAL_SPLITS}
    return Task(
        name=str(name),
        env_id=table["id"],
        title=table["title"],
        hard=" ".join(table["hard"].split()),
        realistic=" ".join(table["realistic"].split()),
        generalisation=" ".join(table["generalisation"].split()),
        days=days,
        episodes=episodes,
        path=path,
    )


def _load_tasks() -> dict[str, Task]:
    tasks = {}
    for path in sorted(tasks_dir().glob("*.toml")):
        task = read_task(path)
        if task.name != path.stem:
            raise ValueError(f"task file {path.name}: name = {task.name!r}: expected {path.stem!r}")
        tasks[task.name] = task
    return tasks


TASKS: dict[str, Task] = _load_tasks()  # the suite, by name, in alphabetical order


def get_task(name: str) -> Task:
    """The task ``name`` (or its Gymnasium id); ValueError listing the suite otherwise."""
    for task in TASKS.values():
        if name in (task.name, task.env_id):
            return task
    raise ValueError(f"task {name!r}: expected one of {sorted(TASKS)} (or their ids)")


def select_tasks(names: str | list[str] | None) -> list[Task]:
    """``"all"`` / None: the whole suite; else the named tasks (comma-separated string or list), checked."""
    if names is None or names == "all":
        return list(TASKS.values())
    items = names.split(",") if isinstance(names, str) else list(names)
    if not items or any(not n.strip() for n in items):
        raise ValueError(f"tasks = {names!r}: expected 'all' or task names among {sorted(TASKS)}")
    return [get_task(n.strip()) for n in items]
