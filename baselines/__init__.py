"""Solvers that are not learned: the exact hindsight MILP oracle, its rolling-horizon variant, regret."""

from baselines.milp import (
    MilpResult,
    Regret,
    RollingResult,
    regret,
    regret_interval,
    solve_hindsight,
    solve_rolling,
)

__all__ = [
    "MilpResult",
    "Regret",
    "RollingResult",
    "regret",
    "regret_interval",
    "solve_hindsight",
    "solve_rolling",
]
