"""Benchmark of the Ray backends, in one process: sweep throughput on one node and on two, and the overhead of
Ray against the process pool on certificate generation.

Run: ``python -m experiments.bench.ray [--trials N] [--timesteps N] [--tasks T,...] [--out DIR]`` (needs the ray
extra). Prints:

1. trials per hour of the same sweep (``--trials`` MaskablePPO runs of ``--timesteps`` env steps on residency,
   FIFO: every trial runs to its end) on a Ray cluster of this machine with one single-CPU worker node, then
   with two; and their ratio. Target: at least 1.7x.
2. the seconds to certify the test days of ``--tasks`` with 2 workers on the process pool and on an embedded
   Ray (started before the clock: a cluster is up before its jobs come), their ratio, the certificates
   compared, and Ray's start-up time apart. Target: Ray's overhead below 10%.

The clusters listen on the loopback interface only and are shut down at the end.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # loopback only: before ray is imported
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

SWEEP = """
name = "throughput"
tasks = ["residency"]
algos = ["maskable_ppo"]
seeds = [{seeds}]
timesteps = {timesteps}
eval_every = {timesteps}

[train]
eval_episodes = 1
eval_tasks = 100
oracle_time_limit_s = 10

[scheduler]
kind = "fifo"
"""


def sweep_trials_per_hour(nodes: int, trials: int, timesteps: int, work: Path) -> tuple[float, float]:
    """(trials per hour, seconds) of the sweep on a cluster of ``nodes`` single-CPU worker nodes."""
    import ray
    from ray.cluster_utils import Cluster

    from agents.sweep import load_sweep, run_sweep

    spec = work / f"sweep{nodes}.toml"
    spec.write_text(SWEEP.format(seeds=", ".join(map(str, range(trials))), timesteps=timesteps))
    cfg = load_sweep(spec)
    cluster = Cluster(initialize_head=True, connect=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    try:
        for _ in range(nodes):
            cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        t = time.perf_counter()
        table = run_sweep(cfg, work / f"out{nodes}")
        seconds = time.perf_counter() - t
    finally:
        ray.shutdown()
        cluster.shutdown()
    done = int((table["status"] == "completed").sum())
    if done != trials:
        raise RuntimeError(f"{nodes} node(s): {done} of {trials} trials completed:\n{table}")
    return 3600 * trials / seconds, seconds


def certify_seconds(backend: str, tasks: list[str], work: Path) -> tuple[float, list]:
    from benchmark.certificates import make_certificates, read_certificates
    from envs.tasks import get_task

    folder = work / f"certs-{backend}"
    t = time.perf_counter()
    for name in tasks:
        make_certificates(get_task(name), "test", 60, folder, workers=2, backend=backend)
    seconds = time.perf_counter() - t
    return seconds, [c for name in tasks for c in read_certificates(get_task(name), "test", folder)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=4)
    ap.add_argument("--timesteps", type=int, default=16384, help="env steps per trial")
    ap.add_argument("--tasks", default="carbon,contended", help="tasks whose test days are certified")
    ap.add_argument("--out", default=None, help="keep the sweeps and certificates here (default: a temporary folder)")
    args = ap.parse_args()
    from benchmark.parallel import require_ray

    require_ray("experiments.bench.ray")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.out or tmp)
        work.mkdir(parents=True, exist_ok=True)
        one, s1 = sweep_trials_per_hour(1, args.trials, args.timesteps, work)
        two, s2 = sweep_trials_per_hour(2, args.trials, args.timesteps, work)
        print(f"sweep of {args.trials} trials x {args.timesteps} env steps (MaskablePPO, residency):")
        print(f"  1 worker node : {s1:6.1f} s, {one:6.1f} trials/h")
        print(f"  2 worker nodes: {s2:6.1f} s, {two:6.1f} trials/h")
        print(f"  ratio {two / one:.2f}x (target >= 1.7x)")

        tasks = args.tasks.split(",")
        pool_s, pool_certs = certify_seconds("process", tasks, work)
        from benchmark.parallel import init_ray

        t = time.perf_counter()
        ray = init_ray(num_cpus=2)
        start_s = time.perf_counter() - t
        ray_s, ray_certs = certify_seconds("ray", tasks, work)
        ray.shutdown()
        facts = [(c.seed, c.objective_usd, c.dual_bound_usd, c.status, c.plan.tobytes()) for c in pool_certs]
        same = facts == [(c.seed, c.objective_usd, c.dual_bound_usd, c.status, c.plan.tobytes()) for c in ray_certs]
        print(f"certificates of the test days of {', '.join(tasks)} ({len(pool_certs)} episodes, 2 workers):")
        print(f"  process pool: {pool_s:6.1f} s")
        print(f"  Ray         : {ray_s:6.1f} s (+ {start_s:.1f} s to start the embedded Ray, not counted)")
        print(f"  overhead {100 * (ray_s / pool_s - 1):+.1f}% (target < 10%); certificates identical: {same}")


if __name__ == "__main__":
    main()
