"""One realised episode of the placement problem, as arrays: every task, and the signals it meets.

An :class:`Instance` is self-contained: the env, the heuristics, the MILP oracle and the metrics need
nothing else, and :meth:`Instance.save` / :meth:`Instance.load` round-trip it exactly (``.npz``).
Axes: K tasks, R regions (action R is the overflow action), N service nodes, S hourly slots, M models.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from envs.params import CostParams, _readonly

FORMAT_VERSION = 4  # of the .npz files Instance.save writes; the history of versions is in CHANGELOG.md
_READABLE_VERSIONS = (3, 4)  # a version-3 file has no horizon_h: read as whole slots, as it was played

TASK_AXES = "K"  # the axes of a per-task field


def _task(dtype: type) -> dict[str, Any]:
    """The metadata of a per-task field: a ``[K]`` array of ``dtype`` (see ``TASK_FIELDS``)."""
    return {"dtype": dtype, "axes": TASK_AXES}


def _episode(dtype: type, axes: str) -> dict[str, Any]:
    """The metadata of a per-episode field: an array of ``dtype`` over ``axes``, comma-separated sizes among
    S, R, N, M and the literal 3 (see ``EPISODE_FIELDS``)."""
    return {"dtype": dtype, "axes": axes}


@dataclass(frozen=True, slots=True, eq=False)
class Instance:
    """A sampled episode. Each array field is declared once below, with its dtype, axes and unit; ``TASK_FIELDS``
    and ``EPISODE_FIELDS`` list them (derived from these declarations)."""

    # per task [K]; quantities marked "cohort" cover all requests of the task
    # arrival time, hours since the episode start
    arrival_h: NDArray[np.float64] = field(metadata=_task(np.float64))
    slot_idx: NDArray[np.int64] = field(metadata=_task(np.int64))  # hourly slot of the arrival, in [0, S)
    node_idx: NDArray[np.int64] = field(metadata=_task(np.int64))  # service node the task arrives at
    home_idx: NDArray[np.int64] = field(metadata=_task(np.int64))  # the node's home compute region ("local")
    class_idx: NDArray[np.int64] = field(metadata=_task(np.int64))  # workload class
    model_idx: NDArray[np.int64] = field(metadata=_task(np.int64))  # model class
    residency_idx: NDArray[np.int64] = field(metadata=_task(np.int64))  # 0 global, 1 regional, 2 domestic
    budget_ms: NDArray[np.float64] = field(metadata=_task(np.float64))  # latency budget tau, ms
    rounds: NDArray[np.int64] = field(metadata=_task(np.int64))  # service <-> compute round trips
    requests: NDArray[np.int64] = field(metadata=_task(np.int64))  # requests in the cohort
    context_tokens: NDArray[np.int64] = field(metadata=_task(np.int64))  # per request
    generated_tokens: NDArray[np.int64] = field(metadata=_task(np.int64))  # per request
    # cohort GPU-seconds when run with its cache (at home)
    gpu_s: NDArray[np.float64] = field(metadata=_task(np.float64))
    # cohort IT energy when run with its cache, kWh
    energy_kwh: NDArray[np.float64] = field(metadata=_task(np.float64))
    # first-token time with its cache, ms
    inference_ms: NDArray[np.float64] = field(metadata=_task(np.float64))
    # cohort GPU-seconds to recompute the cached prefill elsewhere
    cache_gpu_s: NDArray[np.float64] = field(metadata=_task(np.float64))
    # cohort IT energy to recompute it, kWh
    cache_kwh: NDArray[np.float64] = field(metadata=_task(np.float64))
    # first-token time added by recomputing it, ms
    cache_ms: NDArray[np.float64] = field(metadata=_task(np.float64))
    # cohort bytes moved from the home region to a remote one, GB
    state_gb: NDArray[np.float64] = field(metadata=_task(np.float64))
    # cohort bytes sent back to the home region, GB
    response_gb: NDArray[np.float64] = field(metadata=_task(np.float64))
    # cohort value of a ms of latency, USD/ms
    delay_usd_per_ms: NDArray[np.float64] = field(metadata=_task(np.float64))
    # cohort SLO penalty when not served, USD
    overflow_usd: NDArray[np.float64] = field(metadata=_task(np.float64))
    # per episode
    price_usd_per_kwh: NDArray[np.float64] = field(metadata=_episode(np.float64, "S,R"))  # USD/kWh
    carbon_g_per_kwh: NDArray[np.float64] = field(metadata=_episode(np.float64, "S,R"))  # g CO2/kWh
    pue: NDArray[np.float64] = field(metadata=_episode(np.float64, "S,R"))  # facility / IT energy
    capacity_gpu_s: NDArray[np.float64] = field(metadata=_episode(np.float64, "S,R"))  # GPU-seconds per slot
    # service -> compute round trip, ms
    node_rtt_ms: NDArray[np.float64] = field(metadata=_episode(np.float64, "N,R"))
    # client -> service latency, ms
    node_client_ms: NDArray[np.float64] = field(metadata=_episode(np.float64, "N"))
    queue_ms: NDArray[np.float64] = field(metadata=_episode(np.float64, "R"))  # static queueing delay, ms
    # USD/GB, source region -> destination region
    transfer_usd_per_gb: NDArray[np.float64] = field(metadata=_episode(np.float64, "R,R"))
    # residency rule allows [node, residency class (global, regional, domestic), region]
    residency_ok: NDArray[np.bool_] = field(metadata=_episode(np.bool_, "N,3,R"))
    # USD per (window, region) opening
    replica_usd: NDArray[np.float64] = field(metadata=_episode(np.float64, "M"))
    permanent_replica: NDArray[np.bool_] = field(metadata=_episode(np.bool_, "R,M"))  # warm at no charge
    # Forecast arrival rate of the tasks whose home is each region, tasks/h: the scenario's arrival
    # intensity averaged over the slot (what an operator's demand forecast says), not the sampled arrivals.
    arrival_rate_per_h: NDArray[np.float64] = field(metadata=_episode(np.float64, "S,R"))
    # Forecast demand of the tasks that can run only at their home region (every other region is out of
    # budget or of residency), GPU-s per hour, by home region: the same arrival intensity times the
    # scenario's expected such GPU-s per task of each node. What a region must keep free for its own.
    captive_gpu_s_per_h: NDArray[np.float64] = field(metadata=_episode(np.float64, "S,R"))
    # scalars and names
    replica_window_h: int
    start_hour: int  # hour of year (UTC) of slot 0
    cost: CostParams
    region_names: tuple[str, ...]
    node_names: tuple[str, ...]
    class_names: tuple[str, ...]
    model_names: tuple[str, ...]
    scenario_name: str = ""
    seed: int | None = None
    horizon_h: float | None = None  # episode length, h, in (S - 1, S]; None: S whole slots

    def __post_init__(self) -> None:
        K = self.arrival_h.shape[0]
        sizes = {
            "S": self.price_usd_per_kwh.shape[0],
            "R": len(self.region_names),
            "N": len(self.node_names),
            "M": len(self.model_names),
        }
        for name, dtype in TASK_FIELDS.items():
            a = getattr(self, name)
            if not isinstance(a, np.ndarray) or a.shape != (K,) or a.dtype != dtype:
                raise ValueError(
                    f"Instance.{name}: expected a {np.dtype(dtype)} array of shape ({K},), got "
                    f"{getattr(a, 'dtype', type(a))} {getattr(a, 'shape', '')}"
                )
        for name, (dtype, axes) in EPISODE_FIELDS.items():
            a = getattr(self, name)
            shape = tuple(3 if ax == "3" else sizes[ax] for ax in axes.split(","))
            if not isinstance(a, np.ndarray) or a.shape != shape or a.dtype != dtype:
                raise ValueError(
                    f"Instance.{name}: expected a {np.dtype(dtype)} array of shape {shape}, got "
                    f"{getattr(a, 'dtype', type(a))} {getattr(a, 'shape', '')}"
                )
        floats = [n for n, d in TASK_FIELDS.items() if d is np.float64]
        floats += [n for n, (d, _) in EPISODE_FIELDS.items() if d is np.float64]
        for name in floats:
            a = getattr(self, name)
            bad = ~np.isfinite(a) | (a < 0)
            if bad.any():
                at = tuple(int(x) for x in np.argwhere(bad)[0])
                raise ValueError(f"Instance.{name}{list(at)} = {float(a[at])!r}: expected a finite number >= 0")
        for name, lo, hi in (
            ("slot_idx", 0, sizes["S"]),
            ("node_idx", 0, sizes["N"]),
            ("home_idx", 0, sizes["R"]),
            ("model_idx", 0, sizes["M"]),
            ("residency_idx", 0, 3),
            ("class_idx", 0, len(self.class_names)),
            ("rounds", 1, None),
            ("requests", 1, None),
        ):
            a = getattr(self, name)
            bad = (a < lo) | (a >= hi) if hi is not None else a < lo
            if bad.any():
                j = int(np.argmax(bad))
                want = f"in [{lo}, {hi})" if hi is not None else f">= {lo}"
                raise ValueError(f"Instance.{name}[{j}] = {int(a[j])}: expected an integer {want}")
        # Tasks are played in arrival order and the dynamics refresh capacity and replicas when the slot
        # or window changes, so the order must be the arrival order and slots must match arrival times.
        if K > 1 and (np.diff(self.arrival_h) < 0).any():
            j = int(np.argmax(np.diff(self.arrival_h) < 0)) + 1
            raise ValueError(
                f"Instance.arrival_h[{j}] = {float(self.arrival_h[j])!r} < arrival_h[{j - 1}]: expected "
                "tasks in arrival order (Instance.subset sorts its index)"
            )
        expected_slot = np.minimum(np.floor(self.arrival_h), sizes["S"] - 1)
        if K and (self.slot_idx != expected_slot).any():
            j = int(np.argmax(self.slot_idx != expected_slot))
            raise ValueError(
                f"Instance.slot_idx[{j}] = {int(self.slot_idx[j])}: expected {int(expected_slot[j])}, the "
                f"hour of arrival_h = {float(self.arrival_h[j])!r} (capped at the last slot)"
            )
        if self.horizon_h is not None and not (
            isinstance(self.horizon_h, int | float | np.number) and sizes["S"] - 1 < self.horizon_h <= sizes["S"]
        ):
            raise ValueError(
                f"Instance.horizon_h = {self.horizon_h!r}: expected a number of hours in "
                f"({sizes['S'] - 1}, {sizes['S']}] for {sizes['S']} slots"
            )
        if not isinstance(self.replica_window_h, int | np.integer) or self.replica_window_h < 1:
            raise ValueError(f"Instance.replica_window_h = {self.replica_window_h!r}: expected an integer >= 1")
        for name in (*TASK_FIELDS, *EPISODE_FIELDS):
            a = getattr(self, name)
            if a.flags.writeable:  # freeze a private copy: the caller's array stays as it was
                a = a.copy()
                a.setflags(write=False)
                object.__setattr__(self, name, a)

    # ------------------------------------------------------------------------------ sizes
    @property
    def num_tasks(self) -> int:
        return int(self.arrival_h.shape[0])

    @property
    def num_regions(self) -> int:
        return len(self.region_names)

    @property
    def num_actions(self) -> int:
        """Regions plus the overflow action (index ``num_regions``)."""
        return len(self.region_names) + 1

    @property
    def overflow_action(self) -> int:
        return len(self.region_names)

    @property
    def num_slots(self) -> int:
        return int(self.price_usd_per_kwh.shape[0])

    @property
    def slot_end_h(self) -> NDArray[np.float64]:
        """[S] end of each slot, hours since the start: the next hour, or the horizon in a last partial one."""
        end = np.arange(1.0, self.num_slots + 1.0)
        if self.horizon_h is not None:
            end[-1] = self.horizon_h
        return end

    @property
    def num_windows(self) -> int:
        return -(-self.num_slots // self.replica_window_h)

    @property
    def window_idx(self) -> NDArray[np.int64]:
        """[K] replica window of each task (windows are ``replica_window_h`` slots from the start)."""
        return self.slot_idx // self.replica_window_h

    def replace(self, **changes: Any) -> Instance:
        """A copy with some fields changed (e.g. ``cost=...`` or ``budget_ms=...`` for sweeps)."""
        return dataclasses.replace(self, **changes)

    def subset(self, tasks: NDArray[np.int64] | slice) -> Instance:
        """The instance restricted to some tasks, kept in arrival order (same episode arrays)."""
        idx = np.arange(self.num_tasks)[tasks]
        idx = np.unique(idx) if np.ndim(idx) else idx  # sorted: the arrival order
        arrays: dict[str, Any] = {n: np.array(getattr(self, n)[idx]) for n in TASK_FIELDS}
        return dataclasses.replace(self, **arrays)

    # ------------------------------------------------------------------------------ files
    def digest(self, portable: bool = False) -> str:
        """SHA-256 (hex) of everything the instance holds except its ``seed`` label: equal digests, equal
        episodes. Keys caches of results computed from an instance (oracle solutions).

        ``portable``: float arrays are rounded to float32 first, so that the last-bit differences of
        transcendental functions between CPUs and numpy builds (the diurnal forecasts use sin) leave the
        digest of a shipped file's episode unchanged on another machine.
        """
        h = hashlib.sha256()
        meta = self._meta()
        del meta["seed"]
        h.update(json.dumps(meta, sort_keys=True).encode())
        for name in (*TASK_FIELDS, *EPISODE_FIELDS):
            a = np.ascontiguousarray(getattr(self, name))
            if portable and a.dtype.kind == "f":
                a = a.astype(np.float32)
            h.update(f"{name}:{a.dtype.str}:{a.shape}".encode())
            h.update(a.tobytes())
        return h.hexdigest()

    def _meta(self) -> dict[str, Any]:
        """The scalars and names, as saved in the file's JSON metadata."""
        return {
            "format_version": FORMAT_VERSION,
            "replica_window_h": self.replica_window_h,
            "start_hour": self.start_hour,
            "cost": dataclasses.asdict(self.cost),
            "region_names": list(self.region_names),
            "node_names": list(self.node_names),
            "class_names": list(self.class_names),
            "model_names": list(self.model_names),
            "scenario_name": self.scenario_name,
            "seed": self.seed,
            "horizon_h": self.horizon_h,
        }

    def save(self, path: str | Path) -> None:
        """Write to ``path`` (``.npz``): arrays as stored, scalars and names as JSON metadata."""
        meta = self._meta()
        arrays = {n: getattr(self, n) for n in (*TASK_FIELDS, *EPISODE_FIELDS)}
        with open(path, "wb") as f:
            np.savez_compressed(f, __meta__=np.array(json.dumps(meta)), **arrays)

    @classmethod
    def load(cls, path: str | Path) -> Instance:
        """Read an instance written by :meth:`save`."""
        try:
            archive = np.load(path, allow_pickle=False)
        except ValueError as exc:  # numpy's message for a foreign file talks about pickles
            raise ValueError(f"{str(path)!r} is not a geoinfer instance file (not an .npz archive: {exc})") from exc
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise ValueError(
                f"{str(path)!r} is not a geoinfer instance file (a single .npy array, expected an .npz archive)"
            )
        with archive as z:
            if "__meta__" not in z.files:
                raise ValueError(f"{str(path)!r} is not a geoinfer instance file (no metadata)")
            meta = json.loads(str(z["__meta__"]))
            if meta.get("format_version") not in _READABLE_VERSIONS:
                raise ValueError(
                    f"{str(path)!r}: format_version = {meta.get('format_version')!r}: expected one "
                    f"of {_READABLE_VERSIONS}"
                )
            missing = [n for n in (*TASK_FIELDS, *EPISODE_FIELDS) if n not in z.files]
            if missing:
                raise ValueError(f"{str(path)!r} lacks the arrays {missing}")
            arrays = {n: _readonly(z[n]) for n in (*TASK_FIELDS, *EPISODE_FIELDS)}
        return cls(
            **arrays,
            replica_window_h=int(meta["replica_window_h"]),
            start_hour=int(meta["start_hour"]),
            cost=CostParams(**meta["cost"]),
            region_names=tuple(meta["region_names"]),
            node_names=tuple(meta["node_names"]),
            class_names=tuple(meta["class_names"]),
            model_names=tuple(meta["model_names"]),
            scenario_name=str(meta["scenario_name"]),
            seed=meta["seed"],
            horizon_h=meta.get("horizon_h"),
        )


# The array fields, in declaration order (the order of the .npz keys and of the digest), from the
# declarations above. Per task: name -> dtype. Per episode: name -> (dtype, axes).
TASK_FIELDS: dict[str, type] = {
    f.name: f.metadata["dtype"] for f in dataclasses.fields(Instance) if f.metadata.get("axes") == TASK_AXES
}
EPISODE_FIELDS: dict[str, tuple[type, str]] = {
    f.name: (f.metadata["dtype"], f.metadata["axes"])
    for f in dataclasses.fields(Instance)
    if f.metadata.get("axes") not in (None, TASK_AXES)
}
