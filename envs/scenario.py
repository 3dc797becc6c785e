"""The static placement problem: regions, service nodes, hourly signals, models, workload classes.

A :class:`Scenario` is immutable. Name one with :meth:`Scenario.load` (a registered name such as
``"default"`` or ``"contended"``, or a TOML path), or build it with :meth:`Scenario.default` (real 2023
data packaged in ``envs/data``) or :meth:`Scenario.from_toml` (the default with a user file's overrides).
Every check raises ``ValueError`` naming the field, the value and what was expected. The parts of a
scenario (models, workload classes, the arrival process, cost weights) live in :mod:`envs.params`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from envs import loader
from envs import spec as spec_mod
from envs.costs import residency_allowed
from envs.params import (
    ARRIVAL_KINDS,
    RESIDENCY_CLASSES,
    RESIDENCY_MODES,
    SLOT_S,
    ArrivalProcess,
    CostParams,
    ModelClass,
    TokenTrace,
    WorkloadClass,
    _check_array,
    _positive,
    _require,
)
from envs.spec import NAMED_SCENARIOS, Spec

__all__ = [  # the parameter types are re-exported: ``from envs.scenario import CostParams`` keeps working
    "ARRIVAL_KINDS",
    "NAMED_SCENARIOS",
    "RESIDENCY_CLASSES",
    "RESIDENCY_MODES",
    "SLOT_S",
    "ArrivalProcess",
    "CostParams",
    "ModelClass",
    "Scenario",
    "TokenTrace",
    "WorkloadClass",
]


@dataclass(frozen=True, slots=True, eq=False)
class Scenario:
    """An immutable placement problem. Axes: ``[time, region]`` and ``[node, region]``.

    Indices: R compute regions, N service nodes, T hourly slots of the signal slice, M model classes.
    """

    name: str
    region_names: tuple[str, ...]  # [R]
    region_country: tuple[str, ...]  # [R] ISO 3166 alpha-2
    region_continent: tuple[str, ...]  # [R]
    region_in_eu: NDArray[np.bool_]  # [R] GDPR applies directly (EU/EEA)
    region_adequacy: NDArray[np.bool_]  # [R] EU adequacy decision covers the country
    queue_ms: NDArray[np.float64]  # [R] static queueing delay, ms
    node_names: tuple[str, ...]  # [N]
    node_home_idx: NDArray[np.int64]  # [N] home compute region
    node_country: tuple[str, ...]  # [N]
    node_in_eu: NDArray[np.bool_]  # [N]
    node_rtt_ms: NDArray[np.float64]  # [N, R] service -> compute round trip, ms
    node_client_ms: NDArray[np.float64]  # [N] client -> service latency, ms
    node_utc_offset_h: NDArray[np.float64]  # [N]
    node_share: NDArray[np.float64]  # [N] traffic shares, sum 1
    first_hour: int  # hour of year (UTC) of signal row 0
    random_start: bool
    start_days: tuple[int, ...]  # days (0 = 2023-01-01) a random start picks from; () = every day of the slice
    price_usd_per_kwh: NDArray[np.float64]  # [T, R]
    carbon_g_per_kwh: NDArray[np.float64]  # [T, R]
    pue: NDArray[np.float64]  # [T, R]
    capacity_gpu_s: NDArray[np.float64]  # [T, R] GPU-seconds per slot
    transfer_usd_per_gb: NDArray[np.float64]  # [R, R] source region -> destination region
    models: tuple[ModelClass, ...]  # [M]
    classes: tuple[WorkloadClass, ...]
    cost: CostParams
    replica_window_h: int  # slots per replica window
    bytes_per_token: float
    residency_mode: str
    arrival: ArrivalProcess
    traces: Mapping[str, TokenTrace]
    spec: Spec = field(repr=False)  # the merged specification this scenario was built from
    notes: tuple[str, ...] = ()  # what the loader did to the data (filled hours, floored prices)

    def __post_init__(self) -> None:
        R, N, T = len(self.region_names), len(self.node_names), self.price_usd_per_kwh.shape[0]
        _require(R >= 1, "regions", list(self.region_names), "at least one region")
        _require(len(set(self.region_names)) == R, "regions", list(self.region_names), "distinct names")
        _require(N >= 1, "service_nodes", list(self.node_names), "at least one node with traffic_share > 0")
        for name in ("price_usd_per_kwh", "carbon_g_per_kwh", "pue", "capacity_gpu_s"):
            _check_array(name, getattr(self, name), (T, R))
        _require(bool(np.all(self.pue >= 1.0)), "pue", float(self.pue.min()), "PUE >= 1")
        _check_array("node_rtt_ms", self.node_rtt_ms, (N, R))
        _check_array("transfer_usd_per_gb", self.transfer_usd_per_gb, (R, R))
        _check_array("queue_ms", self.queue_ms, (R,))
        _check_array("node_client_ms", self.node_client_ms, (N,))
        _require(
            bool(np.all((self.node_home_idx >= 0) & (self.node_home_idx < R))),
            "node_home_idx",
            self.node_home_idx.tolist(),
            f"indices in [0, {R})",
        )
        _require(self.replica_window_h >= 1, "frictions.replica_window_h", self.replica_window_h, "an integer >= 1")
        _positive("frictions.bytes_per_token", self.bytes_per_token)
        _require(
            self.residency_mode in RESIDENCY_MODES,
            "legal.residency_mode",
            self.residency_mode,
            f"one of {RESIDENCY_MODES}",
        )
        _require(
            math.ceil(self.arrival.horizon_h) <= T,
            "signals.num_hours",
            T,
            f">= the episode horizon ({self.arrival.horizon_h} h)",
        )
        _require(len(self.classes) >= 1, "workload_classes", [], "at least one class with share > 0")
        for c in self.classes:
            _require(
                0 <= c.model_idx < len(self.models), f"workload_classes.{c.name}.model", c.model_idx, "a known model"
            )
            _require(
                c.tokens in self.traces, f"workload_classes.{c.name}.tokens", c.tokens, f"one of {sorted(self.traces)}"
            )
        _require(
            self.arrival.trace in self.traces, "workload.trace", self.arrival.trace, f"one of {sorted(self.traces)}"
        )

    # ----------------------------------------------------------------------------------- sizes
    @property
    def num_regions(self) -> int:
        return len(self.region_names)

    @property
    def num_nodes(self) -> int:
        return len(self.node_names)

    @property
    def num_hours(self) -> int:
        return int(self.price_usd_per_kwh.shape[0])

    # ---------------------------------------------------------------------------- constructors
    @classmethod
    def load(cls, source: Scenario | str | Path | None = None) -> Scenario:
        """The scenario ``source`` names: the one way to name a scenario in geoinfer.

        * a :class:`Scenario`: returned as is;
        * ``None`` or ``"default"``: :meth:`default`;
        * another registered name (a key of :data:`envs.spec.NAMED_SCENARIOS`, e.g. ``"contended"``):
          its packaged TOML file, as :meth:`from_toml` reads it;
        * a path to a TOML file (``str`` or :class:`~pathlib.Path`): :meth:`from_toml`.

        A ``str`` is a registered name first, else a path; a ``Path`` is always a path. Anything else,
        or a ``str`` / ``Path`` that is neither a registered name nor an existing file, raises
        ``ValueError`` naming the value and listing the registered names; a file that is not a valid
        scenario raises :meth:`from_toml`'s ``ValueError``.
        """
        if source is None:
            return cls.default()
        if isinstance(source, Scenario):
            return source
        names = ", ".join(repr(n) for n in NAMED_SCENARIOS)
        if not isinstance(source, str | Path):
            raise ValueError(
                f"scenario = {source!r}: expected a Scenario, None, a registered name ({names}) "
                "or the path of a TOML file"
            )
        if isinstance(source, str) and source in NAMED_SCENARIOS:
            # The default's file is the base every TOML overrides: its scenario is the default itself.
            return cls.default() if source == "default" else cls.from_toml(NAMED_SCENARIOS[source])
        if not Path(source).is_file():
            raise ValueError(
                f"scenario = {source!r}: neither a registered name ({names}) nor an existing file: expected "
                "one of those names or the path of a TOML file"
            )
        return cls.from_toml(source)

    @classmethod
    def default(cls) -> Scenario:
        """The real-data default scenario (``envs/data/default.toml``), loaded from packaged files only."""
        return cls.from_spec(spec_mod.default_spec())

    @classmethod
    def from_toml(cls, path: str | Path) -> Scenario:
        """The default scenario with the overrides of the TOML file at ``path``."""
        override = spec_mod.load_toml(path)
        return cls.from_spec(spec_mod.merge_spec(spec_mod.default_spec(), override))

    @classmethod
    def from_overrides(cls, override: Spec) -> Scenario:
        """The default scenario with overrides given as a nested dict (the TOML file's shape)."""
        return cls.from_spec(spec_mod.merge_spec(spec_mod.default_spec(), override))

    def with_overrides(self, override: Spec) -> Scenario:
        """This scenario with overrides given as a nested dict (the TOML file's shape)."""
        return Scenario.from_spec(spec_mod.merge_spec(self.spec, override))

    @classmethod
    def from_spec(cls, spec: Spec) -> Scenario:
        """Build from a complete, merged specification (see :mod:`envs.spec`); the data files it names are
        read by :mod:`envs.loader`."""
        scenario = cls(**loader.scenario_fields(spec), spec=spec)
        _check_every_class_can_run(scenario)
        return scenario


def _check_every_class_can_run(s: Scenario) -> None:
    """Reject a class that some node could send with no legal region within its largest budget.

    A task's budget is its latency at home plus its slack (see :mod:`envs.workload`), so region i is
    reachable when its extra network and queueing latency over home fits in the class's largest slack
    for some number of rounds. The extra latency is linear in the rounds, so the extremes decide: a
    region nearer than home but with a longer queue is reachable only with the most rounds.
    """
    allowed = residency_allowed(
        s.residency_mode, s.node_country, s.node_in_eu, s.region_country, s.region_in_eu, s.region_adequacy
    )  # [N, 3, R]
    home = s.node_home_idx
    for c in s.classes:
        slack = c.slack_ms[1] * s.arrival.slack_scale + s.arrival.slack_add_ms
        reachable = np.zeros((s.num_nodes, s.num_regions), dtype=bool)
        for rounds in set(c.rounds):
            extra = rounds * (s.node_rtt_ms - s.node_rtt_ms[np.arange(s.num_nodes), home][:, None]) + (
                s.queue_ms[None, :] - s.queue_ms[home][:, None]
            )  # [N, R]
            reachable |= extra <= slack + 1e-9
        for r, share in enumerate(c.residency):
            if share == 0:
                continue
            ok = (allowed[:, r, :] & reachable).any(axis=1)
            if not ok.all():
                node = s.node_names[int(np.argmin(ok))]
                raise ValueError(
                    f"workload_classes.{c.name}: {RESIDENCY_CLASSES[r]} tasks from service node {node!r} have no "
                    f"region they could ever run in (residency mode {s.residency_mode!r}, largest slack {slack} ms): "
                    "expected at least one legal region within the latency budget"
                )
