"""``geoinfer sweep``: the sweep file is checked by name; on Ray, a sweep spreads over the nodes of a cluster,
survives losing a node and resumes after its driver was killed.

The Ray tests need the optional extra (``pip install -e ".[ray]"``) and are skipped without it. Their clusters
run on this machine's loopback interface (tests/conftest.py) and are shut down by the tests.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from agents.sweep import ATTEMPTS, load_sweep

TINY = """
name = "tiny"
tasks = ["residency"]
algos = ["maskable_ppo"]
seeds = [0, 1]
timesteps = {timesteps}
eval_every = 512

[grid]
learning_rate = ["lin_3e-4", "lin_1e-3"]
n_steps = [64]

[train]
num_envs = 2
eval_episodes = 1
eval_tasks = 60
num_tasks = 60
oracle_time_limit_s = 10

[scheduler]
kind = "{kind}"

[resources]
max_failures = 3
"""


def _write(tmp_path: Path, text: str, name: str = "sweep.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _tiny(tmp_path: Path, timesteps: int = 1024, kind: str = "fifo") -> Path:
    return _write(tmp_path, TINY.format(timesteps=timesteps, kind=kind))


def test_a_sweep_file_is_the_product_of_its_lists(tmp_path: Path) -> None:
    cfg = load_sweep(_tiny(tmp_path))
    specs = cfg.trials(tmp_path / "out")
    assert len(specs) == 4  # 2 seeds x 2 learning rates
    assert len({s["name"] for s in specs}) == 4 and len({s["train"]["out"] for s in specs}) == 4
    assert {(s["seed"], s["hyperparams"]["learning_rate"]) for s in specs} == {
        (0, "lin_3e-4"),
        (0, "lin_1e-3"),
        (1, "lin_3e-4"),
        (1, "lin_1e-3"),
    }
    assert all(s["train"]["num_envs"] == 2 and s["train"]["checkpoint_every"] == 512 for s in specs)


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (("seeds = [0, 1]", "seeds = [0, 1]\nepochs = 3"), r"unknown keys \['epochs'\]"),
        (('algos = ["maskable_ppo"]', 'algos = ["ppo2"]'), r"algos = \('ppo2',\): expected names among"),
        (("n_steps = [64]", "n_step = [64]"), r"hyperparams.*expected keys among"),
        (("num_envs = 2", "num_envs = 2\nseed = 3"), r"train = .*no keys the sweep sets itself \(\['seed'\]"),
        (("num_envs = 2", "num_envs = 0"), r"TrainConfig.num_envs = 0: expected an integer >= 1"),
        (("eval_every = 512", "eval_every = 5000"), r"eval_every = 5000: expected an integer in \[1, timesteps"),
        (('kind = "fifo"', 'kind = "pbt"'), r"scheduler = 'pbt': expected one of"),
        (("max_failures = 3", "max_failure = 3"), r"unknown keys \['max_failure'\] in \[scheduler\]"),
        (('learning_rate = ["lin_3e-4", "lin_1e-3"]', "learning_rate = []"), r"grid.learning_rate = \[\]"),
        (("seeds = [0, 1]\n", ""), r"missing keys \['seeds'\]"),
        (('kind = "fifo"', 'kind = "asha"\ngrace_period = 99999'), r"grace_period = 99999: expected an integer in"),
        (('algos = ["maskable_ppo"]', 'algos = ["rllib_ppo"]'), r"hyperparams.*expected keys among"),
        (('tasks = ["residency"]', 'tasks = ["residency", "x/residency.toml"]'), r"tasks of distinct names"),
    ],
)
def test_a_bad_sweep_file_is_refused_by_name(tmp_path: Path, edit: tuple[str, str], match: str) -> None:
    text = TINY.format(timesteps=1024, kind="fifo")
    assert edit[0] in text
    with pytest.raises(ValueError, match=match):
        load_sweep(_write(tmp_path, text.replace(*edit)))


def test_rllib_trials_in_a_sweep_sample_in_their_own_process(tmp_path: Path) -> None:
    text = TINY.format(timesteps=1024, kind="fifo").replace('algos = ["maskable_ppo"]', 'algos = ["rllib_ppo"]')
    text = text.replace("n_steps = [64]", "num_env_runners = [0, 2]").replace('"lin_3e-4", ', "")
    with pytest.raises(ValueError, match=r"num_env_runners = 2: expected 0 in a sweep"):
        load_sweep(_write(tmp_path, text))
    assert len(load_sweep(_write(tmp_path, text.replace("[0, 2]", "[0]"))).trials(tmp_path)) == 2


def test_paths_in_a_sweep_file_are_relative_to_it(tmp_path: Path) -> None:
    text = TINY.format(timesteps=1024, kind="fifo").replace("num_envs = 2", 'num_envs = 2\noracle_cache = "cache"')
    (tmp_path / "sub").mkdir()
    cfg = load_sweep(_write(tmp_path / "sub", text))
    assert cfg.train["oracle_cache"] == str((tmp_path / "sub" / "cache").resolve())  # trials run in Tune's folders


def test_commands_without_ray_say_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import importlib.util

    from experiments.cli import main

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    assert main(["sweep", "--config", str(_tiny(tmp_path)), "--out", str(tmp_path / "out")]) == 2
    assert re.search(r"geoinfer: error: geoinfer sweep needs Ray.*pip install", capsys.readouterr().err)
    assert main(["certify", "--tasks", "hubs", "--out", str(tmp_path / "c"), "--backend", "ray"]) == 2
    assert "--backend ray needs Ray" in capsys.readouterr().err


# --- on Ray (optional extra)


def _geoinfer(*args: str) -> list[str]:
    return [sys.executable, "-m", "experiments.cli", *args]


def _results(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "results.csv")


def _attempts(out: Path) -> dict[str, list[str]]:
    return {p.parent.name: p.read_text().split() for p in sorted((out / "trials").glob(f"*/{ATTEMPTS}"))}


@pytest.fixture
def cluster():  # type: ignore[no-untyped-def]
    """A Ray cluster of three nodes on this machine: a head without CPUs and two single-CPU workers."""
    pytest.importorskip("ray")
    import ray
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()  # another test's embedded Ray
    c = Cluster(initialize_head=True, connect=False, head_node_args={"num_cpus": 0, "include_dashboard": False})
    nodes = [c.add_node(num_cpus=1), c.add_node(num_cpus=1)]
    c.wait_for_nodes()
    yield c, nodes
    c.shutdown()


@pytest.mark.ray
def test_a_sweep_spreads_over_two_nodes_and_survives_losing_one(cluster, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    c, (keep, lose) = cluster
    out = tmp_path / "out"
    cmd = _geoinfer(
        "sweep", "--config", str(_tiny(tmp_path, timesteps=4096)), "--out", str(out), "--address", c.address
    )
    driver = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 240
        while not any(lose.node_id in lines for lines in _attempts(out).values()):  # a trial runs on `lose`
            assert driver.poll() is None and time.monotonic() < deadline, "no trial started on the second node"
            time.sleep(0.5)
        time.sleep(3)  # into its training
        c.remove_node(lose)
        log, _ = driver.communicate(timeout=400)
    finally:
        driver.kill()
    assert driver.returncode == 0, log[-3000:]
    res = _results(out)
    assert len(res) == 4 and (res["status"] == "completed").all() and (res["timesteps"] == 4096).all(), res
    attempts = _attempts(out)
    nodes = {line for lines in attempts.values() for line in lines[::2]}
    assert {keep.node_id, lose.node_id} <= nodes  # the sweep ran on both nodes
    retried = [name for name, lines in attempts.items() if lose.node_id in lines and keep.node_id in lines]
    assert retried, attempts  # the trial lost with its node ran again on the other one, and completed


@pytest.mark.ray
def test_a_killed_sweep_resumes_from_its_storage(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    out = tmp_path / "out"
    config = str(_tiny(tmp_path, timesteps=2048))
    # the driver and its embedded Ray in a session of their own: killed together, as a lost job is
    driver = subprocess.Popen(
        _geoinfer("sweep", "--config", config, "--out", str(out)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 240
        while not list((out / "trials").glob("*/checkpoints/step_*.json")):
            assert driver.poll() is None and time.monotonic() < deadline, "no trial reached a checkpoint"
            time.sleep(0.5)
    finally:
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
    assert not (out / "results.csv").exists()
    again = subprocess.run(
        _geoinfer("sweep", "--config", config, "--out", str(out)), capture_output=True, text=True, timeout=60
    )
    assert again.returncode != 0 and "pass --resume" in again.stderr
    done = subprocess.run(
        _geoinfer("sweep", "--config", config, "--out", str(out), "--resume"),
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    res = _results(out)
    assert len(res) == 4 and (res["status"] == "completed").all() and (res["timesteps"] == 2048).all(), res
    assert any("resumed" in lines for lines in _attempts(out).values())  # a trial went on from its checkpoint


@pytest.mark.ray
def test_asha_stops_the_trials_behind_and_every_trial_keeps_a_model(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    text = TINY.format(timesteps=2048, kind="asha").replace('kind = "asha"', 'kind = "asha"\ngrace_period = 512')
    # one seed (the same validation days), one trial at a time in grid order: a learning rate that learns, then
    # one too small to move the policy, which is behind at 512 steps and stopped there
    text = text.replace("seeds = [0, 1]", "seeds = [0]")
    text = text.replace("max_failures = 3", "max_failures = 3\nmax_concurrent = 1")
    text = text.replace('learning_rate = ["lin_3e-4", "lin_1e-3"]', 'learning_rate = ["lin_1e-3", 1e-9]')
    out = tmp_path / "out"
    run = subprocess.run(
        _geoinfer("sweep", "--config", str(_write(tmp_path, text)), "--out", str(out)),
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    res = _results(out)
    # ASHA's rule at the 512-step rung: the second trial stops if it is behind the first there (lower is better)
    logs = {n: pd.read_csv(out / "trials" / n / "eval" / "log.csv").set_index("timesteps") for n in res["trial"]}
    at_rung = {name: float(log.loc[512, "relative_regret"]) for name, log in logs.items()}
    behind = at_rung["residency_maskable_ppo_hp01_seed0"] > at_rung["residency_maskable_ppo_hp00_seed0"]
    assert dict(zip(res["trial"], res["status"], strict=True)) == {
        "residency_maskable_ppo_hp00_seed0": "completed",
        "residency_maskable_ppo_hp01_seed0": "stopped early" if behind else "completed",
    }, (res, at_rung)
    assert behind, at_rung  # the set-up is meant to stop one: a policy that cannot learn is behind at the rung
    done = res[res["status"] == "completed"]
    assert (done["timesteps"] == 2048).all() and all(m.endswith("/model.zip") for m in done["model"])
    assert all(Path(m).is_file() for m in res["model"])  # a trial stopped early points at its best model
    assert (out / "sweep.png").is_file()
