"""Benchmark of the map render (envs.render): the time of a frame, and what rendering costs a run that never asks.

Run: ``python -m experiments.bench.render``. Prints, does not assert. Targets: a frame takes at most 50 ms;
an env without a render mode steps as fast as before (nothing is drawn or recorded unless asked).
"""

from __future__ import annotations

import time

import numpy as np

from baselines.heuristics import make_heuristic
from envs.placement import PlacementEnv


def steps_per_s(env: PlacementEnv, plan: np.ndarray, reps: int = 3) -> float:
    """Best of ``reps`` whole episodes of ``plan``, env steps per second."""
    best = 0.0
    for _ in range(reps):
        env.reset(options={"instance": env.instance})
        t = time.perf_counter()
        for a in plan:
            env.step(int(a))
        best = max(best, plan.size / (time.perf_counter() - t))
    return best


def main() -> None:
    env = PlacementEnv("contended", render_mode="rgb_array")
    env.reset(seed=0)
    inst = env.instance
    assert inst is not None
    plan = make_heuristic("greedy", inst).plan(inst)
    times = []
    for k, a in enumerate(plan):
        env.step(int(a))
        if k % 20 == 0:
            t = time.perf_counter()
            env.render()
            times.append(time.perf_counter() - t)
    ms = 1e3 * np.array(times)
    print(
        f"frame ({env.render().shape[1]}x{env.render().shape[0]}), {ms.size} frames over a contended day: "
        f"mean {ms.mean():.1f} ms, 95th percentile {np.percentile(ms, 95):.1f} ms, max {ms.max():.1f} ms "
        "(target <= 50 ms)"
    )
    plain = PlacementEnv("contended")
    plain.reset(options={"instance": inst})
    recording = PlacementEnv("contended", render_mode="rgb_array")
    recording.reset(options={"instance": inst})
    a = b = 0.0
    for _ in range(3):  # interleaved, best of each: the machine's speed drifts
        a, b = max(a, steps_per_s(plain, plan, 1)), max(b, steps_per_s(recording, plan, 1))
    print(
        f"env steps/s, same episode: no render mode {a:,.0f}; rgb_array but render() never called {b:,.0f} "
        f"({b / a:.2f}x: the placements it records)"
    )


if __name__ == "__main__":
    main()
