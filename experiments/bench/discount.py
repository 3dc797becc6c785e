"""The discount screen that chose :data:`agents.train.TASK_DEFAULTS`: MaskablePPO on every task at a short and
a long horizon, scored on the task's validation days (never its test days).

Run: ``python -m experiments.bench.discount [--tasks all] [--seeds 0] [--timesteps 100000] [--workers 2]
--out runs/discount``. Prints, does not assert. Each (task, setting, seed) is one ``geoinfer train`` run in
``OUT/<task>_<setting>_seed<S>`` (reused when its model is there), with every other hyperparameter at the
algorithm's defaults and the setting's two given explicitly, so that the task defaults under test do not
leak into the screen. It prints each run's last validation regret (5 fixed validation days, ``eval/log.csv``)
and, per task, the setting with the lower mean over the seeds.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from agents.callbacks import latest_checkpoint
from agents.train import TrainConfig, train
from benchmark.parallel import pmap
from envs.tasks import select_tasks

SETTINGS: dict[str, dict[str, Any]] = {
    "short": {"gamma": 0.99, "gae_lambda": 0.95},  # the algorithm's defaults: a ~100-step horizon
    "long": {"gamma": 0.999, "gae_lambda": 0.99},  # a ~1,000-step horizon: hours of a task's day
}


def run_one(task: str, setting: str, seed: int, timesteps: int, out: str) -> float:
    """Train (or reuse) one run; its last validation regret (relative)."""
    folder = Path(out) / f"{task}_{setting}_seed{seed}"
    log = folder / "eval" / "log.csv"
    if not (folder / "model.zip").is_file():
        cfg = TrainConfig(
            scenario=task,
            timesteps=timesteps,
            seed=seed,
            out=str(folder),
            hyperparams=SETTINGS[setting],
            eval_every=timesteps // 2,
            eval_episodes=5,
            oracle_cache=str(Path(out) / "oracle_cache"),
            progress_bar=False,
        )
        train(cfg, resume=latest_checkpoint(folder / "checkpoints") is not None, log=lambda *a, **k: None)
    return float(pd.read_csv(log)["relative_regret"].iloc[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", default="all")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--timesteps", type=int, default=100_000)
    ap.add_argument("--workers", type=int, default=2, help="runs trained side by side")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    tasks = [t.name for t in select_tasks(args.tasks)]
    # settings outermost: two runs side by side rarely need the same validation days' oracle at once
    jobs = [(t, s, seed, args.timesteps, args.out) for s in SETTINGS for t in tasks for seed in args.seeds]
    regrets = list(pmap(run_one, jobs, workers=args.workers))
    rows = [(t, s, seed, r) for (t, s, seed, *_), r in zip(jobs, regrets, strict=True)]
    df = pd.DataFrame(rows, columns=["task", "setting", "seed", "regret"])
    df.to_csv(Path(args.out) / "discount.csv", index=False)
    print(f"MaskablePPO, {args.timesteps} env steps, seeds {args.seeds}: last validation regret, %")
    print(f"{'task':12s}" + "".join(f"{s + ' ' + str(SETTINGS[s]['gamma']):>16s}" for s in SETTINGS) + "   lower")
    for t in tasks:
        means = {s: float(np.mean(df[(df.task == t) & (df.setting == s)].regret)) for s in SETTINGS}
        lower = min(means, key=lambda s: means[s])
        print(f"{t:12s}" + "".join(f"{100 * means[s]:16.1f}" for s in SETTINGS) + f"   {lower}")


if __name__ == "__main__":
    main()
