"""Benchmark a policy on the task suite's fixed episodes against the shipped optimality certificates.

:func:`evaluate` plays a policy on every fixed episode of a split of each task, prices its plan with the one
cost model (:func:`envs.evaluate_plan`), and returns a tidy frame: one row per (task, episode, policy) with
every cost term, the certified optimum J*, the 'local' heuristic's J_local, the relative regret and the
normalised score (:mod:`benchmark.scores`). A policy is named by a string (:func:`resolve_policy`):

* a heuristic (``local``, ``nearest``, ``cheapest``, ``greenest``, ``greedy``, ``random``);
* ``online_mpc``: certainty-equivalent MPC that sees what an agent sees (:class:`baselines.mpc.OnlineMPC`);
* ``rolling_milp``: the exact MILP of each hour's arrivals, known before the first is placed
  (clairvoyant within the hour: not an online policy);
* ``oracle``: the certified hindsight optimum itself (score 1);
* the path of a saved SB3 model (``.zip``, from ``geoinfer train``; models are pickles: load only
  trusted ones), or a path with ``{task}`` for one model per task (``runs/ppo/{task}/model.zip``);
* ``module:attr`` for any user policy: an object with ``act(obs, mask) -> action`` or
  ``act_batch(obs [B, D], mask [B, R+1]) -> [B]`` (a class is instantiated without arguments), or a
  plain function ``f(obs, mask) -> action``. One object plays every task and episode, in order: give
  it no state that carries from one episode to the next.

Per-step policies are played by the env's own rollout loop (:func:`envs.dynamics.play`) in strict mode: an
out-of-range or inadmissible action stops the run with an error naming the task and the episode (models of
unmasked algorithms, PPO, A2C, DQN, run the overflow action instead, as they did in training).
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from tqdm.auto import tqdm

from benchmark.certificates import load_optima
from benchmark.scores import add_scores
from envs.core import DEFAULT_REWARD_SCALE
from envs.costs import evaluate_plan
from envs.dynamics import ObsLayout, play
from envs.instance import Instance
from envs.tasks import TASKS, Task, select_tasks

# What each kind of policy knows when it places a task: every table says it next to the policy.
KNOWS = {
    "heuristic": "online: the current task and state",
    "online_mpc": "online: the observation, plus the scenario's demand forecast for later hours",
    "rolling_milp": "clairvoyant within the hour",
    "oracle": "hindsight: the whole day",
    "agent": "online: the observation",
    "user": "online: the observation",
}
PlanFn = Callable[[Task, Sequence[Instance]], list[NDArray[np.int64]]]


@dataclass(frozen=True, slots=True)
class Policy:
    """A named policy: what it knows, and how it plans a task's episodes (one action per task each)."""

    name: str
    knows: str
    plans: PlanFn
    check: Callable[[Task], None] | None = None  # raises ValueError if the policy cannot play the task
    spec: str | None = None  # the string it was resolved from: another process can resolve it again


def _heuristic(name: str) -> Policy:
    from baselines.heuristics import make_heuristic

    def plans(task: Task, instances: Sequence[Instance]) -> list[NDArray[np.int64]]:
        return [make_heuristic(name, inst, seed=0).plan(inst) for inst in instances]

    return Policy(name, KNOWS["heuristic"], plans)


def _rolling(task: Task, instances: Sequence[Instance]) -> list[NDArray[np.int64]]:
    from baselines.milp import solve_rolling

    # No time limit: a wall-clock limit would make the plan depend on the machine (each hour's MILP is small).
    return [np.asarray(solve_rolling(inst).plan) for inst in instances]


def _mpc(task: Task, instances: Sequence[Instance]) -> list[NDArray[np.int64]]:
    from baselines.mpc import OnlineMPC

    mpc = OnlineMPC(task.scenario())
    return [mpc.plan(inst) for inst in instances]


def _oracle_plans(task: Task, instances: Sequence[Instance]) -> list[NDArray[np.int64]]:
    raise AssertionError("the oracle's plans are the certificates'")  # evaluate() reads them itself


def _stepper(
    name: str,
    knows: str,
    obj: Any,
    check: Callable[[Task], None] | None = None,
    strict: bool = True,
    reward_scale: float = DEFAULT_REWARD_SCALE,
) -> Policy:
    """A policy that acts on observations, played by the env's rollout loop: ``strict``, an inadmissible action
    is an error; otherwise it runs the overflow action, as in training with ``invalid_action="overflow"``
    (an action outside the action space is an error either way). ``reward_scale``: of the observation's
    cost features (the scale the policy was trained with)."""
    if hasattr(obj, "act_batch"):
        fn, batched = obj.act_batch, True
    elif hasattr(obj, "act"):
        fn, batched = obj.act, False
    elif callable(obj):
        fn, batched = obj, False
    else:
        raise ValueError(
            f"policy {name!r}: expected an object with act(obs, mask) or act_batch(obs, mask), or a function"
        )

    def plans(task: Task, instances: Sequence[Instance]) -> list[NDArray[np.int64]]:
        return play(fn, instances, reward_scale, batched=batched, strict=strict)

    def probe(task: Task) -> None:
        """Fail fast: the layout check, then the first steps of the task's first episode, strictly."""
        if check is not None:
            check(task)
        first = task.instances("validation")[0]
        try:
            plans(task, [first.subset(slice(0, 8))])
        except ValueError as exc:
            raise ValueError(f"policy {name!r} on task {task.name!r}: {exc}") from exc

    return Policy(name, knows, plans, probe)


def _sb3_per_task(template: str) -> Policy:
    """One saved model per task: ``template`` names it with ``{task}`` (e.g. ``runs/ppo/{task}/model.zip``)."""
    loaded: dict[str, Policy] = {}
    name = str(Path(template).with_suffix(""))  # the template names the policy: runs/ppo/{task}/model

    def model(task: Task) -> Policy:
        if task.name not in loaded:
            path = Path(template.replace("{task}", task.name))
            if not path.is_file():
                raise ValueError(f"policy {template!r}: no model file {str(path)!r} for task {task.name!r}")
            loaded[task.name] = _sb3(path)
        return loaded[task.name]

    def check(task: Task) -> None:
        pol = model(task)
        if pol.check is not None:
            pol.check(task)

    return Policy(name, KNOWS["agent"], lambda task, instances: model(task).plans(task, instances), check)


def _sb3(path: Path) -> Policy:
    from agents.evaluate import Agent, torch_threads

    agent = Agent.load(path)
    space = agent.model.observation_space
    run = _run_config(path)  # the run folder's config.json, when the model sits in one

    def check(task: Task) -> None:
        layout = ObsLayout.of(task.scenario())
        if tuple(space.shape) != (layout.size,) or int(agent.model.action_space.n) != len(layout.region_names) + 1:
            raise ValueError(
                f"model {str(path)!r} takes observations of shape {tuple(space.shape)} and "
                f"{agent.model.action_space.n} actions: task {task.name!r} has observations of shape "
                f"({layout.size},) and {len(layout.region_names) + 1} actions (expected a model trained on this "
                "task's regions and observation layout)"
            )
        trained = run.get("scenario")
        if isinstance(trained, str) and trained in TASKS and trained != task.name:
            other = ObsLayout.of(TASKS[trained].scenario())
            for field in ("region_names", "node_names", "class_names"):
                if getattr(other, field) != getattr(layout, field):
                    raise ValueError(
                        f"model {str(path)!r} was trained on task {trained!r}, whose {field} differ from task "
                        f"{task.name!r}'s: expected a model trained on this task's layout"
                    )

    # A model name is its run folder and file: runs/ppo/model and runs/dqn/model stay apart.
    name = str(path.with_suffix("")) if len(path.parts) < 3 else "/".join(path.with_suffix("").parts[-2:])
    scale = float(run.get("reward_scale", DEFAULT_REWARD_SCALE))
    inner = _stepper(name, KNOWS["agent"], agent, check, strict=agent.masked, reward_scale=scale)

    def plans(task: Task, instances: Sequence[Instance]) -> list[NDArray[np.int64]]:
        with torch_threads(1):
            return inner.plans(task, instances)

    return Policy(inner.name, inner.knows, plans, inner.check)


def _run_config(model: Path) -> dict[str, Any]:
    """The ``config.json`` of the run folder holding ``model`` (``DIR/model.zip`` or
    ``DIR/checkpoints/step_N.zip``), or ``{}``."""
    for folder in (model.parent, model.parent.parent):
        cfg = folder / "config.json"
        if cfg.is_file():
            try:
                data = json.loads(cfg.read_text())
            except (OSError, ValueError):
                return {}
            return data if isinstance(data, dict) else {}
    return {}


def _user(spec: str) -> Policy:
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # ImportError, but also a SyntaxError or any error raised while importing
        raise ValueError(f"policy {spec!r}: module {module_name!r} does not import ({exc!r})") from exc
    if not hasattr(module, attr):
        raise ValueError(f"policy {spec!r}: module {module_name!r} has no attribute {attr!r}")
    obj = getattr(module, attr)
    if inspect.isclass(obj):
        try:
            obj = obj()
        except Exception as exc:
            raise ValueError(f"policy {spec!r}: {attr}() without arguments failed ({exc!r})") from exc
    return _stepper(spec, KNOWS["user"], obj)


def resolve_policy(policy: str | Policy | Any) -> Policy:
    """A :class:`Policy` from a name, a path, ``module:attr``, or an object / function (see the module docstring)."""
    if isinstance(policy, Policy):
        return policy
    if not isinstance(policy, str):
        name = getattr(policy, "name", None) or getattr(policy, "__name__", None) or type(policy).__name__
        return _stepper(str(name), KNOWS["user"], policy)
    return dataclasses.replace(_resolve_name(policy), spec=policy)


def _resolve_name(policy: str) -> Policy:
    from baselines.heuristics import HEURISTICS

    if policy in HEURISTICS:
        return _heuristic(policy)
    if policy == "rolling_milp":
        return Policy(policy, KNOWS["rolling_milp"], _rolling)
    if policy == "online_mpc":
        return Policy(policy, KNOWS["online_mpc"], _mpc)
    if policy == "oracle":
        return Policy(policy, KNOWS["oracle"], _oracle_plans)
    if "{task}" in policy:
        return _sb3_per_task(policy)
    if policy.endswith(".zip") or Path(policy).is_file():
        if not Path(policy).is_file():
            raise ValueError(f"policy {policy!r}: no such model file (expected a .zip saved by geoinfer train)")
        return _sb3(Path(policy))
    if ":" in policy:
        return _user(policy)
    raise ValueError(
        f"policy {policy!r}: expected a heuristic ({', '.join(sorted(HEURISTICS))}), 'online_mpc', "
        "'rolling_milp', 'oracle', the path of a saved model (.zip) or 'module:attr'"
    )


def evaluate(
    policy: str | Policy | Any | Sequence[str | Policy | Any],
    tasks: str | list[str] | None = "all",
    split: str = "test",
    *,
    certificates: str | Path | None = None,
    progress: bool = True,
    workers: int = 1,
    backend: str = "process",
    address: str | None = None,
) -> pd.DataFrame:
    """Play ``policy`` (or several) on the fixed episodes of ``split`` of each task; one row per episode.

    Columns: ``task, episode, seed, start_hour, policy, knows``, every cost term of
    :meth:`envs.costs.CostBreakdown.summary` (``total_usd`` is J), ``cost_usd`` (= J), ``optimum_usd`` (J*,
    certified), ``optimum_gap`` (its certificate's relative gap), ``local_usd``, ``num_tasks``, ``regret``,
    ``score`` and ``seconds`` (the policy's planning time for the episode; the oracle's: its solve time).
    Every policy and task is checked before any long work starts; the certificates are checked against
    today's episodes and cost model.

    ``workers`` > 1 plans the (task, policy) pairs side by side on ``backend`` (:func:`benchmark.parallel.pmap`;
    ``address``: a Ray cluster). Only policies named by a string can be planned in another process; objects
    are planned here. The rows are the same on any backend, but for ``seconds``, which then counts time on
    shared cores.
    """
    from benchmark.parallel import check_backend, pmap

    check_backend(backend, workers)
    items = list(policy) if isinstance(policy, list | tuple) else [policy]
    policies = [resolve_policy(p) for p in items]
    names = [p.name for p in policies]
    if len(set(names)) != len(names):
        raise ValueError(f"policies {names}: expected distinct names (two policies would share a row)")
    chosen = select_tasks(tasks)
    for pol in policies:
        for task in chosen:
            if pol.check is not None:
                pol.check(task)
    optima = {t.name: load_optima(t, split, certificates) for t in chosen}
    # (task, key, policy): the key None is the 'local' heuristic, every score's reference
    pairs = [(t, k, p) for t in chosen for k, p in [(None, resolve_policy("local")), *((p.name, p) for p in policies)]]
    elsewhere = workers > 1 or address is not None
    remote = [elsewhere and p.spec is not None and p.plans is not _oracle_plans for _, _, p in pairs]
    bar = tqdm(total=len(pairs), desc="benchmark", unit="task x policy", disable=not progress)
    planned: dict[tuple[str, str | None], tuple[list[NDArray[np.int64]], list[float]]] = {}
    far = [pair for pair, r in zip(pairs, remote, strict=True) if r]
    jobs = [(_portable(p.spec or ""), t, [inst for inst, _ in optima[t.name]]) for t, _, p in far]
    results = pmap(_plans_of, jobs, workers=workers, backend=backend, address=address)
    for (task, key, pol), result in zip(far, results, strict=True):
        planned[task.name, key] = result
        bar.set_postfix_str(f"{task.name} / {pol.name}")
        bar.update()
    for task, key, pol in (pair for pair, r in zip(pairs, remote, strict=True) if not r):
        bar.set_postfix_str(f"{task.name} / {pol.name}")
        certs = [cert for _, cert in optima[task.name]]
        if pol.plans is _oracle_plans:
            planned[task.name, key] = [c.plan for c in certs], [c.solve_s for c in certs]
        else:
            planned[task.name, key] = _timed(pol, task, [inst for inst, _ in optima[task.name]])
        bar.update()
    bar.close()
    rows = []
    for task in chosen:
        instances = [inst for inst, _ in optima[task.name]]
        local_plans, _ = planned[task.name, None]
        local_cost = [evaluate_plan(i, p).total_usd for i, p in zip(instances, local_plans, strict=True)]
        for pol in policies:
            plans, seconds = planned[task.name, pol.name]
            for e, ((inst, cert), plan, sec, j_local) in enumerate(
                zip(optima[task.name], plans, seconds, local_cost, strict=True)
            ):
                cost = evaluate_plan(inst, plan).summary()
                rows.append(
                    {
                        "task": task.name,
                        "episode": e,
                        "seed": cert.seed,
                        "start_hour": cert.start_hour,
                        "policy": pol.name,
                        "knows": pol.knows,
                        **cost,
                        "cost_usd": cost["total_usd"],
                        "optimum_usd": cert.objective_usd,
                        "optimum_gap": cert.gap,
                        "local_usd": j_local,
                        "num_tasks": inst.num_tasks,
                        "seconds": sec,
                    }
                )
    return add_scores(pd.DataFrame(rows))


def _portable(spec: str) -> str:
    """``spec`` as another process resolves it: a model path made absolute (a worker may start elsewhere)."""
    if "{task}" in spec or spec.endswith(".zip"):
        return str(Path(spec).absolute())
    return spec


def _plans_of(spec: str, task: Task, instances: Sequence[Instance]) -> tuple[list[NDArray[np.int64]], list[float]]:
    """A policy's plans of ``instances`` and their planning times, in a worker process (see :func:`evaluate`)."""
    return _timed(resolve_policy(spec), task, instances)


def _timed(pol: Policy, task: Task, instances: Sequence[Instance]) -> tuple[list[NDArray[np.int64]], list[float]]:
    """The policy's plans, one episode at a time so that each gets its own planning time."""
    plans, seconds = [], []
    for inst in instances:
        t = time.perf_counter()
        plans.extend(pol.plans(task, [inst]))
        seconds.append(time.perf_counter() - t)
    return plans, seconds
