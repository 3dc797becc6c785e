"""The benchmark suite's difficulty table and speed targets (issue: geoinfer as a benchmark).

    python -m experiments.bench.tasks [--split test] [--out DIR] [--skip-mpc] [--from DIR/episodes.csv]

Prints, per task on its split: the mean relative regret of every heuristic, greedy, the online MPC and
the rolling MILP (clairvoyant within the hour) against the certified optimum, then checks the suite's
targets: every hard task leaves the best heuristic >= 10% above the optimum, at least two leave the
rolling MILP >= 5% above it. Also times one heuristic on every task's split with the shipped
certificates (target: 3 minutes) and reports what the certificates cost to make (their solve times).
``--from`` reads the episodes of an earlier ``geoinfer benchmark`` run that played these policies
instead of playing them again.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

import benchmark
from baselines.heuristics import HEURISTICS
from benchmark.certificates import read_certificates
from envs.tasks import TASKS


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--split", default="test")
    ap.add_argument("--out", default="bench-tasks")
    ap.add_argument("--skip-mpc", action="store_true")
    ap.add_argument("--from", dest="source", default=None, help="episodes.csv of a geoinfer benchmark run")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    t = time.perf_counter()
    benchmark.evaluate("greedy", split=args.split, progress=False)
    one = time.perf_counter() - t
    print(f"one heuristic (greedy) on every task's {args.split} split: {one:.1f} s (target <= 180 s)")

    policies = [h for h in HEURISTICS if h != "random"] + ([] if args.skip_mpc else ["online_mpc"])
    if args.source:
        df = pd.read_csv(args.source)
    else:
        df = benchmark.evaluate([*policies, "rolling_milp", "oracle"], split=args.split, progress=True)
        df.drop(columns="seconds").to_csv(out / "episodes.csv", index=False)
    regret = df.pivot_table(index="task", columns="policy", values="regret", aggfunc="mean") * 100
    heur = [h for h in HEURISTICS if h != "random"]
    table = pd.DataFrame(
        {
            "best heuristic": regret[heur].min(axis=1),
            "(which)": regret[heur].idxmin(axis=1),
            "greedy": regret["greedy"],
            **({} if args.skip_mpc else {"online MPC": regret["online_mpc"]}),
            "rolling MILP (clairvoyant in the hour)": regret["rolling_milp"],
            "oracle": regret["oracle"],
            "worst certificate gap": df[df["policy"] == "oracle"].groupby("task")["optimum_gap"].max(),
        }
    )
    print(f"\nmean relative regret (%) on the {args.split} split, {df['episode'].nunique()} episodes per task:")
    pct = {c: 2 for c in table.columns if c not in ("(which)", "worst certificate gap")}  # the gap is tiny: 1e-7
    shown = table.round(pct)
    cols = list(pct)
    shown[cols] = shown[cols] + 0.0  # a regret of -1e-7 (a plan as good as J*, within its gap) shows as 0.00, not -0.00
    print(shown.to_string(formatters={"worst certificate gap": "{:.1e}".format}))
    if "seconds" in df:
        sums = df.groupby("policy", sort=False)[["seconds", "num_tasks"]].sum()
        ms = 1e3 * sums["seconds"] / sums["num_tasks"]
        print("\nplanning time per task (ms): " + ", ".join(f"{p} {v:.3g}" for p, v in ms.items()))
    hard = table["best heuristic"] >= 10.0
    rolling = (table["rolling MILP (clairvoyant in the hour)"] >= 5.0).sum()
    print(f"\ntasks with best heuristic >= 10% above the optimum: {int(hard.sum())} of {len(table)}")
    print(f"tasks with the rolling MILP >= 5% above the optimum: {int(rolling)} (target >= 2)")
    certs = [c for t in TASKS.values() for s in ("test", "validation") for c in read_certificates(t, s)]
    proven = sum(c.status == "optimal" for c in certs)
    print(
        f"certificates of every task's test and validation episodes: {sum(c.solve_s for c in certs) / 60:.1f} min "
        f"of solving in all; {proven} of {len(certs)} proven to 1e-6, worst gap {max(c.gap for c in certs):.1e}"
    )
    if not args.source:
        print(f"\nwrote {out / 'episodes.csv'}")


if __name__ == "__main__":
    main()
