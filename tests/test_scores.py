"""benchmark.scores on a run small enough to score by hand: 2 tasks x 4 episodes x 2 policies.

    task A: J* = 100, J_local = 150 on every episode    task B: J* = 200, J_local = 300
    episode               0     1     2     3                 0     1     2     3
    good  cost          100   110   120   125               200   220   260   300
          regret       0.00  0.10  0.20  0.25              0.00  0.10  0.30  0.50
          score        1.0   0.8   0.6   0.5               1.0   0.8   0.4   0.0
    bad   cost          150   140   160   130               300   280   320   250
          regret       0.50  0.40  0.60  0.30              0.50  0.40  0.60  0.25
          score        0.0   0.2  -0.2   0.4               0.0   0.2  -0.2   0.5

good's eight scores sorted: 0, .4, .5, .6, .8, .8, 1, 1; the IQM drops two at each end: mean(.5, .6, .8, .8) = .675.
Its mean is 5.1 / 8 = .6375; task means .725 (A) and .55 (B), so the median of task means is .6375 too; the
optimality gap 1 - .6375 = .3625; mean regret (.55 + .9) / 8 = .18125.
bad sorted: -.2, -.2, 0, 0, .2, .2, .4, .5: IQM mean(0, 0, .2, .2) = .1; mean .9 / 8 = .1125.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmark import scores as S

REPS = 200  # bootstrap resamples: enough for the checks below, fast

COSTS = {
    "good": {"A": [100, 110, 120, 125], "B": [200, 220, 260, 300]},
    "bad": {"A": [150, 140, 160, 130], "B": [300, 280, 320, 250]},
}
OPTIMUM = {"A": 100.0, "B": 200.0}
LOCAL = {"A": 150.0, "B": 300.0}


def make_run() -> pd.DataFrame:
    """The run of the module docstring, listed bad-first with episodes reversed (order must not matter)."""
    rows = [
        {
            "task": task,
            "episode": e,
            "policy": policy,
            "cost_usd": float(costs[e]),
            "local_usd": LOCAL[task],
            "optimum_usd": OPTIMUM[task],
        }
        for policy in ("bad", "good")
        for task, costs in COSTS[policy].items()
        for e in reversed(range(4))
    ]
    return pd.DataFrame(rows)


@pytest.fixture
def run() -> pd.DataFrame:
    return make_run()


def test_relative_regret_and_normalised_score_by_hand() -> None:
    np.testing.assert_allclose(S.relative_regret([100, 110, 125], 100), [0.0, 0.1, 0.25])
    np.testing.assert_allclose(S.normalised_score([100, 110, 150, 160], 150, 100), [1.0, 0.8, 0.0, -0.2])
    assert float(S.relative_regret(260.0, 200.0)) == pytest.approx(0.3)


@pytest.mark.parametrize("optimum", [0.0, -5.0])
def test_relative_regret_rejects_a_non_positive_optimum(optimum: float) -> None:
    with pytest.raises(ValueError, match=rf"J\* must be > 0, got {optimum}"):
        S.relative_regret([1.0, 2.0], [100.0, optimum])


def test_scores_reject_non_finite_costs() -> None:
    with pytest.raises(ValueError, match="cost must be finite, got nan"):
        S.relative_regret([1.0, np.nan], 1.0)


def test_normalised_score_is_undefined_where_local_is_optimal(run: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="already optimal"):
        S.normalised_score(120.0, 100.0, 100.0)
    with pytest.raises(ValueError, match="already optimal"):
        S.normalised_score(120.0, 100.0 * (1 + 1e-12), 100.0)  # within the tolerance
    assert float(S.normalised_score(100.0, 101.0, 100.0)) == 1.0  # a 1% gap is a gap
    degenerate = run.copy()
    at = (degenerate["task"] == "B") & (degenerate["episode"] == 2) & (degenerate["policy"] == "good")
    degenerate.loc[at, "local_usd"] = 200.0
    with pytest.raises(ValueError, match=r"already optimal.*task 'B', episode 2, policy 'good'"):
        S.add_scores(degenerate)


def test_add_scores_by_hand(run: pd.DataFrame) -> None:
    scored = S.add_scores(run).set_index(["policy", "task", "episode"]).sort_index()
    np.testing.assert_allclose(scored.loc[("good", "B"), "regret"], [0.0, 0.1, 0.3, 0.5])
    np.testing.assert_allclose(scored.loc[("good", "B"), "score"], [1.0, 0.8, 0.4, 0.0])
    np.testing.assert_allclose(scored.loc[("bad", "A"), "score"], [0.0, 0.2, -0.2, 0.4])
    assert "score" not in run.columns  # a copy


def test_score_matrix_is_episodes_by_tasks(run: pd.DataFrame) -> None:
    matrix, tasks = S.score_matrix(run, "good")
    assert tasks == ["A", "B"]
    np.testing.assert_allclose(matrix, [[1.0, 1.0], [0.8, 0.8], [0.6, 0.4], [0.5, 0.0]])
    regret, _ = S.score_matrix(run, "bad", "regret")
    np.testing.assert_allclose(regret[:, 1], [0.5, 0.4, 0.6, 0.25])
    with pytest.raises(ValueError, match="no rows for policy 'ppo'"):
        S.score_matrix(run, "ppo")


def test_a_categorical_task_column_sets_the_task_order(run: pd.DataFrame) -> None:
    ordered = run.assign(task=pd.Categorical(run["task"], categories=["C", "B", "A"]))  # C: no rows, left out
    matrix, tasks = S.score_matrix(ordered, "good")
    assert tasks == ["B", "A"]
    np.testing.assert_allclose(matrix[:, 0], [1.0, 0.8, 0.4, 0.0])
    header = S.leaderboard_markdown(ordered, reps=REPS).splitlines()[0]
    assert header.endswith("| B regret % | A regret % |")


def test_aggregate_by_hand(run: pd.DataFrame) -> None:
    agg = S.aggregate(run, reps=REPS)
    assert list(agg.index) == ["good", "bad"]  # best IQM first, whatever the input order
    good, bad = agg.loc["good"], agg.loc["bad"]
    assert good["iqm"] == pytest.approx(0.675)
    assert good["mean"] == pytest.approx(0.6375)
    assert good["median"] == pytest.approx(0.6375)
    assert good["optimality_gap"] == pytest.approx(0.3625)
    assert good["mean_regret"] == pytest.approx(0.18125)
    assert bad["iqm"] == pytest.approx(0.1)
    assert bad["mean"] == pytest.approx(0.1125)
    assert (good["tasks"], good["episodes"]) == (2, 4)
    for metric in [*S.METRICS, "mean_regret"]:
        lo, point, hi = agg[f"{metric}_lo"], agg[metric], agg[f"{metric}_hi"]
        assert (lo <= point).all() and (point <= hi).all(), metric
        assert (lo < hi).all(), metric  # a real interval, not a point: the bootstrap ran


def test_aggregate_is_deterministic_by_seed(run: pd.DataFrame) -> None:
    np.random.seed(123)  # noqa: NPY002 (the caller's global state must survive)
    before = np.random.get_state()[1].copy()  # noqa: NPY002
    first = S.aggregate(run, reps=REPS, seed=7)
    np.testing.assert_array_equal(np.random.get_state()[1], before)  # noqa: NPY002
    pd.testing.assert_frame_equal(first, S.aggregate(run, reps=REPS, seed=7))
    other = S.aggregate(run, reps=REPS, seed=8)
    assert not np.allclose(first["iqm_lo"], other["iqm_lo"]) or not np.allclose(first["iqm_hi"], other["iqm_hi"])
    # a policy's intervals do not depend on which other policies share the frame, nor on their order
    alone = S.aggregate(run[run["policy"] == "good"], reps=REPS, seed=7)
    pd.testing.assert_series_equal(alone.loc["good"], first.loc["good"])
    pd.testing.assert_frame_equal(S.aggregate(run.iloc[::-1], reps=REPS, seed=7), first)


def test_unequal_episode_counts_name_the_task_and_policy(run: pd.DataFrame) -> None:
    short = run.drop(run.index[(run["task"] == "B") & (run["policy"] == "bad") & (run["episode"] == 3)])
    with pytest.raises(ValueError, match=r"same number of episodes per policy \(4\).*task 'B' / policy 'bad': 3"):
        S.aggregate(short, reps=REPS)
    no_task = run.drop(run.index[(run["task"] == "A") & (run["policy"] == "good")])
    with pytest.raises(ValueError, match="task 'A' / policy 'good': 0"):
        S.score_matrix(no_task, "bad")


def test_duplicate_or_unpaired_episodes_are_rejected(run: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="duplicate rows"):
        S.aggregate(pd.concat([run, run.iloc[:1]]), reps=REPS)
    shifted = run.copy()
    shifted.loc[(shifted["policy"] == "good") & (shifted["task"] == "A"), "episode"] += 10
    with pytest.raises(ValueError, match="task 'A': policy 'good' played other episodes"):
        S.aggregate(shifted, reps=REPS)


def test_per_task_by_hand(run: pd.DataFrame) -> None:
    table = S.per_task(run, reps=REPS)
    assert list(zip(table["task"], table["policy"], strict=True)) == [
        ("A", "bad"),
        ("A", "good"),
        ("B", "bad"),
        ("B", "good"),
    ]
    row = table[(table["task"] == "A") & (table["policy"] == "good")].iloc[0]
    assert row["episodes"] == 4
    assert row["mean_cost_usd"] == pytest.approx(455 / 4)
    assert row["mean_regret"] == pytest.approx(0.1375)
    assert row["regret_se"] == pytest.approx(np.std([0, 0.1, 0.2, 0.25], ddof=1) / 2)
    assert row["mean_score"] == pytest.approx(0.725)
    assert row["score_lo"] <= 0.725 <= row["score_hi"]
    assert row["score_lo"] >= 0.5 and row["score_hi"] <= 1.0  # a mean of resampled episodes stays in their range


def test_performance_profile_by_hand(run: pd.DataFrame) -> None:
    taus = np.array([-0.5, 0.0, 0.5, 1.0])
    profiles = S.performance_profile(run, taus, reps=REPS)
    assert list(profiles) == ["bad", "good"]
    profile, band = profiles["good"]
    np.testing.assert_allclose(profile, [1.0, 7 / 8, 5 / 8, 0.0])  # share of good's 8 scores above each tau
    assert band.shape == (2, 4)
    assert (band[0] <= profile).all() and (profile <= band[1]).all()
    # the vectorised profile is rliable's own score distribution, band included
    matrix, _ = S.score_matrix(run, "bad")
    with S._seeded(0):
        ref, ref_band = S.rly.create_performance_profile({"bad": matrix}, taus, reps=REPS)
    np.testing.assert_array_equal(profiles["bad"][0], ref["bad"])
    np.testing.assert_array_equal(profiles["bad"][1], ref_band["bad"])


def test_leaderboard_rows_in_iqm_order(run: pd.DataFrame) -> None:
    text = S.leaderboard_markdown(run, {"good": "hindsight (whole day)", "bad": "online: what the agent sees"}, REPS)
    lines = text.strip().splitlines()
    assert len(lines) == 4  # header, alignment, one row per policy
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert header[:3] == ["policy", "knows", "IQM score [95% CI]"]
    assert header[-2:] == ["A regret %", "B regret %"]
    good = [c.strip() for c in lines[2].strip("|").split("|")]
    bad = [c.strip() for c in lines[3].strip("|").split("|")]
    assert (good[0], good[1], bad[0]) == ("good", "hindsight (whole day)", "bad")
    assert good[2].startswith("0.675 [") and float(good[3]) == pytest.approx(0.6375, abs=5e-4)
    assert good[-2:] == ["13.75", "22.50"]  # mean regret % of good on A and on B
    assert len(good) == len(header) == len(bad)


def test_leaderboard_rounds_a_tiny_negative_regret_to_zero(run: pd.DataFrame) -> None:
    # an oracle within its MILP gap tolerance of J* (below it, as the bound is what is reported) costs less than J*
    oracle = run[run["policy"] == "good"].assign(policy="oracle", cost_usd=lambda d: d["optimum_usd"] * (1 - 1e-9))
    lines = S.leaderboard_markdown(pd.concat([run, oracle]), reps=REPS).splitlines()
    assert lines[2].startswith("| oracle |")
    assert "-0.0" not in lines[2] and lines[2].endswith("| 0.00 | 0.00 |")


def test_leaderboard_escapes_pipes_and_leaves_unknowns_blank(run: pd.DataFrame) -> None:
    renamed = run.replace({"policy": {"bad": "a|b"}})
    lines = S.leaderboard_markdown(renamed, reps=REPS).splitlines()
    assert lines[3].startswith("| a\\|b |  | ")


def test_plot_scores_writes_pngs_headless(run: pd.DataFrame, tmp_path: Path) -> None:
    import matplotlib.pyplot as plt

    open_figures = plt.get_fignums()
    paths = S.plot_scores(run, tmp_path / "figures", reps=REPS)
    assert [p.name for p in paths] == ["scores_per_task.png", "scores_aggregate.png", "performance_profile.png"]
    for path in paths:
        assert path.parent == tmp_path / "figures"
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000
    assert plt.get_fignums() == open_figures  # nothing left open in pyplot: no display, no leak
