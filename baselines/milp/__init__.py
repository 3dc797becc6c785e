"""The exact hindsight oracle and a rolling-horizon baseline: the placement MILP, solved with HiGHS.

Model (the cost model of :mod:`envs.costs`, nothing else). For every *feasible* pair (task k, action a)
of :func:`envs.costs.static_mask` (the overflow action ``a = R`` always included):

* ``x[k, a]`` binary: task k takes action a; ``sum_a x[k, a] = 1``;
* capacity, per slot s and region i: ``sum_k gpu_s[k, i] x[k, i] <= capacity_gpu_s[s, i]``;
* ``y[w, i, m]`` binary for each (replica window, region, model) without a permanent replica: a
  region serves model m in window w only with the replica open (``x[k, i] <= y[w, i, m]``);
* minimise ``sum pair_costs(...).total_usd * x + sum eta * replica_usd_per_model[m] * y``.

Structure exploited (measured; see ``experiments/bench/milp.py``):

* Tasks interact only through capacity (per slot) and replicas (per window), and slots nest inside
  windows, so the MILP splits exactly into one block per window (per slot when no replica variable
  joins the slots): blocks are solved alone, two at a time (HiGHS releases the GIL, and one HiGHS
  thread per block is 2-5x faster than two), and their objectives and dual bounds add up.
* Replicas first (:mod:`~baselines.milp.replicas`, the default ``method='decompose'``): a window's slots
  are joined only by its few replica variables, so a branch and bound over them (node LPs, reduced-cost
  fixing against the incumbent) whose every leaf splits into one small MILP per slot proves what one
  MILP per window does not: every episode of the benchmark suite to 1e-6 in seconds, where the window
  MILP stopped at gaps up to 1e-4 after 60 s (``method='direct'`` keeps that method for comparison).
* Strong linking ``x <= y`` per pair, not ``sum x <= n y``: with replica charges that matter its LP
  bound is the integer optimum where the aggregated one is 40% lower.
* Pairs that cost at least the overflow penalty are dropped (overflow does as well with no capacity
  and no replica) and capacity rows that no assignment could fill are left out: the optimum is kept.
* The MIP start is the cheapest of greedy plans, one of them ordered by the block's LP relaxation
  (LP rounding), so a time-limited solve always has an incumbent.

Honest status: ``status == 'optimal'`` only when the plan's cost, re-evaluated with
:func:`envs.costs.evaluate_plan`, is within ``mip_rel_gap`` of the dual bound; otherwise the incumbent
is returned with its true gap and :func:`regret` refuses it (:func:`regret_interval` gives the interval).
When capacity binds at every (slot, region) pair of a heavily overloaded day (many times the tasks the
capacity was sized for), each slot is a multiple-knapsack problem whose near-ties (tasks of almost equal
value) HiGHS does not close: expect ``'time_limit'`` and gaps of about 1e-2 there (measured in
``experiments/bench/milp.py``). On one such slot (``python -m experiments.bench.milp_slot``: 811 tasks,
13 regions, LP bound 68.64 USD) HiGHS stops at a gap of 7.3e-3 after 60 s (an exploratory 900-s run:
6.5e-3); a weighted-count knapsack cut per region leaves the LP bound where it was (the admissible pools
are too large). Overflow penalties lie on a 0.5 USD lattice, and HiGHS proves the slot's least total
penalty (66.5 USD) in about 48 s, which lifts the LP bound to 69.18 (8e-4 below the
60-s plan); at that cost per slot it does not fit a 120-s, 24-slot day, and deserves its own work. Two
levers were tried in throwaway scripts, not kept: a Dantzig-Wolfe bound per (slot, region) with knapsack
pricing in HiGHS (its degenerate master did not move in 200 iterations; with Wentges smoothing it did,
but after 300 iterations, 866 s, its restricted master stood at 68.97 USD, so the DW bound lies below the
69.18 that the lattice row gives, at 3-4 s an iteration) and a MILP restricted to the
LP's reduced-cost core (its own bound rose above the LP's: the optimum needs columns the LP prices out).
Two more on the slot's count-only problem (least total penalty), also throwaway: dominance rows (task a
overflows only if every task b it dominates does: same or higher penalty, and no larger GPU-seconds and
cost in each region b may use; 3,201 rows after transitive reduction) left its LP at 65.86 USD and slowed
HiGHS's proof of 66.5 from 35 s to 48 s; a Lagrangian bound relaxing the one-action-per-task rows (a 0/1
knapsack per region by dynamic programming, sizes rounded down to 0.1 GPU-s, which keeps it valid) gave
65.74 USD at the LP's duals and no more in 60 subgradient steps: the knapsacks fill their regions almost
exactly, so the bound stays near the LP's, short of the 66.0 that would prove 66.5 by the lattice.
``time_limit_s`` is a hard limit on
the whole call: HiGHS is interrupted in its MIP and simplex callbacks, and a block not started in time
keeps its greedy plan with the bound every task's cheapest pair gives.

The method, file by file:

* :mod:`~baselines.milp.pairs`: the columns (admissible pairs, replica keys) and the independent blocks;
* :mod:`~baselines.milp.start`: the greedy and LP-rounding MIP starts;
* :mod:`~baselines.milp.model`: one block's rows (assignment, capacity, replica linking) as HiGHS arrays;
* :mod:`~baselines.milp.block`: one block's solve (LP relaxation, MIP from the start, status, bound);
* :mod:`~baselines.milp.schedule`: blocks solved side by side under one time budget;
* :mod:`~baselines.milp.replicas`: the branch and bound over a window's replica variables;
* :mod:`~baselines.milp.solve`: :func:`solve_hindsight` and :func:`solve_rolling`;
* :mod:`~baselines.milp.results`, :mod:`~baselines.milp.regret`: what they return, and regret;
* :mod:`~baselines.milp.cache`: oracle solutions kept on disk by episode content (:func:`cached_oracle`).
"""

from baselines.milp.block import HIGHS_OPTIONS
from baselines.milp.cache import OracleSolution, cached_oracle, solve_oracle
from baselines.milp.model import Linking, Method
from baselines.milp.regret import Regret, regret, regret_interval
from baselines.milp.results import BlockStats, MilpResult, RollingResult
from baselines.milp.solve import solve_hindsight, solve_rolling

__all__ = [
    "HIGHS_OPTIONS",
    "BlockStats",
    "Linking",
    "Method",
    "MilpResult",
    "OracleSolution",
    "Regret",
    "RollingResult",
    "cached_oracle",
    "regret",
    "regret_interval",
    "solve_hindsight",
    "solve_oracle",
    "solve_rolling",
]
