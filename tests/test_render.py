"""The map render (envs.render) and the episode replay (benchmark.replay): frames, videos, the report."""

from __future__ import annotations

import logging

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from PIL import Image

import envs  # noqa: F401  (registers the ids)
from baselines.heuristics import make_heuristic
from benchmark.replay import placement_report, replay, write_video
from envs.placement import PlacementEnv
from envs.render import FRAME_SIZE


def play(env: PlacementEnv, plan: np.ndarray, upto: int) -> np.ndarray:
    for a in plan[:upto]:
        env.step(int(a))
    return env.render()


def test_a_frame_is_an_image_that_follows_the_placements() -> None:
    env = PlacementEnv("contended", render_mode="rgb_array")
    env.reset(seed=0)
    inst = env.instance
    assert inst is not None
    first = env.render()
    assert first.shape == (FRAME_SIZE[1], FRAME_SIZE[0], 3) and first.dtype == np.uint8
    local = make_heuristic("local", inst).plan(inst)
    greedy = make_heuristic("greedy", inst).plan(inst)
    assert not np.array_equal(local[:300], greedy[:300])
    after_local = play(env, local, 300)
    assert not np.array_equal(after_local, first)  # flows, gauges and the panel moved
    env.reset(options={"instance": inst})
    after_greedy = play(env, greedy, 300)
    assert not np.array_equal(after_local, after_greedy)  # other placements, another picture
    env.reset(options={"instance": inst})
    assert np.array_equal(play(env, local, 300), after_local)  # and the same ones, the same picture
    env.close()


def test_nothing_is_drawn_unless_asked() -> None:
    env = PlacementEnv("contended")
    env.reset(seed=0)
    assert env.render() is None and env._renderer is None


def test_render_arguments_are_checked(caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(ValueError, match="render_mode = 'video'"):
        PlacementEnv(render_mode="video")
    for mode in ("rgb_array", None):  # checked whether or not anything is drawn
        with pytest.raises(ValueError, match="color_by = 'wind'"):
            PlacementEnv(render_mode=mode, color_by="wind")  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="before reset"):
        PlacementEnv(render_mode="rgb_array").render()
    with caplog.at_level(logging.INFO, logger="envs.render"):  # the test machine has no display
        env = PlacementEnv(render_mode="human")
    assert "found no display" in caplog.text
    env.reset(seed=0)
    assert env.render() is None


def test_registered_env_renders_frames_and_passes_the_checker() -> None:
    env = gym.make("geoinfer/Contended-v0", render_mode="rgb_array")
    check_env(env.unwrapped)
    env.reset(seed=1)
    frame = env.render()
    assert isinstance(frame, np.ndarray) and frame.shape[2] == 3
    env.close()


def test_carbon_colours_differ_from_price_colours() -> None:
    frames = []
    for color_by in ("price", "carbon"):
        env = PlacementEnv("contended", render_mode="rgb_array", color_by=color_by)
        env.reset(seed=0)
        frames.append(env.render())
    assert not np.array_equal(*frames)


@pytest.fixture(scope="module")
def short_replay():
    return replay("hubs", "nearest", frames=6)


def test_a_replay_writes_a_readable_gif_and_a_report(short_replay, tmp_path) -> None:
    rep = short_replay
    assert 6 <= len(rep.frames) <= 8
    assert rep.plan.shape == rep.oracle_plan.shape == (rep.instance.num_tasks,)
    gif = write_video(rep.frames, tmp_path / "hubs.gif", fps=4)
    with Image.open(gif) as im:
        assert im.format == "GIF" and im.n_frames == len(rep.frames)
        assert im.size == FRAME_SIZE
    report = placement_report(rep, tmp_path / "hubs-report.png")
    with Image.open(report) as im:
        assert im.format == "PNG" and im.size[0] > 800


def test_a_video_needs_a_known_suffix(short_replay, tmp_path) -> None:
    with pytest.raises(ValueError, match=r"expected a file ending in \.gif or \.mp4"):
        write_video(short_replay.frames, tmp_path / "x.avi")


def test_the_replay_command(tmp_path, capsys) -> None:
    from experiments.cli import main

    out = tmp_path / "r.gif"
    assert main(["replay", "--task", "hubs", "--policy", "local", "--frames", "3", "--out", str(out)]) == 0
    assert out.exists() and (tmp_path / "r-report.png").exists()
    assert "policy local" in capsys.readouterr().out
    assert main(["replay", "--task", "hubs", "--policy", "local", "--out", str(tmp_path / "r.avi")]) == 2
    assert main(["replay", "--task", "nosuch", "--policy", "local", "--out", str(out)]) == 2


def test_an_mp4_needs_moviepy(short_replay, tmp_path) -> None:
    """With moviepy (the video extra) an MP4 is written; without it, the error says how to install it."""
    try:
        import moviepy  # noqa: F401
    except ImportError:
        with pytest.raises(ValueError, match=r"needs moviepy .* pip install 'geoinfer\[video\]'"):
            write_video(short_replay.frames, tmp_path / "x.mp4")
    else:
        out = write_video(short_replay.frames, tmp_path / "x.mp4")
        assert out.stat().st_size > 1000


def test_a_replay_of_a_drawn_day_solves_its_oracle() -> None:
    """With a seed the day is drawn from the split (no certificate covers it): the oracle is solved, and it
    is no worse than the policy."""
    from envs.costs import check_plan_feasible, evaluate_plan

    rep = replay("hubs", "local", seed=7, frames=2)
    fixed = {i.digest(portable=True) for i in rep.task.instances("test")}
    assert rep.instance.digest(portable=True) not in fixed
    assert not check_plan_feasible(rep.instance, rep.oracle_plan)
    assert evaluate_plan(rep.instance, rep.oracle_plan).total_usd <= evaluate_plan(rep.instance, rep.plan).total_usd
    with pytest.raises(ValueError, match=r"has episodes 0\.\.9"):
        replay("hubs", "local", episode=10)
