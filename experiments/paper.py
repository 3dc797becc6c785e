"""The paper's five experiments on real data: frontier, frictions, legal, capacity, layers.

Each experiment samples its episodes once per seed, derives every setting from the same episode
(budgets, friction multipliers, residency rules or capacity changed in place), solves each setting
with the exact oracle and every heuristic, and writes a tidy CSV (one row per policy x setting x seed),
PNG figures and a printed table into ``--out``. Settings run in parallel processes.

Configs are TOML files (``experiments/configs/<name>.toml``); ``--config FILE`` overrides any key.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from benchmark.parallel import add_backend_arguments
from envs import NAMED_SCENARIOS, Instance, Scenario, metrics, residency_allowed, sample_instance, static_mask
from envs.spec import read_toml

EXPERIMENTS = ("frontier", "frictions", "legal", "capacity", "layers")
CONFIG_DIR = Path(str(resources.files("experiments") / "configs"))
HEURISTIC_NAMES = ("local", "nearest", "cheapest", "greenest", "greedy", "random")


@dataclass(frozen=True, slots=True)
class ExperimentConfig:
    """What one experiment sweeps and how. Units: ms for slack levels, dimensionless multipliers."""

    name: str
    levels: tuple[Any, ...]  # the swept setting values
    scenario: str = "default"  # a registered name ("default", "contended") or a TOML path: Scenario.load
    num_tasks: int = 2000  # tasks per episode
    seeds: int = 3  # episodes per setting: seeds 0 .. seeds-1
    policies: tuple[str, ...] = ("oracle", *HEURISTIC_NAMES)
    time_limit_s: float = 60.0  # per oracle solve
    mip_rel_gap: float = 1e-6
    regional_rtt_ms: float = metrics.DEFAULT_REGIONAL_RTT_MS
    regions: tuple[str, ...] = ()  # capacity: regions whose capacity is scaled (default: cheapest and cleanest)
    workers: int = field(default_factory=lambda: min(2, os.cpu_count() or 1))

    def __post_init__(self) -> None:
        if self.name not in EXPERIMENTS:
            raise ValueError(f"experiment = {self.name!r}: expected one of {EXPERIMENTS}")
        if not self.levels:
            raise ValueError(f"{self.name}.levels = []: expected at least one setting")
        if self.num_tasks < 1 or self.seeds < 1 or self.workers < 1:
            raise ValueError(
                f"{self.name}: num_tasks, seeds and workers must be >= 1 (got {self.num_tasks}, "
                f"{self.seeds}, {self.workers})"
            )
        unknown = set(self.policies) - {"oracle", *HEURISTIC_NAMES}
        if unknown:
            raise ValueError(
                f"{self.name}.policies has {sorted(unknown)}: expected names among {['oracle', *HEURISTIC_NAMES]}"
            )
        if not (self.time_limit_s > 0 and 0 <= self.mip_rel_gap < 1):
            raise ValueError(
                f"{self.name}: time_limit_s = {self.time_limit_s}, mip_rel_gap = {self.mip_rel_gap}: "
                "expected a positive time limit and a gap in [0, 1)"
            )
        if self.name == "legal" and set(self.levels) - {"off", "strict", "adequacy"}:
            raise ValueError(f"legal.levels = {list(self.levels)}: expected residency modes off / strict / adequacy")
        if self.name != "legal" and not all(
            isinstance(v, int | float) and math.isfinite(v) and v >= 0 for v in self.levels
        ):
            raise ValueError(f"{self.name}.levels = {list(self.levels)}: expected finite numbers >= 0")


QUICK = {"num_tasks": 120, "seeds": 1, "time_limit_s": 20.0, "workers": 1}


def load_config(
    name: str, path: str | Path | None = None, seeds: int | None = None, quick: bool = False
) -> ExperimentConfig:
    """The experiment's default config, overridden by the TOML at ``path``, ``--seeds`` and ``--quick``."""
    if name not in EXPERIMENTS:
        raise ValueError(f"experiment = {name!r}: expected one of {EXPERIMENTS}")
    values = read_toml(CONFIG_DIR / f"{name}.toml", "experiment config")
    if path is not None:
        p = Path(path)
        override = read_toml(p, "--config")
        known = {f.name for f in dataclasses.fields(ExperimentConfig)} - {"name"}
        unknown = set(override) - known
        if unknown:
            raise ValueError(
                f"--config {str(path)!r}: unknown keys {sorted(unknown)}; expected some of {sorted(known)}"
            )
        scen = override.get("scenario", "default")
        if isinstance(scen, str) and scen not in NAMED_SCENARIOS and not Path(scen).is_absolute():
            override["scenario"] = str((p.parent / scen).resolve())
        values.update(override)
    if quick:
        values.update(QUICK)
        levels = list(values["levels"])
        values["levels"] = levels if len(levels) <= 3 else [levels[0], levels[len(levels) // 2], levels[-1]]
    if seeds is not None:
        values["seeds"] = seeds
    for key in ("levels", "policies", "regions"):
        if key in values:
            if not isinstance(values[key], list | tuple):
                raise ValueError(f"{name}.{key} = {values[key]!r}: expected a list")
            values[key] = tuple(values[key])
    try:
        return ExperimentConfig(name=name, **values)
    except TypeError as exc:
        raise ValueError(f"experiment {name}: bad config: {exc}") from exc


def cheap_clean_regions(s: Scenario, k: int = 2) -> tuple[str, ...]:
    """The ``k`` regions with the best mean rank of energy price x PUE and carbon x PUE."""
    price = (s.price_usd_per_kwh * s.pue).mean(axis=0)
    carbon = (s.carbon_g_per_kwh * s.pue).mean(axis=0)
    rank = np.argsort(np.argsort(price)) + np.argsort(np.argsort(carbon))
    return tuple(s.region_names[i] for i in np.argsort(rank, kind="stable")[:k])


# --------------------------------------------------------------------------- settings
def apply_setting(cfg: ExperimentConfig, scenario: Scenario, base: Instance, level: Any) -> Instance:
    """The base episode under one setting of the experiment."""
    if cfg.name in ("frontier", "layers"):  # added latency slack, ms, on every task's budget
        return base.replace(budget_ms=base.budget_ms + float(level))
    if cfg.name == "frictions":  # one multiplier on state, cache, egress and replica frictions
        m = float(level)
        c = base.cost
        return base.replace(
            cost=dataclasses.replace(
                c,
                state_mult=c.state_mult * m,
                cache_mult=c.cache_mult * m,
                egress_mult=c.egress_mult * m,
                replica_mult=c.replica_mult * m,
            )
        )
    if cfg.name == "legal":
        s = scenario
        return base.replace(
            residency_ok=residency_allowed(
                str(level), s.node_country, s.node_in_eu, s.region_country, s.region_in_eu, s.region_adequacy
            )
        )
    if cfg.name == "capacity":
        names = cfg.regions or cheap_clean_regions(scenario)
        unknown = set(names) - set(base.region_names)
        if unknown:
            raise ValueError(f"capacity.regions has {sorted(unknown)}: expected regions of the scenario")
        cols = [base.region_names.index(r) for r in names]
        cap = base.capacity_gpu_s.copy()
        cap[:, cols] *= float(level)
        return base.replace(capacity_gpu_s=cap)
    raise AssertionError(cfg.name)


def solve_policies(cfg: ExperimentConfig, inst: Instance, seed: int) -> dict[str, tuple[np.ndarray, dict[str, Any]]]:
    """Each policy's plan on ``inst`` with solver facts (oracle status and gap)."""
    from baselines.heuristics import make_heuristic

    out: dict[str, tuple[np.ndarray, dict[str, Any]]] = {}
    for name in cfg.policies:
        t = time.perf_counter()
        if name == "oracle":
            from baselines.milp import solve_hindsight

            # Settings already run in parallel processes: one solver thread each then (on either backend).
            res = solve_hindsight(
                inst, time_limit_s=cfg.time_limit_s, mip_rel_gap=cfg.mip_rel_gap, workers=1 if cfg.workers > 1 else None
            )
            out[name] = (res.plan, {"status": res.status, "mip_gap": res.mip_gap, "solve_s": time.perf_counter() - t})
        else:
            plan = make_heuristic(name, inst, seed=seed).plan(inst)
            out[name] = (plan, {"status": "heuristic", "mip_gap": float("nan"), "solve_s": time.perf_counter() - t})
    return out


def run_job(cfg: ExperimentConfig, level: Any, seed: int) -> list[dict[str, Any]]:
    """All policies on one (setting, seed): the rows of the tidy table."""
    scenario = Scenario.load(cfg.scenario)
    base = sample_instance(scenario, seed=seed, num_tasks=cfg.num_tasks)
    inst = apply_setting(cfg, scenario, base, level)
    solved = solve_policies(cfg, inst, seed)
    feasible_regions = float(static_mask(inst)[:, :-1].sum(axis=1).mean())
    rows: list[dict[str, Any]] = []
    for policy, (plan, facts) in solved.items():
        if cfg.name == "layers":
            rows.extend(_layer_rows(cfg, inst, plan, policy, seed, facts, level))
            continue
        s = metrics.summary(inst, plan)
        rows.append(
            {
                "experiment": cfg.name,
                "setting": level,
                "policy": policy,
                "seed": seed,
                **s,
                "feasible_regions": feasible_regions,
                **facts,
            }
        )
    if cfg.name != "layers":  # savings against no relocation: the local heuristic, whichever policies ran
        from baselines.heuristics import make_heuristic

        local = metrics.summary(inst, make_heuristic("local", inst).plan(inst))
        for r in rows:
            r["savings_usd"] = local["total_usd"] - r["total_usd"]
            r["energy_savings_usd"] = local["energy_usd"] - r["energy_usd"]
            r["carbon_savings_g"] = local["carbon_g"] - r["carbon_g"]
    return rows


def _layer_rows(
    cfg: ExperimentConfig, inst: Instance, plan: np.ndarray, policy: str, seed: int, facts: dict[str, Any], level: Any
) -> list[dict[str, Any]]:
    """One row per workload class (and ``all``): ``setting`` is the class, ``level`` the added slack."""
    shares = metrics.layer_shares(inst, plan, cfg.regional_rtt_ms).set_index("class")
    by_class = metrics.class_breakdown(inst, plan).set_index("class")
    be_all = metrics.break_even(inst, plan)
    rows = []
    for name in [*inst.class_names, "all"]:
        if name == "all":
            s = metrics.summary(inst, plan)
            totals = {k: s[k] for k in ("total_usd", "energy_usd", "carbon_g", "delay_usd", "migration_usd", "rid")}
            be_share = be_all.share
        else:
            b = by_class.loc[name]
            totals = {
                k: float(b[k]) for k in ("total_usd", "energy_usd", "carbon_g", "delay_usd", "migration_usd", "rid")
            }
            sel = np.flatnonzero(inst.class_idx == inst.class_names.index(name))
            moved = (plan[sel] < inst.num_regions) & (plan[sel] != inst.home_idx[sel])
            nb = metrics.net_benefit(inst, plan)[sel][moved]
            be_share = float((nb > 0).mean()) if nb.size else 0.0
        rows.append(
            {
                "experiment": "layers",
                "setting": name,
                "level": level,
                "policy": policy,
                "seed": seed,
                **totals,
                "break_even_share": be_share,
                **shares.loc[name].to_dict(),
                **facts,
            }
        )
    return rows


def add_returns_on_latency(df: pd.DataFrame) -> pd.DataFrame:
    """ERL (USD/ms) and CRL (g/ms) between consecutive frontier levels, per policy and seed."""
    df = df.sort_values(["policy", "seed", "setting"]).copy()
    g = df.groupby(["policy", "seed"], sort=False)
    df["erl"], df["crl"] = metrics.returns_per_ms(-g["energy_usd"].diff(), -g["carbon_g"].diff(), g["setting"].diff())
    return df


def run_experiment(
    cfg: ExperimentConfig,
    out: str | Path,
    progress: bool = True,
    backend: str = "process",
    address: str | None = None,
) -> pd.DataFrame:
    """Run every (setting, seed) job, write ``<name>.csv`` and figures into ``out``; return the table.

    Jobs run ``cfg.workers`` at a time on ``backend`` (:func:`benchmark.parallel.pmap`: ``process`` or ``ray``;
    ``address``: a Ray cluster). The table is the same on either backend.
    """
    from benchmark.parallel import pmap

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    Scenario.load(cfg.scenario)  # a bad scenario fails here, once, before any worker starts
    jobs = [(cfg, level, seed) for level in cfg.levels for seed in range(cfg.seeds)]
    rows: list[dict[str, Any]] = []
    t = time.perf_counter()
    bar = tqdm(total=len(jobs), desc=cfg.name, unit="setting", disable=not progress)
    for job_rows in pmap(run_job, jobs, workers=cfg.workers, backend=backend, address=address):
        rows.extend(job_rows)
        bar.update()
    bar.close()
    df = pd.DataFrame(rows)
    if cfg.name == "frontier":
        df = add_returns_on_latency(df)
    df.to_csv(out / f"{cfg.name}.csv", index=False)
    from experiments import figures

    figures.plot(cfg.name, df, out)
    df.attrs["elapsed_s"] = time.perf_counter() - t
    return df


TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "frontier": ("total_usd", "energy_usd", "carbon_g", "rid", "erl", "crl", "feasible_regions"),
    "frictions": (
        "total_usd",
        "savings_usd",
        "energy_savings_usd",
        "rid",
        "break_even_share",
        "migration_usd",
        "replica_usd",
    ),
    "legal": ("feasible_regions", "total_usd", "savings_usd", "carbon_savings_g", "rid"),
    "capacity": ("total_usd", "savings_usd", "carbon_savings_g", "rid", "num_overflow"),
    "layers": ("local_energy_share", "regional_energy_share", "energy_energy_share", "overflow_task_share", "rid"),
}


def table(df: pd.DataFrame, name: str) -> pd.DataFrame:
    """Means over seeds, one row per setting and policy, the experiment's key columns."""
    cols = [c for c in TABLE_COLUMNS[name] if c in df.columns]
    keep = (
        ["level", "setting", "policy"] if "level" in df.columns and df["level"].nunique() > 1 else ["setting", "policy"]
    )
    order = {s: j for j, s in enumerate(dict.fromkeys(df["setting"]))}  # settings in run order
    t = df.groupby(keep, sort=False)[cols].mean().reset_index()
    t["_order"] = t["setting"].map(order)
    return t.sort_values([*keep[:-2], "_order", "policy"]).drop(columns="_order").reset_index(drop=True)


def format_table(df: pd.DataFrame, name: str) -> str:
    with pd.option_context("display.float_format", "{:,.4g}".format, "display.width", 200, "display.max_rows", 500):
        return table(df, name).to_string(index=False)


def main(
    name: str,
    out: str,
    config: str | None,
    seeds: int | None,
    quick: bool,
    progress: bool = True,
    echo: Callable[[str], None] = print,
    backend: str = "process",
    address: str | None = None,
    workers: int | None = None,
) -> pd.DataFrame:
    cfg = load_config(name, config, seeds, quick)
    if workers is not None:
        cfg = dataclasses.replace(cfg, workers=workers)
    df = run_experiment(cfg, out, progress, backend, address)
    echo(f"{name}: {len(df)} rows in {df.attrs['elapsed_s']:.1f} s -> {Path(out) / (name + '.csv')}")
    echo(format_table(df, name))
    if "status" in df.columns:
        oracle = df[df["policy"] == "oracle"]
        unproven = oracle[oracle["status"] != "optimal"]
        if len(unproven):
            echo(f"note: {len(unproven)} oracle solves not proven optimal (max gap {unproven['mip_gap'].max():.2e})")
    return df


def add_subcommands(sub: Any) -> None:
    """Register ``geoinfer frontier|frictions|legal|capacity|layers`` on an argparse subparsers object."""
    helps = {
        "frontier": "sweep the latency budgets: cost, carbon, RID, ERL/CRL of the oracle and every heuristic",
        "frictions": "sweep a friction multiplier: realised savings and the break-even share",
        "legal": "residency rules off / adequacy / strict: feasible geography and benefit",
        "capacity": "scale the capacity of the cheap, clean regions",
        "layers": "per workload class, the share of energy executed local / regional / energy-oriented",
    }
    for name in EXPERIMENTS:
        p = sub.add_parser(name, help=helps[name], description=helps[name])
        p.add_argument("--out", required=True, metavar="DIR", help="folder for the CSV and PNG files")
        p.add_argument("--config", metavar="FILE", help=f"TOML overriding experiments/configs/{name}.toml")
        p.add_argument("--seeds", type=int, default=None, help="episodes per setting (seeds 0..N-1)")
        p.add_argument("--quick", action="store_true", help="a small, fast version (tests, smoke runs)")
        add_backend_arguments(p, "settings solved side by side (default: the config's workers)")
        p.set_defaults(func=_cmd_experiment, experiment=name)


def _cmd_experiment(args: Any) -> int:
    main(
        args.experiment,
        args.out,
        args.config,
        args.seeds,
        args.quick,
        backend=args.backend,
        address=args.address,
        workers=args.workers,
    )
    return 0
