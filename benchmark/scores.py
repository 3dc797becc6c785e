"""Scores, aggregates and figures of a benchmark run, with rliable's stratified bootstrap.

The input is a tidy frame, one row per (task, episode, policy), with the policy's total cost J (``cost_usd``),
the 'local' heuristic's J_local (``local_usd``) and the hindsight oracle's J* (``optimum_usd``) on that episode.
Two per-episode numbers come out of it:

- relative regret (J - J*) / J*: 0 for the oracle, the share of the optimum a policy pays on top;
- normalised score (J_local - J) / (J_local - J*): 0 for 'local', 1 for the oracle, so tasks whose costs differ
  by orders of magnitude can be pooled.

Aggregates follow Agarwal et al. (NeurIPS 2021, "Deep RL at the edge of the statistical precipice") through
their library ``rliable``: the episodes of a task's test split are its runs, the tasks the strata of the
bootstrap, and the interquartile mean (IQM) is the headline number. Every interval is a 95% percentile
stratified-bootstrap interval, deterministic for a given seed (see ``_seeded``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from numpy.typing import ArrayLike

# rliable's bootstrap engine is arch 7 (pinned with pandas < 3 in pyproject.toml: see there why).
from rliable import library as rly
from rliable import metrics as rly_metrics
from rliable import plot_utils as rly_plot

COLUMNS = ("task", "episode", "policy", "cost_usd", "local_usd", "optimum_usd")
DEGENERATE_RTOL = 1e-9  # J_local - J* at or below this share of J*: 'local' is optimal, the score undefined
METRICS = ("iqm", "mean", "median", "optimality_gap")
METRIC_TITLES = {"iqm": "IQM", "mean": "Mean", "median": "Median", "optimality_gap": "Optimality gap"}


class _ElementError(ValueError):
    """A bad value in an elementwise score function; ``index`` (flat) lets ``add_scores`` name the row."""

    def __init__(self, message: str, index: int) -> None:
        super().__init__(message)
        self.index = index


def _raise_first(bad: np.ndarray, message: str) -> None:
    if bad.any():
        flat = np.flatnonzero(bad)
        raise _ElementError(f"{message} (flat index {flat[0]}; {flat.size} of {bad.size} values)", int(flat[0]))


def _floats(**arrays: ArrayLike) -> list[np.ndarray]:
    """The arrays as float64, broadcast together; each must be finite everywhere."""
    out = list(np.broadcast_arrays(*(np.asarray(a, dtype=np.float64) for a in arrays.values())))
    for name, a in zip(arrays, out, strict=True):
        bad = ~np.isfinite(a)
        if bad.any():
            _raise_first(bad, f"{name} must be finite, got {a.ravel()[np.flatnonzero(bad)[0]]}")
    return out


def relative_regret(cost: ArrayLike, optimum: ArrayLike) -> np.ndarray:
    """(J - J*) / J*, elementwise. J* must be > 0 (ValueError naming the first value that is not)."""
    j, opt = _floats(cost=cost, optimum=optimum)
    bad = ~(opt > 0)
    if bad.any():
        _raise_first(bad, f"optimum J* must be > 0, got {opt.ravel()[np.flatnonzero(bad)[0]]}")
    return (j - opt) / opt


def normalised_score(cost: ArrayLike, local: ArrayLike, optimum: ArrayLike) -> np.ndarray:
    """(J_local - J) / (J_local - J*), elementwise: 'local' scores 0, the oracle 1, worse than local < 0.

    Undefined where 'local' is already optimal, J_local - J* <= 1e-9 |J*| (also where J_local < J*, an oracle
    that is not one): ValueError naming the first such value.
    """
    j, j_local, opt = _floats(cost=cost, local=local, optimum=optimum)
    gap = j_local - opt
    bad = ~(gap > DEGENERATE_RTOL * np.abs(opt))
    if bad.any():
        i = np.flatnonzero(bad)[0]
        _raise_first(
            bad,
            f"normalised score undefined: J_local - J* = {gap.ravel()[i]:.6g} <= {DEGENERATE_RTOL:g} J* "
            f"(J_local {j_local.ravel()[i]:.6g}, J* {opt.ravel()[i]:.6g}): the local heuristic is already optimal "
            "(or beats the oracle)",
        )
    return (j_local - j) / gap


def _row(df: pd.DataFrame, i: int) -> str:
    r = df.iloc[i]
    return f"task {r['task']!r}, episode {r['episode']}, policy {r['policy']!r}"


def add_scores(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``df`` with columns ``regret`` (relative regret) and ``score`` (normalised score).

    A bad value raises ValueError naming its task, episode and policy.
    """
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"missing columns {missing}; a benchmark frame needs {list(COLUMNS)}")
    out = df.copy()
    try:
        out["regret"] = relative_regret(df["cost_usd"], df["optimum_usd"])
        out["score"] = normalised_score(df["cost_usd"], df["local_usd"], df["optimum_usd"])
    except _ElementError as e:
        raise ValueError(f"{e} at {_row(df, e.index)}") from None
    return out


def _ordered(values: pd.Series) -> list[str]:
    """Distinct values, sorted, or in the categories' order for a categorical column (a task order chosen on
    purpose). Never the rows' order: the bootstrap draws per task column, so the numbers must not depend on it."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        present = set(values)
        return [c for c in values.cat.categories if c in present]
    return sorted(set(values))


def _check_balanced(df: pd.DataFrame) -> None:
    """Every (task, policy) holds the same episodes: the same count across the grid (rliable's matrices are
    num_runs x num_tasks), and, within a task, the same episode ids for every policy (paired comparisons)."""
    dup = df.duplicated(["task", "episode", "policy"])
    if dup.any():
        raise ValueError(f"duplicate rows for {_row(df, int(np.flatnonzero(dup)[0]))}")
    # observed=True: an unused category of a categorical column is no task (pandas 2 defaults to False)
    counts = df.groupby(["task", "policy"], sort=False, observed=True).size().unstack(fill_value=0)
    expected = Counter(counts.to_numpy().ravel().tolist()).most_common(1)[0][0]
    off = [(t, p, int(n)) for p, col in counts.items() for t, n in col.items() if n != expected]
    if off:
        named = "; ".join(f"task {t!r} / policy {p!r}: {n}" for t, p, n in off[:10])
        raise ValueError(f"every task must have the same number of episodes per policy ({expected}), but {named}")
    for task, d in df.groupby("task", sort=False, observed=True):
        sets = d.groupby("policy", sort=False, observed=True)["episode"].agg(frozenset)
        if sets.nunique() > 1:
            ref, ref_policy = sets.iloc[0], sets.index[0]
            policy = next(p for p, s in sets.items() if s != ref)
            raise ValueError(
                f"task {task!r}: policy {policy!r} played other episodes than policy {ref_policy!r} "
                f"(only {sorted(sets[policy] ^ ref)[:10]} differ)"
            )


def _scored(df: pd.DataFrame) -> pd.DataFrame:
    """``add_scores`` (recomputed, so a stale column cannot leak in) after checking the frame is balanced."""
    out = add_scores(df)
    _check_balanced(out)
    return out


def score_matrix(df: pd.DataFrame, policy: str, column: str = "score") -> tuple[np.ndarray, list[str]]:
    """``policy``'s ``column`` ('score' or 'regret') as rliable's [num_runs x num_tasks] matrix, and the tasks.

    Rows are episodes sorted by id within each task (rliable resamples each task's column independently, so rows
    need not pair across tasks); tasks sorted, or in their categorical order.
    """
    return _matrix(_scored(df), policy, column)


def _matrix(scored: pd.DataFrame, policy: str, column: str = "score") -> tuple[np.ndarray, list[str]]:
    """``score_matrix`` of a frame that ``_scored`` already checked."""
    d = scored[scored["policy"] == policy]
    if d.empty:
        raise ValueError(f"no rows for policy {policy!r}; policies: {_ordered(scored['policy'])}")
    tasks = _ordered(scored["task"])
    columns = [d[d["task"] == t].sort_values("episode")[column].to_numpy(dtype=np.float64) for t in tasks]
    return np.column_stack(columns), tasks


@contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Seed numpy's global legacy RNG for one policy's bootstrap, and restore the caller's state after.

    rliable 1.2's ``StratifiedBootstrap.update_indices`` draws resamples with ``np.random.choice``: the
    ``random_state`` that ``get_interval_estimates`` hands to arch is never used for them (and
    ``create_performance_profile`` takes none), so the global RNG is the only handle. Reseeding per policy keeps a
    policy's intervals independent of which other policies share the frame, and, as every policy's matrix has the
    same shape and episode order, resamples the same episodes for each (common random numbers, paired episodes).
    Not thread-safe, as the global RNG is not.
    """
    state = np.random.get_state()  # noqa: NPY002
    np.random.seed(seed)  # noqa: NPY002 (rliable reads the legacy global RNG)
    try:
        yield
    finally:
        np.random.set_state(state)  # noqa: NPY002


def _interval(
    matrix: np.ndarray, func: Callable[[np.ndarray], np.ndarray], reps: int, seed: int, policy: str
) -> tuple[np.ndarray, np.ndarray]:
    """rliable's point estimate of ``func`` and its stratified-bootstrap 95% interval (2 x len)."""
    with _seeded(seed):
        point, interval = rly.get_interval_estimates({policy: matrix}, func, reps=reps)
    return np.asarray(point[policy], dtype=np.float64), np.asarray(interval[policy], dtype=np.float64)


def _score_aggregates(scores: np.ndarray) -> np.ndarray:
    # one function for the four, so they share each bootstrap resample (as in rliable's own examples)
    return np.array(
        [
            rly_metrics.aggregate_iqm(scores),
            rly_metrics.aggregate_mean(scores),
            rly_metrics.aggregate_median(scores),
            rly_metrics.aggregate_optimality_gap(scores),
        ]
    )


def _mean(x: np.ndarray) -> np.ndarray:
    return np.array([rly_metrics.aggregate_mean(x)])


def aggregate(df: pd.DataFrame, reps: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Per policy (index, sorted by IQM descending): IQM, mean, median and optimality gap (gamma = 1) of the
    normalised score, and the mean relative regret, each with ``_lo`` / ``_hi`` 95% stratified-bootstrap bounds
    (episodes resampled within tasks, ``reps`` resamples); plus ``tasks`` and ``episodes`` (per task).

    Aggregate means are means of per-task means (rliable's), equal to the pooled mean as tasks are balanced.
    The regret is bootstrapped with the same seed, hence the same resamples, as the score.
    """
    scored = _scored(df)
    rows = []
    for policy in _ordered(scored["policy"]):
        scores, tasks = _matrix(scored, policy)
        regrets, _ = _matrix(scored, policy, "regret")
        row: dict[str, Any] = {"policy": policy, "tasks": len(tasks), "episodes": scores.shape[0]}
        point, interval = _interval(scores, _score_aggregates, reps, seed, policy)
        for k, name in enumerate(METRICS):
            row[name], row[f"{name}_lo"], row[f"{name}_hi"] = point[k], interval[0, k], interval[1, k]
        point, interval = _interval(regrets, _mean, reps, seed, policy)
        row["mean_regret"], row["mean_regret_lo"], row["mean_regret_hi"] = point[0], interval[0, 0], interval[1, 0]
        rows.append(row)
    out = pd.DataFrame(rows).set_index("policy")
    return out.sort_values("iqm", ascending=False, kind="stable")


def _task_means(x: np.ndarray) -> np.ndarray:
    return np.mean(x, axis=0)


def per_task(df: pd.DataFrame, reps: int = 2000, seed: int = 0) -> pd.DataFrame:
    """One row per (task, policy): ``episodes``, ``mean_cost_usd``, ``mean_regret`` and its standard error
    ``regret_se`` (NaN for a single episode), ``mean_score`` with ``score_lo`` / ``score_hi``.

    The score interval is rliable's stratified bootstrap of the per-task means, which within one task is the plain
    percentile bootstrap over its episodes.
    """
    scored = _scored(df)
    rows = []
    for policy in _ordered(scored["policy"]):
        scores, tasks = _matrix(scored, policy)
        point, interval = _interval(scores, _task_means, reps, seed, policy)
        for k, task in enumerate(tasks):
            d = scored[(scored["policy"] == policy) & (scored["task"] == task)]
            n = len(d)
            regret = d["regret"].to_numpy()
            rows.append(
                {
                    "task": task,
                    "policy": policy,
                    "episodes": n,
                    "mean_cost_usd": float(d["cost_usd"].mean()),
                    "mean_regret": float(regret.mean()),
                    "regret_se": float(regret.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan"),
                    "mean_score": point[k],
                    "score_lo": interval[0, k],
                    "score_hi": interval[1, k],
                }
            )
    out = pd.DataFrame(rows)
    order = {t: i for i, t in enumerate(_ordered(scored["task"]))}
    return out.sort_values("task", key=lambda s: s.map(order), kind="stable").reset_index(drop=True)


def _score_distribution(scores: np.ndarray, taus: np.ndarray) -> np.ndarray:
    # rliable's default profile (score_distributions: np.vectorize over taus, one Python call per tau and per
    # resample) vectorised: the same numbers, about 50 times faster at 101 taus
    return np.mean(scores[..., None] > np.asarray(taus), axis=(0, 1))


def performance_profile(
    df: pd.DataFrame, taus: Sequence[float] | np.ndarray, reps: int = 2000, seed: int = 0
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per policy: the share of its episodes (all tasks) with normalised score > tau for each tau, and its 95%
    stratified-bootstrap band (2 x len(taus)), from ``rliable.library.create_performance_profile``."""
    scored = _scored(df)
    tau = np.asarray(taus, dtype=np.float64)
    out = {}
    for policy in _ordered(scored["policy"]):
        scores, _ = _matrix(scored, policy)
        with _seeded(seed):
            profiles, bands = rly.create_performance_profile(
                {policy: scores}, tau, custom_profile_func=_score_distribution, reps=reps
            )
        out[policy] = (np.asarray(profiles[policy], dtype=np.float64), np.asarray(bands[policy], dtype=np.float64))
    return out


def _num(x: float, digits: int) -> str:
    """Fixed decimals, without the '-0.000' that rounding a tiny negative gives."""
    if not np.isfinite(x):
        return "n/a"
    s = f"{x:.{digits}f}"
    return s[1:] if s.startswith("-") and float(s) == 0 else s


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|")


def leaderboard_markdown(df: pd.DataFrame, knows: dict[str, str] | None = None, reps: int = 2000, seed: int = 0) -> str:
    """A Markdown table, one row per policy, best IQM first: policy, what it knows (from ``knows``, blank where
    absent), IQM score [95% CI], mean score, mean regret % [95% CI], and the mean regret % on each task."""
    agg = aggregate(df, reps=reps, seed=seed)
    scored = add_scores(df)  # balanced: aggregate checked
    task_names = _ordered(scored["task"])
    regret = scored.groupby(["policy", "task"], observed=True)["regret"].mean()
    knows = knows or {}
    header = [
        "policy",
        "knows",
        "IQM score [95% CI]",
        "mean score",
        "mean regret % [95% CI]",
        *(f"{t} regret %" for t in task_names),
    ]
    lines = [
        "| " + " | ".join(_cell(h) for h in header) + " |",
        "|" + "|".join([":---", ":---"] + ["---:"] * (len(header) - 2)) + "|",
    ]
    for policy, r in agg.iterrows():
        cells = [
            str(policy),
            knows.get(str(policy), ""),
            f"{_num(r['iqm'], 3)} [{_num(r['iqm_lo'], 3)}, {_num(r['iqm_hi'], 3)}]",
            _num(r["mean"], 3),
            f"{_num(100 * r['mean_regret'], 2)} "
            f"[{_num(100 * r['mean_regret_lo'], 2)}, {_num(100 * r['mean_regret_hi'], 2)}]",
            *(_num(100 * regret[(policy, t)], 2) for t in task_names),
        ]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def _colors(policies: Sequence[str]) -> dict[str, Any]:
    palette = colormaps["tab10"]
    return {p: palette(i % 10) for i, p in enumerate(policies)}


def _plot_per_task(table: pd.DataFrame, policies: list[str], colors: dict[str, Any]) -> Figure:
    tasks = _ordered(table["task"])
    fig = Figure(figsize=(max(5.0, 1.2 * len(tasks) + 2.0), 3.8), layout="constrained")
    ax = fig.add_subplot()
    width = 0.8 / len(policies)
    x = np.arange(len(tasks), dtype=np.float64)
    for k, policy in enumerate(policies):
        d = table[table["policy"] == policy].set_index("task").loc[tasks]
        mean = d["mean_score"].to_numpy()
        yerr = np.vstack([mean - d["score_lo"].to_numpy(), d["score_hi"].to_numpy() - mean])
        offset = (k - (len(policies) - 1) / 2) * width
        ax.errorbar(x + offset, mean, yerr=yerr, fmt="o", ms=4, capsize=3, color=colors[policy], label=policy)
    for level, name in ((0.0, "local"), (1.0, "oracle")):
        ax.axhline(level, color="0.6", lw=0.8, ls="--")
        ax.annotate(name, (0.995, level), xycoords=("axes fraction", "data"), fontsize=7, color="0.4", ha="right")
    ax.set_xticks(x, tasks, rotation=20 if len(tasks) > 4 else 0, ha="right" if len(tasks) > 4 else "center")
    ax.set_ylabel("mean normalised score\n(95% bootstrap CI)")
    ax.grid(axis="y", alpha=0.3)
    fig.legend(fontsize=7, loc="outside right upper")
    return fig


def _plot_aggregate(agg: pd.DataFrame, colors: dict[str, Any]) -> Figure:
    # rliable.plot_utils.plot_interval_estimates draws the same bars, but through pyplot (the global backend and
    # current figure); this Figure renders with Agg whatever backend the caller runs.
    policies = [str(p) for p in agg.index]
    fig = Figure(figsize=(3.0 * len(METRICS), 0.9 + 0.45 * len(policies)), layout="constrained")
    axes = fig.subplots(1, len(METRICS), sharey=True)
    y = np.arange(len(policies))[::-1]  # best IQM on top
    for ax, metric in zip(axes, METRICS, strict=True):
        lo, hi = agg[f"{metric}_lo"].to_numpy(), agg[f"{metric}_hi"].to_numpy()
        ax.barh(y, hi - lo, left=lo, height=0.6, color=[colors[p] for p in policies], alpha=0.75)
        ax.vlines(agg[metric].to_numpy(), y - 0.3, y + 0.3, color="k", alpha=0.6)
        ax.set_title(METRIC_TITLES[metric])
        ax.margins(x=0.08)  # a zero-width interval at 0 or 1 (oracle, local) stays visible
        ax.xaxis.set_major_locator(MaxNLocator(4))
        ax.grid(axis="x", alpha=0.3)
        ax.spines[["top", "right", "left"]].set_visible(False)
    axes[0].set_yticks(y, policies)
    fig.supxlabel("normalised score (local 0, oracle 1; optimality gap: lower is better)", fontsize=9)
    return fig


def _plot_profile(
    profiles: dict[str, tuple[np.ndarray, np.ndarray]], taus: np.ndarray, colors: dict[str, Any]
) -> Figure:
    fig = Figure(figsize=(8.0, 4.0), layout="constrained")
    ax: Axes = fig.add_subplot()
    rly_plot.plot_performance_profiles(
        {p: prof for p, (prof, _) in profiles.items()},
        taus,
        performance_profile_cis={p: band for p, (_, band) in profiles.items()},
        ax=ax,
        colors=colors,
        xlabel=r"normalised score $\tau$ (local 0, oracle 1)",
        ylabel=r"fraction of episodes with score $> \tau$",
        legend=False,
        labelsize="medium",
        ticklabelsize="medium",
    )
    # beside the axes, not over the curves (rliable's own legend sits inside them)
    fig.legend(*ax.get_legend_handles_labels(), fontsize=7, loc="outside right upper")
    return fig


def default_taus(df: pd.DataFrame, num: int = 101) -> np.ndarray:
    """Thresholds spanning 'local' (0) to the oracle (1), widened to the scores seen (down to -1 at most, so one
    disastrous episode does not flatten the plot)."""
    scores = add_scores(df)["score"].to_numpy()
    lo = max(-1.0, min(0.0, float(scores.min())))
    hi = max(1.0, float(scores.max()))
    return np.linspace(lo, hi, num)


def plot_scores(
    df: pd.DataFrame,
    out_dir: str | Path,
    reps: int = 2000,
    seed: int = 0,
    taus: Sequence[float] | np.ndarray | None = None,
) -> list[Path]:
    """Write PNGs into ``out_dir`` (created if missing) and return their paths: per-task mean scores with their
    95% intervals (``scores_per_task.png``), the aggregate metrics with theirs (``scores_aggregate.png``), and
    the performance profile over ``taus`` (``performance_profile.png``; default ``default_taus``).

    Figures are bare ``matplotlib.figure.Figure``s saved through the Agg canvas: no pyplot, no display, and the
    caller's backend and open figures are left alone.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    scored = _scored(df)
    policies = _ordered(scored["policy"])
    colors = _colors(policies)
    tau = default_taus(scored) if taus is None else np.asarray(taus, dtype=np.float64)
    figures = {
        "scores_per_task.png": _plot_per_task(per_task(scored, reps=reps, seed=seed), policies, colors),
        "scores_aggregate.png": _plot_aggregate(aggregate(scored, reps=reps, seed=seed), colors),
        "performance_profile.png": _plot_profile(performance_profile(scored, tau, reps=reps, seed=seed), tau, colors),
    }
    paths = []
    for name, fig in figures.items():
        path = out / name
        fig.savefig(path, dpi=120)
        paths.append(path)
    return paths
