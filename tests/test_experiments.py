"""The paper's experiments: each runs end to end in --quick mode; the oracle's frontier behaves."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pandas as pd
import pytest

from envs import Scenario, sample_instance
from experiments import paper
from experiments.cli import main as cli_main

REQUIRED = [
    "experiment",
    "setting",
    "policy",
    "seed",
    "total_usd",
    "energy_usd",
    "carbon_g",
    "delay_usd",
    "migration_usd",
    "rid",
    "break_even_share",
]


@pytest.mark.parametrize("name", paper.EXPERIMENTS)
def test_each_experiment_runs_quick_from_the_cli(name: str, tmp_path, capsys) -> None:
    assert cli_main([name, "--out", str(tmp_path), "--quick"]) == 0
    df = pd.read_csv(tmp_path / f"{name}.csv")
    assert set(REQUIRED) <= set(df.columns)
    assert set(df["policy"]) == {"oracle", *paper.HEURISTIC_NAMES}
    assert (tmp_path / f"{name}.png").stat().st_size > 10_000
    if name == "frontier":
        assert {"erl", "crl"} <= set(df.columns)
    oracle = df[df["policy"] == "oracle"]
    assert (oracle["status"] == "optimal").all()
    assert ((df["rid"] >= 0) & (df["rid"] <= 1)).all()
    if name != "layers":  # regret >= 0: the oracle is the cheapest plan of every setting and seed
        best = df.groupby(["setting", "seed"])["total_usd"].min()
        mine = oracle.set_index(["setting", "seed"])["total_usd"]
        np.testing.assert_allclose(mine.loc[best.index], best, rtol=1e-6)
    out = capsys.readouterr().out
    assert f"{name}:" in out and "policy" in out


def test_bad_config_is_one_clear_error(tmp_path, capsys) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("levels = [0.0]\nsolver = 'cbc'\n")
    assert cli_main(["frontier", "--out", str(tmp_path), "--config", str(bad)]) == 2
    assert "unknown keys ['solver']" in capsys.readouterr().err
    bad.write_text("levels = [-5.0]\n")
    assert cli_main(["frontier", "--out", str(tmp_path), "--config", str(bad)]) == 2
    assert "frontier.levels = [-5.0]" in capsys.readouterr().err
    bad.write_text("levels = ['off', 'lenient']\n")
    assert cli_main(["legal", "--out", str(tmp_path), "--config", str(bad)]) == 2
    assert "residency modes" in capsys.readouterr().err


def _oracle_over_slack(scenario: Scenario, slacks: list[float], seed: int) -> list[tuple[float, float]]:
    from baselines.milp import solve_hindsight
    from envs import metrics

    base = sample_instance(scenario, seed=seed, num_tasks=150, start_hour=24 * 100)
    out = []
    for add in slacks:
        inst = base.replace(budget_ms=base.budget_ms + add)
        res = solve_hindsight(inst)
        assert res.status == "optimal"
        out.append((res.objective_usd, metrics.rid(inst, res.plan)))
    return out


SLACKS = [0.0, 20.0, 60.0, 150.0, 400.0, 2000.0]


@pytest.mark.parametrize("seed", [0, 1])
def test_oracle_cost_never_increases_as_budgets_relax(seed: int) -> None:
    results = _oracle_over_slack(Scenario.default(), SLACKS, seed)
    costs = [c for c, _ in results]
    assert all(b <= a * (1 + 1e-6) + 1e-9 for a, b in itertools.pairwise(costs))
    assert costs[-1] < costs[0]  # relaxing by two seconds does buy something


@pytest.mark.parametrize("seed", [0, 1])
def test_oracle_rid_never_decreases_without_frictions_or_capacity_limits(seed: int) -> None:
    s = Scenario.default().with_overrides(
        {
            "frictions": {"state": 0.0, "cache": 0.0, "egress": 0.0, "replica": 0.0},
            "capacity": {"scale": 1000.0},
        }
    )
    rids = [r for _, r in _oracle_over_slack(s, SLACKS, seed)]
    assert all(b >= a - 1e-9 for a, b in itertools.pairwise(rids))
    assert rids[-1] > rids[0]


def test_settings_reuse_one_episode_and_change_only_their_knob() -> None:
    s = Scenario.default()
    base = sample_instance(s, seed=3, num_tasks=50)
    cfg = paper.load_config("frictions", quick=True)
    inst = paper.apply_setting(cfg, s, base, 2.0)
    assert inst.cost.replica_mult == 2 * base.cost.replica_mult and inst.cost.cache_mult == 2 * base.cost.cache_mult
    np.testing.assert_array_equal(inst.arrival_h, base.arrival_h)
    cap_cfg = dataclasses.replace(paper.load_config("capacity", quick=True), regions=("Canada Central",))
    inst = paper.apply_setting(cap_cfg, s, base, 0.5)
    j = s.region_names.index("Canada Central")
    np.testing.assert_allclose(inst.capacity_gpu_s[:, j], base.capacity_gpu_s[:, j] / 2)
    others = [i for i in range(s.num_regions) if i != j]
    np.testing.assert_array_equal(inst.capacity_gpu_s[:, others], base.capacity_gpu_s[:, others])
    legal_cfg = paper.load_config("legal", quick=True)
    off = paper.apply_setting(legal_cfg, s, base, "off")
    assert off.residency_ok.all() and not base.residency_ok.all()


def test_bench_agents_scores_saved_episodes_joined_from_several_files(tmp_path, capsys) -> None:
    """``--score`` reprints the suite's tables from saved episodes: split one shipped file in two, join them."""
    from pathlib import Path

    import benchmark
    from experiments.bench import agents as bench_agents

    shipped = pd.read_csv(Path(__file__).parents[1] / "docs/results/agents/dagger_mpc_150k_episodes.csv")
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    shipped[shipped["task"].isin(["carbon", "hubs"])].to_csv(first, index=False)
    shipped[shipped["task"].isin(["global", "shift"])].to_csv(second, index=False)
    bench_agents.main(["--algo", "dagger", "--score", str(first), str(second)])
    out = capsys.readouterr().out
    agent = bench_agents.seed_mean(shipped[shipped["task"].isin(["carbon", "hubs", "global", "shift"])], "dagger")
    hubs = agent[agent["task"] == "hubs"]["regret"]
    assert f"| hubs | {100 * hubs.mean():.2f} +- {100 * hubs.std(ddof=1) / np.sqrt(hubs.size):.2f} |" in out
    assert "| residency |" not in out and "contended:" not in out  # tasks not in the files are not reported
    iqm = benchmark.aggregate(agent, reps=2000).loc["dagger", "iqm"]
    assert f"suite IQM of the normalised score: dagger {iqm:.3f} [" in out
    with pytest.raises(SystemExit, match=r"no rows of policy 'bc/seed<S>' .* found dagger/seed0, dagger/seed1"):
        bench_agents.main(["--algo", "bc", "--score", str(first)])
    shipped[shipped["task"] == "carbon"].to_csv(tmp_path / "c.csv", index=False)
    with pytest.raises(SystemExit, match=r"task 'carbon', policy .* is in .*a\.csv and .*c\.csv"):
        bench_agents.main(["--algo", "dagger", "--score", str(first), str(tmp_path / "c.csv")])
