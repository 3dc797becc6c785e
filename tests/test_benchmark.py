"""benchmark.evaluate and `geoinfer benchmark`: reproducible tables, honest labels, clear errors."""

from __future__ import annotations

import dataclasses
import sys
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import benchmark
from benchmark.run import KNOWS
from experiments.cli import main

TWO = "hubs,residency"  # tasks whose certificates are quick to check


def test_two_heuristics_on_two_tasks_reproduce_the_same_csv(tmp_path: Path) -> None:
    args = ["benchmark", "--policy", "local", "greedy", "--tasks", TWO, "--reps", "50", "--no-figures"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    a = (tmp_path / "a" / "episodes.csv").read_text()
    assert a == (tmp_path / "b" / "episodes.csv").read_text()
    assert (tmp_path / "a" / "leaderboard.md").read_text() == (tmp_path / "b" / "leaderboard.md").read_text()
    df = pd.read_csv(tmp_path / "a" / "episodes.csv")
    assert len(df) == 2 * 2 * 10 and set(df["policy"]) == {"local", "greedy"}
    local = df[df["policy"] == "local"]
    np.testing.assert_allclose(local["score"], 0.0, atol=1e-12)  # local is the zero of the score
    assert (df["regret"] >= -1e-6).all()  # no policy beats a certified optimum beyond its gap
    np.testing.assert_allclose(df["regret"], (df["cost_usd"] - df["optimum_usd"]) / df["optimum_usd"])
    assert {"energy_usd", "carbon_g", "penalty_usd", "replica_usd", "num_overflow"} <= set(df.columns)


def test_the_oracle_scores_one_and_every_row_says_what_the_policy_knows() -> None:
    df = benchmark.evaluate(["oracle", "nearest"], tasks="residency", split="validation", progress=False)
    oracle = df[df["policy"] == "oracle"]
    np.testing.assert_allclose(oracle["score"], 1.0)
    np.testing.assert_allclose(oracle["regret"], 0.0, atol=1e-12)
    assert set(oracle["knows"]) == {KNOWS["oracle"]}
    assert set(df.loc[df["policy"] == "nearest", "knows"]) == {KNOWS["heuristic"]}
    assert benchmark.resolve_policy("rolling_milp").knows == "clairvoyant within the hour"


class _Home:
    """A user policy: always the first admissible region."""

    def act(self, obs: np.ndarray, mask: np.ndarray) -> int:
        return int(np.flatnonzero(mask)[0])


def test_a_user_policy_from_module_colon_attr_is_played(monkeypatch: pytest.MonkeyPatch) -> None:
    mod = types.ModuleType("my_router")
    mod.Home = _Home  # type: ignore[attr-defined]
    mod.bad = lambda obs, mask: len(mask) + 3  # type: ignore[attr-defined]
    mod.masked = lambda obs, mask: int(np.flatnonzero(~mask)[0]) if (~mask).any() else 0  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "my_router", mod)
    df = benchmark.evaluate("my_router:Home", tasks="residency", split="validation", progress=False)
    assert len(df) == 5 and (df["policy"] == "my_router:Home").all()
    with pytest.raises(ValueError, match="policy 'my_router:bad' on task 'residency'"):
        benchmark.evaluate("my_router:bad", tasks="residency", progress=False)
    with pytest.raises(ValueError, match=r"inadmissible|not admissible"):
        benchmark.evaluate("my_router:masked", tasks="residency", progress=False)


def test_bad_input_is_named_before_any_work() -> None:
    with pytest.raises(ValueError, match="task 'nope': expected one of"):
        benchmark.evaluate("local", tasks="nope")
    with pytest.raises(ValueError, match="policy 'fastest': expected a heuristic"):
        benchmark.evaluate("fastest", tasks="hubs")
    with pytest.raises(ValueError, match="module 'no_such_module_xyz' does not import"):
        benchmark.evaluate("no_such_module_xyz:act", tasks="hubs")
    with pytest.raises(ValueError, match="no such model file"):
        benchmark.evaluate("missing.zip", tasks="hubs")
    with pytest.raises(ValueError, match="split = 'train'"):
        benchmark.evaluate("local", tasks="hubs", split="train")
    with pytest.raises(ValueError, match="expected distinct names"):
        benchmark.evaluate(["local", "local"], tasks="hubs")


def test_a_model_of_another_layout_is_refused(tmp_path: Path) -> None:
    from agents.train import TrainConfig, train

    cfg = TrainConfig(
        scenario="hubs",
        timesteps=64,
        num_envs=2,
        out=str(tmp_path / "run"),
        eval_every=0,
        checkpoint_every=0,
        progress_bar=False,
        hyperparams={"n_steps": 32, "batch_size": 32},
    )
    train(cfg, log=lambda *a: None)
    model = str(tmp_path / "run" / "model.zip")
    with pytest.raises(ValueError, match="task 'global' has observations of shape"):
        benchmark.evaluate(model, tasks="global", progress=False)
    df = benchmark.evaluate(model, tasks="hubs", split="validation", progress=False)
    assert len(df) == 5 and set(df["knows"]) == {KNOWS["agent"]}
    (tmp_path / "hubs").symlink_to(tmp_path / "run")  # one model per task, named by a {task} template
    template = str(tmp_path / "{task}" / "model.zip")
    per_task = benchmark.evaluate(template, tasks="hubs", split="validation", progress=False)
    pd.testing.assert_series_equal(per_task["cost_usd"], df["cost_usd"])  # the same model, the same numbers
    with pytest.raises(ValueError, match=r"no model file .* for task 'residency'"):
        benchmark.evaluate(template, tasks="hubs,residency", progress=False)
    # An unmasked algorithm's inadmissible choices run overflow, as in its training: no error
    train(dataclasses.replace(cfg, algo="ppo", out=str(tmp_path / "ppo")), log=lambda *a: None)
    ppo = benchmark.evaluate(str(tmp_path / "ppo" / "model.zip"), tasks="hubs", split="validation", progress=False)
    assert set(ppo["policy"]) == {"ppo/model"} and len(ppo) == 5


def test_geoinfer_benchmark_reports_unknown_tasks_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["benchmark", "--policy", "local", "--tasks", "nope", "--out", "x"]) == 2
    assert "geoinfer: error: task 'nope'" in capsys.readouterr().err


def test_geoinfer_tasks_lists_every_task(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tasks"]) == 0
    out = capsys.readouterr().out
    for task in benchmark.run.select_tasks("all"):
        assert task.env_id in out
