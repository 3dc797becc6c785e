"""Sweeps of training runs on Ray Tune: tasks x algorithms x seeds x a hyperparameter grid, with early stopping.

A sweep is a TOML file (``geoinfer sweep --config SWEEP.toml --out DIR``)::

    name = "contended-lr"            # optional (default: the file's name)
    tasks = ["contended"]            # benchmark tasks (or scenario names / TOML paths)
    algos = ["maskable_ppo"]
    seeds = [0, 1, 2]
    timesteps = 200000               # env steps per trial
    eval_every = 20000               # env steps between evaluations on the validation days (Tune's reports)

    [grid]                           # hyperparameters: every combination is tried
    learning_rate = ["lin_3e-4", "lin_1e-3"]

    [train]                          # any other TrainConfig field, the same for every trial
    eval_episodes = 4

    [scheduler]                      # "asha" (default) stops the trials behind; "fifo" runs every trial out
    kind = "asha"
    grace_period = 40000             # env steps every trial gets before it may be stopped
    reduction_factor = 2

    [resources]
    cpus_per_trial = 1
    max_failures = 2                 # retries of a trial whose worker or node died
    max_concurrent = 4               # trials at once (default: as many as the CPUs allow)

A trial's evaluation at its last step is reported once its run has written ``model.zip`` (ASHA may stop a
trial at any report). A ``bc`` trial trains all its epochs at one step count, so it reports once, at its end.

Each trial reserves ``cpus_per_trial`` CPUs; an ``rllib_ppo`` trial samples in its own process (RLlib's
``num_env_runners = 0``, the default): env runners beyond that ask the cluster for CPUs of their own.

Each trial is an ordinary training run (:func:`agents.train.train`) in ``DIR/trials/<trial>``: the same run
folder, checkpoints and ``eval/log.csv`` as ``geoinfer train``, so any trial can be evaluated, benchmarked or
resumed by hand. Each evaluation is reported to Tune (metric ``relative_regret`` on the validation days,
minimised; time ``timesteps``) with a checkpoint. A trial restarted after its node died, or after the sweep
was resumed, continues its run folder from its last checkpoint: ``DIR`` must be on storage that every node
sees (one machine, or a shared file system), as Tune's own storage must. Tune's state is in ``DIR/tune``;
``--resume`` continues an interrupted sweep. Each start of a trial appends its Ray node to
``attempts.txt`` in its run folder. At the end ``DIR/results.csv`` (one row per trial) and
``DIR/sweep.png`` (validation regret against env steps) are written. A trial that ASHA stopped ends inside
Tune's report, before it writes ``model.zip``: the table's ``model`` column names its ``best_model.zip``.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from agents.rllib import RLLIB_ALGOS
from agents.train import ALGOS, TrainConfig, hyperparams_of
from envs.spec import read_toml

METRIC = "relative_regret"  # of the validation days, minimised
TIME_ATTR = "timesteps"
SCHEDULERS = ("asha", "fifo")
ATTEMPTS = "attempts.txt"  # in a trial's run folder: one line per start, the Ray node's id and how it started
_SET_BY_SWEEP = {"algo", "scenario", "seed", "out", "hyperparams", "timesteps", "eval_every", "progress_bar"}
_TOP = {"name", "tasks", "algos", "seeds", "timesteps", "eval_every", "grid", "train", "scheduler", "resources"}


@dataclass(frozen=True, slots=True)
class SweepConfig:
    """A sweep: its trials are tasks x algos x seeds x every combination of ``grid``. Steps in env steps."""

    name: str
    tasks: tuple[str, ...]
    algos: tuple[str, ...]
    seeds: tuple[int, ...]
    timesteps: int
    eval_every: int
    grid: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    train: Mapping[str, Any] = field(default_factory=dict)
    scheduler: str = "asha"
    grace_period: int | None = None  # env steps before ASHA may stop a trial (default: 2 evaluations)
    reduction_factor: int = 2
    cpus_per_trial: float = 1.0
    max_failures: int = 2
    max_concurrent: int | None = None  # trials running at once (default: as many as the CPUs allow)

    def __post_init__(self) -> None:
        def need(ok: bool, name: str, expected: str) -> None:
            if not ok:
                raise ValueError(f"sweep {self.name!r}: {name} = {getattr(self, name)!r}: expected {expected}")

        for name in ("tasks", "algos", "seeds"):
            need(len(getattr(self, name)) > 0, name, "a non-empty list")
        need(all(a in ALGOS for a in self.algos), "algos", f"names among {ALGOS}")
        need(all(isinstance(s, int) and s >= 0 for s in self.seeds), "seeds", "integers >= 0")
        need(isinstance(self.timesteps, int) and self.timesteps >= 1, "timesteps", "an integer >= 1")
        need(
            isinstance(self.eval_every, int) and 1 <= self.eval_every <= self.timesteps,
            "eval_every",
            f"an integer in [1, timesteps = {self.timesteps}]",
        )
        need(self.scheduler in SCHEDULERS, "scheduler", f"one of {SCHEDULERS}")
        need(
            self.grace_period is None
            or (isinstance(self.grace_period, int) and 1 <= self.grace_period <= self.timesteps),
            "grace_period",
            f"an integer in [1, timesteps = {self.timesteps}] (env steps)",
        )
        need(isinstance(self.reduction_factor, int) and self.reduction_factor >= 2, "reduction_factor", "an int >= 2")
        need(self.cpus_per_trial > 0, "cpus_per_trial", "a number > 0")
        need(isinstance(self.max_failures, int) and self.max_failures >= 0, "max_failures", "an integer >= 0")
        need(
            self.max_concurrent is None or (isinstance(self.max_concurrent, int) and self.max_concurrent >= 1),
            "max_concurrent",
            "an integer >= 1",
        )
        need(all(isinstance(v, tuple) and v for v in self.grid.values()), "grid", "a table of non-empty lists")
        clash = set(self.train) & _SET_BY_SWEEP
        need(not clash, "train", f"no keys the sweep sets itself ({sorted(clash)} are: use the top level or [grid])")
        known = {f.name for f in dataclasses.fields(TrainConfig)}
        need(not set(self.train) - known, "train", f"keys among {sorted(known - _SET_BY_SWEEP)}")
        stems = [Path(t).stem for t in self.tasks]
        need(len(set(stems)) == len(stems), "tasks", "tasks of distinct names (each names its trials' folders)")
        for trial in self.trials(Path("/sweep")):  # every combination is a valid run (names the bad key)
            run = TrainConfig(**trial["train"])
            if run.algo in RLLIB_ALGOS and hyperparams_of(run)["num_env_runners"] != 0:
                raise ValueError(
                    f"sweep {self.name!r}: trial {trial['name']} has num_env_runners = "
                    f"{run.hyperparams['num_env_runners']}: expected 0 in a sweep (an rllib_ppo trial samples in "
                    "its own process; env runners would wait for CPUs the trials hold)"
                )

    def trials(self, out: Path) -> list[dict[str, Any]]:
        """One spec per trial, in a fixed order: ``name``, ``task``, ``algo``, ``seed``, ``hyperparams`` and
        ``train`` (the :class:`TrainConfig` fields of its run, in ``out/trials/<name>``)."""
        keys = sorted(self.grid)
        combos = [dict(zip(keys, vals, strict=True)) for vals in itertools.product(*(self.grid[k] for k in keys))]
        specs = []
        for task, algo, (h, hp), seed in itertools.product(self.tasks, self.algos, enumerate(combos), self.seeds):
            name = f"{Path(task).stem}_{algo}_hp{h:02d}_seed{seed}"
            train = {
                "checkpoint_every": self.eval_every,  # a restarted trial loses at most one evaluation's steps
                **self.train,
                "algo": algo,
                "scenario": task,
                "seed": seed,
                "out": str(out / "trials" / name),
                "hyperparams": hp,
                "timesteps": self.timesteps,
                "eval_every": self.eval_every,
                "progress_bar": False,
            }
            specs.append({"name": name, "task": task, "algo": algo, "seed": seed, "hyperparams": hp, "train": train})
        return specs


def load_sweep(path: str | Path) -> SweepConfig:
    """Read and check a sweep TOML file (see the module docstring); errors name the key."""
    p = Path(path)
    d = read_toml(p, "--config")
    unknown = set(d) - _TOP
    if unknown:
        raise ValueError(f"--config {str(p)!r}: unknown keys {sorted(unknown)}; expected some of {sorted(_TOP)}")
    missing = {"tasks", "algos", "seeds", "timesteps", "eval_every"} - set(d)
    if missing:
        raise ValueError(f"--config {str(p)!r}: missing keys {sorted(missing)}")
    for key in ("tasks", "algos", "seeds"):
        if not isinstance(d[key], list):
            raise ValueError(f"--config {str(p)!r}: {key} = {d[key]!r}: expected a list")
    tables = {k: d.get(k, {}) for k in ("grid", "train", "scheduler", "resources")}
    for key, table in tables.items():
        if not isinstance(table, dict):
            raise ValueError(f"--config {str(p)!r}: [{key}] = {table!r}: expected a table")
    for key, vals in tables["grid"].items():
        if not isinstance(vals, list) or not vals:
            raise ValueError(f"--config {str(p)!r}: grid.{key} = {vals!r}: expected a non-empty list of values")
    sched, res = dict(tables["scheduler"]), dict(tables["resources"])
    resources = {"cpus_per_trial", "max_failures", "max_concurrent"}
    bad = (set(sched) - {"kind", "grace_period", "reduction_factor"}) | (set(res) - resources)
    if bad:
        raise ValueError(
            f"--config {str(p)!r}: unknown keys {sorted(bad)} in [scheduler] (kind, grace_period, reduction_factor) "
            "or [resources] (cpus_per_trial, max_failures, max_concurrent)"
        )
    tasks = [str(t) if t in _named() or Path(t).is_absolute() else str((p.parent / t).resolve()) for t in d["tasks"]]
    train = dict(tables["train"])
    for key in ("oracle_cache", "init_from"):  # relative to the sweep file: trials run in folders of Tune's
        if isinstance(train.get(key), str) and not Path(train[key]).is_absolute():
            train[key] = str((p.parent / train[key]).resolve())
    return SweepConfig(
        name=str(d.get("name", p.stem)),
        tasks=tuple(tasks),
        algos=tuple(d["algos"]),
        seeds=tuple(d["seeds"]),
        timesteps=d["timesteps"],
        eval_every=d["eval_every"],
        grid={k: tuple(v) for k, v in tables["grid"].items()},
        train=train,
        scheduler=str(sched.get("kind", "asha")),
        grace_period=sched.get("grace_period"),
        reduction_factor=sched.get("reduction_factor", 2),
        cpus_per_trial=float(res.get("cpus_per_trial", 1.0)),
        max_failures=res.get("max_failures", 2),
        max_concurrent=res.get("max_concurrent"),
    )


def _named() -> set[str]:
    from envs import NAMED_SCENARIOS
    from envs.tasks import TASKS

    return {*TASKS, *NAMED_SCENARIOS}


def run_trial(config: dict[str, Any]) -> None:
    """The Tune trainable: one training run, each evaluation reported (with a checkpoint) as it is written.

    A trial that Tune restarts (its node died, or the sweep resumed) continues its run folder from the last
    checkpoint; a run already finished reports its last evaluation again.
    """
    import ray
    from ray import tune

    from agents.callbacks import latest_checkpoint
    from agents.train import train

    spec = config["trial"]
    cfg = TrainConfig(**spec["train"])
    out = Path(cfg.out)
    resume = (out / "config.json").is_file() and latest_checkpoint(out / "checkpoints") is not None
    out.mkdir(parents=True, exist_ok=True)
    if not resume:  # an attempt cut short before its first checkpoint: its evaluations are done again
        (out / "eval" / "log.csv").unlink(missing_ok=True)
    with (out / ATTEMPTS).open("a") as f:  # where each attempt ran: a retried trial has several lines
        f.write(f"{ray.get_runtime_context().get_node_id()} {'resumed' if resume else 'started'}\n")
    reported: list[dict[str, float]] = []
    final: list[dict[str, float]] = []

    def report(row: dict[str, float]) -> None:
        with tempfile.TemporaryDirectory() as d:
            (Path(d) / "evaluation.json").write_text(json.dumps({"run": str(out), **row}))
            tune.report({**row, TIME_ATTR: int(row["timesteps"])}, checkpoint=tune.Checkpoint.from_directory(d))
        reported.append(row)

    def on_eval(row: dict[str, float]) -> None:
        # The last evaluation waits until the run has written its model: ASHA may stop a trial at any report
        # (at max_t too, when a rung falls there), and a stop ends the trial inside the report.
        if row["timesteps"] >= cfg.timesteps:
            final.append(row)
        else:
            report(row)

    train(cfg, resume=resume, log=lambda msg: None, on_eval=on_eval)
    log = out / "eval" / "log.csv"
    if final:
        report(final[-1])
    elif not reported and log.is_file():  # nothing left to train: Tune still gets the run's last figures
        last = pd.read_csv(log).iloc[-1].to_dict()
        report({k: float(v) for k, v in last.items()})


def _tuner(cfg: SweepConfig, out: Path, resume: bool) -> Any:
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    trainable = tune.with_resources(run_trial, {"cpu": cfg.cpus_per_trial})
    storage = out.resolve()
    if resume:
        if not tune.Tuner.can_restore(storage / "tune"):
            raise ValueError(f"--resume: {storage / 'tune'} holds no sweep to resume")
        return tune.Tuner.restore(str(storage / "tune"), trainable, resume_unfinished=True, resume_errored=True)
    if cfg.scheduler == "asha":
        scheduler: Any = ASHAScheduler(
            time_attr=TIME_ATTR,
            max_t=cfg.timesteps,
            grace_period=cfg.grace_period or min(cfg.timesteps, 2 * cfg.eval_every),
            reduction_factor=cfg.reduction_factor,
            stop_last_trials=False,  # a trial that reaches max_t ends by itself (see run_trial's last report)
        )
    else:
        scheduler = FIFOScheduler()
    return tune.Tuner(
        trainable,
        param_space={"trial": tune.grid_search(cfg.trials(storage))},
        tune_config=tune.TuneConfig(
            metric=METRIC,
            mode="min",
            scheduler=scheduler,
            max_concurrent_trials=cfg.max_concurrent,
            trial_dirname_creator=_trial_dirname,
        ),
        run_config=tune.RunConfig(
            name="tune",
            storage_path=str(storage),
            failure_config=tune.FailureConfig(max_failures=cfg.max_failures),
            verbose=0,
        ),
    )


def _trial_dirname(trial: Any) -> str:
    """Tune's folder of a trial: its name and Tune's id (the default spells out the whole config)."""
    return f"{trial.config['trial']['name']}_{trial.trial_id}"


def run_sweep(cfg: SweepConfig, out: str | Path, *, address: str | None = None, resume: bool = False) -> pd.DataFrame:
    """Run (or, with ``resume``, continue) the sweep into ``out``; returns the results table (one row per trial).

    ``address``: a Ray cluster (``auto`` or ``HOST:PORT``); default an embedded Ray using this machine's CPUs.
    """
    from benchmark.parallel import init_ray

    out = Path(out)
    spec_path = out / "sweep.json"
    # Tune's experiment state: the sweep got under way (tuner.pkl alone comes before it and cannot be resumed)
    started = any((out / "tune").glob("experiment_state-*.json"))
    if resume:
        if not spec_path.is_file() or not started:
            raise ValueError(f"--resume: {out} holds no sweep that started (run it without --resume)")
        stored = json.loads(spec_path.read_text())
        if stored != _jsonable(cfg):
            raise ValueError(f"--resume: the sweep in {out} differs from --config (expected the same sweep)")
    elif started:
        raise ValueError(f"{out} already holds a sweep: pass --resume to continue it, or choose another --out")
    init_ray(address)
    out.mkdir(parents=True, exist_ok=True)
    spec_path.write_text(json.dumps(_jsonable(cfg), indent=2))
    grid = _tuner(cfg, out, resume).fit()
    table = results_table(cfg, out, grid)
    table.to_csv(out / "results.csv", index=False)
    plot_sweep(cfg, out, out / "sweep.png")
    return table


def _jsonable(cfg: SweepConfig) -> dict[str, Any]:
    d = dataclasses.asdict(cfg)
    return json.loads(json.dumps({**d, "grid": {k: list(v) for k, v in cfg.grid.items()}, "train": dict(cfg.train)}))


def results_table(cfg: SweepConfig, out: Path, grid: Any = None) -> pd.DataFrame:
    """One row per trial, from its run folder's ``eval/log.csv``: the last and the best validation regret, the
    env steps reached and how the trial ended (``completed``, ``stopped early`` by the scheduler, ``error``)."""
    errors = {}
    if grid is not None:
        for result in grid:
            spec = result.config["trial"] if result.config else None
            if spec is not None and result.error is not None:
                errors[spec["name"]] = f"error: {type(result.error).__name__}"
    rows = []
    for spec in cfg.trials(out.resolve()):
        log_csv = Path(spec["train"]["out"]) / "eval" / "log.csv"
        log = pd.read_csv(log_csv) if log_csv.is_file() else pd.DataFrame()
        steps = int(log["timesteps"].max()) if len(log) else 0
        status = errors.get(spec["name"]) or ("completed" if steps >= cfg.timesteps else "stopped early")
        attempts = Path(spec["train"]["out"]) / ATTEMPTS
        starts = attempts.read_text().splitlines() if attempts.is_file() else []
        rows.append(
            {
                "trial": spec["name"],
                "task": spec["task"],
                "algo": spec["algo"],
                "seed": spec["seed"],
                **{f"hp.{k}": v for k, v in spec["hyperparams"].items()},
                "timesteps": steps,
                "last_regret": float(log[METRIC].iloc[-1]) if len(log) else float("nan"),
                "best_regret": float(log[METRIC].min()) if len(log) else float("nan"),
                "evaluations": len(log),
                "status": status,
                "attempts": len(starts),
                "nodes": len({line.split()[0] for line in starts}),
                # a trial stopped early ends inside Tune's report, before it writes model.zip
                "model": _model_of(Path(spec["train"]["out"])),
                "run": spec["train"]["out"],
            }
        )
    return pd.DataFrame(rows).sort_values(["task", "last_regret"]).reset_index(drop=True)


def _model_of(run: Path) -> str:
    """The run's final model, or for a trial stopped early its best; '' for a trial that never evaluated."""
    for name in ("model.zip", "best_model.zip"):
        if (run / name).is_file():
            return str(run / name)
    return ""


def plot_sweep(cfg: SweepConfig, out: Path, path: Path) -> Path:
    """Validation regret against env steps, one line per trial, one panel per task."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    specs = cfg.trials(out.resolve())
    fig, axes = plt.subplots(1, len(cfg.tasks), figsize=(5.5 * len(cfg.tasks), 4), squeeze=False)
    for ax, task in zip(axes[0], cfg.tasks, strict=True):
        for spec in (s for s in specs if s["task"] == task):
            log_csv = Path(spec["train"]["out"]) / "eval" / "log.csv"
            if log_csv.is_file():
                log = pd.read_csv(log_csv)
                ax.plot(log["timesteps"], 100 * log[METRIC], marker="o", ms=3, lw=1, label=spec["name"])
        ax.set(title=Path(task).stem, xlabel="env steps", ylabel="validation regret (%)")
        ax.grid(alpha=0.3)
        if len(specs) <= 12:
            ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
