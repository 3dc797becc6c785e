"""geoinfer's benchmark: the task suite's fixed episodes, optimality certificates, scores and leaderboards.

    import benchmark
    df = benchmark.evaluate(["greedy", "online_mpc"], tasks="all", split="test")
    print(benchmark.leaderboard_markdown(df, knows=benchmark.knows_of(df)))

See :mod:`benchmark.run` (policies, :func:`evaluate`), :mod:`benchmark.certificates` (shipped optima) and
:mod:`benchmark.scores` (regret, normalised score, rliable aggregates, figures).
"""

import pandas as pd

from benchmark.certificates import Certificate, StaleCertificate, load_optima, make_certificates
from benchmark.run import KNOWS, Policy, evaluate, resolve_policy
from benchmark.scores import aggregate, leaderboard_markdown, per_task, performance_profile, plot_scores


def knows_of(df: pd.DataFrame) -> dict[str, str]:
    """``policy -> what it knows`` from a frame of :func:`evaluate`."""
    return dict(zip(df["policy"], df["knows"], strict=True))


__all__ = [
    "KNOWS",
    "Certificate",
    "Policy",
    "StaleCertificate",
    "aggregate",
    "evaluate",
    "knows_of",
    "leaderboard_markdown",
    "load_optima",
    "make_certificates",
    "per_task",
    "performance_profile",
    "plot_scores",
    "resolve_policy",
]
