"""Benchmark of ``geoinfer/Placement-v0`` against CartPole-v1, in one process.

Run: ``python -m experiments.bench.env [--steps N] [--vec-steps N] [--num-envs N]``. Prints:

1. steps/s of the single env made with ``gymnasium.make`` (default scenario, random admissible actions,
   resets included) and of ``CartPole-v1`` made the same way (random actions), and their ratio;
2. env-steps/s of the native vector env at ``--num-envs`` sub-envs and of CartPole-v1's native vector
   env, with their ratio, both within episodes (``--vec-steps`` steps) and over whole episodes of ours,
   autoresets (sampling and precomputing new episodes) included;
3. peak traced memory of a 100,000-task episode: reset and stepping through it.

Targets on a 2-core machine: single env >= 0.5x CartPole-v1; vector env >= 0.15x CartPole's vector env;
memory < 300 MB.
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

import gymnasium as gym
import numpy as np

from envs import ENV_ID


def single_steps_per_s(env: gym.Env, steps: int, masked: bool) -> float:
    obs, info = env.reset(seed=0)
    u = np.random.default_rng(0).random((steps, int(env.action_space.n)))  # type: ignore[attr-defined]
    t = time.perf_counter()
    for i in range(steps):
        # A random admissible action: argmax of uniform noise over the mask (cheap, unbiased).
        a = int((info["action_mask"] * u[i]).argmax()) if masked else env.action_space.sample()
        obs, _r, term, trunc, info = env.step(a)
        if term or trunc:
            _obs, info = env.reset()
    return steps / (time.perf_counter() - t)


def vector_steps_per_s(venv: gym.vector.VectorEnv, steps: int, masked: bool) -> float:
    obs, info = venv.reset(seed=0)
    rng = np.random.default_rng(0)
    n, A = venv.num_envs, int(venv.single_action_space.n)  # type: ignore[attr-defined]
    t = time.perf_counter()
    for _ in range(steps):
        a = (info["action_mask"] * rng.random((n, A))).argmax(axis=1) if masked else venv.action_space.sample()
        _obs, _r, _term, _trunc, info = venv.step(a)
    return steps * n / (time.perf_counter() - t)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=50_000, help="single-env steps")
    parser.add_argument("--vec-steps", type=int, default=300, help="vector steps within episodes")
    parser.add_argument("--num-envs", type=int, default=1024)
    parser.add_argument("--memory-tasks", type=int, default=100_000)
    args = parser.parse_args()

    ours = single_steps_per_s(gym.make(ENV_ID), args.steps, masked=True)
    cart = single_steps_per_s(gym.make("CartPole-v1"), args.steps, masked=False)
    print(
        f"single env   {ENV_ID}: {ours:10,.0f} steps/s | CartPole-v1: {cart:10,.0f} steps/s | "
        f"ratio {ours / cart:.2f} (target >= 0.5)"
    )

    n = args.num_envs
    t = time.perf_counter()
    venv = gym.make_vec(ENV_ID, num_envs=n, vectorization_mode="vector_entry_point")
    venv.reset(seed=0)
    reset_s = time.perf_counter() - t
    cvenv = gym.make_vec("CartPole-v1", num_envs=n, vectorization_mode="vector_entry_point")
    v_ours = vector_steps_per_s(venv, args.vec_steps, masked=True)
    v_cart = vector_steps_per_s(cvenv, args.vec_steps, masked=False)
    print(
        f"vector env x{n} within episodes: {v_ours:12,.0f} env-steps/s | CartPole-v1: {v_cart:12,.0f} | "
        f"ratio {v_ours / v_cart:.3f} (target >= 0.15)"
    )
    # Whole episodes: reset cost per episode amortised over its steps (a default episode has ~2,400 tasks).
    tasks = np.mean([i.num_tasks for i in venv.unwrapped.instances])  # type: ignore[attr-defined]
    per_step = 1 / v_ours + reset_s / (n * tasks)
    print(
        f"vector env x{n} whole episodes (reset {reset_s:.1f} s for {n} episodes of {tasks:,.0f} tasks): "
        f"{1 / per_step:12,.0f} env-steps/s | ratio {1 / per_step / v_cart:.3f}"
    )

    tracemalloc.start()
    env = gym.make(ENV_ID, num_tasks=args.memory_tasks)
    obs, info = env.reset(seed=0)
    after_reset = tracemalloc.get_traced_memory()[1]
    u = np.random.default_rng(0).random((args.memory_tasks, int(env.action_space.n)))  # type: ignore[attr-defined]
    for i in range(args.memory_tasks):
        _obs, _r, _term, _trunc, info = env.step(int((info["action_mask"] * u[i]).argmax()))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(
        f"memory, {args.memory_tasks:,}-task episode: peak {after_reset / 2**20:.0f} MiB at reset, "
        f"{peak / 2**20:.0f} MiB over the episode (target < 300 MB)"
    )


if __name__ == "__main__":
    main()
