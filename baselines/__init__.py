"""Solvers that are not learned: the exact hindsight MILP oracle, its rolling-horizon variant, regret, and an
online model-predictive controller on the demand forecast (:class:`OnlineMPC`)."""

from baselines.milp import (
    MilpResult,
    Regret,
    RollingResult,
    regret,
    regret_interval,
    solve_hindsight,
    solve_rolling,
)
from baselines.mpc import OnlineMPC

__all__ = [
    "MilpResult",
    "OnlineMPC",
    "Regret",
    "RollingResult",
    "regret",
    "regret_interval",
    "solve_hindsight",
    "solve_rolling",
]
