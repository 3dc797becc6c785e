"""Imitation of the oracle (agents.imitation): replayed traces, behaviour cloning reproduces a fixed expert,
DAgger's labels are the brute-force optimum of the rest of the episode, runs save / load / resume exactly,
and a clone starts reinforcement fine-tuning."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch as th
from brute import brute_force_after, tiny_instance
from conftest import make_toy_instance

from agents.evaluate import Agent, evaluation_instances, play
from agents.imitation import (
    Samples,
    day_seed,
    discounted_returns,
    expert_view,
    label_weights,
    relabel,
    relabel_points,
    supervised_epoch,
)
from agents.policies import MaskableRegionPolicy
from agents.train import TrainConfig, hyperparams_of, train
from baselines.heuristics import make_heuristic
from baselines.milp import solve_hindsight
from baselines.mpc import OnlineMPC
from envs import Instance, Scenario, evaluate_plan, sample_instance
from envs.dynamics import InadmissibleAction, ObsLayout, trace
from envs.placement import PlacementEnv
from experiments.cli import main

TASKS = 40
SCALE = 100.0


def quiet(_msg: str) -> None:
    pass


def imitation_config(tmp_path: Path, algo: str = "bc", expert: str = "oracle", **changes: object) -> TrainConfig:
    """A run on 40-task days of the toy scenario: a few days, a few epochs, two fixed evaluation days."""
    hp: dict[str, object] = {"epochs": 3, "batch_size": 64, "expert": expert}
    if algo == "dagger":
        hp.update(demo_steps=80, round_steps=80, solves_per_day=3, epochs=2)
    base: dict[str, object] = {
        "algo": algo,
        "timesteps": 160 if algo == "dagger" else 80,
        "out": str(tmp_path / algo),
        "num_tasks": TASKS,
        "hidden": 16,
        "hyperparams": hp,
        "eval_every": 1,
        "eval_episodes": 2,
        "eval_tasks": TASKS,
        "checkpoint_every": 1,
        "progress_bar": False,
        "oracle_time_limit_s": 10.0,
    }
    base.update(changes)
    return TrainConfig(**base)  # type: ignore[arg-type]


def new_policy(inst: Instance, hidden: int = 32, lr: float = 3e-3) -> MaskableRegionPolicy:
    from gymnasium import spaces

    layout = ObsLayout.of(inst)
    low, high = layout.bounds()
    th.manual_seed(0)
    return MaskableRegionPolicy(
        spaces.Box(low, high, dtype=np.float32),
        spaces.Discrete(inst.num_regions + 1),
        lambda _p: lr,
        task_features=layout.task_features,
        hidden=hidden,
    )


def weights(path: Path) -> list[np.ndarray]:
    return [p.detach().numpy().copy() for p in Agent.load(path).model.policy.parameters()]


# ------------------------------------------------------------------------------------------ traces
def test_trace_replays_the_env(toy_scenario: Scenario) -> None:
    """trace() sees what PlacementEnv shows, and its step costs sum to the plan's cost."""
    inst = evaluation_instances(toy_scenario, [3], TASKS)[0]
    plan = make_heuristic("greedy", inst).plan(inst)
    tr = trace(inst, plan, SCALE)
    env = PlacementEnv(toy_scenario)
    obs, info = env.reset(options={"instance": inst})
    for k, a in enumerate(plan):
        np.testing.assert_array_equal(tr.obs[k], obs)
        np.testing.assert_array_equal(tr.mask[k], info["action_mask"])
        obs, reward, *_rest, info = env.step(int(a))
        assert -reward / SCALE == pytest.approx(tr.cost_usd[k], rel=1e-9, abs=1e-12)
    assert tr.cost_usd.sum() == pytest.approx(evaluate_plan(inst, plan).total_usd, rel=1e-9)
    bad = plan.copy()
    bad[0] = int(np.flatnonzero(~tr.mask[0])[0]) if (~tr.mask[0]).any() else inst.num_regions + 1
    with pytest.raises(InadmissibleAction):
        trace(inst, bad, SCALE)
    with pytest.raises(ValueError, match="one per task"):
        trace(inst, plan[:-1], SCALE)


def test_discounted_returns_by_hand() -> None:
    np.testing.assert_allclose(discounted_returns(np.array([1.0, 2.0, 4.0]), 0.5), [1 + 1 + 1, 2 + 2, 4])


def test_labels_that_open_a_replica_are_found_and_weighted(toy_scenario: Scenario) -> None:
    """``Samples.opens_replica``: the labels that serve a task where its model is cold (neither permanent nor
    opened earlier in the window), tracked here by hand along the plan; ``label_weights`` weighs exactly those."""
    inst = sample_instance(toy_scenario, seed=3, num_tasks=TASKS)
    plan = OnlineMPC(toy_scenario).plan(inst)
    data = Samples.of(trace(inst, plan, SCALE), SCALE, 0.99)
    R, expected = inst.num_regions, np.zeros(inst.num_tasks, dtype=bool)
    warm, window = inst.permanent_replica.copy(), -1
    for k, a in enumerate(plan.tolist()):
        if inst.window_idx[k] != window:
            warm, window = inst.permanent_replica.copy(), int(inst.window_idx[k])
        if a < R:
            expected[k] = not warm[a, inst.model_idx[k]]
            warm[a, inst.model_idx[k]] = True
    assert expected.any() and not expected.all()  # the day opens replicas, and serves warm too
    opens = data.opens_replica(ObsLayout.of(inst))
    np.testing.assert_array_equal(opens, expected)
    assert label_weights(data, ObsLayout.of(inst), 1.0) is None
    np.testing.assert_array_equal(label_weights(data, ObsLayout.of(inst), 5.0), np.where(expected, 5.0, 1.0))


def test_a_label_weighted_k_times_counts_as_k_copies(toy_scenario: Scenario) -> None:
    """supervised_epoch's weighted cross-entropy (one minibatch, no critic loss): weight k on a sample gives the
    update of a dataset holding it k times, and weights all 1 give the unweighted update."""
    inst = sample_instance(toy_scenario, seed=3, num_tasks=TASKS)
    data = Samples.of(trace(inst, OnlineMPC(toy_scenario).plan(inst), SCALE), SCALE, 0.99)
    k, i = 3, 5
    one = Samples(data.obs[i : i + 1], data.mask[i : i + 1], data.action[i : i + 1], data.ret[i : i + 1])
    copies = Samples.concat([data, *[one] * (k - 1)])
    weight = np.ones(len(data), dtype=np.float32)

    def updated(d: Samples, w: np.ndarray | None) -> list[np.ndarray]:
        policy = new_policy(inst)
        # plain gradient steps: Adam would blow up the round-off of gradients that are 0 (a shared logit bias)
        policy.optimizer = th.optim.SGD(policy.parameters(), lr=1e-2)
        supervised_epoch(policy, d, batch_size=10_000, lr=1e-2, value_coef=0.0, max_grad_norm=1e9, seed=0, weight=w)
        return [q.detach().numpy().copy() for q in policy.parameters()]

    plain = updated(data, None)
    for a, b in zip(updated(data, weight), plain, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    weight[i] = k
    weighted = updated(data, weight)
    for a, b in zip(weighted, updated(copies, None), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert any(not np.allclose(a, c) for a, c in zip(weighted, plain, strict=True))  # the weight did something


# ---------------------------------------------------------------------------------- behaviour cloning
@pytest.mark.parametrize("expert", ["oracle", "greedy"])
def test_behaviour_cloning_reproduces_a_fixed_expert_exactly(toy_scenario: Scenario, expert: str) -> None:
    """On the hand-made toy day and two 40-task days, BC fits the expert's every action, and the clone
    then plays the expert's plans exactly."""
    days = [make_toy_instance()]
    days += evaluation_instances(toy_scenario, [21, 22], TASKS)
    groups: dict[int, list[Instance]] = {}
    for inst in days:  # one policy per observation layout (the toy day has its own regions)
        groups.setdefault(ObsLayout.of(inst).size, []).append(inst)
    for insts in groups.values():
        plans = [
            solve_hindsight(i).plan if expert == "oracle" else make_heuristic("greedy", i).plan(i, SCALE) for i in insts
        ]
        data = Samples.concat([Samples.of(trace(i, p, SCALE), SCALE, 0.99) for i, p in zip(insts, plans, strict=True)])
        policy = new_policy(insts[0])
        accuracy = 0.0
        scale = float(data.ret.std())
        for epoch in range(400):  # the run's loss: the critic's too, on returns at the run's scale
            stats = supervised_epoch(
                policy, data, batch_size=64, lr=3e-3, value_coef=0.5, max_grad_norm=0.5, seed=epoch, value_scale=scale
            )
            accuracy = stats["accuracy"]
            if accuracy == 1.0:
                break
        assert accuracy == 1.0, f"BC fitted only {accuracy:.3f} of {len(data)} expert actions"

        def act(obs: np.ndarray, mask: np.ndarray, policy: MaskableRegionPolicy = policy) -> np.ndarray:
            with th.no_grad():
                logits, _ = policy.mlp_extractor(th.as_tensor(obs))
            return logits.masked_fill(~th.as_tensor(mask), -np.inf).argmax(1).numpy()

        for inst, plan in zip(insts, play(act, insts, SCALE), strict=True):
            np.testing.assert_array_equal(plan, plans[insts.index(inst)])


# ------------------------------------------------------------------------------------------- DAgger
@pytest.mark.parametrize(("seed", "share"), [(0, 1.0), (1, 1.0), (2, 1.0), (3, 1.0), (4, 0.6), (5, 0.6)])
def test_dagger_labels_are_the_brute_force_optimum_of_the_rest(seed: int, share: float) -> None:
    """Every label DAgger gives is an action with which the best completion of the episode, after the
    placements before it, costs the brute-force optimum of that rest (of the episode the oracle plans, with
    ``share`` of the capacity); the state at each relabelling point is the learner's own."""
    inst = tiny_instance(seed, 7, 3)
    rng = np.random.default_rng(seed)
    learner = make_heuristic("random", inst, seed=seed).plan(inst, SCALE)  # a feasible, poor learner
    points = relabel_points(inst.num_tasks, 3, rng)
    lab = relabel(inst, learner, points, reward_scale=SCALE, gamma=0.99, expert_capacity=share)
    assert lab.solves == points.size == len(lab.continuations)
    learner_trace = trace(inst, learner, SCALE)
    row = 0
    ends = [*points[1:].tolist(), inst.num_tasks]
    for p, q, cont in zip(points.tolist(), ends, lab.continuations, strict=True):
        np.testing.assert_array_equal(cont[:p], learner[:p])  # the learner's placements are kept
        np.testing.assert_array_equal(lab.samples.obs[row], learner_trace.obs[p])  # the learner's state
        view = expert_view(inst, share, learner[:p])
        np.testing.assert_array_less(view.capacity_gpu_s, inst.capacity_gpu_s * (1 + 1e-12) + 1e-12)
        for j in range(p, q):
            assert lab.samples.action[row] == cont[j]
            best_rest = brute_force_after(view, cont[:j])
            with_label = brute_force_after(view, cont[: j + 1])
            assert with_label == pytest.approx(best_rest, rel=1e-6, abs=1e-9)
            row += 1
    assert row == len(lab.samples)
    with pytest.raises(ValueError, match="points"):
        relabel(inst, learner, [inst.num_tasks], reward_scale=SCALE, gamma=0.99)
    none = relabel(inst, learner, [], reward_scale=SCALE, gamma=0.99)
    assert none.solves == len(none.samples) == 0 and none.samples.obs.shape[1] == learner_trace.obs.shape[1]


def test_the_expert_view_leaves_slack_but_keeps_a_prefix(toy_scenario: Scenario) -> None:
    inst = evaluation_instances(toy_scenario, [7], TASKS)[0]
    assert expert_view(inst, 1.0) is inst
    np.testing.assert_allclose(expert_view(inst, 0.5).capacity_gpu_s, 0.5 * inst.capacity_gpu_s)
    plan = make_heuristic("greedy", inst).plan(inst, SCALE)
    view = expert_view(inst, 0.1, plan[:30])
    assert solve_hindsight(view, fixed=plan[:30]).status == "optimal"  # the prefix fits the smaller capacity
    assert (view.capacity_gpu_s >= 0.1 * inst.capacity_gpu_s).all()
    assert (view.capacity_gpu_s <= inst.capacity_gpu_s).all()


def test_relabel_points_spread_over_the_day() -> None:
    pts = relabel_points(100, 4, np.random.default_rng(0))
    assert pts.size == 4 and np.all(np.diff(pts) == 25) and 0 <= pts[0] < 25
    assert relabel_points(3, 10, np.random.default_rng(0)).tolist() == [0, 1, 2]


# ------------------------------------------------------------------------------------------ the runs
@pytest.mark.parametrize("algo", ["bc", "dagger"])
def test_imitation_run_saves_loads_and_evaluates_identically(tmp_path: Path, toy_scenario: Scenario, algo: str) -> None:
    cfg = imitation_config(tmp_path, algo)
    res = train(cfg, scenario=toy_scenario, log=quiet)
    out = Path(cfg.out)
    assert res.num_timesteps >= cfg.timesteps and res.oracle_solves > 0
    assert res.oracle_s > 0 and res.net_s > 0 and res.env_s > 0 and res.wall_s >= res.oracle_s + res.net_s
    rounds = 1 if algo == "bc" else 2
    assert sorted(p.name for p in (out / "data").glob("*.npz")) == [f"round_{r:03d}.npz" for r in range(rounds)]
    agent = Agent.load(res.model_path)
    assert agent.algo == algo and agent.masked
    log = pd.read_csv(out / "eval" / "log.csv")
    assert len(log) == (3 if algo == "bc" else 2)  # bc: every epoch; dagger: every round
    fixed = [Instance.load(f) for f in sorted((out / "eval").glob("eval_seed*_tasks40.npz"))]
    costs = [evaluate_plan(i, p).total_usd for i, p in zip(fixed, play(agent.act_batch, fixed), strict=True)]
    assert log["total_usd"].iloc[-1] == pytest.approx(np.mean(costs), rel=1e-12)
    best = Agent.load(out / "best_model.zip")
    best_costs = [evaluate_plan(i, p).total_usd for i, p in zip(fixed, play(best.act_batch, fixed), strict=True)]
    assert np.mean(best_costs) == pytest.approx(log["total_usd"].min(), rel=1e-12)
    with pytest.raises(ValueError, match="already holds a run"):
        train(cfg, scenario=toy_scenario, log=quiet)


def test_the_online_mpc_as_expert_labels_every_state(tmp_path: Path, toy_scenario: Scenario) -> None:
    """expert="mpc": round 0 holds the MPC's own plans of its days; a DAgger round holds the states the learner
    reached, each labelled with the MPC's choice there (every step), and the learner's own returns."""
    cfg = imitation_config(tmp_path, "dagger", "mpc", eval_every=0)
    res = train(cfg, scenario=toy_scenario, log=quiet)
    assert res.oracle_solves == 0 and res.oracle_s > 0  # the expert's time, no oracle solution
    mpc = OnlineMPC(toy_scenario)
    rounds = [Samples.load(Path(cfg.out) / "data" / f"round_{r:03d}.npz") for r in range(2)]
    day0 = sample_instance(toy_scenario, seed=day_seed(cfg.seed, 0, 0), num_tasks=TASKS)
    np.testing.assert_array_equal(rounds[0].action[:TASKS], mpc.plan(day0))
    # Round 1's first day, played by the policy round 0 left (its last checkpoint), labelled by the MPC
    (played_by,) = (Path(cfg.out) / "checkpoints").glob("step_*_round_000_epoch_0002.zip")
    day1 = sample_instance(toy_scenario, seed=day_seed(cfg.seed, 1, 0), num_tasks=TASKS)
    plan = play(Agent.load(played_by).act_batch, [day1], cfg.reward_scale)[0]
    own = Samples.of(trace(day1, plan, cfg.reward_scale), cfg.reward_scale, float(hyperparams_of(cfg)["gamma"]))
    np.testing.assert_array_equal(rounds[1].obs[:TASKS], own.obs)
    np.testing.assert_array_equal(rounds[1].ret[:TASKS], own.ret)
    labels = rounds[1].action[:TASKS]
    np.testing.assert_array_equal(labels, mpc.plan(day1, follow=plan))
    assert (labels != plan).any()  # labels, not the learner's own actions: the check above could fail


@pytest.mark.parametrize("expert", ["oracle", "mpc"])
def test_expert_workers_change_nothing_but_the_time(tmp_path: Path, toy_scenario: Scenario, expert: str) -> None:
    """The expert's days and labels computed by two processes: the same samples, solves and weights as by one."""
    runs = []
    for workers in (1, 2):
        cfg = imitation_config(tmp_path / f"w{workers}", "dagger", expert, eval_every=0, expert_workers=workers)
        runs.append((cfg, train(cfg, scenario=toy_scenario, log=quiet)))
    (one, res_one), (two, res_two) = runs
    assert res_one.oracle_solves == res_two.oracle_solves and res_one.num_timesteps == res_two.num_timesteps
    for r in range(2):
        a, b = (Samples.load(Path(c.out) / "data" / f"round_{r:03d}.npz") for c in (one, two))
        for field in ("obs", "mask", "action", "ret"):
            np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    for a, b in zip(weights(Path(one.out) / "model.zip"), weights(Path(two.out) / "model.zip"), strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="expert_workers"):
        imitation_config(tmp_path, "dagger", expert_workers=0)


@pytest.mark.parametrize(("algo", "expert"), [("bc", "oracle"), ("dagger", "oracle"), ("dagger", "mpc")])
def test_a_resumed_imitation_run_ends_where_the_uninterrupted_one_does(
    tmp_path: Path, toy_scenario: Scenario, algo: str, expert: str
) -> None:
    full = imitation_config(tmp_path / "full", algo, expert=expert)
    done = train(full, scenario=toy_scenario, log=quiet)
    ckpts = sorted(p.name for p in (Path(full.out) / "checkpoints").glob("step_*.zip"))
    # a checkpoint once a round's samples are in, then one per epoch
    assert len(ckpts) == (1 + 3 if algo == "bc" else 2 * (1 + 2))
    for keep in range(1, len(ckpts)):  # interrupted after each checkpoint but the last, and resumed
        part = imitation_config(tmp_path / f"part{keep}", algo, expert)
        shutil.copytree(full.out, part.out)
        (Path(part.out) / "config.json").write_text(json.dumps(part.to_json()))
        for name in ckpts[keep:]:
            (Path(part.out) / "checkpoints" / name).unlink()
            (Path(part.out) / "checkpoints" / name.replace(".zip", ".json")).unlink()
        (Path(part.out) / "model.zip").unlink()
        messages: list[str] = []
        res = train(part, resume=True, scenario=toy_scenario, log=messages.append)
        assert any("resuming" in m and ckpts[keep - 1] in m for m in messages)
        for a, b in zip(weights(Path(full.out) / "model.zip"), weights(res.model_path), strict=True):
            np.testing.assert_array_equal(a, b)
        assert (res.num_timesteps, res.oracle_solves) == (done.num_timesteps, done.oracle_solves)
        log_full = pd.read_csv(Path(full.out) / "eval" / "log.csv")
        log_part = pd.read_csv(Path(part.out) / "eval" / "log.csv")
        np.testing.assert_allclose(log_part["total_usd"], log_full["total_usd"], rtol=1e-12)


def test_a_stopped_imitation_run_resumes_without_periodic_checkpoints(tmp_path: Path, toy_scenario: Scenario) -> None:
    """A session stopped by its clock (here before its first epoch) or run with checkpoint_every=0 still leaves
    a checkpoint to resume from; the resumed run uses the samples already collected."""
    cfg = imitation_config(tmp_path, "bc", checkpoint_every=0, max_minutes=1e-6)
    first = train(cfg, scenario=toy_scenario, log=quiet)
    assert first.stopped_by_clock and first.oracle_solves == 0
    assert not list((Path(cfg.out) / "oracle").glob("*"))  # nothing solved after the deadline
    assert len(list((Path(cfg.out) / "checkpoints").glob("step_*.zip"))) == 1
    again = imitation_config(tmp_path, "bc", checkpoint_every=0)
    hp_file = Path(cfg.out) / "hyperparams.json"
    started = hp_file.read_text()
    hp_file.write_text(started.replace('"gamma": 0.99', '"gamma": 0.999'))  # as if the defaults had changed since
    with pytest.raises(ValueError, match=r"hyperparams.json's gamma: run has 0.999, now 0.99"):
        train(again, resume=True, scenario=toy_scenario, log=quiet)
    # Written before two keys existed: the run had them at the values of its former behaviour, expert "oracle"
    # (the default, nothing to say) and replica_weight 1 (the default is 5 since: --hp says to go on at 1)
    older = {k: v for k, v in json.loads(started).items() if k not in ("expert", "replica_weight")}
    hp_file.write_text(json.dumps(older))
    with pytest.raises(ValueError, match=r"replica_weight: run has 1.0, now 5.0 \(pass --hp replica_weight=1.0"):
        train(again, resume=True, scenario=toy_scenario, log=quiet)
    again = imitation_config(tmp_path, "bc", checkpoint_every=0)
    again = dataclasses.replace(again, hyperparams={**again.hyperparams, "replica_weight": 1.0})
    second = train(again, resume=True, scenario=toy_scenario, log=quiet)
    assert not second.stopped_by_clock and second.num_timesteps >= again.timesteps
    reference = train(dataclasses.replace(again, out=str(tmp_path / "ref" / "bc")), scenario=toy_scenario, log=quiet)
    for a, b in zip(weights(reference.model_path), weights(second.model_path), strict=True):
        np.testing.assert_array_equal(a, b)


def test_resume_goes_on_only_as_the_run_began(tmp_path: Path, toy_scenario: Scenario) -> None:
    """--resume refuses a changed policy_kwargs (not among the resolved hyperparameters); a run from before
    hyperparams.json that lacks a key added since goes on only at the key's former value."""
    cfg = imitation_config(tmp_path, "bc", checkpoint_every=0, max_minutes=1e-6)
    train(cfg, scenario=toy_scenario, log=quiet)
    wider = dataclasses.replace(cfg, hyperparams={**cfg.hyperparams, "policy_kwargs": {"hidden": 32}})
    with pytest.raises(ValueError, match="policy_kwargs: run has None"):
        train(wider, resume=True, scenario=toy_scenario, log=quiet)
    (Path(cfg.out) / "hyperparams.json").unlink()  # as a run begun before the file existed
    again = imitation_config(tmp_path, "bc", checkpoint_every=0)
    with pytest.raises(ValueError, match=r"replica_weight: run has 1.0, now 5.0 \(pass --hp replica_weight=1.0"):
        train(again, resume=True, scenario=toy_scenario, log=quiet)
    with pytest.raises(ValueError, match="hyperparams: run has"):  # any other change of the overrides
        train(dataclasses.replace(again, hyperparams={**again.hyperparams, "epochs": 2}), resume=True, log=quiet)
    former = dataclasses.replace(again, hyperparams={**again.hyperparams, "replica_weight": 1.0})
    assert train(former, resume=True, scenario=toy_scenario, log=quiet).num_timesteps >= former.timesteps


def test_fine_tuning_starts_from_the_clone(tmp_path: Path, toy_scenario: Scenario) -> None:
    """A MaskablePPO run with init_from starts from the clone's weights (with a learning rate of 1e-30 it
    keeps them, so it plays the clone's plans)."""
    clone = train(imitation_config(tmp_path, "bc", eval_every=0), scenario=toy_scenario, log=quiet)
    cfg = TrainConfig(
        algo="maskable_ppo",
        timesteps=128,
        out=str(tmp_path / "tuned"),
        num_envs=2,
        num_tasks=TASKS,
        hidden=16,
        hyperparams={"n_steps": 64, "batch_size": 64, "n_epochs": 1, "learning_rate": 1e-30},
        eval_every=0,
        checkpoint_every=0,
        progress_bar=False,
        init_from=str(clone.model_path),
    )
    tuned = train(cfg, scenario=toy_scenario, log=quiet)
    days = evaluation_instances(toy_scenario, [31, 32], TASKS)
    for a, b in zip(
        play(Agent.load(clone.model_path).act_batch, days),
        play(Agent.load(tuned.model_path).act_batch, days),
        strict=True,
    ):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="no such file"):
        train(TrainConfig(**{**cfg.to_json(), "init_from": str(tmp_path / "none.zip"), "out": str(tmp_path / "x")}))
    with pytest.raises(ValueError, match="does not match"):
        bigger = {**cfg.to_json(), "hidden": 32, "out": str(tmp_path / "y")}
        train(TrainConfig(**bigger), scenario=toy_scenario, log=quiet)


def test_fine_tuning_evaluates_the_clone_first(tmp_path: Path, toy_scenario: Scenario) -> None:
    """A fine-tuning run's first evaluation row is the clone's own policy (step 0), so its best model is never
    worse on the evaluation episodes than the clone; a run from scratch has no such row."""
    clone_cfg = imitation_config(tmp_path, "bc", eval_every=0)
    clone = train(clone_cfg, scenario=toy_scenario, log=quiet)
    hp = {"n_steps": 64, "batch_size": 64, "n_epochs": 1, "learning_rate": 3e-3}
    base = dict(algo="maskable_ppo", timesteps=256, num_envs=2, num_tasks=TASKS, hidden=16, hyperparams=hp,
                eval_every=128, eval_episodes=2, eval_tasks=TASKS, checkpoint_every=0, progress_bar=False,
                oracle_time_limit_s=10.0)  # fmt: skip
    tuned = TrainConfig(**base, out=str(tmp_path / "tuned"), init_from=str(clone.model_path))  # type: ignore[arg-type]
    train(tuned, scenario=toy_scenario, log=quiet)
    log = pd.read_csv(Path(tuned.out) / "eval" / "log.csv")
    days = [Instance.load(f) for f in sorted((Path(tuned.out) / "eval").glob("eval_seed*_tasks40.npz"))]

    def mean_usd(model: Path) -> float:
        plans = play(Agent.load(model).act_batch, days)
        return float(np.mean([evaluate_plan(i, p).total_usd for i, p in zip(days, plans, strict=True)]))

    clone_usd = mean_usd(clone.model_path)
    assert log["timesteps"].iloc[0] == 0 and log["total_usd"].iloc[0] == pytest.approx(clone_usd, rel=1e-12)
    best_usd = mean_usd(Path(tuned.out) / "best_model.zip")
    assert best_usd == pytest.approx(log["total_usd"].min(), rel=1e-12) and best_usd <= clone_usd + 1e-9
    scratch = TrainConfig(**base, out=str(tmp_path / "scratch"))  # type: ignore[arg-type]
    train(scratch, scenario=toy_scenario, log=quiet)
    assert (pd.read_csv(Path(scratch.out) / "eval" / "log.csv")["timesteps"] > 0).all()


def test_imitation_config_is_checked() -> None:
    for algo, hp, field in [
        ("bc", {"epochs": 0}, "epochs"),
        ("bc", {"batch_size": 2.5}, "batch_size"),
        ("bc", {"gamma": 1.5}, "gamma"),
        ("bc", {"value_coef": -1}, "value_coef"),
        ("bc", {"expert_capacity": 0}, "expert_capacity"),
        ("bc", {"expert": "greedy"}, "expert"),
        ("dagger", {"replica_weight": 0}, "replica_weight"),
        ("dagger", {"round_steps": 0}, "round_steps"),
        ("dagger", {"solves_per_day": 0}, "solves_per_day"),
        ("dagger", {"solve_time_limit": 0}, "solve_time_limit"),
        ("dagger", {"demo_steps": 100_000}, "demo_steps"),  # not fewer than the run's timesteps
    ]:
        with pytest.raises(ValueError, match=rf"hyperparams\['{field}'\]"):
            TrainConfig(algo=algo, hyperparams=hp)
    with pytest.raises(ValueError, match="policy"):
        TrainConfig(algo="bc", policy="mlp")
    with pytest.raises(ValueError, match="norm_obs"):
        TrainConfig(algo="dagger", norm_obs=True)
    with pytest.raises(ValueError, match="hyperparams"):
        TrainConfig(algo="bc", hyperparams={"n_steps": 4})
    with pytest.raises(ValueError, match="learning_rate"):
        TrainConfig(algo="bc", hyperparams={"learning_rate": "fast"})
    with pytest.raises(ValueError, match="init_from"):
        TrainConfig(algo="ppo", init_from="runs/bc/model.zip")
    with pytest.raises(ValueError, match="init_from"):
        TrainConfig(init_from="runs/bc/model.zip", norm_obs=True)


def test_cli_trains_a_clone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bc"
    args = ["train", "--algo", "bc", "--scenario", "contended", "--timesteps", "60", "--tasks", "60"]
    args += ["--out", str(out), "--hidden", "16", "--hp", "epochs=1", "--eval-episodes", "1", "--eval-tasks", "60"]
    assert main([*args, "--no-progress", "--oracle-cache", str(tmp_path / "oracle")]) == 0
    text = capsys.readouterr().out
    assert "bc (region policy) on 'contended'" in text and "oracle solves" in text
    assert (out / "model.zip").is_file() and json.loads((out / "config.json").read_text())["algo"] == "bc"


def test_a_region_policy_acts_on_another_region_set(tmp_path: Path, toy_scenario: Scenario) -> None:
    """Zero-shot transfer: the saved model plays days of a larger region set (its weights do not depend on R);
    on its own region set the direct path picks what MaskablePPO's predict picks."""
    res = train(imitation_config(tmp_path, "bc", eval_every=0), scenario=toy_scenario, log=quiet)
    agent = Agent.load(res.model_path)
    day = evaluation_instances(toy_scenario, [41], TASKS)[0]
    tr = trace(day, make_heuristic("nearest", day).plan(day, SCALE), SCALE)
    np.testing.assert_array_equal(agent._act_on_other_regions(tr.obs, tr.mask), agent.act_batch(tr.obs, tr.mask))
    bigger = toy_scenario.with_overrides({"regions": [*toy_scenario.spec["regions"], "South Central US"]})
    days = evaluation_instances(bigger, [42, 43], TASKS)
    assert days[0].num_regions == day.num_regions + 1
    for inst, plan in zip(days, play(agent.act_batch, days), strict=True):
        assert plan.size == inst.num_tasks
        trace(inst, plan, SCALE)  # every action admissible where it was taken
