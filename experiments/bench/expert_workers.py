"""How much ``--expert-workers`` speeds up imitation: the same behaviour-cloning run with 1 and N processes.

Run: ``python -m experiments.bench.expert_workers [--task hubs] [--timesteps 20000] [--workers 2]``. Trains
``bc`` with the online MPC as expert (``--hp expert=mpc``, one epoch, no evaluation) on ``--timesteps`` env
steps of the task's training days, once with one process and once with ``--workers``, in this process, and
prints each run's wall time and expert time, their ratios, and whether the two runs' samples are identical.
Prints, does not assert. Run it on an otherwise idle machine: the ratio is only as good as the cores are free.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from agents.imitation import Samples
from agents.train import TrainConfig, train


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="hubs")
    ap.add_argument("--timesteps", type=int, default=20_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        runs = {}
        for workers in (1, args.workers):
            cfg = TrainConfig(
                algo="bc",
                scenario=args.task,
                timesteps=args.timesteps,
                seed=args.seed,
                out=str(Path(tmp) / f"w{workers}"),
                hyperparams={"expert": "mpc", "epochs": 1},
                eval_every=0,
                checkpoint_every=0,
                expert_workers=workers,
                progress_bar=False,
            )
            res = train(cfg, log=lambda _m: None)
            runs[workers] = res
            print(
                f"{args.task}, {res.num_timesteps:,} env steps, {workers} expert worker(s): wall {res.wall_s:.1f} s, "
                f"expert {res.oracle_s:.1f} s, network {res.net_s:.1f} s, env {res.env_s:.1f} s",
                flush=True,
            )
        one, many = runs[1], runs[args.workers]
        print(
            f"ratio {args.workers} workers / 1: wall {many.wall_s / one.wall_s:.2f}, "
            f"expert {many.oracle_s / one.oracle_s:.2f}"
        )
        a, b = (Samples.load(Path(tmp) / f"w{w}" / "data" / "round_000.npz") for w in (1, args.workers))
        same = all(np.array_equal(getattr(a, f), getattr(b, f)) for f in ("obs", "mask", "action", "ret"))
        print(f"identical samples: {same}")


if __name__ == "__main__":
    main()
