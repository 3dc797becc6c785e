"""See an episode: a policy's placements played back as a map video, and a one-page placement report.

:func:`replay` plays one episode of a task with any policy :func:`benchmark.run.resolve_policy` accepts,
through the env with ``render_mode="rgb_array"`` (:mod:`envs.render`), keeping a frame every few tasks.
:func:`write_video` writes the frames as a GIF (Pillow, which matplotlib already needs) or an MP4
(moviepy, the library Gymnasium's ``RecordVideo`` uses: ``pip install 'geoinfer[video]'``).
:func:`placement_report` draws the policy's energy by execution layer and by region over the day next to
the oracle's plan of the same episode (from the shipped certificate, or solved).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from envs.costs import cost_matrix, evaluate_plan
from envs.instance import Instance
from envs.metrics import LAYERS, execution_layers
from envs.render import ColorBy
from envs.tasks import Task, get_task

VIDEO_SUFFIXES = (".gif", ".mp4")


@dataclass(frozen=True)
class Replay:
    """One played episode: its frames, the policy's plan and the oracle's."""

    task: Task
    instance: Instance
    policy: str
    plan: NDArray[np.int64]  # [K] the policy's actions
    oracle_plan: NDArray[np.int64]  # [K] the hindsight optimum's
    frames: list[NDArray[np.uint8]]  # H x W x 3 each


def episode_instance(task: Task, split: str = "test", episode: int = 0, seed: int | None = None) -> Instance:
    """The ``episode``-th fixed episode of ``task``'s ``split`` or, with ``seed``, a day of that split drawn by it."""
    if seed is None:
        fixed = task.instances(split)
        if not 0 <= episode < len(fixed):
            raise ValueError(f"episode = {episode}: {task.name}/{split} has episodes 0..{len(fixed) - 1}")
        return fixed[episode]
    from envs.core import EnvCore

    core = EnvCore.make(task.name, split=split)
    return core.sample(np.random.default_rng(seed))


def oracle_plan(task: Task, inst: Instance, split: str, time_limit_s: float = 60.0) -> NDArray[np.int64]:
    """The hindsight optimum's plan: the shipped certificate's when it certifies ``inst``, else solved."""
    from baselines.milp import solve_hindsight
    from benchmark.certificates import StaleCertificate, load_optima

    try:
        for known, cert in load_optima(task, split):
            if known.digest(portable=True) == inst.digest(portable=True):
                return np.asarray(cert.plan, dtype=np.int64)
    except (FileNotFoundError, StaleCertificate):
        pass
    return solve_hindsight(inst, time_limit_s=time_limit_s).plan


def replay(
    task: str | Task,
    policy: Any,
    *,
    split: str = "test",
    episode: int = 0,
    seed: int | None = None,
    frames: int = 120,
    color_by: ColorBy = "price",
) -> Replay:
    """Play one episode of ``task`` with ``policy`` and keep about ``frames`` map frames (the last at its end)."""
    from benchmark.run import resolve_policy
    from envs.placement import PlacementEnv

    if frames < 1:
        raise ValueError(f"frames = {frames}: expected at least 1")
    t = get_task(task) if isinstance(task, str) else task
    inst = episode_instance(t, split, episode, seed)
    pol = resolve_policy(policy)
    if pol.check is not None:
        pol.check(t)  # a model for another task or layout is refused before any work
    plan = np.asarray(pol.plans(t, [inst])[0], dtype=np.int64)
    env = PlacementEnv(t.name, render_mode="rgb_array", color_by=color_by, invalid_action="raise")
    env.reset(options={"instance": inst})
    every = max(1, inst.num_tasks // frames)
    shots = [env.render()]
    for k, a in enumerate(plan):
        env.step(int(a))
        if (k + 1) % every == 0 or k + 1 == inst.num_tasks:
            shots.append(env.render())
    env.close()
    return Replay(t, inst, pol.name, plan, oracle_plan(t, inst, split), shots)


def write_video(frames: list[NDArray[np.uint8]], path: str | Path, fps: float = 8.0) -> Path:
    """Write ``frames`` as ``path`` (``.gif``: Pillow; ``.mp4``: moviepy)."""
    out = Path(path)
    if out.suffix.lower() not in VIDEO_SUFFIXES:
        raise ValueError(f"--out {out}: expected a file ending in {' or '.join(VIDEO_SUFFIXES)}")
    if not frames:
        raise ValueError("no frames to write")
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".gif":
        from PIL import Image

        images = [Image.fromarray(f) for f in frames]
        images[0].save(out, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
        return out
    try:
        from moviepy import ImageSequenceClip  # moviepy >= 2
    except ImportError:
        try:
            from moviepy.editor import ImageSequenceClip  # moviepy 1.x
        except ImportError:
            raise ValueError(
                f"writing {out.name} needs moviepy (the library Gymnasium's RecordVideo uses): "
                "pip install 'geoinfer[video]', or write a .gif"
            ) from None
    clip = ImageSequenceClip(list(frames), fps=fps)
    clip.write_videofile(str(out), logger=None)
    return out


def _energy_by(
    inst: Instance, kwh_pairs: NDArray[np.float64], plan: NDArray[np.int64], groups: NDArray[np.int64], num: int
) -> NDArray[np.float64]:
    """``[num, S]`` facility energy (kWh) of the served tasks per group and slot (``kwh_pairs [K, R+1]``)."""
    kwh = kwh_pairs[np.arange(inst.num_tasks), plan]
    out = np.zeros((num, inst.num_slots))
    np.add.at(out, (groups, inst.slot_idx), kwh)
    return out


def placement_report(rep: Replay, path: str | Path) -> Path:
    """A one-page PNG: energy by execution layer and by region per hour, the policy against the oracle."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    inst, R = rep.instance, rep.instance.num_regions
    plans = {rep.policy: rep.plan, "oracle (hindsight optimum)": rep.oracle_plan}
    kwh = cost_matrix(inst).facility_kwh
    layer_e = {n: _energy_by(inst, kwh, p, execution_layers(inst, p), len(LAYERS)) for n, p in plans.items()}
    region_e = {n: _energy_by(inst, kwh, p, np.minimum(p, R), R + 1)[:R] for n, p in plans.items()}
    costs = {n: evaluate_plan(inst, p) for n, p in plans.items()}
    hours = (inst.start_hour + np.arange(inst.num_slots)) % 24
    fig = Figure(figsize=(13, 9), dpi=100, layout="constrained")
    axes = fig.subplots(2, 2, sharey="row")
    vmax = max(float(e.max()) for e in region_e.values()) or 1.0
    colors = ("#2a9d8f", "#e9c46a", "#e76f51", "#8d99ae")
    for col, name in enumerate(plans):
        c = costs[name]
        ax = axes[0, col]
        served_layers = [i for i, layer in enumerate(LAYERS) if layer != "overflow"]
        ax.stackplot(
            np.arange(inst.num_slots),
            layer_e[name][served_layers],
            labels=[LAYERS[i] for i in served_layers],
            colors=colors[: len(served_layers)],
        )
        ax.set_title(
            f"{name}\n{c.total_usd:.3f} USD, {c.energy_kwh:.1f} kWh, {c.carbon_g / 1000:.1f} kg CO2, "
            f"{c.num_overflow} unserved",
            fontsize=10,
        )
        ax.set_xlabel("hour of the episode")
        ax.set_ylabel("energy, kWh (facility)")
        ax.legend(loc="upper left", fontsize=8, title="execution layer", title_fontsize=8)
        ax2 = axes[1, col]
        im = ax2.imshow(region_e[name], aspect="auto", cmap="magma", vmin=0.0, vmax=vmax, interpolation="nearest")
        ax2.set_yticks(range(R), inst.region_names, fontsize=7)
        ax2.set_xticks(range(0, inst.num_slots, 3), [f"{h:02d}" for h in hours[::3]], fontsize=7)
        ax2.set_xlabel("hour of day, UTC")
    fig.colorbar(im, ax=axes[1, :], label="energy by region, kWh per hour", shrink=0.8)
    regret = (costs[rep.policy].total_usd - costs["oracle (hindsight optimum)"].total_usd) / costs[
        "oracle (hindsight optimum)"
    ].total_usd
    day = inst.start_hour // 24 + 1
    fig.suptitle(
        f"{rep.task.name}: where inference ran, day {day} of the year ({inst.num_tasks} tasks); "
        f"{rep.policy} vs the oracle: regret {100 * regret:.1f}%",
        fontsize=12,
    )
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    return out
